"""The reparameterization trick of lesson 1 as a computation graph.

The encoder turns an image into a mean and a log-variance; the noise epsilon ~ N(0, I) enters
from outside the model; ``z = mean + exp(log_var / 2) * epsilon`` feeds the decoder. Forward
arrows are solid; the gradient of the loss flows back (dashed) through z into the mean, the
log-variance and the encoder, and not into epsilon, which has no parameters to learn.
"""

from __future__ import annotations

from .core import COLOURS, above, arrow, below, box, canvas, left_of, legend, note, right_of

__all__ = ["reparameterization"]

TITLE = "The reparameterization trick: the noise comes from outside, the gradient flows through z"
SAMPLE = r"$z = \mu + \exp(\frac{1}{2} \log \sigma^2) \odot \varepsilon$"
NOISE = r"$\varepsilon \sim \mathcal{N}(0, I)$"


def _mark_as_noise(ax):
    """Draw the last box's border dotted, in the colour of randomness."""
    patch = ax.patches[-1]
    patch.set_edgecolor(COLOURS["noise"])
    patch.set_linestyle(":")
    patch.set_linewidth(1.8)


def reparameterization(scale=0.85):
    """The VAE's forward pass around the sampling step, with the gradient path; a Figure."""
    fig, ax = canvas(13.0, 5.6, TITLE, scale=scale)
    image = box(ax, 0.9, 3.4, "image x\n(N, 28, 28, 1)", kind="data", width=1.6, height=0.9, fontsize=8)
    encoder = box(ax, 3.0, 3.4, "encoder", kind="network", width=1.5)
    mean = box(ax, 5.4, 4.3, "mean μ\n(N, L)", kind="data", width=1.5, height=0.8, fontsize=8)
    log_var = box(ax, 5.4, 2.5, "log-variance log σ²\n(N, L)", kind="data", width=1.9, height=0.8, fontsize=8)
    sample = box(ax, 8.1, 3.4, SAMPLE, kind="operation", width=2.6, height=0.9, fontsize=10)
    noise = box(ax, 8.1, 1.0, NOISE + "\n(N, L)", kind="operation", width=1.8, height=0.9, fontsize=9)
    _mark_as_noise(ax)
    decoder = box(ax, 10.6, 3.4, "decoder", kind="network", width=1.5)
    logits = box(ax, 12.2, 3.4, "logits\n(N, 28, 28, 1)", kind="data", width=1.4, height=0.9, fontsize=8)

    # forward
    arrow(ax, right_of(image), left_of(encoder))
    arrow(ax, (3.75, 3.6), left_of(mean))
    arrow(ax, (3.75, 3.2), left_of(log_var))
    arrow(ax, right_of(mean), (6.8, 3.65))
    arrow(ax, right_of(log_var), (6.8, 3.15))
    arrow(ax, above(noise), below(sample), kind="noise")
    arrow(ax, right_of(sample), left_of(decoder))
    arrow(ax, right_of(decoder), left_of(logits))
    note(ax, 9.2, 0.75, "randomness: drawn fresh each step,\noutside the model; no parameters", ha="left",
         colour=COLOURS["noise"])

    # the gradient of the loss, backwards
    arrow(ax, (9.85, 3.0), (9.4, 3.0), kind="gradient", dashed=True)
    arrow(ax, (7.1, 3.95), (6.15, 4.55), kind="gradient", dashed=True, text="∂z/∂μ = 1", text_offset=(0.1, 0.1))
    arrow(ax, (7.1, 2.85), (6.35, 2.2), kind="gradient", dashed=True, text="∂z/∂log σ² = ½σε",
          text_offset=(0.55, -0.5))
    arrow(ax, (4.65, 4.55), (3.3, 3.8), kind="gradient", dashed=True, curve=0.2)
    arrow(ax, (4.45, 2.25), (3.3, 3.0), kind="gradient", dashed=True, curve=-0.2)
    note(ax, 3.0, 1.6, "the gradient reaches the encoder's\nweights through μ and log σ²", colour=COLOURS["gradient"])
    note(ax, 8.25, 2.15, "no gradient path into ε", colour=COLOURS["gradient"], ha="left")

    legend(ax, 0.2, 5.25, [("forward", "forward pass"), ("gradient", "gradient of the loss (backward)"),
                           ("noise", "randomness")])
    return fig
