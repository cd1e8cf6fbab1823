"""The figures of codes and codebooks: code maps, usage, a 2-D codebook, what editing a code does (lessons 2-3)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import metrics
from .images import tile_images


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
