"""Lesson 5's exercises (the PixelCNN prior): ``causal_mask``, ``gate``, ``nll_bits_per_image`` and
``sample_codes``, and the question ``gated_bits_per_image`` (predict the gated prior's bits per image).

``causal_mask`` is written out in full, so that its solution runs where it is pasted (the package's
:func:`vqvae_lessons.priors.masked.causal_mask` builds the same square masks; a test checks that they
agree); ``nll_bits_per_image`` converts with
:func:`vqvae_lessons.metrics.nats_to_bits`; ``sample_codes`` is the plain sampling loop (the
package's :func:`vqvae_lessons.priors.sampling.sample` does the same, faster).

``gate`` (tanh of the first half of the channels times the sigmoid of the second) runs in the gated blocks of the
lesson's demonstration fit (``PixelCNN("gated", gate_fn=...)``, through ``train_prior``'s ``prior_options``), with a
trial: one compiled training step of a small gated prior built with it.

The learner's pieces build, measure and sample the lesson's own small prior: ``causal_mask`` the
masks of a ``PixelCNN("keras-example", mask_fn=...)``, ``nll_bits_per_image`` its bits per image
on held-out codes (NumPy logits in, as the checks give them), ``sample_codes`` its samples, through
:func:`vqvae_lessons.priors.sampling.sample_with`. ``causal_mask`` and ``sample_codes`` have trials
(see :func:`core.use`): one compiled training step of a small prior built with the masks, and a few
maps sampled from a small prior with the loop (which must hand the prior integer codes).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from keras import ops

from .. import metrics
from . import core
from .core import Incorrect, as_numpy, call, check_number, compare, to_array

_TRIAL_CODES = 16  # the trials' small priors model maps of this many codes


def _tiny_prior(**pieces):
    from ..priors import pixelcnn

    return pixelcnn.PixelCNN("keras-example", _TRIAL_CODES, channels=8, num_layers=1, **pieces)


def _trial_causal_mask(fn):
    """A trial (see :func:`core.use`): one compiled training step of a small Keras-example PixelCNN whose
    masks ``fn`` builds; raises if the prior cannot be built with them or the loss is not finite."""
    import keras

    codes = np.random.default_rng(0).integers(0, _TRIAL_CODES, size=(4, 7, 7)).astype("int32")
    core.trains_one_step(_tiny_prior(mask_fn=fn), codes, codes,
                         loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _trial_sample_codes(fn):
    """A trial (see :func:`core.use`): two maps sampled with ``fn`` from a small untrained PixelCNN, as the
    lesson samples (``sampling.sample_with``); raises if the prior cannot run on the codes ``fn`` gives it."""
    from ..priors import sampling

    sampling.sample_with(fn, _tiny_prior(), 2, seed=0)


def causal_mask(kernel_size, mask_type):
    """The ``(k, k)`` mask of a PixelCNN convolution: 1 at the rows above the centre and, in the centre
    row, left of the centre; the centre itself is 0 for type ``"A"`` and 1 for type ``"B"``. (The package's
    :func:`vqvae_lessons.priors.masked.causal_mask` builds the same masks, and those of the gated PixelCNN.)"""
    mask = np.zeros((kernel_size, kernel_size), dtype="float32")
    centre = kernel_size // 2
    mask[:centre] = 1  # every row above the centre
    mask[centre, :centre] = 1  # the centre row, left of the centre
    mask[centre, centre] = mask_type == "B"
    return mask


def nll_bits_per_image(logits, codes):
    """The mean over images of the negative log-likelihood of each whole map, in bits: logits
    ``(N, H, W, K)`` and integer codes ``(N, H, W)``; an image costs the sum over its positions of
    ``-log2 softmax(logits)[code]``."""
    logits = np.asarray(ops.convert_to_numpy(logits), dtype="float64")
    log_probs = logits - _logsumexp(logits)  # log softmax over the K codes
    picked = np.take_along_axis(log_probs, np.asarray(codes)[..., None], axis=-1)[..., 0]  # (N, H, W)
    return float(np.mean(metrics.nats_to_bits(-picked.sum(axis=(1, 2)))))


def sample_codes(logits_fn, shape, rng):
    """Sample a map of codes ``shape = (N, H, W)`` from an autoregressive model, one position
    at a time in raster order: ``logits_fn(codes)`` gives logits ``(N, H, W, K)``, and the
    logits at position (i, j) depend only on the codes before it."""
    n, h, w = shape
    codes = np.zeros(shape, dtype="int64")
    for i in range(h):
        for j in range(w):
            logits = np.asarray(ops.convert_to_numpy(logits_fn(codes)), dtype="float64")
            probs = _softmax(logits[:, i, j, :])  # (N, K)
            for example in range(n):
                codes[example, i, j] = rng.choice(probs.shape[-1], p=probs[example])
    return codes


# ---------------------------------------------------------------------------------------------
# causal_mask
# ---------------------------------------------------------------------------------------------
def _with_centre_row(kernel_size, mask_type, value, left=True):
    """The correct mask with the centre row's left (or right) part set to ``value``."""
    mask, centre = causal_mask(kernel_size, mask_type), kernel_size // 2
    if left:
        mask[centre, :centre] = value
    else:
        mask[centre, centre + 1:] = value
    return mask


def _without_rows_above(kernel_size, mask_type):
    mask = causal_mask(kernel_size, mask_type)
    mask[: kernel_size // 2] = 0
    return mask


def _row_above_only(kernel_size, mask_type):
    mask, centre = causal_mask(kernel_size, mask_type), kernel_size // 2
    mask[: max(centre - 1, 0)] = 0  # only the row just above the centre kept
    return mask


_CAUSAL_MASK_MISTAKES = [
    (lambda k, t: causal_mask(k, "B" if t == "A" else "A"),
     "the centre is the wrong way round: type 'A' masks the centre (in the first layer a pixel must not see "
     "itself), type 'B' keeps it."),
    (lambda k, t: _with_centre_row(k, t, 1, left=False),
     "positions right of the centre in the centre row come after it in raster order: keep only those left of it."),
    (lambda k, t: np.tril(np.ones((k, k)), -1 if t == "A" else 0),
     "np.tril keeps positions below the centre row, which come later in raster order: the visible positions are "
     "all the rows above the centre, and in the centre row those left of the centre."),
    (lambda k, t: causal_mask(k, t).T,
     "your mask is transposed: the visible positions are the rows above the centre (not the columns left of it) "
     "and, in the centre row, the positions left of the centre."),
    (lambda k, t: causal_mask(k, t)[::-1, ::-1],
     "your mask is flipped: it keeps the positions after the centre in raster order (below, and right of it) "
     "instead of those before it."),
    (lambda k, t: 1 - causal_mask(k, t),
     "your mask is inverted: 1 marks the positions the convolution may see (those before the centre), 0 the rest."),
    (lambda k, t: _with_centre_row(k, t, 0),
     "you forgot the positions left of the centre in the centre row: they come before it in raster order (1)."),
    (_without_rows_above,
     "you forgot the rows above the centre: they all come before it in raster order (1)."),
    (_row_above_only,
     "you kept only the row just above the centre: with a 3x3 kernel that is all of them, but the first layer's "
     "kernel is 7x7, and every row above the centre comes before it in raster order (mask[:c] = 1)."),
]


def _check_causal_mask(fn):
    for kernel_size, mask_type in [(5, "A"), (3, "B"), (7, "B"), (7, "A"), (1, "A"), (1, "B")]:
        where = f"With kernel_size = {kernel_size} and mask_type = {mask_type!r}: "
        got, want = to_array(call(fn, kernel_size, mask_type)), causal_mask(kernel_size, mask_type)
        if got.dtype.kind in "iuf" and got.shape == want.shape and not np.all((got == 0) | (got == 1)):
            raise Incorrect(f"{where}a mask holds only 0 and 1, got values {np.unique(got)[:6]}.")
        compare(got, want, (kernel_size, mask_type), _CAUSAL_MASK_MISTAKES, where=where, symbols="(k, k)",
                 kind="mask")


core.register(
    "causal_mask", reference=causal_mask, checker=_check_causal_mask, lesson=5, trial=_trial_causal_mask,
    hints="""
        A PixelCNN generates pixels in raster order: row by row, and left to right within a row. The mask marks
        with 1 the kernel positions the convolution may look at, those that come before the centre in that
        order, and with 0 the others. The two types differ only at the centre itself: in the first layer a pixel
        must not see its own value.

        Start from np.zeros((kernel_size, kernel_size)) and let c = kernel_size // 2 be the centre's row and
        column. With slices, set to 1 every position of the rows before row c, and in row c the positions before
        column c. Type 'A' leaves the centre (c, c) at 0, type 'B' sets it to 1.
        """,
    error_hint="kernel_size is an odd int k and mask_type the string 'A' or 'B'; return a (k, k) array of 0 and 1.",
    mistakes=_CAUSAL_MASK_MISTAKES)


# ---------------------------------------------------------------------------------------------
# gate
# ---------------------------------------------------------------------------------------------
def gate(features):
    """The gated PixelCNN's gate: split ``features`` ``(..., 2C)`` along the last axis into its first half ``a``
    and its second half ``b``, each ``(..., C)``, and return ``tanh(a) * sigmoid(b)``: a value in (-1, 1) (which
    way, how much) times a switch in (0, 1) (how much of it passes). Written with ``keras.ops``, so that the
    lesson's gated prior runs it inside its compiled training step."""
    channels = features.shape[-1] // 2
    a, b = features[..., :channels], features[..., channels:]
    return ops.tanh(a) * ops.sigmoid(b)


def _trial_gate(fn):
    """A trial (see :func:`core.use`): one compiled training step of a small gated PixelCNN whose gates are
    ``fn``; raises if the prior cannot be built with it or the loss is not finite."""
    import keras

    from ..priors import pixelcnn

    codes = np.random.default_rng(0).integers(0, _TRIAL_CODES, size=(4, 7, 7)).astype("int32")
    with warnings.catch_warnings():  # Keras's warnings about a layer whose call failed: the error says it
        warnings.simplefilter("ignore")
        prior = pixelcnn.PixelCNN("gated", _TRIAL_CODES, channels=4, num_layers=2, gate_fn=fn)
        core.trains_one_step(prior, codes, codes, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def _halves(x, interleaved=False, axis=-1):
    x = np.asarray(x, "float64")
    if interleaved:
        return x[..., 0::2], x[..., 1::2]
    return np.split(x, 2, axis=axis) if x.shape[axis] % 2 == 0 else (x, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for any x


def _gate_with(first, second, combine=np.multiply, interleaved=False):
    """A gate with one known mistake switched on (the mistakes table of gate), in the features' dtype."""
    def mistaken(x):
        a, b = _halves(x, interleaved)
        return combine(first(a), second(b)).astype(np.asarray(x).dtype)
    return mistaken


def _naive_tanh(a):
    with np.errstate(all="ignore"):
        e = np.exp(2.0 * a)
        return (e - 1.0) / (e + 1.0)


def _no_split(x):
    return (np.tanh(np.asarray(x, "float64")) * _sigmoid(np.asarray(x, "float64"))).astype(np.asarray(x).dtype)


def _split_on_axis(axis):
    def mistaken(x):
        x = np.asarray(x)
        if x.shape[axis] % 2:  # np.split would raise: a result of its own, which matches no other answer
            return np.full(7 + axis, np.inf)
        a, b = np.split(x.astype("float64"), 2, axis=axis)
        return (np.tanh(a) * _sigmoid(b)).astype(x.dtype)
    return mistaken


_relu = functools.partial(np.maximum, 0.0)
_GATE_MISTAKES = [
    (_gate_with(_sigmoid, np.tanh),
     "the halves are the wrong way round: the FIRST half a goes through tanh (the value), the SECOND half b "
     "through the sigmoid (the switch)."),
    (_gate_with(np.tanh, np.tanh),
     "both halves went through tanh: the second half is a switch between 0 (closed) and 1 (open), a sigmoid."),
    (_gate_with(_sigmoid, _sigmoid),
     "both halves went through the sigmoid: the first half carries the value, positive or negative, so it goes "
     "through tanh, in (-1, 1); only the switch is a sigmoid."),
    (_gate_with(np.tanh, _sigmoid, combine=np.add),
     "you added the two halves: the gate MULTIPLIES the value tanh(a) by the switch sigmoid(b), so that a closed "
     "switch (sigmoid near 0) lets nothing through."),
    (_gate_with(_relu, _sigmoid),
     "you used a ReLU for the value: the gated PixelCNN replaces the ReLU by tanh(a), in (-1, 1), times the "
     "sigmoid switch."),
    (_gate_with(np.tanh, _sigmoid, interleaved=True),
     "you took every other channel (x[..., ::2] and x[..., 1::2]): a is the FIRST half of the channels, "
     "x[..., :C], and b the second half, x[..., C:]."),
    (_no_split,
     "you gated the features with themselves, tanh(x) * sigmoid(x), keeping all 2C channels: split the last "
     "axis in two halves first; the result has C channels."),
    *[(_split_on_axis(axis), f"you split axis {axis}: the two halves are those of the LAST axis, the channels "
                             "(axis=-1).") for axis in (0, 1, 2)],
    (_gate_with(_naive_tanh, _sigmoid),
     "large features give NaN: (exp(2a) - 1) / (exp(2a) + 1) overflows to inf / inf once a is above about 350 "
     "(45 in float32). Use ops.tanh, which is stable for any a."),
]


def _gate_cases():
    rng = np.random.default_rng(55)
    yield 2.0 * rng.normal(size=(2, 7, 7, 8)).astype("float32")  # a batch of maps, C = 4
    yield rng.normal(size=(1, 1, 1, 2)).astype("float32")  # sizes of 1: one map, one position, C = 1
    yield rng.normal(size=(3, 2, 4, 6)).astype("float32")  # H, W and 2C all even: only the last axis is right
    saturated = 3.0 * rng.normal(size=(2, 3, 3, 10))
    saturated[..., ::3] *= 200.0  # pre-activations in the hundreds: tanh and the sigmoid saturate
    yield saturated.astype("float32")


def _check_gate(fn):
    for features in _gate_cases():
        where = f"With features of shape {features.shape} (2C = {features.shape[-1]}): "
        got = to_array(call(fn, features))
        want = as_numpy(gate(ops.convert_to_tensor(features)))
        compare(got, want, (features,), _GATE_MISTAKES, where=where, symbols="(N, H, W, C)")
        if got.dtype != np.float32:
            raise Incorrect(f"{where}the features are float32, and so is the gated prior: your result has dtype "
                             f"{got.dtype}; compute with keras.ops on the features as given.")


core.register(
    "gate", reference=gate, checker=_check_gate, lesson=5, kind="transcribe", trial=_trial_gate,
    hints="""
        The masked convolution gives 2C channels per position. The first C are a value, which may be positive or
        negative; the last C decide, channel by channel, how much of that value passes on. A squashing function
        with outputs in (-1, 1) suits the value, one with outputs in (0, 1) suits the switch; the two meet by
        multiplication.

        Let C be half the size of the last axis. Slice the last axis into its first C channels (a) and its last C
        (b); keras.ops has tanh and sigmoid, both stable for large inputs (no exponential of your own). Multiply
        the two: the result has the shape of the features with C channels, and their dtype.
        """,
    error_hint="features is an array (..., 2C), float32; return an array (..., C). Use keras.ops (ops.tanh, "
               "ops.sigmoid), so that it also runs on the prior's tensors.",
    mistakes=_GATE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# nll_bits_per_image
# ---------------------------------------------------------------------------------------------
def _logsumexp(logits, axis=-1):
    top = np.max(logits, axis=axis, keepdims=True)
    return top + np.log(np.sum(np.exp(logits - top), axis=axis, keepdims=True))


def _nll(logits, codes, *, axis=-1, log=None, reduce=np.sum, sign=-1.0, bits=True, argmax=False):
    """The NLL with one known mistake switched on (the mistakes table of nll_bits_per_image)."""
    logits = np.asarray(logits, dtype="float64")
    log_probs = logits - _logsumexp(logits, axis) if log is None else log(logits)
    codes = np.argmax(logits, axis=-1) if argmax else np.asarray(codes)
    picked = np.take_along_axis(log_probs, codes[..., None], axis=-1)[..., 0]
    per_image = sign * reduce(picked, axis=(1, 2))
    return float(np.mean(per_image / np.log(2) if bits else per_image))


_NLL_SOFTMAX = ("logits are not probabilities: turn them into log-probabilities first, with a log-softmax over the "
                "last axis (logits minus the log of the sum of their exponentials), then pick the given code's.")
_NLL_BITS_MISTAKES = [
    (lambda x, c: _nll(x, c, log=_log_of_naive_softmax),
     "with saturated logits (differences in the hundreds, as a confident prior gives) exp overflows to inf and "
     "your softmax gives NaN: subtract each position's largest logit before exp (the log-sum-exp trick)."),
    (lambda x, c: _nll(x, c, log=_log_of_softmax),
     "with saturated logits a given code's probability underflows to 0 and its log to -inf: take the log-softmax "
     "directly, logits - max - log(sum(exp(logits - max))), never the log of a softmax."),
    (lambda x, c: _nll(x, c, bits=False),
     "that is the answer in nats (natural logarithms): divide by ln 2 to get bits (metrics.nats_to_bits), or use "
     "log2."),
    (lambda x, c: _nll(x, c, reduce=np.mean),
     "you averaged over the positions of a map, which gives bits per code: the likelihood of the whole map is "
     "the product of its conditionals, so its bits are the SUM over the positions; average only over images."),
    (lambda x, c: _nll(x, c, reduce=np.mean, bits=False),
     "that is nats per code: sum over the positions of a map (not the mean), and divide by ln 2 for bits."),
    (lambda x, c: _nll(x, c, log=np.log2), _NLL_SOFTMAX),
    (lambda x, c: _nll(x, c, log=lambda v: v / np.log(2)), _NLL_SOFTMAX),
    (lambda x, c: _nll(x, c, log=lambda v: v), _NLL_SOFTMAX),
    *[((lambda x, c, axis=axis: _nll(x, c, axis=axis)),
       f"your softmax runs over {where}: the probabilities of one position are over its K codes, the last axis "
       "(axis=-1).") for axis, where in [(0, "the batch axis"), (1, "the rows (axis 1)"), (2, "the columns (axis 2)")]],
    (lambda x, c: _nll(x, c, sign=1.0),
     "you forgot the minus sign: log-probabilities are negative, and the negative log-likelihood is their "
     "negation, a positive number of bits."),
    (lambda x, c: _nll(x, c, argmax=True),
     "you took the probability of the most likely code (the argmax): the likelihood asks how probable the GIVEN "
     "codes are, so pick log p at codes[n, i, j]."),
    (lambda x, c: _nll(x, c) * len(c),
     "you summed over the images too: that is the bits of the whole batch; the figure is per image, the mean over "
     "the N images of each map's sum."),
    (lambda x, c: _nll(x, np.asarray(c).astype("uint8")),
     "your codes wrapped around: a uint8 holds 0 to 255, and a codebook can have more codes (K = 512 here). Keep "
     "the codes as the integers they are (or int32/int64)."),
]


def _log_of_naive_softmax(logits):
    exp = np.exp(logits)
    return np.log(exp / np.sum(exp, axis=-1, keepdims=True))


def _log_of_softmax(logits):
    return np.log(_softmax(logits))


def _nll_cases():
    rng = np.random.default_rng(50)
    positive = rng.uniform(0.2, 3.0, size=(3, 7, 7, 5)).astype("float32")  # so log(logits) is a number
    yield positive, rng.integers(0, 5, size=(3, 7, 7))
    yield (2.0 * rng.normal(size=(2, 7, 7, 16))).astype("float32"), rng.integers(0, 16, size=(2, 7, 7))
    yield (3.0 * rng.normal(size=(1, 7, 7, 128))).astype("float32"), rng.integers(0, 128, size=(1, 7, 7)).astype(
        "int32")
    yield rng.normal(size=(4, 3, 5, 6)).astype("float32"), rng.integers(0, 6, size=(4, 3, 5))
    # Saturated logits, differences in the thousands: a naive softmax overflows, the log of a softmax underflows.
    yield (1000.0 * rng.normal(size=(2, 3, 3, 8))).astype("float32"), rng.integers(0, 8, size=(2, 3, 3))
    # Codes above 255 (K = 512), and sizes of 1: one image of one position.
    yield rng.normal(size=(3, 2, 2, 512)).astype("float32"), rng.integers(256, 512, size=(3, 2, 2))
    yield rng.normal(size=(1, 1, 1, 3)).astype("float32"), np.array([[[2]]])


def _check_nll_bits_per_image(fn):
    check_number(fn, _nll_cases(), nll_bits_per_image, _NLL_BITS_MISTAKES,
                  lambda logits, codes: f"With logits of shape {logits.shape} and codes of shape {codes.shape}: ")


core.register(
    "nll_bits_per_image", reference=nll_bits_per_image, checker=_check_nll_bits_per_image, lesson=5,
    shows=(_logsumexp, metrics.nats_to_bits),
    hints="""
        The probability of a whole map is the product of its conditionals, one per position, so its negative
        log-likelihood is a sum over the positions of -log p(code at that position). Each p comes from a
        softmax of that position's logits over the K codes; bits need base-2 logarithms. Average over the images
        only at the end.

        Take a log-softmax over the last axis (logits minus the log of the sum of their exponentials; subtract
        the maximum first to keep it stable), pick the given codes' entries with np.take_along_axis(log_probs,
        codes[..., None], axis=-1), sum over axes 1 and 2, negate, divide by ln 2 (metrics.nats_to_bits) and
        take the mean over the N images: one number.
        """,
    error_hint="logits is a float array (N, H, W, K) and codes an integer array (N, H, W); return one number "
               "(np.take_along_axis picks each position's code).",
    mistakes=_NLL_BITS_MISTAKES)


# ---------------------------------------------------------------------------------------------
# sample_codes
# ---------------------------------------------------------------------------------------------
def _softmax(logits):
    exp = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return exp / np.sum(exp, axis=-1, keepdims=True)


class _LogitsFn:
    """A ``logits_fn`` for the checks: checks the codes it is given and counts its calls."""

    def __init__(self, shape, num_codes):
        self.shape, self.num_codes, self.calls = tuple(shape), num_codes, 0

    def __call__(self, codes):
        self.calls += 1
        codes = np.asarray(ops.convert_to_numpy(codes))
        if codes.shape != self.shape:
            raise ValueError(f"logits_fn takes the whole map of codes (N, H, W) = {self.shape}, "
                             f"got an array of shape {codes.shape}")
        return self.logits(codes.astype("int64")).astype("float32")


class _PeakedLogits(_LogitsFn):
    """Almost all probability on one code per position, a code that depends on all the codes
    before it in raster order (and on the example): sampling is deterministic, and it only
    reproduces the expected map if every position sees the codes sampled before it. ``scale``:
    the peak's logit (1000: saturated logits, whose naive softmax overflows)."""

    def __init__(self, shape, num_codes, scale=30.0):
        super().__init__(shape, num_codes)
        self.scale = scale

    def logits(self, codes):
        n, h, w = self.shape
        weighted = codes.reshape(n, h * w) * np.arange(1, h * w + 1)
        before = np.cumsum(weighted, axis=1) - weighted  # depends on the positions before p only
        peak = (before + 2 * np.arange(h * w) + 3 * np.arange(n)[:, None]) % self.num_codes
        return self.scale * np.eye(self.num_codes)[peak].reshape(n, h, w, self.num_codes)


class _FixedLogits(_LogitsFn):
    """The same logits ``(K,)`` at every position, whatever the codes."""

    def __init__(self, shape, logits):
        super().__init__(shape, len(logits))
        self.fixed = np.asarray(logits, dtype="float64")

    def logits(self, codes):
        return np.broadcast_to(self.fixed, (*self.shape, self.num_codes)).copy()


def _sampler(*, one_call=False, feedback=True, columns_first=False, per_example=True, greedy=False, own_rng=False,
             naive_softmax=False, shared_uniform=False, dtype="int64"):
    """A sampling loop with one known mistake switched on (the mistakes table of sample_codes)."""

    def sample(logits_fn, shape, rng):
        n, h, w = shape
        codes, zeros = np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)
        rng = np.random.default_rng() if own_rng else rng
        order = [(i, j) for j in range(w) for i in range(h)] if columns_first else np.ndindex(h, w)
        logits = np.asarray(logits_fn(zeros)) if one_call else None
        for i, j in order:
            if not one_call:
                logits = np.asarray(logits_fn(codes if feedback else zeros))
            probs = _softmax(logits[:, i, j, :].astype("float64"))
            if naive_softmax:
                with np.errstate(all="ignore"):
                    exp = np.exp(logits[:, i, j, :].astype("float64"))
                    probs = exp / np.sum(exp, axis=-1, keepdims=True)
            if shared_uniform:  # one uniform number for the whole batch: inverse-CDF draws that move together
                cdf = np.cumsum(probs, axis=-1)
                codes[:, i, j] = np.minimum(np.sum(cdf < rng.random(), axis=-1), probs.shape[-1] - 1)
            elif greedy:
                codes[:, i, j] = np.argmax(probs, axis=-1)
            elif per_example:
                codes[:, i, j] = [rng.choice(len(p), p=p) for p in probs]
            else:
                codes[:, i, j] = rng.choice(probs.shape[-1], p=probs[0])
        return codes

    return sample


_SAMPLE_ONE_CALL = ("you called logits_fn once and sampled every position from that one call: each position must see "
                    "the codes sampled before it, so call logits_fn inside the loop, once per position.")
_SAMPLE_NO_FEEDBACK = ("logits_fn never saw the codes you sampled: write each sampled code into the array you pass "
                       "to logits_fn before computing the next position.")
_SAMPLE_GREEDY = ("draw each code at random with probabilities softmax(logits) (rng.choice(K, p=probs)), don't take "
                  "the argmax.")
_SAMPLE_OWN_RNG = ("the same seed gave different codes: draw with the rng you are given (rng.choice, rng.random), not "
                   "np.random, a new default_rng() or keras.random.")
_SAMPLE_SATURATED = ("with saturated logits (a confident prior's, in the hundreds) exp overflows to inf and your "
                     "softmax gives NaN probabilities: subtract each row's largest logit before exp.")
_SAMPLE_SHARED = ("the examples of the batch are not independent: with the same logits everywhere, every example "
                  "drew the same map. Draw each example's code with its own random number (rng.choice per example, "
                  "or rng.random((N, 1)) for an inverse CDF), not one number for the whole batch.")
_SAMPLE_NARROW = ("your codes' dtype {dtype} cannot hold codes up to K - 1 = {top}: codes above 255 wrap around in "
                  "uint8. Use np.zeros(shape, dtype=int).")
_SAMPLE_CODES_MISTAKES = [
    (_sampler(one_call=True), _SAMPLE_ONE_CALL),
    (_sampler(feedback=False), _SAMPLE_NO_FEEDBACK),
    (_sampler(columns_first=True),
     "you went down the columns: raster order is row by row, left to right within each row (for i in rows: "
     "for j in columns)."),
    (_sampler(per_example=False),
     "every example in the batch got the same code: draw one code per example, from its own probabilities "
     "probs[n]."),
    (_sampler(greedy=True), _SAMPLE_GREEDY),
    (_sampler(own_rng=True), _SAMPLE_OWN_RNG),
    (_sampler(naive_softmax=True), _SAMPLE_SATURATED),
    (_sampler(shared_uniform=True), _SAMPLE_SHARED),
    (_sampler(dtype="uint8"), _SAMPLE_NARROW.format(dtype="uint8", top=299)),
]


def _sampled(fn, logits_fn, seed, where):
    """The learner's codes for ``logits_fn``, checked for shape, dtype and range."""
    shape, k = logits_fn.shape, logits_fn.num_codes
    got = to_array(call(fn, logits_fn, shape, np.random.default_rng(seed)))
    if got.shape != shape:
        looks_like_logits = got.shape == (*shape, k)
        extra = ": those look like logits or probabilities, return the sampled codes" if looks_like_logits else ""
        raise Incorrect(f"{where}expected codes of shape (N, H, W) = {shape}, got {got.shape}{extra}.")
    if got.dtype.kind not in "iu":
        raise Incorrect(f"{where}codes are integer indices, got dtype {got.dtype}: start from "
                         "np.zeros(shape, dtype=int).")
    if np.iinfo(got.dtype).max < k - 1:
        raise Incorrect(where + _SAMPLE_NARROW.format(dtype=got.dtype, top=k - 1))
    if got.size and (got.min() < 0 or got.max() >= k):
        raise Incorrect(f"{where}codes must lie in [0, K) = [0, {k}), got {got.min()} to {got.max()}.")
    return got


def _check_sample_codes(fn):
    # 1. Deterministic: the correct loop reproduces one exact map.
    # The last two: codes above 255 (K = 300, so uint8 cannot hold them), and sizes of 1 (N = H = W = K = 1).
    for shape, k, seed in [((2, 3, 4), 5, 0), ((3, 2, 5), 7, 1), ((1, 4, 4), 3, 2), ((2, 2, 3), 300, 5),
                           ((1, 1, 1), 1, 6)]:
        where = f"With shape = {shape}, K = {k} and a logits_fn that all but fixes each code given those before it: "
        logits_fn = _PeakedLogits(shape, k)
        got = _sampled(fn, logits_fn, seed, where)
        want = sample_codes(_PeakedLogits(shape, k), shape, np.random.default_rng(seed))
        if np.array_equal(got, want):
            continue
        if np.array_equal(got, _PeakedLogits(shape, k)(np.zeros(shape)).argmax(-1)):  # what zeros alone give
            raise Incorrect(where + (_SAMPLE_ONE_CALL if logits_fn.calls == 1 else _SAMPLE_NO_FEEDBACK))
        for mistake, mistake_hint in _SAMPLE_CODES_MISTAKES:
            if np.array_equal(got, mistake(_PeakedLogits(shape, k), shape, np.random.default_rng(seed))):
                raise Incorrect(where + mistake_hint)
        positions = shape[1] * shape[2]
        if logits_fn.calls < positions:
            raise Incorrect(f"{where}logits_fn was called {logits_fn.calls} times for {positions} positions: call "
                             "it once per position, after writing the codes before it.")
        flat_got, flat_want = got.reshape(shape[0], -1), want.reshape(shape[0], -1)
        wrong = np.argwhere(flat_got != flat_want)  # (example, raster position) pairs
        example, position = wrong[np.argmin(wrong[:, 1])]
        i, j = divmod(int(position), shape[2])
        raise Incorrect(f"{where}at position (i, j) = ({i}, {j}) of example {example}, logits_fn put almost all the "
                         f"probability on code {flat_want[example, position]}, but you sampled "
                         f"{flat_got[example, position]}. Take the logits at [:, i, j, :], apply a softmax over the "
                         "last axis and draw with those probabilities, visiting positions row by row.")
    # 2. Statistical: with equal logits the codes spread out; with skewed ones they follow the softmax.
    shape = (8, 8, 8)
    where = f"With shape = {shape} and the same logits at every position: "
    flat = _sampled(fn, _FixedLogits(shape, np.zeros(4)), 3, where)
    shares = np.bincount(flat.ravel(), minlength=4) / flat.size
    if shares.min() < 0.12 or shares.max() > 0.4:
        raise Incorrect(f"{where}the logits are equal for the 4 codes, but your codes' shares are "
                         f"{np.round(shares, 2).tolist()}, not about 0.25 each: {_SAMPLE_GREEDY}")
    if not np.array_equal(flat, _sampled(fn, _FixedLogits(shape, np.zeros(4)), 3, where)):
        raise Incorrect(where + _SAMPLE_OWN_RNG)
    same = np.mean(flat[1:] == flat[:1])  # the share of positions where an example repeats the first one's code
    if same > 0.6:  # independent draws agree about a quarter of the time
        raise Incorrect(f"{where}{same:.0%} of the codes of examples 1 to {shape[0] - 1} equal example 0's at the "
                         f"same position, where independent draws from 4 equally likely codes agree a quarter of the "
                         f"time: {_SAMPLE_SHARED}")
    # 3. Saturated logits (a confident prior's): the draws must not overflow.
    where = "With shape = (2, 3, 3) and saturated logits (the likely code's logit 1000, the others 0): "
    saturated = _PeakedLogits((2, 3, 3), 6, scale=1000.0)
    try:
        got = _sampled(fn, saturated, 7, where)
    except Incorrect as verdict:  # what the learner's function raised (NaN probabilities), or a wrong result
        if "raised" in str(verdict):
            raise Incorrect(f"{where}{verdict}: {_SAMPLE_SATURATED}") from None
        raise
    if not np.array_equal(got, sample_codes(_PeakedLogits((2, 3, 3), 6, 1000.0), (2, 3, 3), np.random.default_rng(7))):
        raise Incorrect(f"{where}{_SAMPLE_SATURATED}")
    shape, where = (8, 8, 8), f"With shape = {(8, 8, 8)} and the same logits at every position: "
    probs = np.array([0.5, 0.3, 0.2, 1e-18])
    skewed = _sampled(fn, _FixedLogits(shape, np.log(probs)), 4, where)
    shares = np.bincount(skewed.ravel(), minlength=4) / skewed.size
    if np.max(np.abs(shares - probs)) > 0.1:
        raise Incorrect(f"{where}with logits log([0.5, 0.3, 0.2, 0]) the codes' shares should be close to those "
                         f"probabilities, got {np.round(shares, 2).tolist()}: draw with probabilities "
                         "softmax(logits) over the last axis.")


core.register(
    "sample_codes", reference=sample_codes, checker=_check_sample_codes, lesson=5, shows=(_softmax,),
    trial=_trial_sample_codes, trial_advice="; the prior runs on the map of codes you pass to logits_fn: keep it "
                                            "an integer array, as np.zeros(shape, dtype=int) makes it",
    hints="""
        Sample one position at a time in raster order (row by row, left to right), starting from a map of zeros.
        Before each position, ask the model for its logits given the codes sampled so far, so that each new code
        depends on those before it; then draw that position's code at random from the model's probabilities,
        with the rng you are given.

        Loop over the rows i and, inside, the columns j. Call logits_fn on the whole (N, H, W) map of codes,
        take the logits at [:, i, j, :] and turn them into probabilities with a softmax over the last axis; then
        draw each example's code with rng.choice and that example's row of probabilities, and write it into the
        map before the next position. Start from np.zeros(shape, dtype=int).
        """,
    error_hint="logits_fn takes the whole (N, H, W) array of codes and returns logits (N, H, W, K); rng.choice(K, "
               "p=...) needs one row of probabilities that sum to 1: a softmax of the logits at one position for "
               "one example.",
    mistakes=_SAMPLE_CODES_MISTAKES)


# ---------------------------------------------------------------------------------------------
# gated_bits_per_image: a prediction, judged against the table of section 6
# ---------------------------------------------------------------------------------------------
_BITS_FACTOR = 1.3  # a prediction within this factor of the measured bits is right


def _judge_gated_bits(answer, measured):
    """``measured``: ``{"prior": bits per image of gated-vqvae on the test codes, "uniform": 49 log2 K, "unigram":
    the unigram baseline's bits per image}``."""
    bits = core.as_number(answer, "150")
    prior, uniform, unigram = (float(measured[key]) for key in ("prior", "uniform", "unigram"))
    why = (f"gated-vqvae needs {prior:.1f} bits per image on the test codes. A prior that knows nothing (uniform over "
           f"the K codes) needs {uniform:.0f}, log2 K per position; knowing only how often each code occurs (the "
           f"unigram baseline) saves little, {unigram:.1f}; the prior saves the rest by predicting each code from the "
           f"codes before it: neighbouring codes of a digit are far from independent.")
    if bits <= 0:
        raise core.Wrong(f"bits are a cost, more than 0: {why}")
    if bits >= uniform:
        raise core.Wrong(f"{bits:g} is at least what a prior that knows nothing costs; training can only lower "
                         f"it. {why}")
    if bits > prior * _BITS_FACTOR:
        raise core.Wrong(f"{bits:g} is too pessimistic: {why}")
    if bits < prior / _BITS_FACTOR:
        raise core.Wrong(f"{bits:g} is too optimistic: a digit's map is not predictable code by code; even this prior "
                         f"leaves {prior / 49:.1f} bits of doubt per position. {why}")
    return f"{bits:g} is within a factor {_BITS_FACTOR} of the measurement. {why}"


core.register_question(
    "gated_bits_per_image", kind="predict", lesson=5, judge=_judge_gated_bits,
    example={"prior": 186.8, "uniform": 343.0, "unigram": 311.7},
    hints="""
        Start from the cost of a prior that knows nothing: each of the 49 positions is one of K equally likely codes.
        A trained prior can only do better; by how much depends on how predictable a code is from the codes
        above it and to its left.

        Think of a digit's map: the codes of the background around the strokes repeat, and a stroke continues
        from one position to the next, so many positions are nearly certain given their neighbours; a few, where
        a stroke may turn or stop, stay open. Guess the share of the 49 log2 K bits that remains, and multiply.
        """)
