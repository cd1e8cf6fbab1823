"""Finite scalar quantization (FSQ): round each channel to a few levels; no codebook to learn.

Mentzer, Minnen, Agustsson and Tschannen, "Finite Scalar Quantization: VQ-VAE Made Simple"
(ICLR 2024, arXiv:2309.15505). Channel ``i`` of an encoder output ``z`` ``(..., d)`` gets ``L_i``
levels (``levels = (L_0, ..., L_{d-1})``):

1. bound it: ``tanh(z + shift) * h - offset`` with ``h = (L - 1)(1 - eps) / 2``; ``offset`` is 0
   for odd ``L`` and 1/2 for even ``L`` (so that ``L`` integers fit: ``{-L/2, ..., L/2 - 1}``), and
   ``shift = tan(offset / h)`` moves ``z = 0`` back near 0 (the paper's reference writes ``tan``);
2. round it to the nearest integer, with a straight-through gradient;
3. divide by ``L // 2``, so every code lies in [-1, 1].

The codes form an implicit codebook: the grid of all ``prod(levels)`` combinations. A code's
index is its digits ``round + L // 2`` (each in ``[0, L)``) read in mixed radix, channel 0 the
least significant: ``index = sum_i digit_i * prod_{j < i} L_j``. Nothing is learned, so there is
no codebook or commitment loss (both are 0) and no code can die.

The encoder's outputs must be of order 1: near 0 the bound's slope is about ``h``, so a channel
leaves its middle level only where ``|z|`` exceeds about ``1 / (2h)``. A freshly initialised
encoder whose outputs are small (``|z| < 0.2`` for :class:`~vqvae_lessons.vqvae.VQVAE`'s) gives
every position the same code, all zeros, and a decoder whose ReLUs then see exact zeros passes
no gradient back: scale the encoder's last layer up (or use more levels) before training.

Written after reading google-research's reference (``finite_scalar_quantization``, the paper's
appendix A.1) and lucidrains' ``vector-quantize-pytorch``; the code here is our own, with
``keras.ops`` only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..checks import check_pieces
from .vq import batch_perplexity, check_vector_size, check_vectors, straight_through

__all__ = ["FiniteScalarQuantizer", "round_ste"]


def round_ste(z):
    """``z`` ``(...)`` rounded to the nearest integer, with the identity's gradient (straight-through)."""
    return straight_through(z, ops.round(z))


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class FiniteScalarQuantizer(keras.layers.Layer):
    """FSQ: each of the ``d = len(levels)`` channels rounded to one of ``levels[i]`` values in [-1, 1].

    Args:
        levels: the number of levels of each channel, each >= 2 (the paper's 1000-code
            choice is ``(8, 5, 5, 5)``; odd levels give a grid symmetric about 0).
        eps: keeps the bound just inside the outermost levels.
        pieces: the learner's functions, ``{name: function}`` (None: the package's; not saved with
            the layer). The one name known is ``"fsq_quantize"``: ``fsq_quantize(z, levels)``, lesson
            7's exercise, takes ``z`` ``(N, d)`` (a backend tensor: the layer's input flattened to
            rows) and ``levels`` (a tuple of ``d`` ints) and returns the codes ``(N, d)`` in [-1, 1],
            bounded, rounded with a straight-through gradient and divided by ``L // 2``: it stands
            in for :meth:`bound` and :meth:`quantize_bounded` (with its own ``eps``, the exercise's
            1e-3). The indices are computed from its codes as from the package's.

    Attributes:
        num_embeddings: ``prod(levels)``, the implicit codebook's size K.
        embedding_dim: ``d``, the channels the encoder must output.

    Call: ``x`` ``(..., d)`` to the quantizers' dict: ``quantized`` ``(..., d)`` (the code, with
    the gradient of the bound times ``1 / (L // 2)``), ``indices`` ``x.shape[:-1]`` (int32),
    ``loss``, ``codebook_loss`` and ``commitment_loss`` (all 0), ``perplexity`` and ``usage``.
    """

    PIECES = ("fsq_quantize",)
    # No codebook meets the encoder halfway: a VQ-VAE starts its encoder with outputs of order 1 (vqvae.py).
    needs_scaled_encoder = True

    def __init__(self, levels, eps=1e-3, pieces=None, **kwargs):
        super().__init__(**kwargs)
        self.fsq_quantize = check_pieces(pieces, self.PIECES, "FSQ").get("fsq_quantize")
        levels = [int(level) for level in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels={levels} must give every channel at least 2 levels, e.g. (8, 5, 5, 5).")
        if np.prod(levels, dtype="float64") >= 2**31:
            raise ValueError(f"levels={levels} give {np.prod(levels, dtype='float64'):.0f} codes; keep it under 2**31.")
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps={eps} must lie in [0, 1) (1e-3 is usual).")
        self.levels, self.eps = levels, float(eps)
        self.num_embeddings, self.embedding_dim = int(np.prod(levels)), len(levels)
        lv = np.asarray(levels, "float32")
        self._half_level = (lv - 1) * (1 - self.eps) / 2  # h
        self._offset = np.where(lv % 2 == 1, 0.0, 0.5).astype("float32")
        self._shift = np.tan(self._offset / self._half_level).astype("float32")
        self._half_width = (np.asarray(levels) // 2).astype("float32")
        self._basis = np.cumprod([1, *levels[:-1]]).astype("int32")

    def build(self, input_shape):
        check_vector_size(self, input_shape, "len(levels)", self.embedding_dim,
                          fix=f"give {input_shape[-1]} levels, one per channel")

    def bound(self, z):
        """``z`` ``(..., d)`` squashed into ``(-h - offset, h - offset)`` per channel (same shape)."""
        return ops.tanh(z + self._shift) * self._half_level - self._offset

    def quantize_bounded(self, bounded):
        """Bounded values ``(..., d)`` rounded (straight-through) and divided by ``L // 2``: the codes."""
        return round_ste(bounded) / self._half_width

    def codes(self, x):
        """The codes ``(..., d)`` of encoder outputs ``x`` ``(..., d)``: the package's bound and round,
        or the learner's ``fsq_quantize`` on ``x``'s rows when the layer was given it."""
        if self.fsq_quantize is None:
            return self.quantize_bounded(self.bound(x))
        rows = ops.reshape(x, (-1, self.embedding_dim))
        return ops.reshape(self.fsq_quantize(rows, tuple(self.levels)), ops.shape(x))

    def call(self, x, training=False):
        check_vectors(self, x, "len(levels)", self.embedding_dim, fix=f"give {x.shape[-1]} levels, one per channel")
        quantized = self.codes(x)
        indices = self.codes_to_indices(ops.stop_gradient(quantized))
        zero = ops.zeros((), dtype=quantized.dtype)
        perplexity, usage = batch_perplexity(indices, self.num_embeddings)
        return {"quantized": quantized, "indices": indices, "loss": zero, "codebook_loss": zero,
                "commitment_loss": zero, "perplexity": perplexity, "usage": usage}

    # -- the implicit codebook -------------------------------------------------------------
    def codes_to_indices(self, codes):
        """Indices ``(...)`` (int32) of codes ``(..., d)`` on the grid (mixed radix, channel 0 lowest)."""
        digits = ops.cast(ops.round(codes * self._half_width + self._half_width), "int32")
        return ops.sum(digits * self._basis, axis=-1)

    def indices_to_codes(self, indices):
        """Codes ``indices.shape + (d,)`` in [-1, 1] of integer ``indices`` in ``[0, prod(levels))``."""
        indices = ops.expand_dims(ops.convert_to_tensor(indices, "int32"), -1)
        digits = ops.cast((indices // self._basis) % np.asarray(self.levels, "int32"), "float32")
        return (digits - self._half_width) / self._half_width

    @property
    def codebook(self):
        """All ``prod(levels)`` codes ``(K, d)``, row ``k`` the code of index ``k``."""
        return self.indices_to_codes(np.arange(self.num_embeddings))

    def code_indices(self, x):
        """Indices ``x.shape[:-1]`` (int32) of the codes of encoder outputs ``x`` ``(..., d)``."""
        return self.codes_to_indices(self.codes(ops.convert_to_tensor(x)))

    def lookup(self, indices):
        """Codes ``indices.shape + (d,)`` of integer ``indices``: :meth:`indices_to_codes`."""
        return self.indices_to_codes(indices)

    def get_config(self):
        return {**super().get_config(), "levels": list(self.levels), "eps": self.eps}
