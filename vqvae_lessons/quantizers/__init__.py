"""Vector quantizers behind one interface: each maps encoder outputs ``(..., D)`` to a dict
with ``quantized`` (with a gradient path to the input), ``indices``, the losses, and the
batch's ``perplexity`` and ``usage``.

* :mod:`.vq`: the learned codebook (:class:`VectorQuantizer`) and the EMA codebook
  (:class:`VectorQuantizerEMA`), their k-means start, dead-code restarts and
  :class:`CodebookMaintenance`, the callback that runs them while a VQ-VAE trains.
"""

from .vq import (
    CodebookMaintenance,
    VectorQuantizer,
    VectorQuantizerEMA,
    batch_perplexity,
    nearest_code,
    pairwise_sq_distances,
    straight_through,
    vq_losses,
)

__all__ = [
    "CodebookMaintenance",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "batch_perplexity",
    "nearest_code",
    "pairwise_sq_distances",
    "straight_through",
    "vq_losses",
]
