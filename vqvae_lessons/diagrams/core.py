"""Drawing primitives for the architecture diagrams: a canvas, boxes, arrows and notes.

Coordinates are in data units of a canvas ``width x height`` with the origin at the bottom
left; nothing here uses pyplot's global state.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# One palette for every diagram: what a reader should tell apart keeps its colour.
COLOURS = {
    "data": "#e8eef7",        # inputs, outputs, tensors
    "network": "#fde9c8",     # layers with weights (encoder, decoder, prior)
    "codebook": "#dff3e3",    # the codebook and code indices
    "operation": "#f2f2f2",   # parameter-free operations (argmin, sampling, lookup)
    "loss": "#f9d6d5",        # losses
    "forward": "#333333",     # forward arrows
    "gradient": "#c0392b",    # gradient arrows
    "noise": "#7d3c98",       # randomness
}


def canvas(width, height, title, scale=1.0):
    """A figure ``(fig, ax)`` with an axis-free drawing area ``width x height`` and a title."""
    fig = Figure(figsize=(width * scale, height * scale), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)
    return fig, ax


def box(ax, x, y, text, kind="network", width=1.8, height=0.8, fontsize=9):
    """A rounded box centred at ``(x, y)`` with ``text``; returns its ``(x, y, width, height)``."""
    patch = FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
                           facecolor=COLOURS[kind], edgecolor="#555555", linewidth=1)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x, y, width, height


def arrow(ax, start, end, kind="forward", text=None, text_offset=(0.0, 0.15), style="-|>", dashed=False,
          curve=0.0, fontsize=8):
    """An arrow from ``start`` to ``end`` (points), optionally labelled at its middle."""
    colour = COLOURS[kind]
    patch = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=colour, linewidth=1.4,
                            linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={curve}")
    ax.add_patch(patch)
    if text:
        middle = ((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1])
        ax.text(*middle, text, ha="center", va="bottom", fontsize=fontsize, color=colour)
    return patch


def right_of(b):
    """The middle of a box's right edge (``b`` as :func:`box` returns it)."""
    x, y, width, _ = b
    return x + width / 2, y


def left_of(b):
    x, y, width, _ = b
    return x - width / 2, y


def above(b):
    """The middle of a box's top edge."""
    x, y, _, height = b
    return x, y + height / 2


def below(b):
    x, y, _, height = b
    return x, y - height / 2


def note(ax, x, y, text, colour="#333333", fontsize=8, ha="center"):
    """Small text at ``(x, y)``: a shape, a legend entry, a remark."""
    ax.text(x, y, text, ha=ha, va="center", fontsize=fontsize, color=colour)


def legend(ax, x, y, entries, fontsize=8, step=0.3):
    """A column of ``(kind, text)`` colour keys starting at ``(x, y)`` and going down."""
    for i, (kind, text) in enumerate(entries):
        ax.plot([x, x + 0.4], [y - i * step] * 2, color=COLOURS[kind], linewidth=2,
                linestyle="--" if kind == "gradient" else "-")
        ax.text(x + 0.5, y - i * step, text, va="center", fontsize=fontsize)
