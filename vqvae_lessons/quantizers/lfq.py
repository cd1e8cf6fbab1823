"""Lookup-free quantization (LFQ): each channel becomes its sign, +1 or -1.

Yu et al., "Language Model Beats Diffusion: Tokenizer is Key to Visual Generation" (MAGVIT-v2,
ICLR 2024, arXiv:2310.05737). With ``bits`` channels the implicit codebook is the ``2**bits``
corners of the cube ``{-1, +1}**bits``; a code's index is the binary number of its signs
(``+1`` is bit 1, channel 0 the least significant bit), so no nearest-code search is needed.

Nothing is learned in the quantizer, but the encoder is steered by two terms:

* the entropy penalty ``mean_n H(p_n) - H(mean_n p_n)``, where ``p_n`` is a softmax over
  ``-||x_n - c_k||**2 / temperature`` for all codes ``c_k``: each vector's own entropy low (it is
  confidently near one corner), the batch's average entropy high (all corners used). Entropies
  are in nats, so the penalty lies in ``[-bits * ln 2, bits * ln 2]``;
* the commitment loss ``mean((x - sg(q))**2)``, which keeps the encoder near the corners.

The softmax runs over all ``2**bits`` codes, an ``(N, 2**bits)`` matrix: fine up to about 10
bits (at most 12 are allowed here; beyond, the per-vector entropy factorises over bits but the
batch's does not, and the reference implementations subsample). Written after reading the paper
and lucidrains' ``vector-quantize-pytorch`` (``lookup_free_quantization.py``); our own code, with
``keras.ops`` only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..checks import check_pieces
from ..distribute import replica_mean
from .vq import batch_perplexity, check_vector_size, check_vectors, pairwise_sq_distances, straight_through

__all__ = ["LookupFreeQuantizer", "entropy_terms"]

MAX_BITS = 12


def entropy_terms(logits):
    """``(per_sample_entropy, codebook_entropy)`` in nats of the softmax of ``logits`` ``(N, K)``.

    ``per_sample_entropy`` is the mean over rows of each row's entropy, ``codebook_entropy`` the
    entropy of the mean row (how evenly the batch spreads over the K codes; on several devices, the
    global batch's: :func:`~vqvae_lessons.distribute.replica_mean`).
    """
    log_p = ops.log_softmax(logits, axis=-1)
    p = ops.exp(log_p)
    per_sample = ops.mean(-ops.sum(p * log_p, axis=-1))
    average = replica_mean(p, axis=0)
    return per_sample, -ops.sum(average * ops.log(average + 1e-10))


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class LookupFreeQuantizer(keras.layers.Layer):
    """LFQ: ``bits`` channels, each quantized to its sign; ``2**bits`` implicit codes.

    Args:
        bits: channels, and bits per code (1 to 12).
        entropy_weight: weight of the entropy penalty (0.1, as lucidrains' default).
        commitment_weight: weight of the commitment loss.
        temperature: of the softmax over codes (0.01: lucidrains' inverse temperature of 100).
        pieces: the learner's functions, ``{name: function}`` (None: the package's; not saved with
            the layer). The one name known is ``"entropy_terms"``: ``entropy_terms(logits)``, lesson
            7's exercise, takes the logits ``(N, 2**bits)`` (a backend tensor: ``-||x_n - c_k||**2 /
            temperature`` for the layer's input's rows) and returns the pair ``(per_sample_entropy,
            codebook_entropy)`` of scalars in nats, as :func:`entropy_terms` does; the layer weights
            and reports them as its own. (Its batch average is the learner's: on several devices,
            each replica's, where the package's is the global batch's.)

    Attributes:
        num_embeddings: ``2**bits``, the implicit codebook's size K.
        embedding_dim: ``bits``, the channels the encoder must output.

    Call: ``x`` ``(..., bits)`` to the quantizers' dict: ``quantized`` ``(..., bits)`` (+-1, with the
    straight-through gradient), ``indices`` ``x.shape[:-1]`` (int32), ``codebook_loss`` (the
    weighted entropy penalty, which stands where a codebook loss would: it shapes how the codes
    are used; it can be negative), ``commitment_loss`` (weighted), ``loss`` (their sum),
    ``perplexity``, ``usage``, and the penalty's two parts, ``per_sample_entropy`` and
    ``codebook_entropy`` (nats, unweighted).
    """

    PIECES = ("entropy_terms",)
    # No codebook meets the encoder halfway: a VQ-VAE starts its encoder with outputs of order 1 (vqvae.py).
    needs_scaled_encoder = True

    def __init__(self, bits, entropy_weight=0.1, commitment_weight=0.25, temperature=0.01, pieces=None, **kwargs):
        super().__init__(**kwargs)
        self._entropy_piece = check_pieces(pieces, self.PIECES, "LFQ").get("entropy_terms")
        if not 1 <= int(bits) <= MAX_BITS:
            raise ValueError(f"bits={bits} must lie in [1, {MAX_BITS}]: the entropy penalty softmaxes over all "
                             f"2**bits codes (an (N, 2**bits) matrix per batch).")
        if not (entropy_weight >= 0 and commitment_weight >= 0 and temperature > 0):
            raise ValueError(f"entropy_weight={entropy_weight} and commitment_weight={commitment_weight} must be "
                             f">= 0 and temperature={temperature} > 0.")
        self.bits = int(bits)
        self.entropy_weight, self.commitment_weight = float(entropy_weight), float(commitment_weight)
        self.temperature = float(temperature)
        self.num_embeddings, self.embedding_dim = 2**self.bits, self.bits
        self._powers = (2 ** np.arange(self.bits)).astype("int32")

    def build(self, input_shape):
        check_vector_size(self, input_shape, "bits", self.bits)

    def call(self, x, training=False):
        check_vectors(self, x, "bits", self.bits)
        signs = ops.where(x > 0, 1.0, -1.0)
        flat = ops.reshape(x, (-1, self.bits))
        logits = -pairwise_sq_distances(flat, self.codebook) / self.temperature
        per_sample, codebook_entropy = (entropy_terms if self._entropy_piece is None else self._entropy_piece)(logits)
        entropy_loss = self.entropy_weight * (per_sample - codebook_entropy)
        commitment_loss = self.commitment_weight * ops.mean(ops.square(x - signs))
        indices = self.code_indices(x)
        perplexity, usage = batch_perplexity(indices, self.num_embeddings)
        return {
            "quantized": straight_through(x, signs),
            "indices": indices,
            "loss": entropy_loss + commitment_loss,
            "codebook_loss": entropy_loss,
            "commitment_loss": commitment_loss,
            "perplexity": perplexity,
            "usage": usage,
            "per_sample_entropy": per_sample,
            "codebook_entropy": codebook_entropy,
        }

    # -- the implicit codebook -------------------------------------------------------------
    def code_indices(self, x):
        """Indices ``x.shape[:-1]`` (int32): the binary number of the signs of ``x`` ``(..., bits)``."""
        return ops.sum(ops.cast(ops.convert_to_tensor(x) > 0, "int32") * self._powers, axis=-1)

    def lookup(self, indices):
        """Codes ``indices.shape + (bits,)`` (+-1) of integer ``indices`` in ``[0, 2**bits)``."""
        indices = ops.expand_dims(ops.convert_to_tensor(indices, "int32"), -1)
        return ops.cast((indices // self._powers) % 2, "float32") * 2.0 - 1.0

    @property
    def codebook(self):
        """All ``2**bits`` codes ``(K, bits)``, row ``k`` the code of index ``k``."""
        return self.lookup(np.arange(self.num_embeddings))

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "entropy_weight": self.entropy_weight,
                "commitment_weight": self.commitment_weight, "temperature": self.temperature}
