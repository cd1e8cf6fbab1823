"""The VQ-VAE pipeline as a diagram: every stage with its shape, and which loss trains which part."""

from __future__ import annotations

from .core import COLOURS, above, arrow, below, box, canvas, left_of, legend, note, right_of

__all__ = ["vqvae_pipeline"]


def vqvae_pipeline(embedding_dim=16, num_embeddings=128):
    """Images -> encoder -> z_e -> nearest code -> indices -> lookup -> z_q -> decoder -> images,
    with the shape at each stage, and the three losses with the parts their gradients reach."""
    d, k = int(embedding_dim), int(num_embeddings)
    fig, ax = canvas(20, 7.2, f"The VQ-VAE on MNIST (D = {d}, K = {k}): shapes, and which loss trains which part",
                     scale=0.62)
    y = 4.6
    stages = [
        ("image x\n28x28x1", "data", 1.6),
        ("encoder", "network", 1.5),
        (f"z_e\n7x7x{d}", "data", 1.5),
        ("nearest\ncode", "operation", 1.5),
        (f"indices\n7x7 in 0..{k - 1}", "codebook", 1.9),
        ("codebook\nlookup", "operation", 1.5),
        (f"z_q\n7x7x{d}", "data", 1.5),
        ("decoder", "network", 1.5),
        ("x_hat\n28x28x1", "data", 1.6),
    ]
    boxes, x = [], 0.95
    for i, (text, kind, width) in enumerate(stages):
        x += width / 2
        boxes.append(box(ax, x, y, text, kind, width=width, height=1.0))
        x += width / 2 + (1.3 if i == 4 else 0.5)  # room after the indices for the codebook loss's arrow
    for a, b in zip(boxes, boxes[1:], strict=False):
        arrow(ax, right_of(a), left_of(b))
    encoder, nearest, indices, lookup, z_q, decoder = (boxes[i] for i in (1, 3, 4, 5, 6, 7))
    gap = (right_of(indices)[0] + left_of(lookup)[0]) / 2
    codebook = box(ax, gap, 6.5, f"codebook e_1..e_K\n{k} x {d}", "codebook", width=2.6, height=0.9)
    arrow(ax, left_of(codebook), above(nearest), curve=0.2)
    arrow(ax, right_of(codebook), above(lookup), curve=-0.2)
    note(ax, z_q[0], y + 0.85, "straight-through:\nvalue z_q, gradient to z_e", colour=COLOURS["gradient"],
         fontsize=7)

    losses_y = 1.2
    reconstruction = box(ax, decoder[0], losses_y, "reconstruction loss\nmean((x - x_hat)^2) / var", "loss",
                         width=3.4, height=0.9, fontsize=8)
    codebook_loss = box(ax, gap, losses_y, "codebook loss\nmean((z_q - sg[z_e])^2)", "loss", width=3.2, height=0.9,
                        fontsize=8)
    box(ax, encoder[0], losses_y, "commitment loss\nbeta mean((z_e - sg[z_q])^2)", "loss", width=3.4,
        height=0.9, fontsize=8)
    arrow(ax, above(reconstruction), below(decoder), "gradient")
    note(ax, decoder[0] + 0.25, 2.75, "to the decoder", colour=COLOURS["gradient"], ha="left")
    arrow(ax, (reconstruction[0] - 1.2, losses_y + 0.45), (encoder[0] + 0.5, y - 0.5), "gradient", dashed=True,
          curve=0.08)
    note(ax, 13.9, 2.05, "to the encoder, straight through z_q", colour=COLOURS["gradient"])
    arrow(ax, above(codebook_loss), below(codebook), "gradient")
    note(ax, gap + 0.15, 2.2, "to the codebook only", colour=COLOURS["gradient"], ha="left")
    arrow(ax, (encoder[0] - 0.4, losses_y + 0.45), (encoder[0] - 0.4, y - 0.5), "gradient")
    note(ax, encoder[0] - 0.55, 2.75, "to the encoder only", colour=COLOURS["gradient"], ha="right")
    legend(ax, 0.3, 6.6, [("forward", "forward pass"), ("gradient", "gradient of a loss")])
    return fig
