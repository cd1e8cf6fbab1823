"""PixelCNN priors over the VQ-VAE's maps of codes, and fast sampling from them.

A prior models a map of codes ``(H, W) = (7, 7)`` one position at a time in raster
order (row by row, left to right)::

    p(codes) = p(c_1) p(c_2 | c_1) ... p(c_49 | c_1, ..., c_48)

A :class:`PixelCNN` computes all 49 conditionals in one pass: its convolutions are
*masked* so that the logits at a position never see the codes at or after it.

* :func:`causal_mask` and :class:`MaskedConv2D`: the masked convolution of type
  "A" (the centre is hidden: the first layer) and "B" (the centre is visible: later
  layers), with the mask applied in every forward pass.
* ``PixelCNN("keras-example")``: the prior of the published Keras example exactly:
  a 7x7 type-A convolution with 128 filters over one-hot codes, two residual blocks
  with a 3x3 type-B convolution, two 1x1 type-B layers and logits over the codebook.
  Its stacked masks leave a *blind spot*: positions up and to the right that it
  never sees.
* ``PixelCNN("gated")``: the project's default, a gated PixelCNN (van den Oord et
  al., 2016) with a vertical stack (the rows above, full width) and a horizontal
  stack (this row, to the left): no blind spot, and optionally conditioned on a
  class label. :func:`fix_label` turns a conditional prior into the unconditional prior
  of one label (training on moved digits uses it: see ``train.train_prior``).

:func:`sample` draws maps of codes (seeded, batched, with a temperature, class
labels and fixed codes to complete a partly given map) and :func:`generate` decodes
them into images with a VQ-VAE. Sampling does not recompute the whole map for each of
the 49 positions, as the Keras example does: every layer is causal, so the rows above
the current one never change again. :func:`sample` keeps each layer's rows above in a
cache and computes only the current row (and, where the masks allow, only the columns
the next code needs), in one compiled step per case; and a convolution over one-hot
codes is a lookup of kernel rows (see :class:`MaskedConv2D`).
"""

from __future__ import annotations

import logging

import keras
import numpy as np
from keras import layers, ops

from .vqvae import CODE_GRID

MASK_TYPES = ("A", "B", "vertical-A", "vertical-B")
ARCHITECTURES = {  # name: default channels, default number of layers (residual or gated)
    "keras-example": {"channels": 128, "num_layers": 2},
    "gated": {"channels": 64, "num_layers": 6},
}


def causal_mask(kernel_size, mask_type):
    """The ``(kh, kw)`` mask (float32, 0 or 1) of a PixelCNN convolution.

    * ``"A"``: the rows above the centre, and the centre row left of the centre.
    * ``"B"``: "A" and the centre itself.
    * ``"vertical-A"``: the rows above the centre only (the first layer of a gated
      PixelCNN's vertical stack).
    * ``"vertical-B"``: the rows above and the whole centre row (later layers of the
      vertical stack, whose inputs already depend only on the rows above).
    """
    kh, kw = _pair(kernel_size)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type={mask_type!r} is not known: use one of {list(MASK_TYPES)}.")
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"A masked kernel needs odd sizes (a centre), got {(kh, kw)}.")
    mask = np.zeros((kh, kw), dtype="float32")
    row, column = kh // 2, kw // 2
    mask[:row] = 1
    if mask_type == "vertical-B":
        mask[row] = 1
    elif mask_type in ("A", "B"):
        mask[row, :column] = 1
        mask[row, column] = mask_type == "B"
    return mask


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class MaskedConv2D(layers.Layer):
    """A 2-D convolution whose kernel is multiplied by :func:`causal_mask` in every call.

    Input ``(N, H, W, C)`` floats, or, when ``num_codes`` is set, integer codes
    ``(N, H, W)`` (or their one-hot encoding ``(N, H, W, num_codes)``). Output
    ``(N, H', W, filters)``. The kernel keeps its full ``(kh, kw, C, filters)`` shape,
    but the rows below the centre are all masked, so only the rows above and the centre
    row are computed: the input is padded by ``pad_top`` rows above (default
    ``kh // 2``, which keeps ``H' = H``, like ``padding="same"``) and none below.
    ``pad_top=0`` takes an input whose first ``kh // 2`` rows are context and returns
    ``H' = H - kh // 2`` rows: :func:`sample` computes one row at a time that way.

    A convolution of one-hot codes adds up one kernel row ``kernel[dy, dx, code]`` per
    visible position, so for integer codes the layer looks those rows up instead of
    multiplying by zeros: the same numbers, about K times less work.
    """

    def __init__(self, filters, kernel_size, mask_type, activation=None, num_codes=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, _pair(kernel_size)
        self.mask_type, self.num_codes = mask_type, num_codes
        self.activation = keras.activations.get(activation)
        self.mask = causal_mask(self.kernel_size, mask_type)
        self.rows_above, self.side = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        self.taps = [(int(dy), int(dx)) for dy, dx in np.argwhere(self.mask)]  # visible kernel positions

    def build(self, input_shape):
        channels = self.num_codes if self.num_codes is not None else input_shape[-1]
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, channels, self.filters),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs, pad_top=None, pad_left=None, pad_right=None):
        pads = [self.rows_above if pad_top is None else pad_top, self.side if pad_left is None else pad_left,
                self.side if pad_right is None else pad_right]
        rows = self.rows_above + 1  # the kernel rows that can be visible: those above, and the centre row
        kernel = self.kernel[:rows] * ops.convert_to_tensor(self.mask[:rows, :, None, None], self.kernel.dtype)
        if _is_integer(inputs):
            outputs = self._lookup(inputs, kernel, *pads)
        else:
            padded = ops.pad(inputs, [[0, 0], [pads[0], 0], pads[1:], [0, 0]])
            outputs = ops.conv(padded, kernel, padding="valid")
        return self.activation(outputs + self.bias)

    def _lookup(self, codes, kernel, pad_top, pad_left, pad_right):
        """``conv(one_hot(codes), kernel)`` as a sum of looked-up kernel rows ``(N, H', W', filters)``."""
        if self.num_codes is None:
            raise ValueError("Integer codes need MaskedConv2D(..., num_codes=K); give float features otherwise.")
        # Padding is the code num_codes, whose kernel rows are zero (one-hot of "no code").
        padded = ops.pad(codes, [[0, 0], [pad_top, 0], [pad_left, pad_right]], constant_values=self.num_codes)
        height = codes.shape[1] + pad_top - self.rows_above
        width = codes.shape[2] + pad_left + pad_right - 2 * self.side
        no_code = ops.zeros((1, self.filters), dtype=kernel.dtype)
        outputs = 0
        for dy, dx in self.taps:
            rows = ops.concatenate([kernel[dy, dx], no_code], axis=0)  # (K + 1, filters)
            outputs = outputs + ops.take(rows, padded[:, dy:dy + height, dx:dx + width], axis=0)
        return outputs

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "mask_type": self.mask_type, "activation": keras.activations.serialize(self.activation),
                "num_codes": self.num_codes}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class ResidualBlock(layers.Layer):
    """The Keras example's residual block: 1x1 conv, 3x3 type-B masked conv with half
    the filters, 1x1 conv (all ReLU), added to the input. ``(N, H, W, C) -> (N, H', W, C)``."""

    rows_above, side = 1, 1

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.expand = layers.Conv2D(filters, 1, activation="relu")
        self.masked = MaskedConv2D(filters // 2, 3, "B", activation="relu")
        self.project = layers.Conv2D(filters, 1, activation="relu")

    def call(self, inputs, pad_top=None, pad_left=None, pad_right=None, valid=None):
        expanded = self.expand(inputs)
        if valid is not None:  # (W,) bools: columns outside the map, zero as the masked conv's padding
            expanded = expanded * ops.cast(valid[None, None, :, None], expanded.dtype)
        hidden = self.masked(expanded, pad_top=pad_top, pad_left=pad_left, pad_right=pad_right)
        left = self.side - (self.side if pad_left is None else pad_left)  # input columns left of the output's
        skip = inputs[:, inputs.shape[1] - hidden.shape[1]:, left:left + hidden.shape[2]]
        return skip + self.project(hidden)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class GatedBlock(layers.Layer):
    """One layer of the gated PixelCNN: ``(v, h) -> (v', h')``, each ``(N, H, W, C)``.

    The vertical stack ``v`` sees the rows above (full width); the horizontal stack
    ``h`` sees this row up to the current position and gets the vertical stack's view
    through a 1x1 convolution, so together they see every earlier position: no blind
    spot. Each stack computes ``tanh(a) * sigmoid(b)`` of a convolution with ``2C``
    outputs, plus a per-class bias when ``num_classes`` is set. The first block reads
    integer codes (``(N, H, W)``, for both stacks) with masks that hide the centre.
    ``dropout`` drops that fraction of the horizontal stack's gated features while
    training (a regulariser: the priors overfit MNIST's 60,000 maps); it never acts when
    evaluating or sampling, and, acting on each position alone, it keeps the masks causal.
    """

    def __init__(self, channels, kernel_size=3, first=False, num_codes=None, num_classes=None, dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel_size, self.first = channels, kernel_size, first
        self.num_codes, self.num_classes, self.dropout = num_codes, num_classes, float(dropout)
        self.drop = layers.Dropout(self.dropout) if self.dropout else None
        vertical, horizontal = ("vertical-A", "A") if first else ("vertical-B", "B")
        self.vertical = MaskedConv2D(2 * channels, kernel_size, vertical, num_codes=num_codes)
        self.horizontal = MaskedConv2D(2 * channels, (1, kernel_size), horizontal, num_codes=num_codes)
        self.vertical_to_horizontal = layers.Conv2D(2 * channels, 1)
        self.horizontal_out = layers.Conv2D(channels, 1)
        self.class_bias = layers.Embedding(num_classes, 4 * channels) if num_classes else None
        self.rows_above, self.side = kernel_size // 2, None  # side None: computes whole rows only (see sample)

    def call(self, inputs, labels=None, pad_top=None):
        vertical, horizontal = (inputs, inputs) if self.first else inputs
        v = self.vertical(vertical, pad_top=pad_top)  # (N, H', W, 2C)
        horizontal = horizontal[:, horizontal.shape[1] - v.shape[1]:]  # the rows the output has
        h = self.horizontal(horizontal) + self.vertical_to_horizontal(v)
        if self.class_bias is not None:
            bias = self.class_bias(labels)[:, None, None, :]
            v, h = v + bias[..., :2 * self.channels], h + bias[..., 2 * self.channels:]
        h = _gate(h)
        h = self.horizontal_out(h if self.drop is None else self.drop(h))
        return _gate(v), h if self.first else horizontal + h

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "kernel_size": self.kernel_size,
                "first": self.first, "num_codes": self.num_codes, "num_classes": self.num_classes,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class OutputHead(layers.Layer):
    """Position-wise layers from features to logits ``(N, H, W, num_codes)``: two ReLU
    layers of ``channels`` and a linear one. For the gated PixelCNN it reads the
    horizontal stack of ``(v, h)``. In the Keras example they are type-B 1x1 masked
    convolutions, which a 1x1 mask leaves unchanged."""

    rows_above, side = 0, 0

    def __init__(self, channels, num_codes, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.num_codes = channels, num_codes
        self.hidden = [MaskedConv2D(channels, 1, "B", activation="relu") for _ in range(2)]
        self.logits = layers.Conv2D(num_codes, 1)

    def call(self, inputs, pad_top=None, pad_left=None, pad_right=None):
        x = inputs[1] if isinstance(inputs, (tuple, list)) else inputs
        for layer in self.hidden:
            x = layer(x)
        return self.logits(x)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "num_codes": self.num_codes}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class PixelCNN(keras.Model):
    """An autoregressive prior over maps of codes: ``codes (N, H, W) -> logits (N, H, W, K)``.

    ``architecture`` is ``"keras-example"`` (the published example's prior: ``channels``
    filters, ``num_layers`` residual blocks) or ``"gated"`` (``num_layers`` gated blocks of
    ``channels``, the first with a 7x7 view of the codes). A class-conditional prior
    (``num_classes``, gated only) is called on ``(codes, labels)``, labels ``(N,)`` ints;
    ``dropout`` (gated only) regularises training (see :class:`GatedBlock`).
    Train it with ``compile(loss=SparseCategoricalCrossentropy(from_logits=True))`` and
    ``fit(codes, codes)`` (or ``fit((codes, labels), codes)``): the loss is the negative
    log-likelihood in nats per code. Codes may also be given one-hot ``(N, H, W, K)``,
    which lets gradients flow to the input (the causality tests use it).
    """

    def __init__(self, architecture="gated", num_codes=128, num_classes=None, channels=None, num_layers=None,
                 grid=CODE_GRID, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
        if num_classes is not None and architecture != "gated":
            raise ValueError("Only the gated PixelCNN can be class-conditional: use architecture='gated'.")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout is the fraction of features dropped while training, in [0, 1), got {dropout!r}.")
        if dropout and architecture != "gated":
            raise ValueError("Only the gated PixelCNN takes dropout (the Keras example has none): use "
                             "architecture='gated' or dropout=0.")
        channels = channels or ARCHITECTURES[architecture]["channels"]
        num_layers = num_layers or ARCHITECTURES[architecture]["num_layers"]
        for name, value in [("num_codes", num_codes), ("channels", channels), ("num_layers", num_layers)]:
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.architecture, self.num_codes, self.num_classes = architecture, int(num_codes), num_classes
        self.channels, self.num_layers, self.grid = int(channels), int(num_layers), tuple(grid)
        self.dropout = float(dropout)
        if architecture == "keras-example":
            self.stages = [MaskedConv2D(channels, 7, "A", activation="relu", num_codes=num_codes),
                           *[ResidualBlock(channels) for _ in range(num_layers)],
                           OutputHead(channels, num_codes)]
        else:
            self.stages = [GatedBlock(channels, 7, first=True, num_codes=num_codes, num_classes=num_classes,
                                      dropout=dropout),
                           *[GatedBlock(channels, 3, num_classes=num_classes, dropout=dropout)
                             for _ in range(num_layers - 1)],
                           OutputHead(channels, num_codes)]
        self(self._dummy_inputs())  # create the weights now, so that load_weights works at once

    @property
    def conditional(self):
        return self.num_classes is not None

    def _dummy_inputs(self):
        codes = ops.zeros((1, *self.grid), dtype="int32")
        return (codes, ops.zeros((1,), dtype="int32")) if self.conditional else codes

    def call(self, inputs):
        codes, labels = self._split(inputs)
        for stage in self.stages:
            codes = run_stage(stage, codes, labels)
        return codes

    def _split(self, inputs):
        if isinstance(inputs, dict):
            inputs = (inputs["codes"], inputs.get("labels"))
        codes, labels = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        if self.conditional and labels is None:
            raise ValueError(f"This prior is class-conditional ({self.num_classes} classes): call it on "
                             "(codes, labels).")
        if not self.conditional and labels is not None:
            raise ValueError("This prior is not class-conditional: call it on codes alone, without labels.")
        return codes, labels

    def log_probs(self, codes, labels=None, batch_size=1000):
        """``log p(code at each position | codes before it)`` in nats, ``(N, H, W)`` NumPy."""
        codes, labels = self.check_codes(codes), self.check_labels(labels, len(codes))

        def batch_log_probs(start):
            batch = codes[start:start + batch_size]
            inputs = (batch, labels[start:start + batch_size]) if self.conditional else batch
            logits = ops.convert_to_numpy(ops.log_softmax(self(inputs), axis=-1))
            return np.take_along_axis(logits, batch[..., None].astype("int64"), axis=-1)[..., 0]

        parts = [batch_log_probs(start) for start in range(0, len(codes), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.grid), "float32")

    def check_codes(self, codes):
        """``codes`` as int32 ``(N, H, W)`` in ``[0, num_codes)``, or a ValueError that says how to fix them."""
        codes = np.asarray(codes)
        if codes.ndim != 3 or codes.shape[1:] != self.grid:
            raise ValueError(f"Expected maps of codes of shape (N, {self.grid[0]}, {self.grid[1]}), got {codes.shape}: "
                             "encode images with vqvae.encode(images).")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"Expected integer codes, got dtype {codes.dtype}: use codes.astype('int32').")
        if codes.size and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"Codes must lie in [0, {self.num_codes}) for this prior of {self.num_codes} codes, got "
                             f"values from {codes.min()} to {codes.max()}: were they made by a VQ-VAE with another "
                             "codebook size?")
        return codes.astype("int32", copy=False)

    def check_labels(self, labels, n):
        """Class labels as int32 ``(n,)`` (an int is repeated), or None for an unconditional prior."""
        if not self.conditional:
            if labels is not None:
                raise ValueError("This prior is not class-conditional: leave labels out (use a conditional prior, "
                                 "such as pretrained.load('gated-vqvae-conditional'), to ask for a class).")
            return None
        if labels is None:
            raise ValueError(f"This prior is class-conditional: give labels, ints in [0, {self.num_classes}).")
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full((n,), labels)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Labels are class numbers, integers in [0, {self.num_classes}), got dtype "
                             f"{labels.dtype}.")
        if labels.shape != (n,):
            raise ValueError(f"Expected one label per map, shape ({n},), got {labels.shape}.")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"Labels must lie in [0, {self.num_classes}) (the digits 0 to {self.num_classes - 1}), "
                             f"got values from {labels.min()} to {labels.max()}.")
        return labels.astype("int32", copy=False)

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture, "num_codes": self.num_codes,
                "num_classes": self.num_classes, "channels": self.channels, "num_layers": self.num_layers,
                "grid": list(self.grid), "dropout": self.dropout}


def fix_label(prior, label):
    """An unconditional copy of the conditional gated ``prior`` that acts as if always given ``label``.

    A label adds a learned bias to each gated block's pre-activations (see
    :class:`GatedBlock`), so fixing it is folding that bias into the convolutions' own
    biases: the copy computes the same logits ``(N, H, W, K)`` for ``codes`` alone as
    ``prior`` does for ``(codes, label)``, and samples and saves like any unconditional
    prior. :func:`~vqvae_lessons.train.train_prior` uses it to train on moved digits
    while *telling* the prior which move it sees (the move is the label), and then keeps
    the prior of unmoved digits (label 0).
    """
    if not prior.conditional:
        raise ValueError("fix_label needs a conditional prior (num_classes set); this one is unconditional already.")
    label = int(prior.check_labels(label, 1)[0])
    fixed = PixelCNN(prior.architecture, prior.num_codes, None, prior.channels, prior.num_layers, prior.grid,
                     prior.dropout)
    for source, target in zip(prior.stages, fixed.stages, strict=True):
        if not isinstance(source, GatedBlock):
            target.set_weights(source.get_weights())
            continue
        for part in ("vertical", "horizontal", "vertical_to_horizontal", "horizontal_out"):
            getattr(target, part).set_weights(getattr(source, part).get_weights())
        bias = ops.convert_to_numpy(source.class_bias.embeddings)[label]
        vertical_bias, horizontal_bias = bias[:2 * target.channels], bias[2 * target.channels:]
        target.vertical.bias.assign(target.vertical.bias + vertical_bias)
        # vertical_to_horizontal now reads v + vertical_bias: take its image back out of the bias.
        kernel = ops.convert_to_numpy(target.vertical_to_horizontal.kernel)[0, 0]  # (2C, 2C)
        target.vertical_to_horizontal.bias.assign(target.vertical_to_horizontal.bias + horizontal_bias
                                                  - vertical_bias @ kernel)
    return fixed


def run_stage(stage, inputs, labels=None, pad_top=None, pad_left=None, pad_right=None, valid=None):
    """Apply one stage of a :class:`PixelCNN` (only gated blocks take labels; they compute whole rows,
    and only residual blocks need to know which columns are ``valid``, inside the map)."""
    if isinstance(stage, GatedBlock):
        return stage(inputs, labels=labels, pad_top=pad_top)
    if isinstance(stage, ResidualBlock):
        return stage(inputs, pad_top=pad_top, pad_left=pad_left, pad_right=pad_right, valid=valid)
    return stage(inputs, pad_top=pad_top, pad_left=pad_left, pad_right=pad_right)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------
def sample(prior, n=None, *, labels=None, given=None, temperature=1.0, seed=0, batch_size=1000, progress=False):
    """Draw maps of codes ``(n, H, W)`` (int32) from ``prior``, position by position.

    * ``labels``: for a class-conditional prior, the class of each map, ``(n,)`` or one int.
    * ``given``: ``(n, H, W)`` ints, -1 where a code is to be sampled; the other codes are
      kept as they are and the samples are conditioned on them (complete a partly given map).
    * ``temperature``: divides the logits; below 1 favours likely codes, 0 takes the most
      likely code at every position.
    * ``seed``: the same seed (and ``batch_size``) gives the same maps.
    * ``progress``: show a Keras progress bar over the batches.

    Each position costs one pass over *one row* of every layer: the rows above are cached.
    The first call on a prior also compiles its steps (a few seconds); later calls reuse them.
    """
    n = _sample_count(prior, n, labels, given)
    labels = prior.check_labels(labels, n)
    if given is None:
        given = np.full((n, *prior.grid), -1, dtype="int32")
    else:
        given = np.asarray(given)
        if given.shape != (n, *prior.grid) or not np.issubdtype(given.dtype, np.integer):
            raise ValueError(f"given must be integer codes of shape ({n}, {prior.grid[0]}, {prior.grid[1]}) with -1 "
                             f"where a code is to be sampled, got {given.dtype} {given.shape}.")
        prior.check_codes(np.where(given < 0, 0, given))
        if given.min(initial=0) < -1:
            raise ValueError("given holds codes in [0, K) and -1 for the positions to sample, nothing below -1.")
        given = given.astype("int32")
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (1: the prior as trained, 0: the most likely code), "
                         f"got {temperature}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    seeds, parts = keras.random.SeedGenerator(seed), []
    bar = keras.utils.Progbar(n, unit_name="map") if progress else None
    for i in range(0, n, batch_size):
        parts.append(_sample_batch(prior, given[i:i + batch_size], None if labels is None else
                                   labels[i:i + batch_size], temperature, seeds))
        if bar is not None:
            bar.add(len(parts[-1]))
    return np.concatenate(parts) if parts else given


def _sample_count(prior, n, labels, given):
    if n is None:
        n = len(given) if given is not None else np.size(labels) if labels is not None else None
    if n is None or not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n, the number of maps to sample, must be an integer >= 0, got {n!r}.")
    return int(n)


def _sample_batch(prior, given, labels, temperature, seeds):
    """Sample one batch row by row; ``cache[s]`` holds the inputs of stage ``s`` for the rows done."""
    height, width = prior.grid
    crops = all(stage.side is not None for stage in prior.stages)
    codes = given.copy()
    cache = [[] for _ in prior.stages]
    for row in range(height):
        rows_cached = tuple(min(row, stage.rows_above) for stage in prior.stages)
        inputs = {} if labels is None else {"labels": labels}
        for s, count in enumerate(rows_cached):
            if count:  # converted once per row, not once per position
                above = _named(f"above_{s}", _concat_rows(cache[s][row - count:row], np.concatenate))
                inputs.update({key: ops.convert_to_tensor(value) for key, value in above.items()})
        for column in range(width):
            # The last column computes whole rows, to cache; the others only what the next code needs.
            cropped = crops and column < width - 1
            step = _row_step(prior, rows_cached, cropped)
            row_codes = np.maximum(codes[:, row:row + 1], 0)
            extra = {"column": np.full((len(codes),), column, "int32")} if cropped else {}
            outputs = step.predict_on_batch({**inputs, **extra, "codes": row_codes})
            free = codes[:, row, column] < 0
            if free.any():
                logits = outputs["logits"][:, 0, -1 if cropped else column]
                codes[free, row, column] = _draw(logits, temperature, seeds)[free]
        # Every stage's row is final now: no activation of this row depends on the code at its last
        # position. Only the codes themselves (stage 0's input) changed since.
        cache[0].append(codes[:, row:row + 1])
        for s in range(1, len(prior.stages)):
            cache[s].append(_unnamed(f"input_{s}", outputs))
    return codes


class _QuietRetracing(logging.Filter):
    """The sampler compiles one step per case on purpose: TensorFlow's warning that its
    functions were traced several times would only alarm a learner."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_QuietRetracing())


def _row_step(prior, rows_cached, cropped):
    """The prior's compiled step for this case, made once and kept with the prior (outside Keras's
    tracking of its layers, so the prior saves and loads exactly as before)."""
    steps = prior.__dict__.setdefault("_sampling_steps", {})
    if (rows_cached, cropped) not in steps:
        steps[rows_cached, cropped] = _RowStep(prior, rows_cached, cropped)
    return steps[rows_cached, cropped]


class _RowStep(keras.Model):
    """One row of every stage of ``prior``, given ``rows_cached[s]`` cached rows above stage ``s``.

    Inputs (a dict): ``codes`` ``(N, 1, W)``, ``labels`` ``(N,)`` for a conditional prior, and
    ``above_s`` ``(N, rows_cached[s], W, ...)``. Outputs: ``logits`` ``(N, 1, W, K)`` and
    ``input_s``, the row's input of each stage ``s >= 1`` (to cache), ``(N, 1, W, ...)``.

    ``cropped``: only the logits at the column given as input ``column`` ``(N,)`` are wanted
    (``(N, 1, 1, K)``), so each stage computes only the columns they need: as the masks look
    only left in the current row, stage ``s`` needs ``needs[s]`` columns left of the column.
    Columns outside the map are zeroed, as the stages' own zero padding would make them.
    ``predict_on_batch`` compiles the step once per input shape, on every backend.
    """

    def __init__(self, prior, rows_cached, cropped=False):
        super().__init__(name="row_step")
        self.prior, self.rows_cached, self.cropped = prior, rows_cached, cropped
        self.needs = [0] * len(prior.stages)
        for s in range(len(prior.stages) - 1, 0, -1):
            self.needs[s - 1] = self.needs[s] + (prior.stages[s].side or 0)

    def call(self, inputs):
        x, labels, outputs = inputs["codes"], inputs.get("labels"), {}
        if self.cropped:
            return {"logits": self._cropped(inputs, x, labels)}
        for s, (stage, count) in enumerate(zip(self.prior.stages, self.rows_cached, strict=True)):
            if s:
                outputs.update(_named(f"input_{s}", x))
            band = _concat_rows([_unnamed(f"above_{s}", inputs), x], ops.concatenate) if count else x
            x = run_stage(stage, band, labels, pad_top=stage.rows_above - count)
        outputs["logits"] = x
        return outputs

    def _cropped(self, inputs, x, labels):
        width, column = self.prior.grid[1], inputs["column"][0]
        margin = max(need + stage.side for need, stage in zip(self.needs, self.prior.stages, strict=True))
        # Stage 0 reads codes: outside the map is the code num_codes ("no code", a zero kernel row).
        x = ops.pad(x, [[0, 0], [0, 0], [margin, margin]], constant_values=self.prior.num_codes)
        start = column + margin  # the column, in the padded map
        for s, (stage, count) in enumerate(zip(self.prior.stages, self.rows_cached, strict=True)):
            reads = self.needs[s] + 2 * stage.side + 1  # columns column - needs - side, ..., column + side
            first = start - self.needs[s] - stage.side
            if s == 0:
                current = _columns(x, first, reads - stage.side)
            else:  # x holds the columns column - needs[s - 1], ..., column: the ones this stage reads
                valid = _inside(first - margin, reads - stage.side, width)
                current = x * ops.cast(valid[None, None, :, None], x.dtype)
            # Right of the column, the current row is masked: zeros stand in for what is not computed yet.
            current = ops.pad(current, [[0, 0], [0, 0], [0, stage.side]] + [[0, 0]] * (len(current.shape) - 3))
            band = current
            if count:
                above = inputs[f"above_{s}"]
                paddings = [[0, 0], [0, 0], [margin, margin]] + [[0, 0]] * (len(above.shape) - 3)
                above = ops.pad(above, paddings, constant_values=self.prior.num_codes if s == 0 else 0)
                band = ops.concatenate([_columns(above, first, reads), current], axis=1)
            x = run_stage(stage, band, labels, pad_top=stage.rows_above - count, pad_left=0, pad_right=0,
                          valid=_inside(first - margin, reads, width))
        return x


def _columns(x, first, count):
    """``x[:, :, first:first + count]`` for a tensor ``first``."""
    start = [0, 0, first] + [0] * (len(x.shape) - 3)
    return ops.slice(x, start, [ops.shape(x)[0], x.shape[1], count, *x.shape[3:]])


def _inside(first, count, width):
    """Which of the columns ``first, ..., first + count - 1`` lie inside a map ``width`` wide: ``(count,)``."""
    columns = first + ops.arange(count)
    return ops.logical_and(columns >= 0, columns < width)


def _named(name, value):
    """A stage's input as named arrays: ``{name: x}``, or ``{name_v: v, name_h: h}`` for a gated stack."""
    return {f"{name}_v": value[0], f"{name}_h": value[1]} if isinstance(value, (tuple, list)) else {name: value}


def _unnamed(name, arrays):
    return (arrays[f"{name}_v"], arrays[f"{name}_h"]) if f"{name}_v" in arrays else arrays[name]


def _concat_rows(rows, concatenate):
    """Rows ``(N, r_i, W, ...)`` (or ``(v, h)`` pairs of them) joined along the row axis."""
    if len(rows) == 1:
        return rows[0]
    if isinstance(rows[0], (tuple, list)):
        return tuple(concatenate(parts, axis=1) for parts in zip(*rows, strict=True))
    return concatenate(rows, axis=1)


def _draw(logits, temperature, seeds):
    """One code per row of ``logits`` ``(N, K)``: categorical at ``temperature``, argmax at 0."""
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype("int32")
    scaled = ops.convert_to_tensor(logits / temperature)
    return ops.convert_to_numpy(keras.random.categorical(scaled, 1, seed=seeds)[:, 0]).astype("int32")


def generate(prior, vqvae, n=None, **kwargs):
    """New images ``(n, 28, 28, 1)`` in [0, 1]: :func:`sample` codes, then ``vqvae.decode`` them."""
    if prior.num_codes != vqvae.num_embeddings:
        raise ValueError(f"The prior models {prior.num_codes} codes but the VQ-VAE has {vqvae.num_embeddings}: "
                         "use the prior trained on this VQ-VAE's codes (its card names it).")
    return vqvae.decode(sample(prior, n, **kwargs))


def _gate(x):
    """``tanh(a) * sigmoid(b)`` of the two halves of the last axis."""
    a, b = ops.split(x, 2, axis=-1)
    return ops.tanh(a) * ops.sigmoid(b)


def _pair(size):
    return (size, size) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)


def _is_integer(x):
    return "int" in keras.backend.standardize_dtype(x.dtype)
