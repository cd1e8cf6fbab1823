"""The straight-through estimator, forward and backward (lesson 2).

Forward, the encoder output z_e goes through the nearest-code lookup (an argmin over the
codebook) to z_q, which the decoder reads. The argmin has no gradient, so backward the
decoder's gradient at z_q is copied straight to z_e (dashed), as z_e + sg(z_q - z_e) does.
"""

from __future__ import annotations

from .core import COLOURS, arrow, box, canvas, left_of, legend, note, right_of

__all__ = ["straight_through"]

TITLE = "The straight-through estimator: forward through the argmin, gradient around it"


def straight_through():
    """The forward pass z_e -> nearest-code lookup -> z_q -> decoder (solid arrows) and the
    backward pass (dashed): the gradient at z_q copied to z_e, skipping the argmin."""
    fig, ax = canvas(11.0, 4.6, TITLE, scale=0.85)
    y = 2.6
    z_e = box(ax, 1.3, y, "encoder output\n$z_e$", kind="data", width=1.9, height=0.9)
    lookup = box(ax, 4.1, y, "nearest code\n$k = \\arg\\min_k \\|z_e - e_k\\|^2$", kind="operation", width=2.9,
                 height=0.9, fontsize=8)
    z_q = box(ax, 7.0, y, "code vector\n$z_q = e_k$", kind="codebook", width=1.9, height=0.9)
    decoder = box(ax, 9.6, y, "decoder", kind="network", width=1.6, height=0.9)
    arrow(ax, right_of(z_e), left_of(lookup))
    arrow(ax, right_of(lookup), left_of(z_q))
    arrow(ax, right_of(z_q), left_of(decoder))

    # backward: the decoder's gradient arrives at z_q, then jumps over the argmin to z_e
    gradient = COLOURS["gradient"]
    arrow(ax, (decoder[0] - 0.3, y - 0.45), (z_q[0] + 0.3, y - 0.45), kind="gradient", dashed=True, curve=-0.5,
          text="$\\partial L / \\partial z_q$", text_offset=(0.0, -0.75))
    arrow(ax, (z_q[0] - 0.2, y - 0.45), (z_e[0] + 0.2, y - 0.45), kind="gradient", dashed=True, curve=-0.35,
          text="copied unchanged to $z_e$", text_offset=(0.0, -1.25))
    note(ax, lookup[0], y + 0.85, "no gradient through the argmin", colour=gradient)
    note(ax, 5.5, 0.35, "in code: $z_e + \\mathrm{sg}[z_q - z_e]$  (value $z_q$ forward, gradient of $z_e$ backward)",
         fontsize=9)
    legend(ax, 0.3, 4.25, [("forward", "forward pass"), ("gradient", "backward pass (gradient)")])
    return fig
