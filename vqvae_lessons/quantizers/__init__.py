"""Vector quantizers behind one interface: each maps encoder outputs ``(..., D)`` to a dict
with ``quantized`` (with a gradient path to the input), ``indices``, the losses, and the
batch's ``perplexity`` and ``usage``; each has ``code_indices(x)``, ``lookup(indices)`` and
``num_embeddings`` (its codebook's size, implicit for FSQ and LFQ).

* :mod:`.vq`: the learned codebook (:class:`VectorQuantizer`) and the EMA codebook
  (:class:`VectorQuantizerEMA`), their k-means start, dead-code restarts and
  :class:`CodebookMaintenance`, the callback that runs them while a VQ-VAE trains; the
  rotation trick (``gradient="rotation"``) and SimVQ (``codebook_transform=True``) as options.
* :mod:`.fsq`: finite scalar quantization (:class:`FiniteScalarQuantizer`), a fixed grid.
* :mod:`.lfq`: lookup-free quantization (:class:`LookupFreeQuantizer`), signs and an entropy penalty.
* :mod:`.residual`: residual VQ (:class:`ResidualVectorQuantizer`), stages on what the
  stages before left, with quantizer dropout; its ``indices`` have a trailing stage axis.
"""

from .fsq import FiniteScalarQuantizer, round_ste
from .lfq import LookupFreeQuantizer, entropy_terms
from .residual import ResidualVectorQuantizer
from .vq import (
    GRADIENTS,
    CodebookMaintenance,
    VectorQuantizer,
    VectorQuantizerEMA,
    batch_perplexity,
    nearest_code,
    pairwise_sq_distances,
    rotate_to,
    straight_through,
    vq_losses,
)

__all__ = [
    "GRADIENTS",
    "CodebookMaintenance",
    "FiniteScalarQuantizer",
    "LookupFreeQuantizer",
    "ResidualVectorQuantizer",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "batch_perplexity",
    "entropy_terms",
    "nearest_code",
    "pairwise_sq_distances",
    "rotate_to",
    "round_ste",
    "straight_through",
    "vq_losses",
]
