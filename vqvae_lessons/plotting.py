"""The figures the lessons show, one call each.

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot's global state, so a notebook cell that ends with the call shows the
figure exactly once, and ``fig.savefig(path)`` works in a script. Every figure
has a title and labelled axes. In a notebook, ``%matplotlib inline`` (the lessons'
first cell runs it; Colab's default) makes a cell that ends with a figure draw it.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import metrics


def _grid(n, ncols, cell=1.3, extra_height=0.5):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell * ncols, cell * nrows + extra_height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def image_grid(images, titles=None, ncols=8, title="Images"):
    """A grid of grey images ``(N, 28, 28[, 1])`` in [0, 1], with optional per-image titles."""
    images = np.asarray(images).reshape(len(images), 28, 28)
    fig, axes = _grid(len(images), ncols)
    for i, image in enumerate(images):
        axes[i].imshow(image, cmap="gray_r", vmin=0, vmax=1)
        if titles is not None:
            axes[i].set_title(str(titles[i]), fontsize=9)
    fig.suptitle(title)
    return fig


def reconstructions(originals, reconstructed, n=10, title="Test digits (top) and their reconstructions (bottom)"):
    """Originals above their reconstructions, ``n`` columns; each column titled with its MSE."""
    originals = np.asarray(originals)[:n].reshape(-1, 28, 28)
    reconstructed = np.asarray(reconstructed)[:n].reshape(-1, 28, 28)
    fig = Figure(figsize=(1.3 * len(originals), 3.2), layout="constrained")
    axes = fig.subplots(2, len(originals), squeeze=False)
    for i, (original, image) in enumerate(zip(originals, reconstructed, strict=True)):
        for row, picture in enumerate((original, image)):
            axes[row, i].imshow(picture, cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        axes[1, i].set_xlabel(f"MSE {np.mean((original - image) ** 2):.4f}", fontsize=8)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(title)
    return fig


def code_maps(images, indices, num_codes, n=4, title="Digits and their 7x7 maps of code indices"):
    """Each image beside its ``(7, 7)`` grid of code indices, coloured by index and numbered."""
    images, indices = np.asarray(images)[:n].reshape(-1, 28, 28), np.asarray(indices)[:n]
    fig = Figure(figsize=(2.6 * len(images), 1.9), layout="constrained")
    axes = fig.subplots(1, 2 * len(images), squeeze=False)[0]
    for i, (image, codes) in enumerate(zip(images, indices, strict=True)):
        left, right = axes[2 * i], axes[2 * i + 1]
        left.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        left.set_title("image", fontsize=9)
        right.imshow(codes, cmap="viridis", vmin=0, vmax=num_codes - 1)
        for (row, col), code in np.ndenumerate(codes):
            light_cell = code > 0.6 * (num_codes - 1)  # viridis turns yellow: dark text stays readable
            right.text(col, row, str(code), ha="center", va="center", fontsize=6,
                       color="black" if light_cell else "white")
        right.set_title("codes", fontsize=9)
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return fig


def history(logs, keys=None, title="Training curves"):
    """Loss curves from a Keras ``History.history`` dict: one panel per key, with its
    validation curve (``val_<key>``) dashed when there is one."""
    keys = keys or [k for k in logs if not k.startswith("val_")]
    fig = Figure(figsize=(3.6 * len(keys), 3.0), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        epochs = np.arange(1, len(logs[key]) + 1)
        ax.plot(epochs, logs[key], marker="o", markersize=3, label="training")
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], linestyle="--", marker="o", markersize=3, label="validation")
            ax.legend(fontsize=8)
        ax.set_title(key.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("_", " "))
    fig.suptitle(title)
    return fig


def code_usage(indices, num_codes, title="How often each code is used"):
    """Bar chart of code frequencies, most used first, with the perplexity and codes used in the title."""
    counts = metrics.code_counts(indices, num_codes)
    order = np.argsort(-counts, kind="stable")
    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(num_codes), counts[order] / counts.sum(), width=1.0, color="tab:blue")
    ax.set_xlabel("code, from most to least used")
    ax.set_ylabel("fraction of all positions")
    perplexity, used = metrics.perplexity(indices, num_codes), metrics.codes_used(indices, num_codes)
    ax.set_title(f"{title}\nperplexity {perplexity:.1f} of {num_codes}; {used} codes used", fontsize=10)
    return fig


def latent_scatter(z, labels, title="Where the encoder puts each test digit"):
    """2-D latent points ``(N, 2)`` coloured by digit label ``(N,)``."""
    z, labels = np.asarray(z), np.asarray(labels)
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return fig


def latent_manifold(decode, extent=2.5, n=15, title="Digits decoded from a grid of points in latent space"):
    """Decode an ``n x n`` grid over ``[-extent, extent]^2`` with ``decode((M, 2)) -> (M, 28, 28[, 1])``."""
    axis = np.linspace(-extent, extent, n)
    grid = np.array([[x, y] for y in axis[::-1] for x in axis], dtype="float32")
    images = np.asarray(decode(grid)).reshape(n, n, 28, 28)
    canvas = images.transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, extent=(-extent, extent, -extent, extent))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return fig


def codebook_2d(points, codebook, title="A codebook in two dimensions"):
    """2-D toy: points ``(N, 2)`` coloured by their nearest code, codes ``(K, 2)`` as black crosses."""
    points, codebook = np.asarray(points), np.asarray(codebook)
    nearest = np.argmin(((points[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], c=nearest, cmap="tab20", s=4, alpha=0.6)
    ax.scatter(codebook[:, 0], codebook[:, 1], c="black", marker="x", s=60, label="codes")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    error = np.mean(np.sum((points - codebook[nearest]) ** 2, axis=1))
    ax.set_title(f"{title}\nmean squared quantization error {error:.3f}", fontsize=10)
    return fig


# -- Lesson 4: the sweep over the number K and the size D of the codes ------------------------------------------
# ``rows`` below are dicts as vqvae_lessons.sweep.table() returns: name, group ("grid" or "ablation"), label, K, D,
# rate_bits, test_psnr_db, test_mse, test_perplexity, codes_used, codebook_usage.
def _sweep_lines(rows):
    """The grid rows split into the K line (at the base D) and the D line (at the base K), each sorted."""
    grid = [r for r in rows if r.get("group", "grid") == "grid"]
    base_k = max({r["K"] for r in grid}, key=lambda k: sum(r["K"] == k for r in grid))
    base_d = max({r["D"] for r in grid}, key=lambda d: sum(r["D"] == d for r in grid))
    k_line = sorted((r for r in grid if r["D"] == base_d), key=lambda r: r["K"])
    d_line = sorted((r for r in grid if r["K"] == base_k), key=lambda r: r["D"])
    return k_line, d_line, base_k, base_d


def rate_distortion(rows, highlight=None, title="Rate against distortion: bits per image and test PSNR"):
    """Left: test PSNR (dB, higher is better) against the rate ``49 log2 K`` bits per image of each grid
    point, the K line (K varies at the base D) joined and the D line (D varies at the base K, all at one
    rate) as squares. Right: the D line's PSNR against D. ``highlight`` names a point to ring in red."""
    k_line, d_line, base_k, base_d = _sweep_lines(rows)
    fig = Figure(figsize=(10.5, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2, 1], sharey=True)
    left.plot([r["rate_bits"] for r in k_line], [r["test_psnr_db"] for r in k_line], marker="o",
              label=f"K varies, D = {base_d}")
    for r in k_line:
        left.annotate(f"K={r['K']}", (r["rate_bits"], r["test_psnr_db"]), textcoords="offset points",
                      xytext=(-6, 7), fontsize=8, ha="right")
    left.scatter([r["rate_bits"] for r in d_line], [r["test_psnr_db"] for r in d_line], marker="s",
                 color="tab:orange", zorder=3, label=f"D varies, K = {base_k} (right)")
    right.plot([r["D"] for r in d_line], [r["test_psnr_db"] for r in d_line], marker="s", color="tab:orange")
    right.set_xscale("log", base=2)
    right.set_xticks([r["D"] for r in d_line], [str(r["D"]) for r in d_line])
    right.set_xlabel("code size D")
    right.set_title(f"Same rate ({49 * math.log2(base_k):.0f} bits), K = {base_k}", fontsize=10)
    chosen = [r for r in rows if r["name"] == highlight]
    if chosen:
        ring = dict(s=180, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=4)
        left.scatter([chosen[0]["rate_bits"]], [chosen[0]["test_psnr_db"]], label=f"selected: {highlight}", **ring)
        if chosen[0] in d_line:
            right.scatter([chosen[0]["D"]], [chosen[0]["test_psnr_db"]], **ring)
    left.margins(x=0.08, y=0.12)
    left.set_xlabel("rate: bits per image, 49 log2 K")
    left.set_ylabel("distortion: test PSNR (dB, higher is better)")
    left.legend(fontsize=8, loc="lower right")
    left.set_title("Codebook size K", fontsize=10)
    fig.suptitle(title)
    return fig


def codebook_use(rows, title="How much of the codebook is used, as K grows"):
    """Two panels over the K line: the perplexity and the number of codes used against K (log scales, with
    the line 'all K codes, equally often'), and the fraction of the K codes used."""
    k_line, _, _, base_d = _sweep_lines(rows)
    ks = np.array([r["K"] for r in k_line])
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(ks, ks, color="grey", linestyle=":", label="K (every code, equally often)")
    left.plot(ks, [r["codes_used"] for r in k_line], marker="s", label="codes used")
    left.plot(ks, [r["test_perplexity"] for r in k_line], marker="o", label="perplexity")
    left.set_yscale("log", base=2)
    left.set_ylabel("codes")
    left.legend(fontsize=8)
    left.set_title(f"Codes in use (D = {base_d})", fontsize=10)
    right.plot(ks, [r["codebook_usage"] for r in k_line], marker="s", label="codes used / K")
    right.plot(ks, [r["test_perplexity"] / r["K"] for r in k_line], marker="o", label="perplexity / K")
    right.set_ylim(0, 1.05)
    right.set_ylabel("fraction of K")
    right.legend(fontsize=8)
    right.set_title("Share of the codebook", fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("codebook size K")
    fig.suptitle(title)
    return fig


def reconstruction_rows(originals, rows, n=8, title="Test digits reconstructed by each model"):
    """The originals in the top row, then one row of reconstructions per entry of ``rows`` (a dict: label ->
    images ``(N, 28, 28[, 1])``), ``n`` columns; each row's label on its left with its mean squared error."""
    originals = np.asarray(originals)[:n].reshape(-1, 28, 28)
    labelled = [("original", originals)] + [(label, np.asarray(images)[:n].reshape(-1, 28, 28))
                                            for label, images in rows.items()]
    fig = Figure(figsize=(1.1 * len(originals) + 1.4, 1.15 * len(labelled) + 0.5), layout="constrained")
    axes = fig.subplots(len(labelled), len(originals), squeeze=False)
    for row, (label, images) in enumerate(labelled):
        for col, image in enumerate(images):
            axes[row, col].imshow(image, cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        error = "" if row == 0 else f"\nMSE {np.mean((images - originals) ** 2):.4f}"
        axes[row, 0].set_ylabel(label + error, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def ablations(rows, title="What each codebook setting does (K and D fixed)"):
    """Horizontal bars, one per row (use ``row['label']``): test PSNR on the left, perplexity and codes used
    on the right."""
    labels = [r["label"] or r["name"] for r in rows]
    y = np.arange(len(rows))[::-1]
    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    psnr = [r["test_psnr_db"] for r in rows]
    left.barh(y, psnr, color="tab:blue")
    left.set_xlim(min(psnr) - 1.0, max(psnr) + 0.5)
    left.set_xlabel("test PSNR (dB, higher is better)")
    left.set_yticks(y, labels, fontsize=8)
    left.set_title("Distortion", fontsize=10)
    right.barh(y + 0.2, [r["codes_used"] for r in rows], height=0.4, color="tab:green", label="codes used")
    right.barh(y - 0.2, [r["test_perplexity"] for r in rows], height=0.4, color="tab:orange", label="perplexity")
    right.set_xlabel("codes")
    right.legend(fontsize=8)
    right.set_title("Codebook use", fontsize=10)
    fig.suptitle(title)
    return fig


def image_rows(rows, n=10, title="Images, one row per label"):
    """One row of ``n`` images per ``label: images (N, 28, 28, 1)`` of ``rows``, the label on the left."""
    fig = Figure(figsize=(1.2 * n, 1.3 * len(rows) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), n))
    for row, (label, images) in enumerate(rows.items()):
        for col in range(n):
            axes[row, col].imshow(images[col, ..., 0], cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(str(label).replace("codes ", "codes\n"), fontsize=8)
    fig.suptitle(title)
    return fig


def raster_order(height=7, width=7, shown=25):
    """A grid of positions numbered c_1 ... c_{H W} in raster order: blue before position ``shown``, red
    ``shown`` itself, grey after it."""
    order = np.arange(1, height * width + 1).reshape(height, width)
    status = np.where(order < shown, 0, np.where(order == shown, 1, 2))
    colours = np.array([[0.62, 0.79, 0.88], [0.84, 0.15, 0.16], [0.96, 0.96, 0.96]])
    fig = Figure(figsize=(4.6, 4.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(colours[status])
    for (i, j), t in np.ndenumerate(order):
        ax.text(j, i, f"$c_{{{t}}}$", ha="center", va="center", fontsize=9, color="white" if t == shown else "black")
    ax.set_xticks(np.arange(width))
    ax.set_yticks(np.arange(height))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"$p(c_{{{shown}}} \\mid c_1, \\dots, c_{{{shown - 1}}})$: blue = the codes it may see,\n"
                 "red = the code it predicts, grey = codes it must not see", fontsize=10)
    return fig


def masks(entries, title="Causal masks (1 = visible, 0 = hidden; red frame: the centre)"):
    """Masks side by side, ``entries`` a list of ``(mask (kh, kw), panel title)``: dark = visible (1), white =
    hidden (0), the centre framed in red."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, len(entries), width_ratios=[max(3.6, m.shape[1]) for m, _ in entries])
    for ax, (mask, panel) in zip(np.atleast_1d(axes), entries, strict=True):
        kh, kw = mask.shape
        ax.imshow(mask, cmap="Blues", vmin=0, vmax=1.4)
        ax.add_patch(Rectangle((kw // 2 - 0.5, kh // 2 - 0.5), 1, 1, fill=False, edgecolor="tab:red", linewidth=2.5))
        for (i, j), value in np.ndenumerate(mask):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8, color="white" if value else "grey")
        ax.set_xticks(np.arange(kw), np.arange(kw) - kw // 2)
        ax.set_yticks(np.arange(kh), np.arange(kh) - kh // 2)
        ax.set_xlabel("column offset")
        ax.set_ylabel("row offset")
        ax.set_title(panel, fontsize=10)
    fig.suptitle(title)
    return fig


def influence_maps(panels, position, title="Which codes the prediction at a position depends on"):
    """Gradient maps of one position side by side, ``panels`` = ``{panel title: (H, W) |gradient|}``: colour =
    log10 |gradient| where it is > 0; hatched = zero at or after ``position``; red = zero before it (blind)."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(5.4 * len(panels), 4.4), layout="constrained")
    for ax, (panel, influence) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels.items(), strict=True):
        height, width = influence.shape
        at_or_after = np.arange(height * width).reshape(height, width) >= position[0] * width + position[1]
        ax.imshow(np.where(at_or_after, 0.9, 1.0), cmap="gray", vmin=0, vmax=1)
        shown = np.ma.masked_where(influence == 0, np.log10(np.where(influence > 0, influence, 1.0)))
        image = ax.imshow(shown, cmap="viridis")
        for i, j in zip(*np.nonzero(influence == 0), strict=True):
            if not at_or_after[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="tab:red", edgecolor="white"))
                ax.text(j, i, "blind", ha="center", va="center", fontsize=7, color="white")
            else:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.7", linewidth=0))
                ax.text(j, i, "0", ha="center", va="center", fontsize=8, color="0.4")
        ax.add_patch(Rectangle((position[1] - 0.5, position[0] - 0.5), 1, 1, fill=False, edgecolor="black",
                               linewidth=2.5))
        ax.set_xticks(np.arange(width))
        ax.set_yticks(np.arange(height))
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(panel, fontsize=10)
        fig.colorbar(image, ax=ax, label="log10 |gradient|", shrink=0.85)
    fig.suptitle(title)
    return fig


def blind_counts(counts, title="How many earlier codes each position's prediction never sees"):
    """A grid of counts ``(H, W)`` (blind earlier positions of each position), each written in its cell."""
    fig = Figure(figsize=(5.0, 4.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Reds", vmin=0)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=9, color="white" if n > counts.max() / 2 else "black")
    fig.colorbar(image, ax=ax, label="blind earlier positions")
    ax.set_xticks(np.arange(counts.shape[1]))
    ax.set_yticks(np.arange(counts.shape[0]))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(title, fontsize=10)
    return fig


def _bare(ax, image):
    """Show a grey 28x28 image on ``ax`` with no ticks."""
    ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _cover_rows_not_given(ax, rows_kept):
    """Grey out the pixel rows below the first ``rows_kept`` code rows (4 pixels each) and mark the edge."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, 4 * rows_kept - 0.5), 28, 28 - 4 * rows_kept, color="0.85"))
    ax.text(13.5, 14 + 2 * rows_kept, "?", ha="center", va="center", fontsize=14, color="0.4")
    ax.axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=1)


def conditional_grid(images, labels, verdicts, per_class=10,
                     title="A class-conditional prior: row d asks for digit d (red: the judge reads another digit)"):
    """Row ``d``: the first ``per_class`` of ``images`` (N, 28, 28[, 1]) asked to be digit ``d``
    (``labels``), framed in red with the judge's reading where ``verdicts`` differ."""
    from matplotlib.patches import Rectangle

    labels, verdicts = np.asarray(labels), np.asarray(verdicts)
    fig = Figure(figsize=(0.72 * per_class, 8.0), layout="constrained")
    axes = fig.subplots(10, per_class)
    for d in range(10):
        for column, i in enumerate(np.flatnonzero(labels == d)[:per_class]):
            ax = axes[d, column]
            _bare(ax, images[i])
            if verdicts[i] != d:
                ax.add_patch(Rectangle((0, 0), 27, 27, fill=False, edgecolor="tab:red", linewidth=2))
                ax.set_title(f"read as {verdicts[i]}", fontsize=7, color="tab:red", pad=1)
        axes[d, 0].set_ylabel(f"asked: {d}", fontsize=9)
    fig.suptitle(title)
    return fig


def completions(originals, kept_decoded, completed, verdicts, rows_kept,
                title="Completing maps whose top code rows are given (titles: the judge's verdict)"):
    """One row per digit: the digit (``originals`` (P, 28, 28[, 1])), its kept top code rows
    decoded (``kept_decoded``), and its completions ``completed`` (P, S, 28, 28), each titled with
    the judge's ``verdicts`` (P, S)."""
    completed = np.asarray(completed)
    count, samples = completed.shape[:2]
    fig = Figure(figsize=(1.2 * (samples + 2), 1.35 * count + 0.6), layout="constrained")
    axes = fig.subplots(count, samples + 2, squeeze=False)
    for row in range(count):
        _bare(axes[row, 0], originals[row])
        _bare(axes[row, 1], kept_decoded[row])
        _cover_rows_not_given(axes[row, 1], rows_kept)
        for k in range(samples):
            _bare(axes[row, k + 2], completed[row, k])
            axes[row, k + 2].axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=0.8)
            axes[row, k + 2].set_title(f"a {verdicts[row][k]}?", fontsize=8, pad=2)
    axes[0, 0].set_title("test digit", fontsize=9)
    axes[0, 1].set_title(f"top {rows_kept} code rows\nkept (decoded)", fontsize=9)
    fig.suptitle(title)
    return fig


def completions_as_asked(kept, completed, asked, verdicts, rows_kept,
                         title="The same top rows completed as each digit (red titles: the judge reads another)"):
    """One row per kept top (``kept`` (P, 28, 28[, 1])): its completions ``completed`` (P * 10, ...)
    asked to be digit ``asked`` (P * 10,), titled with the judge's ``verdicts``."""
    fig = Figure(figsize=(12, 1.35 * len(kept) + 0.6), layout="constrained")
    axes = fig.subplots(len(kept), 11, squeeze=False)
    for row in range(len(kept)):
        _bare(axes[row, 0], kept[row])
        _cover_rows_not_given(axes[row, 0], rows_kept)
        axes[row, 0].set_title("kept top", fontsize=9)
        for d in range(10):
            i = row * 10 + d
            _bare(axes[row, d + 1], completed[i])
            axes[row, d + 1].axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=0.8)
            colour = "black" if verdicts[i] == asked[i] else "tab:red"
            axes[row, d + 1].set_title(f"asked {asked[i]}, read {verdicts[i]}", fontsize=8, color=colour, pad=2)
    fig.suptitle(title)
    return fig


def class_histograms(results, title="How many of each set's images the judge assigns to each digit"):
    """One bar chart per entry of ``results`` ({label: a dict with ``class_histogram`` and ``n``,
    as ``judge.judge_images`` returns}), with the uniform count marked."""
    fig = Figure(figsize=(3 * len(results), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(results), sharey=True))
    for ax, (label, r) in zip(axes, results.items(), strict=True):
        ax.bar(np.arange(10), r["class_histogram"], color="tab:blue")
        ax.axhline(r["n"] / 10, color="tab:red", linestyle="--", linewidth=1, label="uniform")
        ax.set_xticks(np.arange(10))
        ax.set_xlabel("digit, as the judge reads it")
        ax.set_title(label, fontsize=10)
    axes[0].set_ylabel("images")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def least_confident(images, probabilities, n=8,
                    title="The samples the judge is least sure of (title: its best guess and its probability)"):
    """One row per entry of ``images`` ({label: (N, 28, 28[, 1])}): the ``n`` images whose top class
    probability in ``probabilities`` ({label: (N, 10)}) is lowest."""
    fig = Figure(figsize=(1.25 * n, 1.5 * len(images) + 0.4), layout="constrained")
    axes = fig.subplots(len(images), n, squeeze=False)
    for row, label in enumerate(images):
        probs = np.asarray(probabilities[label])
        confidence = probs.max(axis=1)
        for column, i in enumerate(np.argsort(confidence)[:n]):
            _bare(axes[row, column], images[label][i])
            axes[row, column].set_title(f"{probs[i].argmax()}? {confidence[i]:.0%}", fontsize=8, pad=2)
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(title)
    return fig


def interpolation_strip(continuous, quantized, codes, t, show,
                        title="Along a straight line in the encoder's space (red: codes changed since the "
                              "previous image)"):
    """Two rows at the steps ``show``: ``continuous`` (decoded z_e(t), no quantizer) and ``quantized``
    (decoded codes of z_e(t)), with the 4x4 patches whose code in ``codes`` (steps, 7, 7) changed framed."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(2, len(show))
    for column, step in enumerate(show):
        _bare(axes[0, column], continuous[step])
        _bare(axes[1, column], quantized[step])
        if column:
            for r, c in zip(*np.nonzero(codes[step] != codes[show[column - 1]]), strict=True):
                axes[1, column].add_patch(Rectangle((4 * c - 0.5, 4 * r - 0.5), 4, 4, fill=False,
                                                    edgecolor="tab:red", linewidth=0.8))
        axes[0, column].set_title(f"t = {t[step]:.1f}", fontsize=9)
    axes[0, 0].set_ylabel("decoded z_e(t)\n(no quantizer)", fontsize=8)
    axes[1, 0].set_ylabel("decoded codes\nof z_e(t)", fontsize=8)
    fig.suptitle(title)
    return fig


def interpolation_curves(t, changed_from_a, changed_from_b, path_bits, typical_bits, names=("a", "b"),
                         title="Along the interpolation: code switches and the prior's verdict"):
    """Left: how many of the 49 codes differ from each end along ``t``; right: the prior's
    -log2 p(codes) along the path (``path_bits``) against the 5-95% range of ``typical_bits``."""
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    xlabel = f"t (0: the {names[0]}, 1: the {names[1]})"
    left.step(t, changed_from_a, where="mid", label=f"codes different from the {names[0]}'s map")
    left.step(t, changed_from_b, where="mid", label=f"codes different from the {names[1]}'s map")
    left.set_xlabel(xlabel)
    left.set_ylabel("positions (of 49)")
    left.set_title("Codes switch a few positions at a time")
    left.legend(fontsize=8)
    right.plot(t, path_bits, color="tab:purple")
    right.axhspan(*np.percentile(typical_bits, [5, 95]), color="tab:gray", alpha=0.3,
                  label=f"5-95% range of {len(typical_bits):,} test digits")
    right.set_xlabel(xlabel)
    right.set_ylabel("-log2 p(codes) under the prior (bits)")
    right.set_title("How unlikely the prior finds each map")
    right.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def tile_images(images, ncols):
    """Tile images ``(N, H, W)`` into one ``(rows * H, ncols * W)`` array, ``ncols`` a row (zeros pad the last)."""
    n, height, width = images.shape
    nrows = -(-n // ncols)
    padded = np.zeros((nrows * ncols, height, width), images.dtype)
    padded[:n] = images
    return padded.reshape(nrows, ncols, height, width).transpose(0, 2, 1, 3).reshape(nrows * height, ncols * width)


def edited_code_maps(rows, pairs, seam=4,
                     title="Decoding edited code maps: the red line is where code row 4 begins"):
    """Lesson 3: three rows of decoded images ``(N, 28, 28, 1)`` (digit A, digit B, A's top with B's
    bottom) for ``pairs`` ``[(a, b), ...]``, with a red line where code row ``seam`` begins."""
    fig = Figure(figsize=(1.6 * len(pairs), 5.4), layout="constrained")
    axes = fig.subplots(3, len(pairs), squeeze=False)
    for row, (images, name) in enumerate(zip(rows, ["digit A", "digit B", "A's top, B's bottom"], strict=True)):
        for col, (a, b) in enumerate(pairs):
            ax = axes[row, col]
            ax.imshow(images[col, ..., 0], cmap="gray_r", vmin=0, vmax=1)
            ax.axhline(4 * seam - 0.5, color="tab:red", linewidth=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title([f"a {a}", f"a {b}", f"{a} over {b}"][row], fontsize=9)
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(title)
    return fig


def code_change(original_image, change, row, col, title=None):
    """Lesson 3: a decoded image ``(28, 28)`` and the mean absolute change ``change`` ``(K, 28, 28)``
    of its pixels when the code at ``(row, col)`` is replaced by each code; red squares: its 4x4 pixels."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(7.5, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(original_image, cmap="gray_r", vmin=0, vmax=1)
    reach = right.imshow(change.mean(0), cmap="magma")
    fig.colorbar(reach, ax=right, label="mean |change| of the pixel")
    for ax, name in [(left, "decoded original"), (right, f"where it changes, averaged\nover the {len(change)} codes")]:
        ax.add_patch(Rectangle((4 * col - 0.5, 4 * row - 0.5), 4, 4, fill=False, edgecolor="tab:red", linewidth=1.5))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("pixel column")
    left.set_ylabel("pixel row")
    fig.suptitle(title or f"Changing the code at position ({row}, {col}) (red square: its 4x4 pixels)")
    return fig


def code_variants(variant_images, own_code, row, col, ncols=16):
    """Lesson 3: a 16x16 window around the 4x4 pixels of position ``(row, col)`` of each decoded
    variant ``(K, 28, 28)`` (variant k has code k there), the encoder's own code ``own_code`` in blue."""
    from matplotlib.patches import Rectangle

    k_codes = len(variant_images)
    top, left = max(0, 4 * row - 6), max(0, 4 * col - 6)
    crops = variant_images[:, top:top + 16, left:left + 16]
    size, nrows = crops.shape[1], -(-k_codes // ncols)
    fig = Figure(figsize=(12, 0.8 * nrows + 0.2), layout="constrained")
    ax = fig.subplots()
    ax.imshow(tile_images(crops, ncols), cmap="gray_r", vmin=0, vmax=1)
    for k in range(k_codes):
        own = k == own_code
        ax.add_patch(Rectangle(((k % ncols) * size + 4 * col - left - 0.5, (k // ncols) * size + 4 * row - top - 0.5),
                               4, 4, fill=False, edgecolor="tab:blue" if own else "tab:red",
                               linewidth=2 if own else 0.6))
    for edge in range(1, ncols):
        ax.axvline(edge * size - 0.5, color="white", linewidth=3)
    for edge in range(1, nrows):
        ax.axhline(edge * size - 0.5, color="white", linewidth=3)
    ax.set_xticks(np.arange(ncols) * size + size / 2 - 0.5, np.arange(ncols), fontsize=7)
    ax.set_yticks(np.arange(nrows) * size + size / 2 - 0.5, np.arange(nrows) * ncols, fontsize=7)
    ax.set_xlabel("code index = row label + column label")
    ax.set_title(f"Pixels {top}-{top + size - 1} x {left}-{left + size - 1} decoded with code 0, 1, ..., "
                 f"{k_codes - 1} at position ({row}, {col})\n(red square: that code's pixels; blue: the encoder's "
                 f"own code, {own_code})", fontsize=10)
    return fig


def single_code_images(filled, order, ncols=16,
                       title="The decoded image of a 7x7 map filled with one code (red: its index), most used first"):
    """Lesson 3: images ``(K, 28, 28)``, image i decoded from a map filled with code ``order[i]``."""
    nrows = -(-len(filled) // ncols)
    fig = Figure(figsize=(12, 0.8 * nrows), layout="constrained")
    ax = fig.subplots()
    ax.imshow(tile_images(filled, ncols), cmap="gray_r", vmin=0, vmax=1)
    for i, k in enumerate(order):
        ax.text((i % ncols) * 28 + 1, (i // ncols) * 28 + 1, str(k), color="tab:red", fontsize=6, va="top")
    ax.set_xticks([])
    ax.set_yticks(np.arange(nrows) * 28 + 13.5, [f"{ncols * r + 1}-{ncols * r + ncols}" for r in range(nrows)],
                  fontsize=7)
    ax.set_ylabel("rank by test-set usage")
    ax.set_title(title)
    return fig
