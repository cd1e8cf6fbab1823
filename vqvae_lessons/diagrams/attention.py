"""Lesson 8's diagram: the two transformer priors over a map of 49 codes, side by side.

The autoregressive transformer reads the codes shifted by one behind a start (or class) token and
predicts each code from the codes before it, through causal blocks; MaskGIT reads the map with some
codes replaced by ``[MASK]`` and predicts the hidden ones from every visible code, through
bidirectional blocks.
"""

from __future__ import annotations

from .core import COLOURS, above, arrow, below, box, canvas, note

SLOTS = 5  # tokens drawn per sequence: the first three, an ellipsis and the last
TOKENS_Y, BLOCKS_Y, OUTPUTS_Y = 1.35, 2.95, 4.45


def _prior(ax, x0, inputs, input_kinds, outputs, block_text, title, causal):
    """One prior: input tokens, the blocks, the outputs, with arrows; the curves show what the third token's
    query may attend to: itself and the tokens before it (``causal``), or every token."""
    step = 1.12
    tokens = [box(ax, x0 + i * step, TOKENS_Y, text, kind=k, width=1.0, height=0.55, fontsize=8)
              for i, (text, k) in enumerate(zip(inputs, input_kinds, strict=True))]
    for i, b in enumerate(tokens):
        if inputs[i] != "...":
            note(ax, b[0], TOKENS_Y - 0.45, f"+ position {i if i < 3 else 48}", fontsize=7, colour="#555555")
    middle = x0 + (SLOTS - 1) * step / 2
    blocks = box(ax, middle, BLOCKS_Y, block_text, kind="network", width=SLOTS * step - 0.12, height=0.95,
                 fontsize=9)
    heads = [box(ax, x0 + i * step, OUTPUTS_Y, text, kind="data", width=1.0, height=0.62, fontsize=7)
             for i, text in enumerate(outputs)]
    for i, (token, head) in enumerate(zip(tokens, heads, strict=True)):
        if inputs[i] == "...":
            continue
        arrow(ax, above(token), (token[0], blocks[1] - blocks[3] / 2))
        arrow(ax, (head[0], blocks[1] + blocks[3] / 2), below(head))
    query = tokens[2]
    for i, t in enumerate(tokens):
        if inputs[i] != "..." and t is not query and (i < 2 or not causal):
            arrow(ax, (t[0] + 0.2, TOKENS_Y + 0.3), (query[0] - 0.2 if t[0] < query[0] else query[0] + 0.2,
                                                     TOKENS_Y + 0.3), kind="noise", style="-",
                  curve=-0.3 if t[0] < query[0] else 0.3)
    note(ax, middle, TOKENS_Y - 0.95, "purple: what the third token attends to, "
         + ("itself and the tokens before it" if causal else "every token, before and after it"),
         colour=COLOURS["noise"], fontsize=8)
    note(ax, middle, OUTPUTS_Y + 0.75, title, fontsize=10)


def transformer_priors():
    """The autoregressive transformer prior (left) and MaskGIT (right) over a map's 49 codes ``c_1 .. c_49``
    in raster order: what goes in, the blocks, and what each output position predicts."""
    fig, ax = canvas(12.4, 5.6, "Two transformer priors over the 49 codes of a map", scale=1.0)
    _prior(ax, 0.6, ["start", "$c_1$", "$c_2$", "...", "$c_{48}$"],
           ["operation", "codebook", "codebook", "operation", "codebook"],
           ["$p(c_1)$", "$p(c_2 \\mid c_1)$", "$p(c_3 \\mid c_{<3})$", "...", "$p(c_{49} \\mid c_{<49})$"],
           "causal transformer blocks\n(token t sees tokens 0..t)",
           "autoregressive: the codes shifted by one; 49 steps to sample", causal=True)
    _prior(ax, 6.85, ["$c_1$", "[MASK]", "$c_3$", "...", "[MASK]"],
           ["codebook", "loss", "codebook", "operation", "loss"],
           ["(no loss)", "$p(c_2 \\mid$ visible)", "(no loss)", "...", "$p(c_{49} \\mid$ visible)"],
           "bidirectional transformer blocks\n(every token sees every token)",
           "MaskGIT: fill in the hidden codes; a few steps to sample", causal=False)
    note(ax, 6.2, 0.1, "green: a code's embedding; red: the [MASK] token of a hidden code; grey: the start "
         "token (the class token of a conditional prior)", fontsize=7, colour="#555555")
    return fig
