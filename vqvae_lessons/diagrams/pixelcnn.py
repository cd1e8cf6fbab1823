"""Lesson 5's diagrams: a gated PixelCNN block, and the receptive fields of a plain and a gated
PixelCNN computed from their masks.

:func:`receptive_field` composes the masks of :func:`vqvae_lessons.priors.masked.causal_mask`
layer by layer (nothing is drawn by hand): the plain stack of type-A then type-B masks leaves a
blind spot up and to the right, the gated block's two stacks see every earlier position.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..priors.masked import causal_mask
from .core import above, arrow, below, box, canvas, left_of, legend, note, right_of

__all__ = ["gated_block", "receptive_field", "receptive_fields"]


# ---------------------------------------------------------------------------------------------
# Receptive fields, composed from the masks
# ---------------------------------------------------------------------------------------------
def _convolve(fields, mask):
    """What each position of a masked convolution's output depends on.

    ``fields`` (H, W, H, W) booleans: ``fields[p]`` is the set of input codes the feature at
    position ``p`` depends on; the output at ``p`` depends on the union of ``fields[p + offset]``
    over the offsets the mask keeps (zero padding outside the grid)."""
    height, width = fields.shape[:2]
    kh, kw = mask.shape
    out = np.zeros_like(fields)
    for dy, dx in zip(*np.nonzero(mask), strict=True):
        dy, dx = dy - kh // 2, dx - kw // 2
        rows = slice(max(0, -dy), min(height, height - dy))
        cols = slice(max(0, -dx), min(width, width - dx))
        shifted = slice(rows.start + dy, rows.stop + dy), slice(cols.start + dx, cols.stop + dx)
        out[rows, cols] |= fields[shifted]
    return out


def receptive_field(kind, num_layers=3, shape=(7, 7), kernel_size=3):
    """``(H, W, H, W)`` booleans: which input codes the output at each position depends on.

    ``kind="plain"``: a type-A ``kernel_size`` mask, then ``num_layers - 1`` type-B masks (residual
    connections add nothing to the field). ``kind="gated"``: ``num_layers`` gated blocks, a vertical
    stack (``"vertical-A"``, then ``"vertical-B"``) and a horizontal stack (a ``1 x kernel_size`` type-A
    mask, then type B) that adds the vertical stack's features at its own position (the 1x1 link) and,
    after the first block, its own input (the residual connection)."""
    height, width = shape
    codes = np.eye(height * width, dtype=bool).reshape(height, width, height, width)
    if kind == "plain":
        field = _convolve(codes, causal_mask(kernel_size, "A"))
        for _ in range(num_layers - 1):
            field = _convolve(field, causal_mask(kernel_size, "B"))
        return field
    if kind != "gated":
        raise ValueError(f"kind={kind!r}: use 'plain' or 'gated'.")
    vertical, horizontal = codes, codes
    for layer in range(num_layers):
        first = layer == 0
        vertical = _convolve(vertical, causal_mask(kernel_size, "vertical-A" if first else "vertical-B"))
        new = _convolve(horizontal, causal_mask((1, kernel_size), "A" if first else "B")) | vertical
        horizontal = new if first else new | horizontal
    return horizontal


def _earlier(shape, position):
    """(H, W) booleans: the positions before ``position`` in raster order."""
    height, width = shape
    order = np.arange(height * width).reshape(shape)
    return order < position[0] * width + position[1]


def receptive_fields(num_layers=3, position=(3, 3), shape=(7, 7), kernel_size=3):
    """Side by side on a grid, the earlier positions the output at ``position`` depends on after
    ``num_layers`` layers of ``kernel_size`` masks: in a plain PixelCNN (its blind spot in red) and in
    a gated one (none). Computed from the masks by :func:`receptive_field`."""
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    earlier = _earlier(shape, position)
    for ax, kind, name in zip(axes, ("plain", "gated"), ("Plain PixelCNN", "Gated PixelCNN"), strict=True):
        seen = receptive_field(kind, num_layers, shape, kernel_size)[position]
        blind = earlier & ~seen
        colours = np.ones((*shape, 3)) * 0.96
        colours[seen] = (0.62, 0.79, 0.88)
        colours[blind] = (0.84, 0.15, 0.16)
        ax.imshow(colours)
        for (i, j), is_blind in np.ndenumerate(blind):
            label = "blind" if is_blind else ("seen" if seen[i, j] else "")
            ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if is_blind else "#333333")
        ax.add_patch(Rectangle((position[1] - 0.5, position[0] - 0.5), 1, 1, fill=False, edgecolor="black",
                               linewidth=2.5))
        ax.set_xticks(np.arange(shape[1]))
        ax.set_yticks(np.arange(shape[0]))
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(f"{name}: {int(blind.sum())} of {int(earlier.sum())} earlier positions blind", fontsize=10)
    fig.suptitle(f"What the output at {position} depends on after {num_layers} layers of {kernel_size}x{kernel_size} "
                 "masks (black frame: the position; grey: later positions)")
    return fig


# ---------------------------------------------------------------------------------------------
# The gated block
# ---------------------------------------------------------------------------------------------
def gated_block(class_bias=True):
    """One gated PixelCNN block (van den Oord et al., 2016): the vertical stack (left) and the
    horizontal stack (right), their masked convolutions, the gate tanh(a) * sigmoid(b) in each, the
    1x1 link from the vertical to the horizontal stack, the horizontal stack's residual connection
    and, with ``class_bias``, the class label's bias added before both gates."""
    fig, ax = canvas(11.5, 7.6, "A gated PixelCNN block: two stacks, two gates, one link", scale=0.95)
    v_in = box(ax, 2.2, 7.0, "vertical input v\n(N, 7, 7, C)", "data", width=2.6)
    h_in = box(ax, 7.8, 7.0, "horizontal input h\n(N, 7, 7, C)", "data", width=2.6)
    v_conv = box(ax, 2.2, 5.6, "k x k masked conv\n'vertical-B': rows above\n+ centre row -> 2C", width=2.8,
                 height=1.0)
    h_conv = box(ax, 7.8, 5.6, "1 x k masked conv\ntype B: left + centre\n-> 2C", width=2.8, height=1.0)
    link = box(ax, 5.0, 4.3, "1x1 conv\n2C -> 2C", width=1.6)
    plus = box(ax, 7.8, 4.3, "+", "operation", width=0.6, height=0.6, fontsize=12)
    v_gate = box(ax, 2.2, 2.9, "gate: split into a, b\ntanh(a) * sigmoid(b)", "operation", width=2.8)
    h_gate = box(ax, 7.8, 2.9, "gate: split into a, b\ntanh(a) * sigmoid(b)", "operation", width=2.8)
    h_out = box(ax, 7.8, 1.8, "1x1 conv  C -> C", width=2.0, height=0.6)
    residual = box(ax, 7.8, 0.8, "+", "operation", width=0.6, height=0.6, fontsize=12)
    v_out = box(ax, 2.2, 1.3, "vertical output\n(N, 7, 7, C)", "data", width=2.4)
    arrow(ax, below(v_in), above(v_conv))
    arrow(ax, below(h_in), above(h_conv))
    arrow(ax, below(v_conv), above(v_gate), text="a, b", text_offset=(-0.4, 0.0))
    arrow(ax, (v_conv[0] + 1.0, v_conv[1] - 0.5), left_of(link), text="v's features", text_offset=(-0.2, 0.05))
    arrow(ax, right_of(link), left_of(plus))
    arrow(ax, below(h_conv), above(plus))
    arrow(ax, below(plus), above(h_gate))
    arrow(ax, below(h_gate), above(h_out))
    arrow(ax, below(h_out), above(residual))
    arrow(ax, below(v_gate), above(v_out))
    arrow(ax, right_of(h_in), (right_of(residual)[0] + 0.05, residual[1]), text="residual", curve=-0.35,
          text_offset=(1.35, 0.0))
    arrow(ax, below(residual), (7.8, 0.05))
    note(ax, 8.9, 0.2, "horizontal output (N, 7, 7, C)")
    if class_bias:
        bias = box(ax, 5.0, 2.9, "class label y\nbias Vy (2C)", "codebook", width=1.6)
        arrow(ax, left_of(bias), right_of(v_gate), dashed=True)
        arrow(ax, right_of(bias), left_of(h_gate), dashed=True)
        note(ax, 5.0, 2.2, "(optional: a conditional prior)", fontsize=7)
    note(ax, 2.2, 0.35, "the first block uses 'vertical-A' and a type-A 1 x k mask,\nand has no residual connection",
         fontsize=7)
    legend(ax, 3.8, 7.3, [("network", "layers with weights"), ("operation", "parameter-free"),
                          ("data", "tensors")])
    return fig
