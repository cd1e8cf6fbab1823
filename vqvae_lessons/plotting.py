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
