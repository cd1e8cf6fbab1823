"""Interactive explorers for the lessons (ipywidgets; Jupyter and Colab).

:func:`explorer` shows lesson 4's sweep: pick the codebook size K, the code size D
(or one of the ablations at the base point) and see test digits reconstructed by
that point's model, their 7x7 maps of codes, the point on the rate-distortion
curve and its test metrics. Everything it draws is also available without a
browser: :meth:`Explorer.select` returns the point's record and leaves the
figures in ``Explorer.figures`` and the metrics table in ``Explorer.metrics_html.value``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from . import plotting, sweep

BASE_SETTING = "as the sweep"


class Explorer(widgets.VBox):
    """The sweep explorer: a K selector, a D selector and a codebook-setting selector above the
    metrics and figures of the selected point.

    Args:
        images: test digits ``(N, 28, 28[, 1])`` in [0, 1] to reconstruct (default: the first
            ``n`` MNIST test digits).
        n: how many digits to show (reconstructions); the code maps show the first ``min(n, 3)``.
        index: a :func:`vqvae_lessons.sweep.load_sweep` result (default: the shipped sweep).

    The sweep trains K at the base D and D at the base K, so choosing a K off the base sets D
    to the base D (and the other way round); an ablation sets both to the base point.
    """

    def __init__(self, images=None, n=8, index=None):
        self.index = index if index is not None else sweep.load_sweep()
        self.rows = sweep.table(self.index)
        if images is None:
            from .data import load_mnist

            images = load_mnist().x_test[:n]
        self.images = np.asarray(images, "float32").reshape(-1, 28, 28, 1)[:n]
        grid = [r for r in self.rows if r["group"] == "grid"]
        if not grid:
            raise sweep.SweepError(f"The sweep in {self.index.get('directory')} has no grid points to explore: "
                                   f"run python -m vqvae_lessons sweep.")
        self.base = tuple(self.index.get("grid", {}).get("base") or sweep.default_base(
            sorted({r["K"] for r in grid}), sorted({r["D"] for r in grid})))
        self._models, self._updating, self.figures, self.record = {}, False, [], None
        self.k_select = widgets.Dropdown(options=sorted({r["K"] for r in grid}), value=self.base[0],
                                         description="K (codes)")
        self.d_select = widgets.Dropdown(options=sorted({r["D"] for r in grid}), value=self.base[1],
                                         description="D (size)")
        settings = [(f"{BASE_SETTING} ({sweep.BASE_LABEL})", None)] + [
            (r["label"] or r["name"], r["name"].split("-", 2)[-1]) for r in self.rows if r["group"] == "ablation"]
        self.setting_select = widgets.Dropdown(options=settings, value=None, description="codebook",
                                               layout=widgets.Layout(width="auto"))
        self.metrics_html = widgets.HTML()
        self.output = widgets.Output()
        for control in (self.k_select, self.d_select, self.setting_select):
            control.observe(self._on_change, names="value")
        super().__init__([widgets.HBox([self.k_select, self.d_select]), self.setting_select, self.metrics_html,
                          self.output])
        self.select(*self.base)

    def model(self, record):
        """The trained model of a point's record (loaded once, then cached)."""
        if record["name"] not in self._models:
            ablation = record["name"].split("-", 2)[-1] if record["group"] == "ablation" else None
            self._models[record["name"]] = sweep.load_point(record["num_embeddings"], record["embedding_dim"],
                                                            ablation, self.index)
        return self._models[record["name"]]

    def select(self, num_embeddings, embedding_dim, ablation=None):
        """Show grid point ``(K, D)`` (or an ablation at the base point); return its record.

        Raises :class:`~vqvae_lessons.sweep.SweepError` for a point the sweep does not hold."""
        record = sweep.point(num_embeddings, embedding_dim, ablation, self.index)
        self._updating = True
        try:
            self.k_select.value, self.d_select.value = record["num_embeddings"], record["embedding_dim"]
            self.setting_select.value = ablation
        finally:
            self._updating = False
        self._show(record)
        return record

    def _on_change(self, change):
        if self._updating:
            return
        k, d, ablation = self.k_select.value, self.d_select.value, self.setting_select.value
        base_k, base_d = self.base
        if change["owner"] is self.setting_select and ablation is not None:
            k, d = base_k, base_d
        elif change["owner"] is not self.setting_select:
            ablation = None if (k, d) != (base_k, base_d) else ablation
            if change["owner"] is self.k_select and k != base_k:
                d = base_d
            if change["owner"] is self.d_select and d != base_d:
                k = base_k
        self.select(k, d, ablation)

    def _show(self, record):
        from IPython import get_ipython
        from IPython.display import clear_output, display

        model = self.model(record)
        codes = model.encode(self.images)
        reconstructed = model.decode(codes)
        k, d = record["num_embeddings"], record["embedding_dim"]
        where = f"K = {k}, D = {d}" + (f", {record['label']}" if record["group"] == "ablation" else "")
        self.record = record
        self.figures = [
            plotting.reconstructions(self.images, reconstructed, n=len(self.images),
                                     title=f"{where}: test digits (top) and their reconstructions (bottom)"),
            plotting.code_maps(self.images, codes, k, n=min(3, len(self.images)),
                               title=f"{where}: digits and their 7x7 maps of codes (0 to {k - 1})"),
            plotting.rate_distortion(self.rows, highlight=record["name"]),
        ]
        self.metrics_html.value = metrics_table(record)
        if get_ipython() is None:  # no notebook to draw in (a script or a test): the figures stay in .figures
            return
        with self.output:
            clear_output(wait=True)
            for figure in self.figures:
                display(figure)


def metrics_table(record):
    """A point's settings and test metrics as a small HTML table."""
    m = record["metrics"]
    rows = [
        ("codebook size K", f"{record['num_embeddings']}"),
        ("code size D", f"{record['embedding_dim']}"),
        ("codebook", html.escape(record.get("label", ""))),
        ("rate: bits per image (49 log2 K)", f"{record['rate_bits']:.0f}"),
        ("test PSNR (dB)", f"{m['test_psnr_db']:.2f}"),
        ("test MSE", f"{m['test_mse']:.5f}"),
        ("perplexity of the test codes", f"{m['test_perplexity']:.1f}"),
        ("codes used on the test set", f"{m['codes_used']} of {record['num_embeddings']} "
                                       f"({m['codebook_usage']:.0%})"),
        ("training time (s)", f"{record['seconds']:.0f}"),
    ]
    cells = "".join(f"<tr><td style='text-align:left; padding-right:1em'>{name}</td>"
                    f"<td style='text-align:right'>{value}</td></tr>" for name, value in rows)
    return f"<table>{cells}</table>"


def explorer(images=None, n=8, index=None):
    """Lesson 4's sweep explorer (an :class:`Explorer`, an ipywidgets ``VBox``): display it in a notebook."""
    return Explorer(images, n, index)
