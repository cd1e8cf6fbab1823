"""Residual vector quantization (RVQ): each stage quantizes what the stages before it left.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec" (2021, arXiv:2107.03312),
Algorithm 1. With ``S`` stages of ``K`` codes, a vector ``x`` ``(D,)`` becomes

``r_1 = x;  q_s = nearest code of stage s to r_s;  r_{s+1} = r_s - q_s;  x_hat = q_1 + ... + q_S``

so a position holds ``S log2 K`` bits: ``K**S`` combinations from only ``S K`` codes. Each stage
is a :class:`~vqvae_lessons.quantizers.vq.VectorQuantizer` (or EMA one) with its own codebook
and losses; the output passes the whole sum through one straight-through estimator, so its
gradient with respect to ``x`` is the identity (adding each stage's straight-through output,
as lucidrains' ``ResidualVQ`` does, would give ``S`` times it).

Quantizer dropout (SoundStream's; drawn per batch here, as in lucidrains', not per example):
while training, with probability ``quantizer_dropout`` a batch uses only its first ``n`` stages,
``n`` drawn uniformly from ``1..S``, so the first stages learn to reconstruct on their own and one model serves every
bitrate from ``log2 K`` to ``S log2 K`` bits per position. The draw is a tensor (it works
inside compiled steps): every stage still runs, but a dropped stage adds nothing to the output
or the loss and reports index -1. An EMA stage still updates on the residual it was given,
which is the residual it would quantize were it used.

Written after reading the paper and lucidrains' ``vector-quantize-pytorch``
(``residual_vq.py``); our own code, with ``keras.ops`` only.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ..checks import check_pieces
from .vq import VectorQuantizer, VectorQuantizerEMA, straight_through

__all__ = ["ResidualVectorQuantizer"]

STAGES = {"loss": VectorQuantizer, "ema": VectorQuantizerEMA}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class ResidualVectorQuantizer(keras.layers.Layer):
    """``num_quantizers`` vector quantizers in a row, each on the residual of those before it.

    Args:
        num_quantizers: S, the number of stages.
        num_embeddings: K, codes per stage.
        embedding_dim: D, the size of each vector.
        quantizer_dropout: probability, per training batch, of using a random number of stages.
        beta: weight of each stage's commitment loss.
        stage: ``"loss"`` (:class:`VectorQuantizer`) or ``"ema"`` (:class:`VectorQuantizerEMA`).
        decay: the EMA decay (``stage="ema"`` only).
        seed: of the dropout's draws.
        pieces: the learner's functions, ``{name: function}`` (None: the package's; not saved with
            the layer). The one name known is ``"residual_stage"``: ``residual_stage(residual,
            codebook)``, lesson 7's exercise, takes a stage's input ``(N, D)`` (a backend tensor: the
            residual's rows) and its codebook ``(K, D)`` and returns the pair ``(code, residual -
            code)``, both ``(N, D)``: while the layer is called, they are the code each stage adds to
            the sum and the residual the next stage gets (from the codes as they were before an EMA
            stage's update in that call, as the stage's own). Each stage still runs as before (its
            indices, losses and EMA updates are its own); :meth:`code_indices` and :meth:`lookup`
            use the stages alone.

    Attributes:
        stages: the S quantizers (see also :attr:`bits_per_position`, ``S log2 K``).

    Call: ``x`` ``(..., D)`` to the quantizers' dict: ``quantized`` ``(..., D)`` (the sum of the
    used stages' codes, straight-through), ``indices`` ``x.shape[:-1] + (S,)`` (int32: a trailing
    stage axis, -1 where a stage was dropped), the losses (sums over the used stages), and
    ``perplexity`` and ``usage`` (means over the stages).
    """

    PIECES = ("residual_stage",)

    def __init__(self, num_quantizers, num_embeddings, embedding_dim, quantizer_dropout=0.0, beta=0.25,
                 stage="loss", decay=0.99, seed=None, pieces=None, **kwargs):
        super().__init__(**kwargs)
        self.residual_stage = check_pieces(pieces, self.PIECES, "residual VQ").get("residual_stage")
        if int(num_quantizers) < 1:
            raise ValueError(f"num_quantizers={num_quantizers} must be >= 1.")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout={quantizer_dropout} is a probability: it must lie in [0, 1].")
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r} is not known: use one of {sorted(STAGES)}.")
        self.num_quantizers, self.num_embeddings = int(num_quantizers), int(num_embeddings)
        self.embedding_dim, self.quantizer_dropout = int(embedding_dim), float(quantizer_dropout)
        self.beta, self.stage, self.decay, self.seed = float(beta), stage, float(decay), seed
        extra = {"decay": self.decay} if stage == "ema" else {}
        self.stages = [STAGES[stage](self.num_embeddings, self.embedding_dim, beta=self.beta, name=f"stage_{i}",
                                     **extra) for i in range(self.num_quantizers)]
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def bits_per_position(self):
        """Bits each position's S indices hold: ``S log2 K``."""
        return self.num_quantizers * math.log2(self.num_embeddings)

    def build(self, input_shape):
        for stage in self.stages:
            stage.build(input_shape)

    def _stages_used(self, training):
        """A scalar int tensor, how many stages this batch uses; None for all of them."""
        if not (training and self.quantizer_dropout > 0):
            return None
        drop = keras.random.uniform((), seed=self.seed_generator) < self.quantizer_dropout
        drawn = keras.random.randint((), 1, self.num_quantizers + 1, seed=self.seed_generator, dtype="int32")
        return ops.where(drop, drawn, self.num_quantizers)

    def call(self, x, training=False):
        used = self._stages_used(training)
        residual, total, indices, outputs = x, ops.zeros_like(x), [], []
        loss_keys = ("loss", "codebook_loss", "commitment_loss")
        losses = dict.fromkeys(loss_keys, 0.0)
        for s, stage in enumerate(self.stages):
            if self.residual_stage is not None:  # before the stage runs: an EMA stage updates its codes in its call
                learners = self._learners_stage(residual, stage)
            out = stage(residual, training=training)
            code, index, weight = ops.stop_gradient(out["quantized"]), ops.cast(out["indices"], "int32"), 1.0
            if self.residual_stage is not None:
                code, left = learners
            if used is not None:
                keep = s < used
                code, index = ops.where(keep, code, ops.zeros_like(code)), ops.where(keep, index, -1)
                weight = ops.cast(keep, x.dtype)
            for key in loss_keys:
                losses[key] = losses[key] + weight * out[key]
            if self.residual_stage is None:
                total, residual = total + code, residual - code
            else:
                total, residual = total + code, left if used is None else ops.where(keep, left, residual)
            indices.append(index)
            outputs.append(out)
        return {
            "quantized": straight_through(x, total),
            "indices": ops.stack(indices, axis=-1),
            **losses,
            "perplexity": sum(out["perplexity"] for out in outputs) / self.num_quantizers,
            "usage": sum(out["usage"] for out in outputs) / self.num_quantizers,
        }

    def _learners_stage(self, residual, stage):
        """The learner's ``residual_stage`` on ``residual`` ``(..., D)`` and ``stage``'s codebook: ``(code,
        residual - code)``, each of ``residual``'s shape. The code is held constant, as the stage's own is; what
        it leaves keeps the residual's gradient, so that the next stage's losses reach the encoder as they do
        without the piece."""
        rows = ops.reshape(residual, (-1, self.embedding_dim))
        code, left = self.residual_stage(rows, ops.stop_gradient(stage.codebook))
        shape = ops.shape(residual)
        return (ops.stop_gradient(ops.reshape(ops.convert_to_tensor(code, residual.dtype), shape)),
                ops.reshape(ops.convert_to_tensor(left, residual.dtype), shape))

    def code_indices(self, x):
        """Indices ``x.shape[:-1] + (S,)`` (int32) of every stage's nearest code, stage after stage."""
        residual, indices = ops.convert_to_tensor(x), []
        for stage in self.stages:
            index = ops.cast(stage.code_indices(residual), "int32")
            residual = residual - stage.lookup(index)
            indices.append(index)
        return ops.stack(indices, axis=-1)

    def lookup(self, indices):
        """The sum ``indices.shape[:-1] + (D,)`` of the codes of ``indices`` ``(..., s)``, ``s <= S``:
        the first ``s`` stages (a lower bitrate); an index of -1 (a dropped stage) adds nothing."""
        indices = ops.convert_to_tensor(indices, "int32")
        if not 1 <= indices.shape[-1] <= self.num_quantizers:
            raise ValueError(f"Expected indices (..., s) with 1 <= s <= {self.num_quantizers} stages in the last axis, "
                             f"got shape {tuple(indices.shape)}.")
        total = 0.0
        for s in range(indices.shape[-1]):
            index = indices[..., s]
            code = self.stages[s].lookup(ops.maximum(index, 0))
            total = total + code * ops.cast(ops.expand_dims(index >= 0, -1), code.dtype)
        return total

    def initialize_kmeans(self, vectors, iterations=10, seed=None):
        """Fit stage 1's codebook by k-means to ``vectors`` ``(N, D)``, stage 2's to what stage 1
        leaves, and so on; return each stage's mean squared residual, a list of S floats."""
        residual = np.asarray(vectors, "float32").reshape(-1, self.embedding_dim)
        if not self.built:
            self.build((None, self.embedding_dim))
        rng, errors = np.random.default_rng(seed), []
        for stage in self.stages:
            errors.append(stage.initialize_kmeans(residual, iterations, seed=int(rng.integers(2**31))))
            residual = residual - ops.convert_to_numpy(stage.lookup(stage.code_indices(residual)))
        return errors

    def get_config(self):
        return {**super().get_config(), "num_quantizers": self.num_quantizers, "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "quantizer_dropout": self.quantizer_dropout, "beta": self.beta,
                "stage": self.stage, "decay": self.decay, "seed": self.seed}
