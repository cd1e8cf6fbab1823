"""The figures of lesson 7's comparison of quantizers: FSQ's staircase, the rotation trick's gradients,
the table at 343 bits, rate against distortion across rates, and code use while a codebook collapses."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

METHOD_STYLES = {  # method: (colour, marker, name in legends)
    "vq": ("tab:red", "o", "VQ, straight-through (2017)"),
    "rotation": ("tab:purple", "D", "VQ, rotation trick"),
    "simvq": ("tab:brown", "v", "SimVQ"),
    "fsq": ("tab:blue", "s", "FSQ"),
    "lfq": ("tab:olive", "^", "LFQ"),
    "vq-ema": ("tab:green", "o", "VQ, EMA + k-means + restarts"),
    "rvq": ("tab:orange", "P", "residual VQ (quantizer dropout)"),
}


def fsq_staircase(levels=(8, 4), eps=1e-3, title="FSQ: bound with tanh, then round to the nearest level"):
    """For each number of levels L: the bound ``tanh(z + shift) h - offset`` and the rounded code (divided by
    L // 2) against the encoder output z, with the levels as dotted lines."""
    fig = Figure(figsize=(4.2 * len(levels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(levels), sharey=False))
    z = np.linspace(-3, 3, 1201)
    for ax, level in zip(axes, levels, strict=True):
        h = (level - 1) * (1 - eps) / 2
        offset = 0.0 if level % 2 else 0.5
        shift = np.tan(offset / h)
        bounded = np.tanh(z + shift) * h - offset
        half = level // 2
        ax.plot(z, bounded / half, color="tab:blue", label="bounded / (L // 2)")
        ax.plot(z, np.round(bounded) / half, color="tab:red", label="code: round(bounded) / (L // 2)")
        for value in (np.arange(level) - half) / half:
            ax.axhline(value, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel("encoder output $z_e$ (one channel)")
        ax.set_ylabel("value passed to the decoder")
        ax.set_title(f"L = {level} levels ({'odd' if level % 2 else 'even: offset 1/2'})", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig


def rotation_gradients(e, q, grad, title="The gradient the encoder receives: straight-through or rotated"):
    """A 2-D picture of the rotation trick: the encoder output ``e`` (z_e), its code ``q`` (z_q) and the gradient
    ``grad`` arriving at ``q``; straight-through hands ``grad`` to ``e`` as it is, the rotation trick hands it
    ``lam R^T grad``: rotated by the angle from e to q and scaled by ``|q| / |e|``."""
    e, q, grad = (np.asarray(v, "float64") for v in (e, q, grad))
    e_hat, q_hat = e / np.linalg.norm(e), q / np.linalg.norm(q)
    r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
    rotation = np.eye(2) - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)
    rotated = np.linalg.norm(q) / np.linalg.norm(e) * rotation.T @ grad
    fig = Figure(figsize=(5.4, 5.0), layout="constrained")
    ax = fig.subplots()
    arrow = dict(angles="xy", scale_units="xy", scale=1, width=0.008)
    ax.quiver(0, 0, *e, color="tab:blue", **arrow)
    ax.quiver(0, 0, *q, color="tab:red", **arrow)
    ax.quiver(*q, *grad, color="tab:red", alpha=0.6, **arrow)
    ax.quiver(*e, *grad, color="tab:green", **arrow)
    ax.quiver(*e, *rotated, color="tab:purple", **arrow)
    ax.annotate("$z_e$ (encoder output)", e, textcoords="offset points", xytext=(6, -14), color="tab:blue")
    ax.annotate("$z_q$ (its code)", q, textcoords="offset points", xytext=(6, 4), color="tab:red")
    ax.annotate("gradient at $z_q$", q + grad, textcoords="offset points", xytext=(4, 4), color="tab:red", fontsize=8)
    ax.annotate("straight-through", e + grad, textcoords="offset points", xytext=(4, -10), color="tab:green",
                fontsize=8)
    ax.annotate("rotation trick", e + rotated, textcoords="offset points", xytext=(4, 4), color="tab:purple",
                fontsize=8)
    points = np.stack([np.zeros(2), e, q, q + grad, e + grad, e + rotated])
    low, high = points.min(0) - 0.3, points.max(0) + 0.3
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.suptitle(title)
    return fig


def quantizers_at_343(rows, title="The quantizers at 343 bits per image (test set)"):
    """Horizontal bars, one per row of :func:`~vqvae_lessons.comparison.table` (group "343"): test PSNR,
    codes used and perplexity, and the prior's test NLL in bits per image."""
    colours = [METHOD_STYLES.get(r["method"], ("grey",))[0] for r in rows]
    y = np.arange(len(rows))[::-1]
    fig = Figure(figsize=(12, 0.5 * len(rows) + 1.6), layout="constrained")
    panels = dict(zip(("Distortion", "Codebook use", "Predictability (lower: easier)"),
                      fig.subplots(1, 3, sharey=True), strict=True))
    distortion, use, predictable = panels.values()
    for name, ax in panels.items():
        ax.set_title(name, fontsize=10)
    psnr = np.array([r["test_psnr_db"] for r in rows])
    distortion.barh(y, psnr, color=colours)
    distortion.set(xlim=(psnr.min() - 1.0, psnr.max() + 0.5), xlabel="test PSNR (dB, higher is better)")
    distortion.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    for offset, key, colour in ((0.2, "codes_used", "tab:green"), (-0.2, "test_perplexity", "tab:orange")):
        use.barh(y + offset, [r[key] for r in rows], height=0.4, color=colour,
                 label="codes used" if key == "codes_used" else "perplexity")
    use.axvline(128, color="grey", linestyle=":", label="K = 128")
    use.set_xlabel("codes (of 128)")
    use.legend(fontsize=8, loc="upper right")
    predictable.barh(y, [r.get("prior_nll_bits_per_image") or 0.0 for r in rows], color=colours)
    predictable.set_xlabel("prior's test NLL (bits per image)")
    fig.suptitle(title)
    return fig


def quantizer_rate_distortion(points, sweep_rows=None, title="Rate against distortion: VQ, FSQ and residual VQ"):
    """Test PSNR against bits per image, one line per method of ``points`` (dicts with ``method``,
    ``rate_bits``, ``test_psnr_db`` and ``label``: :func:`~vqvae_lessons.comparison.rate_points`); with
    ``sweep_rows`` (lesson 4's :func:`~vqvae_lessons.sweep.table`), its line of K at D = 16 in grey."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.subplots()
    if sweep_rows:
        line = sorted((r for r in sweep_rows if r.get("group") == "grid" and r["D"] == 16), key=lambda r: r["K"])
        ax.plot([r["rate_bits"] for r in line], [r["test_psnr_db"] for r in line], color="grey", linestyle="--",
                marker=".", label="lesson 4's sweep: VQ, EMA, K = 8 to 512")
    for method in dict.fromkeys(p["method"] for p in points):
        mine = sorted((p for p in points if p["method"] == method), key=lambda p: p["rate_bits"])
        colour, marker, name = METHOD_STYLES.get(method, ("black", "o", method))
        ax.plot([p["rate_bits"] for p in mine], [p["test_psnr_db"] for p in mine], color=colour, marker=marker,
                label=name)
        for p in mine:
            ax.annotate(p.get("short", ""), (p["rate_bits"], p["test_psnr_db"]), textcoords="offset points",
                        xytext=(5, -11), fontsize=7, color=colour)
    ax.axvline(343, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("rate: bits per image (49 positions x bits per position)")
    ax.set_ylabel("distortion: test PSNR (dB, higher is better)")
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig


def code_use_curves(records, num_embeddings=None, title="Codes in use while training (validation images)"):
    """Codes used (left) and perplexity (right) against training epochs, one line per record (each with
    ``label``, ``method`` and ``code_use``: a list of ``{"epoch", "codes_used", "perplexity"}``)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    for r in records:
        colour, marker, _ = METHOD_STYLES.get(r["method"], ("black", "o", ""))
        epochs = [c["epoch"] for c in r["code_use"]]
        left.plot(epochs, [c["codes_used"] for c in r["code_use"]], color=colour, marker=marker, markersize=3,
                  label=r["label"])
        right.plot(epochs, [c["perplexity"] for c in r["code_use"]], color=colour, marker=marker, markersize=3,
                   label=r["label"])
    if num_embeddings:
        left.axhline(num_embeddings, color="grey", linestyle=":", label=f"K = {num_embeddings}")
    left.set_ylabel("codes used")
    right.set_ylabel("perplexity")
    left.set_title("Codes used", fontsize=10)
    right.set_title("Perplexity (exp of the codes' entropy)", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_ylim(bottom=0)
    left.legend(fontsize=8)
    fig.suptitle(title)
    return fig
