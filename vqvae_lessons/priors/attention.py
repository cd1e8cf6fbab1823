"""Self-attention and the transformer block, written with ``keras.ops``: the building blocks of
the transformer priors (:mod:`~vqvae_lessons.priors.transformer`).

A map of codes ``(H, W) = (7, 7)`` is read as a sequence of ``T = H * W = 49`` tokens in raster
order (row by row, left to right). Each token is a vector of ``C`` channels; a
:class:`TransformerBlock` mixes the tokens with multi-head self-attention and then transforms
each token alone with a small MLP, both *pre-norm* (a layer normalisation before each, a
residual connection around it)::

    x = x + Attention(LayerNorm(x))
    x = x + MLP(LayerNorm(x))

:func:`attend` is scaled dot-product attention: ``softmax(q k^T / sqrt(d) + mask) v``. A
``mask`` ``(T_q, T_k)`` of booleans says which keys each query may see: the lower triangle
makes the block *causal* (token ``t`` sees tokens ``0..t`` only), the autoregressive prior's
mask; none lets every token see every other, MaskGIT's.

:meth:`TransformerBlock.step` computes one new token from a *key/value cache*: the keys and
values of the tokens before it, kept from the earlier steps. The autoregressive sampler
uses it so that each of the 49 steps computes one position, not the whole map.

References: Vaswani et al. (2017), *Attention Is All You Need*, arXiv:1706.03762.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops


def attend(queries, keys, values, mask=None):
    """Scaled dot-product attention: ``(N, h, T_q, d)``, ``(N, h, T_k, d)``, ``(N, h, T_k, d)`` ->
    ``(N, h, T_q, d)``, ``h`` heads of ``d`` channels. ``mask``: booleans broadcastable to
    ``(N, h, T_q, T_k)``, True where a query may see a key (None: every key)."""
    scores = ops.matmul(queries, ops.transpose(keys, (0, 1, 3, 2))) / math.sqrt(queries.shape[-1])
    if mask is not None:
        scores = ops.where(mask, scores, ops.cast(-1e9, scores.dtype))
    return ops.matmul(ops.softmax(scores, axis=-1), values)


def gelu(x):
    """GELU, ``x * Phi(x)``, in its tanh approximation (GPT-2's): as good, and several times faster on
    CPUs than the exact one's error function."""
    return keras.activations.gelu(x, approximate=True)


def causal_attention_mask(length):
    """``(T, T)`` booleans, True on and below the diagonal: token ``t`` sees tokens ``0..t``."""
    positions = ops.arange(length)
    return positions[None, :] <= positions[:, None]


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class TransformerBlock(layers.Layer):
    """A pre-norm transformer block: ``(N, T, C) -> (N, T, C)``.

    Multi-head self-attention (``heads`` heads of ``C / heads`` channels, one dense layer
    for the queries, keys and values together and one for the output), then an MLP of
    ``mlp_ratio * C`` GELU units (:func:`gelu`), each after a layer normalisation and added to its input.
    ``dropout`` drops that fraction of each branch's output while training only; it acts on
    each token alone, so it never lets a causal block see the future.
    """

    def __init__(self, channels, heads=4, mlp_ratio=4, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads}): each head gets "
                             "channels / heads of them.")
        self.channels, self.heads, self.mlp_ratio, self.dropout = int(channels), int(heads), int(mlp_ratio), float(
            dropout)
        self.attention_norm = layers.LayerNormalization(epsilon=1e-5)
        self.query_key_value = layers.Dense(3 * channels)
        self.attention_out = layers.Dense(channels)
        self.mlp_norm = layers.LayerNormalization(epsilon=1e-5)
        self.mlp_hidden = layers.Dense(mlp_ratio * channels, activation=gelu)
        self.mlp_out = layers.Dense(channels)
        self.drop = layers.Dropout(self.dropout) if self.dropout else None

    def build(self, input_shape):
        features = (*input_shape[:-1], self.channels)
        for layer, shape in [(self.attention_norm, features), (self.query_key_value, features),
                             (self.attention_out, features), (self.mlp_norm, features), (self.mlp_hidden, features),
                             (self.mlp_out, (*input_shape[:-1], self.mlp_ratio * self.channels))]:
            layer.build(shape)
        self.built = True

    def call(self, x, attention_mask=None, training=None, attention=None):
        """``x`` ``(N, T, C)``; ``attention_mask`` ``(T, T)`` booleans (see :func:`attend`), or None.

        ``attention``: a function ``attention(queries, keys, values)`` that attends in place of
        :func:`attend`, each ``(N, heads, T, C / heads)`` (the heads in the leading axes) to the output
        ``(N, heads, T, C / heads)``, applying its own mask (``attention_mask`` must then be None): lesson 8
        runs the learner's causal attention this way (see :class:`~.transformer.ARTransformerPrior`)."""
        queries, keys, values = self._heads(self.query_key_value(self.attention_norm(x)))
        if attention is None:
            attended = attend(queries, keys, values, attention_mask)
        else:
            if attention_mask is not None:
                raise ValueError("attention applies its own mask: give the block attention or attention_mask, "
                                 "not both.")
            attended = ops.cast(ops.convert_to_tensor(attention(queries, keys, values)), queries.dtype)
            if len(attended.shape) != 4 or any(a is not None and b is not None and a != b
                                               for a, b in zip(attended.shape, queries.shape, strict=False)):
                raise ValueError(f"attention must return the heads' outputs of shape (N, heads, T, C / heads) = "
                                 f"{tuple(queries.shape)}, as the queries, got {tuple(attended.shape)}.")
        x = x + self._dropped(self.attention_out(self._merged(attended)), training)
        return x + self._dropped(self._mlp(x), training)

    def step(self, x, keys, values, position):
        """One new token ``x`` ``(N, C)`` at ``position`` (an int32 scalar tensor), attending to itself and
        the tokens before it, whose keys and values are in the caches ``keys`` and ``values``
        ``(N, heads, T, C / heads)`` (what lies at ``position`` and after is never read). Returns
        ``(y, keys, values)``: the block's output ``(N, C)``, as :meth:`call` with a causal mask gives it
        at ``position``, and the caches with this token's key and value written in at ``position``."""
        query, key, value = self._heads(self.query_key_value(self.attention_norm(x[:, None])))
        keys = ops.slice_update(keys, (0, 0, position, 0), key)
        values = ops.slice_update(values, (0, 0, position, 0), value)
        seen = ops.arange(keys.shape[2]) <= position  # (T,): this token and those before it
        x = x + self.attention_out(self._merged(attend(query, keys, values, seen[None, None, None, :]))[:, 0])
        return x + self._mlp(x), keys, values

    def _mlp(self, x):
        return self.mlp_out(self.mlp_hidden(self.mlp_norm(x)))

    def _heads(self, x):
        """``(N, T, 3C)`` -> queries, keys and values, each ``(N, heads, T, C / heads)``."""
        x = ops.reshape(x, (-1, x.shape[1], 3, self.heads, self.channels // self.heads))
        x = ops.transpose(x, (2, 0, 3, 1, 4))
        return x[0], x[1], x[2]

    def _merged(self, x):
        """``(N, heads, T, C / heads)`` -> ``(N, T, C)``."""
        return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (-1, x.shape[2], self.channels))

    def _dropped(self, x, training):
        return x if self.drop is None else self.drop(x, training=training)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "heads": self.heads, "mlp_ratio": self.mlp_ratio,
                "dropout": self.dropout}
