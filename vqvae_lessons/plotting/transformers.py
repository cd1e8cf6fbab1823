"""The figures of lesson 8's transformer priors: attention weights, MaskGIT's schedule and its decoding
step by step, where a trained transformer looks, and sample quality against sampling time."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..priors import hidden_share  # no Keras: the package of the priors, not their modules


def attention_weights(panels, tokens=None, title="Attention weights (row: query, column: key)"):
    """Attention weight matrices side by side, ``panels`` = ``{panel title: (T, T) weights}``, each weight
    written in its cell; ``tokens`` names the ``T`` tokens (default ``0 .. T-1``)."""
    fig = Figure(figsize=(3.9 * len(panels), 3.9), layout="constrained")
    for ax, (panel, weights) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels.items(), strict=True):
        weights = np.asarray(weights, "float64")
        names = list(tokens) if tokens is not None else [str(i) for i in range(len(weights))]
        image = ax.imshow(weights, cmap="Blues", vmin=0, vmax=1)
        for (i, j), w in np.ndenumerate(weights):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=8, color="white" if w > 0.55 else "black")
        ax.set_xticks(np.arange(len(names)), names)
        ax.set_yticks(np.arange(len(names)), names)
        ax.set_xlabel("key: the token attended to")
        ax.set_ylabel("query: the token attending")
        ax.set_title(panel, fontsize=10)
    fig.colorbar(image, ax=fig.axes, label="weight (each row sums to 1)", shrink=0.8)
    fig.suptitle(title)
    return fig


def masking_schedules(hidden, length=49, title="MaskGIT's cosine schedule: positions still hidden after each step"):
    """Positions still hidden after each decoding step, one line per number of steps: ``hidden`` =
    ``{steps S: (S,) counts}`` for a map of ``length`` positions, against the share of the steps done."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for steps, counts in hidden.items():
        done = np.arange(steps + 1) / steps
        ax.plot(done, np.concatenate([[length], counts]), marker="o", markersize=4, label=f"{steps} steps")
    curve = np.linspace(0, 1, 200)
    ax.plot(curve, length * hidden_share(curve), color="0.6", linestyle=":", label=r"$49 \cos(\pi s / 2S)$")
    ax.set_xlabel("share of the decoding steps done, s / S")
    ax.set_ylabel(f"positions still hidden (of {length})")
    ax.set_ylim(-1, length + 2)
    ax.legend()
    ax.set_title(title, fontsize=10)
    return fig


def cross_entropy_by_context(maskgit, autoregressive, length=49,
                             title="Cross-entropy of a hidden code against how many codes the prior sees"):
    """Nats per code against the number of codes seen (0 to ``length - 1``): ``maskgit`` =
    ``{label: (length,) curve}``, entry ``k - 1`` the masked cross-entropy with ``k`` codes hidden
    (``MaskGITPrior.cross_entropy_by_hidden``: ``length - k`` seen, at random places); ``autoregressive`` =
    ``{label: (length,) curve}``, entry ``t`` the mean cross-entropy at raster position ``t`` (``t``
    codes seen: the ones before it)."""
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, curve in maskgit.items():
        curve = np.asarray(curve, "float64")
        ax.plot(length - np.arange(1, len(curve) + 1), curve, marker="o", markersize=3, label=f"{label} (masked)")
    for label, curve in autoregressive.items():
        ax.plot(np.arange(len(curve)), np.asarray(curve, "float64"), linestyle="--", label=f"{label} (raster position)")
    ax.set_xlabel("codes the prior sees when it predicts one")
    ax.set_ylabel("cross-entropy (nats per code)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def maskgit_steps(images, fixed, new, title="MaskGIT fills in a map: the decoder's guess after each step"):
    """MaskGIT's decoding step by step, one row a map and one column a step: ``images`` ``(n, S, 28, 28)``
    (the map decoded after each step, hidden positions filled with the prior's most likely code), ``fixed``
    and ``new`` ``(n, S, 7, 7)`` booleans (positions holding a code after the step; those kept at it). Hidden
    positions are shaded, the step's new ones framed in red."""
    from matplotlib.patches import Rectangle

    images, fixed, new = np.asarray(images), np.asarray(fixed, bool), np.asarray(new, bool)
    n, steps = fixed.shape[:2]
    cell = images.shape[-1] / fixed.shape[-1]
    fig = Figure(figsize=(1.35 * steps, 1.55 * n + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(n, steps, squeeze=False))
    for row in range(n):
        for s in range(steps):
            ax = axes[row, s]
            ax.imshow(images[row, s].reshape(images.shape[-2:]), cmap="gray_r", vmin=0, vmax=1)
            shade = np.kron(~fixed[row, s], np.ones((int(cell), int(cell))))
            ax.imshow(np.ma.masked_where(shade == 0, shade), cmap="Blues", vmin=0, vmax=2.5, alpha=0.55)
            for i, j in np.argwhere(new[row, s]):
                ax.add_patch(Rectangle((j * cell - 0.5, i * cell - 0.5), cell, cell, fill=False, edgecolor="tab:red",
                                       linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"step {s + 1}\n{int(fixed[row, s].sum())} of {fixed[row, s].size} fixed", fontsize=8)
    fig.suptitle(title + "\n(blue: still hidden; red: kept at this step)", fontsize=10)
    return fig


def attention_on_map(panels, position, title="Where the transformer looks"):
    """Attention weights of one position's query over the map, ``panels`` = ``{panel title: (H, W)
    weights}``: colour = the weight; positions at or after ``position`` (never attended to by a causal
    prior's prediction there) hatched; ``position`` framed."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(5.0 * len(panels), 4.3), layout="constrained")
    for ax, (panel, weights) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels.items(), strict=True):
        weights = np.asarray(weights, "float64")
        height, width = weights.shape
        later = np.arange(height * width).reshape(height, width) >= position[0] * width + position[1]
        image = ax.imshow(np.ma.masked_where(later, weights), cmap="viridis", vmin=0)
        for (i, j), w in np.ndenumerate(weights):
            if later[i, j]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", edgecolor="0.7",
                                       linewidth=0))
            else:
                ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if w > 0.6 * weights[~later].max() else "white")
        ax.add_patch(Rectangle((position[1] - 0.5, position[0] - 0.5), 1, 1, fill=False, edgecolor="tab:red",
                               linewidth=2.5))
        _map_axes(ax, panel, height, width)
        fig.colorbar(image, ax=ax, label="attention weight", shrink=0.85)
    fig.suptitle(title)
    return fig


def _map_axes(ax, title, height=7, width=7):
    """A map's axes: a tick per row and column, labelled, and the panel's title."""
    ax.set(xticks=np.arange(width), yticks=np.arange(height), xlabel="column", ylabel="row")
    ax.set_title(title, fontsize=10)


def quality_vs_speed(points, reference=None, title="Sample quality against the time to draw 1,000 maps"):
    """Squared Fréchet distance (lower is better) against seconds to draw 1,000 maps, one labelled point per
    sampler: ``points`` a list of ``{"label", "seconds", "frechet_distance"}``; ``reference``, if given, the
    real digits' own distance, drawn as a dotted line."""
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = {"PixelCNN": "tab:blue", "transformer": "tab:orange", "MaskGIT": "tab:green"}
    for p in points:
        colour = next((c for key, c in colours.items() if key in p["label"]), "tab:grey")
        ax.scatter(p["seconds"], p["frechet_distance"], s=60, color=colour, zorder=3)
        ax.annotate(p["label"], (p["seconds"], p["frechet_distance"]), textcoords="offset points", xytext=(6, 5),
                    fontsize=8)
    if reference is not None:
        ax.axhline(reference, color="0.5", linestyle=":", label="1,000 real digits")
        ax.legend(loc="best")
    ax.set_xscale("log")
    low, high = min(p["seconds"] for p in points), max(p["seconds"] for p in points)
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200) if low / 2 <= t <= high * 2]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low / 1.6, high * 1.9)
    ax.set_xlabel("seconds to draw 1,000 maps (log scale; median of repeats)")
    ax.set_ylabel("squared Fréchet distance (lower is better)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    return fig
