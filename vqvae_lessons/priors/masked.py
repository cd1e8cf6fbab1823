"""Masked convolutions: the causal building block of every PixelCNN prior.

:func:`causal_mask` gives the ``(kh, kw)`` mask of a convolution of type "A" (the centre
is hidden: the first layer), "B" (the centre is visible: later layers) and the vertical
stacks' two types; :class:`MaskedConv2D` applies it in every forward pass, and looks up
kernel rows instead of multiplying one-hot codes. ``MaskedConv2D(..., mask_fn=f)`` takes its
mask from another function of the same signature instead (lesson 5's exercise ``causal_mask``:
the learner's masks build the prior).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

MASK_TYPES = ("A", "B", "vertical-A", "vertical-B")


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
    Likewise the kernel columns right of the centre are all masked in a one-row kernel
    (``(1, kw)``, the gated PixelCNN's horizontal stack), so it computes only the
    ``kw // 2 + 1`` columns up to the centre (``columns``), with the input padded on the left:
    the same outputs as the full kernel, a third less work for ``kw = 3``.

    A convolution of one-hot codes adds up one kernel row ``kernel[dy, dx, code]`` per
    visible position, so for integer codes the layer looks those rows up instead of
    multiplying by zeros: the same numbers, about K times less work.

    ``mask_fn`` (optional): the function that builds the mask instead of :func:`causal_mask`,
    called once, here, as ``mask_fn(kernel_size, mask_type)`` (``kernel_size`` an int for a square
    kernel, else the pair ``(kh, kw)``); it returns the ``(kh, kw)`` mask of 0 and 1 (a NumPy
    array, a list or a backend tensor). Lesson 5 builds a PixelCNN with the learner's
    ``causal_mask`` that way. It is not part of :meth:`get_config`: a saved layer reloads with
    :func:`causal_mask`.
    """

    def __init__(self, filters, kernel_size, mask_type, activation=None, num_codes=None, mask_fn=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, _pair(kernel_size)
        self.mask_type, self.num_codes = mask_type, num_codes
        self.activation = keras.activations.get(activation)
        self.mask = causal_mask(self.kernel_size, mask_type) if mask_fn is None else _mask_from(
            mask_fn, self.kernel_size, mask_type)
        self.rows_above, self.side = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        self.taps = [(int(dy), int(dx)) for dy, dx in np.argwhere(self.mask)]  # visible kernel positions
        # The kernel columns that can be visible: a one-row kernel of type A or B, the horizontal stack's
        # (1, k), sees only the columns up to its centre, so it computes those alone (k // 2 + 1 of k).
        visible = np.flatnonzero(self.mask[:self.rows_above + 1].any(axis=0))
        self.columns = int(visible[-1]) + 1 if len(visible) else 1

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
            # Only the first `columns` kernel columns can be visible: the same output width needs
            # kw - columns fewer columns on the right, and input columns no kept tap reads are cut.
            right = pads[2] - (self.kernel_size[1] - self.columns)
            if right < 0:
                inputs = inputs[:, :, :inputs.shape[2] + right]
            padded = ops.pad(inputs, [[0, 0], [pads[0], 0], [pads[1], max(right, 0)], [0, 0]])
            outputs = ops.conv(padded, kernel[:, :self.columns], padding="valid")
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


def _mask_from(mask_fn, kernel_size, mask_type):
    """``mask_fn``'s mask for a ``kernel_size`` ``(kh, kw)`` kernel, as float32 NumPy, or a clear error."""
    if not callable(mask_fn):
        raise TypeError(f"mask_fn must be a function mask_fn(kernel_size, mask_type) that returns a mask, got "
                        f"{type(mask_fn).__name__} {mask_fn!r}.")
    kh, kw = kernel_size
    mask = mask_fn(kh if kh == kw else (kh, kw), mask_type)
    try:
        mask = np.asarray(ops.convert_to_numpy(mask) if not isinstance(mask, (list, tuple)) else mask, "float32")
    except (TypeError, ValueError) as error:
        raise TypeError(f"mask_fn({kh if kh == kw else (kh, kw)}, {mask_type!r}) must return an array of 0 and 1, "
                        f"got {type(mask).__name__}: {error}") from None
    if mask.shape != (kh, kw) or not np.all((mask == 0) | (mask == 1)):
        got = f"shape {mask.shape}" if mask.shape != (kh, kw) else f"the values {np.unique(mask)[:6].tolist()}"
        raise ValueError(f"mask_fn({kh if kh == kw else (kh, kw)}, {mask_type!r}) must return a ({kh}, {kw}) array "
                         f"of 0 and 1, got {got}.")
    return mask


def _pair(size):
    return (size, size) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)


def _is_integer(x):
    return "int" in keras.backend.standardize_dtype(x.dtype)
