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

:func:`~vqvae_lessons.priors.sampling.sample` draws maps of codes (seeded, batched, with a
temperature, class labels and fixed codes to complete a partly given map) and
:func:`~vqvae_lessons.priors.sampling.generate` decodes them into images with a VQ-VAE.
Sampling does not recompute the whole map for each of the 49 positions, as the Keras
example does: every layer is causal, so what is computed for earlier positions never
changes again (see :mod:`~vqvae_lessons.priors.sampling`); and a convolution over one-hot
codes is a lookup of kernel rows (see :class:`~vqvae_lessons.priors.masked.MaskedConv2D`).

References: van den Oord, Kalchbrenner and Kavukcuoglu (2016), *Pixel Recurrent Neural Networks*, arXiv:1601.06759;
van den Oord et al. (2016), *Conditional Image Generation with PixelCNN Decoders*, arXiv:1606.05328.
"""


from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from ..checks import CODE_GRID, check_prior_settings, concrete
from . import ARCHITECTURES, TRANSFORMERS
from .masked import MaskedConv2D


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class ResidualBlock(layers.Layer):
    """The Keras example's residual block: 1x1 conv, 3x3 type-B masked conv with half
    the filters, 1x1 conv (all ReLU), added to the input. ``(N, H, W, C) -> (N, H', W, C)``.
    ``mask_fn``: see :class:`~.masked.MaskedConv2D` (None: :func:`~.masked.causal_mask`)."""

    rows_above, side = 1, 1

    def __init__(self, filters, mask_fn=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.expand = layers.Conv2D(filters, 1, activation="relu")
        self.masked = MaskedConv2D(filters // 2, 3, "B", activation="relu", mask_fn=mask_fn)
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
    ``gate_fn`` (optional): the gate, ``(..., 2C) -> (..., C)``, written with ``keras.ops`` (None: the
    package's ``tanh(a) * sigmoid(b)``); lesson 5's exercise, whose answer the lesson's gated prior runs.
    It is not part of :meth:`get_config`; the fast sampler (:mod:`~.sampling`) runs it too.
    """

    def __init__(self, channels, kernel_size=3, first=False, num_codes=None, num_classes=None, dropout=0.0,
                 gate_fn=None, **kwargs):
        super().__init__(**kwargs)
        self.gate = _gate if gate_fn is None else gate_fn
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

    def call(self, inputs, labels=None, pad_top=None, training=None):
        vertical, horizontal = (inputs, inputs) if self.first else inputs
        v = self.vertical(vertical, pad_top=pad_top)  # (N, H', W, 2C)
        horizontal = horizontal[:, horizontal.shape[1] - v.shape[1]:]  # the rows the output has
        h = self.horizontal(horizontal) + self.vertical_to_horizontal(v)
        if self.class_bias is not None:
            bias = self.class_bias(labels)[:, None, None, :]
            v, h = v + bias[..., :2 * self.channels], h + bias[..., 2 * self.channels:]
        h = self.gate(h)
        h = self.horizontal_out(h if self.drop is None else self.drop(h, training=training))
        return self.gate(v), h if self.first else horizontal + h

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "kernel_size": self.kernel_size,
                "first": self.first, "num_codes": self.num_codes, "num_classes": self.num_classes,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class OutputHead(layers.Layer):
    """Position-wise layers from features to logits ``(N, H, W, num_codes)``: two ReLU
    layers of ``channels`` and a linear one. For the gated PixelCNN it reads the
    horizontal stack of ``(v, h)``. In the Keras example they are type-B 1x1 masked
    convolutions, which a 1x1 mask leaves unchanged (``mask_fn``: see :class:`~.masked.MaskedConv2D`)."""

    rows_above, side = 0, 0

    def __init__(self, channels, num_codes, mask_fn=None, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.num_codes = channels, num_codes
        self.hidden = [MaskedConv2D(channels, 1, "B", activation="relu", mask_fn=mask_fn) for _ in range(2)]
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

    ``mask_fn`` (optional, ``"keras-example"`` only): the function that builds the masks of every
    masked convolution, ``mask_fn(kernel_size, mask_type) -> (k, k)`` array of 0 and 1, with
    ``kernel_size`` an odd int (7, 3 and 1 here) and ``mask_type`` "A" or "B": lesson 5's exercise,
    whose answer builds the lesson's prior this way. None (the default) uses the package's
    :func:`~.masked.causal_mask`, the same masks. It is called once per layer, when the prior is
    built, and is not part of :meth:`get_config`. (The gated prior also needs the vertical stacks'
    masks and one-row masks, which the exercise does not build: it takes none.)

    ``gate_fn`` (optional, ``"gated"`` only): the gate of every gated block, ``gate_fn(x)`` with ``x``
    ``(..., 2C)`` -> ``tanh(a) * sigmoid(b)`` of its two halves, ``(..., C)``, written with ``keras.ops``
    (lesson 5's exercise ``gate``). None (the default) uses the package's. Like ``mask_fn``, it is not part
    of :meth:`get_config`; sampling (:func:`~.sampling.sample`) runs it too.
    """

    def __init__(self, architecture="gated", num_codes=128, num_classes=None, channels=None, num_layers=None,
                 grid=CODE_GRID, dropout=0.0, mask_fn=None, gate_fn=None, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
        if architecture in TRANSFORMERS:
            raise ValueError(f"architecture={architecture!r} is a transformer prior, not a PixelCNN: build it with "
                             f"priors.build.build_prior({architecture!r}, ...).")
        channels = channels or ARCHITECTURES[architecture]["channels"]
        num_layers = num_layers or ARCHITECTURES[architecture]["num_layers"]
        check_prior_settings(num_classes, dropout, num_codes=num_codes, channels=channels, num_layers=num_layers)
        if num_classes is not None and architecture != "gated":
            raise ValueError("Only the gated PixelCNN can be class-conditional: use architecture='gated'.")
        if dropout and architecture != "gated":
            raise ValueError("Only the gated PixelCNN takes dropout (the Keras example has none): use "
                             "architecture='gated' or dropout=0.")
        if mask_fn is not None and not callable(mask_fn):
            raise TypeError(f"mask_fn must be a function mask_fn(kernel_size, mask_type) that returns a mask (lesson "
                            f"5's causal_mask), got {type(mask_fn).__name__} {mask_fn!r}.")
        if mask_fn is not None and architecture != "keras-example":
            raise ValueError("mask_fn builds the square masks of type 'A' and 'B' of the Keras example's prior; the "
                             f"{architecture!r} PixelCNN also needs the vertical stacks' and one-row masks: use "
                             "architecture='keras-example', or leave mask_fn out.")
        _check_gate_fn(gate_fn, architecture)
        num_classes = None if num_classes is None else int(num_classes)
        self.architecture, self.num_codes, self.num_classes = architecture, int(num_codes), num_classes
        self.channels, self.num_layers, self.grid = int(channels), int(num_layers), tuple(grid)
        self.dropout = float(dropout)
        if architecture == "keras-example":
            self.stages = [MaskedConv2D(channels, 7, "A", activation="relu", num_codes=num_codes, mask_fn=mask_fn),
                           *[ResidualBlock(channels, mask_fn=mask_fn) for _ in range(num_layers)],
                           OutputHead(channels, num_codes, mask_fn=mask_fn)]
        else:
            self.stages = [GatedBlock(channels, 7, first=True, num_codes=num_codes, num_classes=num_classes,
                                      dropout=dropout, gate_fn=gate_fn),
                           *[GatedBlock(channels, 3, num_classes=num_classes, dropout=dropout, gate_fn=gate_fn)
                             for _ in range(num_layers - 1)],
                           OutputHead(channels, num_codes)]
        self(self._dummy_inputs())  # create the weights now, so that load_weights works at once

    @property
    def conditional(self):
        return self.num_classes is not None

    def _dummy_inputs(self):
        codes = ops.zeros((1, *self.grid), dtype="int32")
        return (codes, ops.zeros((1,), dtype="int32")) if self.conditional else codes

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None:
            self._check_values(*self._split(inputs))
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None):
        # training is passed on by hand: Keras before 3.6 does not hand it to the layers of a call without it.
        codes, labels = self._split(inputs)
        for stage in self.stages:
            codes = run_stage(stage, codes, labels, training=training)
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

    def _check_values(self, codes, labels):
        """Check integer codes and labels whose values are known (NumPy arrays, or tensors used eagerly;
        inside a compiled step there are none): a code of K or more would read the row of "no code" (or be
        clamped), a negative code or a label out of range be clamped, silently."""
        values = concrete(codes)
        if values is not None and values.ndim == 3:  # integer codes (one-hot codes have no range to check)
            self.check_codes(values)
        if labels is not None:
            values = concrete(labels)
            if values is not None:
                self.check_labels(values, len(values) if values.ndim else 1)

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit``, with NumPy maps of codes (``x``, or ``(codes, labels)``), their targets ``y``
        and ``validation_data`` checked first (:meth:`check_codes`, :meth:`check_labels`): inside the
        compiled training step a code of K or more, or a label out of range, would be read silently."""
        self._check_arrays(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:  # (inputs, targets[, sample weights])
            self._check_arrays(validation[0], validation[1] if len(validation) > 1 else None)
        return super().fit(x, y, *args, **kwargs)

    def _check_arrays(self, inputs, targets):
        """Check the NumPy arrays among ``inputs`` (codes, ``(codes, labels)`` or a dict) and ``targets``."""
        if isinstance(inputs, (dict, tuple, list, np.ndarray)):
            codes, labels = self._split(inputs)
            if isinstance(codes, np.ndarray) and codes.ndim == 3:
                self.check_codes(codes)
            if isinstance(labels, np.ndarray):
                self.check_labels(labels, len(labels))
        if isinstance(targets, np.ndarray):
            self.check_codes(targets)

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


def run_stage(stage, inputs, labels=None, pad_top=None, pad_left=None, pad_right=None, valid=None, training=None):
    """Apply one stage of a :class:`PixelCNN` (only gated blocks take labels and ``training``, for their
    dropout; they compute whole rows, and only residual blocks need to know which columns are ``valid``,
    inside the map)."""
    if isinstance(stage, GatedBlock):
        return stage(inputs, labels=labels, pad_top=pad_top, training=training)
    if isinstance(stage, ResidualBlock):
        return stage(inputs, pad_top=pad_top, pad_left=pad_left, pad_right=pad_right, valid=valid)
    return stage(inputs, pad_top=pad_top, pad_left=pad_left, pad_right=pad_right)


def _check_gate_fn(gate_fn, architecture):
    """A clear error for a ``gate_fn`` the gated prior cannot use (see :class:`PixelCNN`)."""
    if gate_fn is None:
        return
    if not callable(gate_fn):
        raise TypeError(f"gate_fn must be a function gate_fn(x) that gates the two halves of x's last axis (lesson "
                        f"5's gate), got {type(gate_fn).__name__} {gate_fn!r}.")
    if architecture != "gated":
        raise ValueError(f"gate_fn is the gate of the gated PixelCNN's blocks; the {architecture!r} PixelCNN has no "
                         "gate: use architecture='gated', or leave gate_fn out.")
    shape = tuple(np.shape(ops.convert_to_numpy(gate_fn(ops.zeros((1, 1, 1, 4))))))
    if shape != (1, 1, 1, 2):
        raise ValueError(f"gate_fn must map (..., 2C) to (..., C): given shape (1, 1, 1, 4) it returned {shape}, "
                         "not (1, 1, 1, 2).")


def _gate(x):
    """``tanh(a) * sigmoid(b)`` of the two halves of the last axis."""
    a, b = ops.split(x, 2, axis=-1)
    return ops.tanh(a) * ops.sigmoid(b)
