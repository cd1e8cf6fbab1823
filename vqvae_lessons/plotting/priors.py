"""The figures of lesson 5's priors: raster order, causal masks, influence maps and blind spots."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def raster_order(height=7, width=7, shown=24):
    """A grid of positions numbered c_0 ... c_{H W - 1} in raster order, counted from 0 as the code
    indexes them: blue before position ``shown``, red ``shown`` itself, grey after it."""
    order = np.arange(height * width).reshape(height, width)
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
    ax.set_title(f"$p(c_{{{shown}}} \\mid c_0, \\dots, c_{{{shown - 1}}})$: blue = the codes it may see,\n"
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
    """Gradient maps of one position side by side, ``panels`` = ``{panel title: (H, W) abs(gradient)}``:
    colour = ``log10 abs(gradient)`` where it is > 0; hatched = zero at or after ``position``; red = zero
    before it (blind)."""
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
