"""Lesson 7's exercises (modern quantizers): ``fsq_quantize``, ``entropy_terms`` (LFQ's entropy penalty),
``rotate_to`` and ``residual_stage``, and two predictions judged after their runs (``fsq_gradient_at_zero``,
``lfq_penalty_gap``).

The checkers try the edge cases the lesson meets: FSQ levels that mix even and odd channels, a single row, a
single channel of 2 levels and inputs where tanh saturates; LFQ's saturated logits (a temperature of 0.01), a
batch that leaves codes unused, a batch of one and one bit; parallel and antiparallel vectors (and D = 1) for the
rotation; one code, one row, one dimension and N = K for a residual stage. ``entropy_terms`` builds the LFQ layer
of the lesson's demonstration (``LookupFreeQuantizer(bits, pieces={"entropy_terms": ...})``), with a trial of one
compiled training step of a small LFQ VQ-VAE.

``fsq_quantize``'s reference is written out with NumPy and ``keras.ops``, computing FSQ's constants
from the levels itself; it computes what the package's
:class:`~vqvae_lessons.quantizers.FiniteScalarQuantizer` does in its ``bound`` and ``quantize_bounded``.
The other references are the package's own code in :mod:`vqvae_lessons.quantizers`: the rotation trick
(:func:`~vqvae_lessons.quantizers.rotate_to`) and one stage of residual VQ (the loop of
:class:`~vqvae_lessons.quantizers.ResidualVectorQuantizer`, with
:func:`~vqvae_lessons.quantizers.nearest_code`); ``entropy_terms``'s reference is written out with ``keras.ops``
(what :func:`~vqvae_lessons.quantizers.entropy_terms` computes on one device). ``fsq_quantize``, ``entropy_terms``
and ``rotate_to`` are checked by their gradients too, with the active Keras backend.

The learner's ``fsq_quantize`` builds the FSQ VQ-VAE that lesson 7 trains
(``VQVAE(quantizer="fsq", levels=..., pieces={"fsq_quantize": ...})``, see
:class:`~vqvae_lessons.quantizers.FiniteScalarQuantizer`); its trial runs one compiled training step
of a small such VQ-VAE, so that an answer that rounds with NumPy (it passes the check on eager
tensors) falls back to the package's. ``residual_stage`` is a piece of
:class:`~vqvae_lessons.quantizers.ResidualVectorQuantizer` (``pieces={"residual_stage": ...}``), with a
trial of the same kind: an answer in NumPy passes its check but cannot run inside the model. The lesson runs it
inside a residual quantizer that holds the shipped ``rvq-3x16`` model's trained stages.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .. import quantizers, vqvae
from . import core
from .core import Incorrect, call, check_by_observation, close, compare, gradients_of, nonzero, to_array

rotate_to = quantizers.rotate_to


# ---------------------------------------------------------------------------------------------
# fsq_quantize: bound, round with a straight-through gradient, scale
# ---------------------------------------------------------------------------------------------
def fsq_quantize(z, levels):
    """FSQ's codes ``(N, d)`` in [-1, 1] of encoder outputs ``z`` ``(N, d)``, ``levels[i]`` values in channel i."""
    levels = np.asarray(levels, "float32")  # (d,): one value per channel, computed once with NumPy
    h = (levels - 1) * (1 - 1e-3) / 2  # the bound's half range, just inside the outermost levels
    offset = np.where(levels % 2 == 0, 0.5, 0.0).astype("float32")  # even L: no middle level, move by half a step
    shift = np.tan(offset / h).astype("float32")  # moves z = 0 back near b = 0 (the FSQ paper's tan; artanh is exact)
    half_width = np.floor(levels / 2)  # L // 2
    bounded = ops.tanh(z + shift) * h - offset  # b, in (-h - offset, h - offset)
    rounded = bounded + ops.stop_gradient(ops.round(bounded) - bounded)  # round(b), with the identity's gradient
    return rounded / half_width


def _in_a_training_step(piece, **settings):
    """A trial (see :func:`core.use`): one compiled training step of a small VQ-VAE whose quantizer's ``piece`` is
    the learner's function; raises if it cannot run on the backend's symbolic tensors or gives a loss that is not
    finite."""
    def trial(fn):
        images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
        core.trains_one_step(vqvae.VQVAE("keras-example", pieces={piece: fn}, **settings), images)
    return trial


def _constants(levels, eps=1e-3):
    levels = np.asarray(levels, "float32")
    h = (levels - 1) * (1 - eps) / 2
    offset = np.where(levels % 2 == 1, 0.0, 0.5).astype("float32")
    return h, offset, np.tan(offset / h).astype("float32"), (np.asarray(levels) // 2).astype("float32")


def _fsq_variant(bound="paper", rounding="straight_through", scale="half_width", eps=1e-3, offset_from="each",
                 shift_by="tan"):
    """A mistaken FSQ: another bound, rounding, scale, offset (``offset_from="first"``: the first channel's for
    every channel) or shift (``shift_by="artanh"``)."""
    def fsq(z, levels):
        h, offset, shift, half = _constants(levels, eps)
        if offset_from == "first":  # one offset for all channels, from the first level's parity
            offset = np.full_like(offset, offset[0])
            shift = np.tan(offset / h).astype("float32")
        if shift_by == "artanh":
            shift = np.arctanh(offset / h).astype("float32")
        bounded = {"paper": lambda: ops.tanh(z + shift) * h - offset, "no_offset": lambda: ops.tanh(z) * h,
                   "no_shift": lambda: ops.tanh(z) * h - offset, "none": lambda: z * half,
                   "plus_offset": lambda: ops.tanh(z + shift) * h + offset}[bound]()
        scale_by = {"half_width": half, "h": h, "one": 1.0, "levels": np.asarray(levels, "float32"),
                    "half_levels": np.asarray(levels, "float32") / 2}[scale]
        if rounding == "straight_through_from_z":  # the codes' value, but the identity's gradient from z
            return z + ops.stop_gradient(ops.round(bounded) / scale_by - z)
        rounded = {"straight_through": lambda: quantizers.round_ste(bounded), "plain": lambda: ops.round(bounded),
                   "none": lambda: bounded}[rounding]()
        return rounded / scale_by
    return fsq


_FSQ_VARIANTS = [_fsq_variant(rounding="plain"), _fsq_variant(rounding="none"), _fsq_variant(bound="no_offset"),
                 _fsq_variant(bound="no_shift"), _fsq_variant(bound="none"), _fsq_variant(scale="one"),
                 _fsq_variant(scale="h"), _fsq_variant(scale="levels"), _fsq_variant(eps=0.0),
                 _fsq_variant(offset_from="first"), _fsq_variant(scale="half_levels"), _fsq_variant(shift_by="artanh"),
                 _fsq_variant(rounding="straight_through_from_z"), _fsq_variant(bound="plus_offset")]
_FSQ_MISTAKES = list(zip(_FSQ_VARIANTS, [
    "the gradient with respect to z is zero: round has no gradient (its slope is 0 between the steps), so the "
    "encoder would learn nothing. Round with the straight-through estimator: b + stop_gradient(round(b) - b).",
    "nothing is rounded: the values are the bounded ones, not on the grid of levels. Round them (straight-through).",
    "for an even number of levels L, tanh(z) * h rounds to L - 1 values, symmetric about 0: subtract the offset "
    "1/2 (and shift z by tan(offset / h)) so that the L integers -L/2, ..., L/2 - 1 are all reached.",
    "you subtracted the offset but did not shift z: add shift = tan(offset / h) to z inside the tanh, so that "
    "z = 0 lands near 0 (without it z = 0 gives -1/2, between two levels).",
    "nothing bounds z: without tanh a large z rounds to a level beyond the last one. Bound it first: "
    "tanh(z + shift) * h - offset.",
    "the codes are integers: divide the rounded values by L // 2 so that they lie in [-1, 1].",
    "you divided by h: divide the rounded values by L // 2 (the integer half-width), so every level is a multiple "
    "of 1 / (L // 2).",
    "you divided by L: divide by L // 2, so that the codes lie in [-1, 1].",
    "h is (L - 1)(1 - eps) / 2 with eps = 1e-3: the eps keeps tanh's values just inside the outermost levels.",
    "the offset and shift belong to each channel: 1/2 where that channel's L is even, 0 where it is odd. With "
    "levels that mix even and odd (such as (4, 5, 3)), one offset for every channel puts some channels between "
    "two levels: compute them per channel, e.g. np.where(levels % 2 == 0, 0.5, 0.0).",
    "you divided by L / 2: for odd L that is not an integer (2.5 for L = 5), so the outermost codes miss -1 and 1. "
    "Divide by the integer half-width L // 2.",
    "you shifted by artanh(offset / h): that is the exact root, but the exercise, the FSQ paper's code and the "
    "package shift by tan(offset / h) (they differ by under 0.1%, which shows in the gradient): use np.tan.",
    "the values are the codes, but the gradient passes straight from z, as if the bound were not there: put the "
    "straight-through estimator around the rounding only, b + stop_gradient(round(b) - b) with b the bounded "
    "values, so that the gradient is the bound's, tanh'(z + shift) h / (L // 2).",
    "the offset is subtracted, b = tanh(z + shift) h - offset: with + offset an even L "
    "rounds to -L/2 + 1, ..., L/2 instead of -L/2, ..., L/2 - 1.",
], strict=True))


def _observe(fn, tensors, extra, w, names):
    """The value of ``fn(*tensors, *extra)`` (of the shape of ``w``) and the gradients of ``sum(w * value)`` with
    respect to each of ``tensors``, keyed ``grad_NAME`` by ``names``."""
    value = to_array(call(fn, *map(ops.convert_to_tensor, tensors), *extra))
    if value.shape != w.shape:
        raise Incorrect(f"expected a result of the shape of {' and '.join(names)}, {w.shape}, got {value.shape}.")
    [grads] = gradients_of(fn, list(tensors), list(extra),
                         lambda y: [ops.sum(ops.multiply(ops.convert_to_tensor(w), y))])
    return {"value": value, **{f"grad_{name}": grad for name, grad in zip(names, grads, strict=True)}}


def _observe_fsq(fn, z, levels, w):
    return _observe(fn, [z], [levels], w, ["z"])


def _fsq_diagnosis(got, want, z, levels, w):
    if not close(got["value"], want["value"]):
        grid = sorted({float(v) for v in np.ravel(want["value"])})
        return (f"the codes differ from FSQ's: each channel i must be one of levels[i] values in [-1, 1] (channel 0 "
                f"here takes values such as {', '.join(f'{v:.3g}' for v in grid[:4])}).")
    if not nonzero(got["grad_z"]):
        return _FSQ_MISTAKES[0][1]
    return ("the values are right but the gradient differs: it must be the bound's, tanh'(z + shift) h / (L // 2), "
            "passed straight through the rounding.")


def _check_fsq_quantize(fn):
    rng = np.random.default_rng(70)
    cases = []
    for levels, n in [((8, 4, 4), 6), ((5, 3), 5), ((7, 5, 5, 5, 5), 3), ((4, 5, 3), 8), ((8, 5), 1), ((2,), 4)]:
        z = (rng.normal(size=(n, len(levels))) * 1.5).astype("float32")
        w = rng.normal(size=z.shape).astype("float32")
        cases.append((f"With levels = {levels}, even and odd mixed, and z of shape {z.shape}: "
                      if len({level % 2 for level in levels}) == 2 else
                      f"With levels = {levels} and z of shape {z.shape}: ", (z, levels, w)))
    z = np.array([[-20.0, 20.0, -20.0], [20.0, -20.0, 20.0], [0.0, 0.0, 0.0], [-3.0, 3.0, 1e-3]], "float32")
    cases.append(("With z at the bounds (|z| = 20, where tanh saturates, and 0), levels = (6, 5, 4): ",
                  (z, (6, 5, 4), rng.normal(size=z.shape).astype("float32"))))
    check_by_observation(fn, cases, _observe_fsq, fsq_quantize, _FSQ_MISTAKES, _fsq_diagnosis)


core.register(
    "fsq_quantize", reference=fsq_quantize, checker=_check_fsq_quantize, lesson=7,
    trial=_in_a_training_step("fsq_quantize", quantizer="fsq", levels=(8, 4, 4)),
    hints="""
        Three steps per channel, all with keras.ops: squash z into a bounded range with tanh, so that rounding
        can only give L values; round to the nearest integer in a way that still lets a gradient reach z; then
        divide so that the codes lie in [-1, 1]. Even L needs care: L integers are not symmetric about 0.

        First three constants per channel, NumPy arrays computed from levels: the half range h, (L - 1)(1 - eps) / 2
        with eps 1e-3; the offset, 0 for odd L and 1/2 for even L; and the shift, the tan of the offset over h
        (the FSQ paper's choice: the exact root s of tanh(s) times h equal to the offset is the artanh of offset / h,
        and the two differ by under 0.1% here). Then, with keras.ops: bound, the tanh of z plus the shift, times
        h, minus the offset; round with the straight-through estimator, the bounded values plus the stop_gradient
        of their rounding minus themselves; and divide by L // 2.
        """,
    error_hint="z is a backend tensor (N, d) and levels a tuple of d integers: compute h, offset and shift with "
               "NumPy from levels, and the rest with keras.ops (tanh, round, stop_gradient).",
    mistakes=_FSQ_MISTAKES)


# ---------------------------------------------------------------------------------------------
# entropy_terms: LFQ's entropy penalty, its two parts
# ---------------------------------------------------------------------------------------------
def entropy_terms(logits):
    """LFQ's entropy penalty's two parts, in nats, of ``logits`` ``(N, K)`` (one row per vector, one column per code):
    ``(per_sample_entropy, codebook_entropy)``, the mean of each row's softmax entropy and the entropy of the mean
    softmax row."""
    log_p = ops.log_softmax(logits, axis=-1)  # logits - logsumexp(logits): stable, no log(0) when saturated
    p = ops.exp(log_p)  # (N, K): each row sums to 1
    per_sample = ops.mean(-ops.sum(p * log_p, axis=-1))  # low: each vector sure of its code
    average = ops.mean(p, axis=0)  # (K,): how the batch spreads over the codes
    codebook = -ops.sum(average * ops.log(average + 1e-10))  # high: all codes used; + 1e-10: a code no one picks
    return per_sample, codebook


def _softmax_naive(logits):
    exp = ops.exp(logits)
    return exp / ops.sum(exp, axis=-1, keepdims=True)


def _entropy_variant(log_softmax="stable", codebook_eps=True, base=1.0, per_sample_mean=True, axis=-1,
                     zero_where=False, swap=False, mean_of_logs=False):
    """A mistaken entropy_terms."""
    def terms(logits):
        if log_softmax == "naive":
            p = _softmax_naive(logits)
            log_p = ops.log(p)
        elif log_softmax == "unshifted_stable_p":  # p from the (stable) softmax, log(p) by hand
            p = ops.softmax(logits, axis=axis)
            log_p = ops.log(p)
        else:
            log_p = ops.log_softmax(logits, axis=axis)
            p = ops.exp(log_p)
        plogp = ops.where(p > 0, p * ops.log(p), 0.0) if zero_where else p * log_p
        row = -ops.sum(plogp, axis=-1)
        per_sample = ops.mean(row) if per_sample_mean else ops.sum(row)
        average = ops.mean(p, axis=0)
        if mean_of_logs:
            codebook = -ops.sum(average * ops.mean(log_p, axis=0))
        elif zero_where:
            codebook = -ops.sum(ops.where(average > 0, average * ops.log(average), 0.0))
        else:
            codebook = -ops.sum(average * ops.log(average + 1e-10 if codebook_eps else average))
        pair = (per_sample / base, codebook / base)
        return pair[::-1] if swap else pair
    return terms


_ENTROPY_MISTAKES = list(zip([
    _entropy_variant(swap=True), _entropy_variant(base=float(np.log(2.0))), _entropy_variant(per_sample_mean=False),
    _entropy_variant(axis=0), _entropy_variant(log_softmax="naive"), _entropy_variant(log_softmax="unshifted_stable_p"),
    _entropy_variant(codebook_eps=False), _entropy_variant(zero_where=True), _entropy_variant(mean_of_logs=True)], [
    "the pair is swapped: return (per_sample_entropy, codebook_entropy), the mean of the rows' entropies first.",
    "these are bits: the penalty is in nats, with the natural log (ops.log), not log2.",
    "the per-sample entropy is the mean over the N rows of each row's entropy, not their sum (it must not grow "
    "with the batch).",
    "the softmax runs over each row's K codes (axis -1), not over the batch (axis 0): p_n is one vector's "
    "distribution over the codes.",
    "with LFQ's temperature of 0.01 the logits are in the hundreds: exp overflows or underflows to 0, and "
    "0 * log(0) is NaN. Subtract each row's maximum (or its logsumexp) first: log p = logits - "
    "logsumexp(logits), which has no log(0).",
    "the softmax is stable, but log(softmax) is not: a saturated row has probabilities of exactly 0, and 0 * log(0) "
    "is NaN. Take log p = logits - logsumexp(logits) (a log-softmax) instead of the log of p.",
    "a code that no vector of the batch picks has a mean probability of exactly 0 here, and 0 * log(0) is NaN: "
    "add a tiny 1e-10 inside the codebook entropy's log.",
    "the values are right, but where(p > 0, p log p, 0) still differentiates the branch it discards: log(0) is "
    "-inf there and the gradient is NaN. Compute log p as a log-softmax (finite everywhere) and use p * log_p.",
    "the codebook entropy is the entropy of the mean row, -sum(pbar log pbar) with pbar the mean of p over the "
    "rows: not pbar times the mean of the rows' log-probabilities.",
], strict=True))


def _observe_entropy(fn, logits, w):
    """The pair's values and the gradient of ``w[0] * per_sample + w[1] * codebook`` with respect to the logits."""
    result = call(fn, ops.convert_to_tensor(logits))
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Incorrect(f"expected a pair (per_sample_entropy, codebook_entropy) of numbers, got a "
                         f"{type(result).__name__}" + (" (the penalty itself? return its two parts)" if
                                                       to_array(result).size == 1 else "") + ".")
    value = np.stack([to_array(part).reshape(-1) for part in result]) if all(
        to_array(part).size == 1 for part in result) else None
    if value is None:
        raise Incorrect(f"expected two single numbers (means over the batch), got arrays of shapes "
                         f"{[to_array(part).shape for part in result]}.")
    [grad] = gradients_of(fn, [logits], [], lambda pair: [w[0] * ops.reshape(pair[0], ()) +
                                                        w[1] * ops.reshape(pair[1], ())])
    return {"value": value[:, 0], "grad_logits": grad}


def _entropy_diagnosis(got, want, logits, w):
    if np.isnan(got["value"]).any():
        return "your result contains NaN: a 0 * log(0)? Work with log-probabilities: logits - logsumexp(logits)."
    if np.isnan(got["grad_logits"]).any():
        return _ENTROPY_MISTAKES[7][1]
    if not close(got["value"], want["value"]):
        return (f"expected (per_sample_entropy, codebook_entropy) = ({want['value'][0]:.4g}, {want['value'][1]:.4g}) "
                f"nats, got ({got['value'][0]:.4g}, {got['value'][1]:.4g}).")
    return "the values are right but the gradient differs: is anything inside a stop_gradient or computed in NumPy?"


def _lfq_logits(n, bits, scale, rng, temperature=0.01, centre=0.0):
    """LFQ's logits ``(n, 2**bits)`` for ``n`` vectors of ``bits`` channels (``scale`` their spread about
    ``centre``)."""
    corners = np.array([[1.0 if (k >> b) & 1 else -1.0 for b in range(bits)] for k in range(2**bits)])
    x = centre + rng.normal(size=(n, bits)) * scale
    return (-((x[:, None] - corners[None]) ** 2).sum(-1) / temperature).astype("float32")


def _check_entropy_terms(fn):
    rng = np.random.default_rng(73)
    cases = [("With logits of shape (N, K) = (6, 8) of moderate size: ",
              rng.normal(size=(6, 8)).astype("float32") * 2),
             ("With saturated logits (LFQ's temperature 0.01: values in the hundreds) of shape (16, 8): ",
              _lfq_logits(16, 3, 1.0, rng)),
             ("With saturated logits of a batch all near one corner (the other 7 codes unused), shape (12, 8): ",
              _lfq_logits(12, 3, 0.2, rng, centre=-1.0)),
             ("With large positive logits, shape (5, 4): ", (rng.normal(size=(5, 4)) * 5 + 500).astype("float32")),
             ("With a batch of one vector, logits of shape (1, 4): ", rng.normal(size=(1, 4)).astype("float32")),
             ("With one bit, K = 2 codes, logits of shape (7, 2): ", _lfq_logits(7, 1, 0.05, rng))]
    cases = [(where, (logits, rng.normal(size=2).astype("float32"))) for where, logits in cases]
    check_by_observation(fn, cases, _observe_entropy, entropy_terms, _ENTROPY_MISTAKES, _entropy_diagnosis)


def _lfq_trial(fn):
    """A trial (see :func:`core.use`): one compiled training step of a small LFQ VQ-VAE with the learner's penalty."""
    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    core.trains_one_step(vqvae.VQVAE("keras-example", quantizer="lfq", bits=3, pieces={"entropy_terms": fn}), images)


core.register(
    "entropy_terms", reference=entropy_terms, checker=_check_entropy_terms, lesson=7, trial=_lfq_trial,
    hints="""
        Two entropies of the same softmax probabilities, in nats: one averaged over the vectors after it is
        computed for each vector, the other computed once for the batch's average distribution. Mind the size of
        LFQ's logits: with a temperature of 0.01 they are in the hundreds, and some probabilities are exactly 0.

        Work with log-probabilities: a log-softmax over the codes (keras.ops.log_softmax, or the logits minus
        their row's logsumexp, keepdims), then exponentiate for the probabilities (N, K). The per-sample entropy
        is minus the sum over codes of p times log p, then the mean over rows; the codebook entropy takes the mean
        of p over the rows first (K,), then minus the sum of it times its log, with a tiny 1e-10 inside that log.
        Return the pair, per-sample first.
        """,
    error_hint="logits is a backend tensor (N, K): use keras.ops (log_softmax, exp, log, sum, mean) and return a "
               "pair of scalars.",
    mistakes=_ENTROPY_MISTAKES)


# ---------------------------------------------------------------------------------------------
# rotate_to: the rotation trick's Householder form
# ---------------------------------------------------------------------------------------------
def _unit(v, eps=1e-6):
    norm = ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True))
    return v / (norm if eps is None else ops.maximum(norm, eps)), norm


def _rotation_variant(stop=True, scale=True, second_term=True, straight=False, eps=1e-6, inverse_scale=False):
    """A mistaken rotation trick (``eps=None``: dividing by the norms as they are)."""
    def rotate(e, q):
        if straight:
            return quantizers.straight_through(e, q)
        e_hat, e_norm = _unit(e, eps)
        q_hat, q_norm = _unit(q, eps)
        r, _ = _unit(e_hat + q_hat, eps)
        lam = e_norm / q_norm if inverse_scale else q_norm / e_norm
        if stop:
            e_hat, q_hat, r, lam = (ops.stop_gradient(t) for t in (e_hat, q_hat, r, lam))
        dot = lambda a, b: ops.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
        rotated = e - 2.0 * r * dot(r, e) + (2.0 * q_hat * dot(e_hat, e) if second_term else 0.0)
        return lam * rotated if scale else rotated
    return rotate


_ROTATION_MISTAKES = list(zip([
    _rotation_variant(eps=None),
    _rotation_variant(straight=True), _rotation_variant(stop=False), _rotation_variant(scale=False),
    _rotation_variant(second_term=False), _rotation_variant(second_term=False, scale=False),
    _rotation_variant(inverse_scale=True)], [
    "when e and q point in opposite directions (an encoder output whose nearest code lies across the origin), "
    "e_hat + q_hat is 0 and r = 0 / 0 is NaN: divide by the norm clipped from below, ops.maximum(norm, 1e-6). "
    "Then r = 0 and R e = e + 2 q_hat (e_hat . e) = -e, which points along q as it must.",
    "that is the straight-through estimator: its value is q, but it hands e the gradient unchanged. The rotation "
    "trick's value is lam R e, whose gradient rotates and rescales the incoming one.",
    "the value is right, but e_hat, q_hat, r and lam must be constants (stop_gradient): the rotation and the "
    "rescaling are held fixed, so that the gradient with respect to e is lam R^T times the incoming one.",
    "the direction is q's but not the length: multiply by lam = |q| / |e| (a stop-gradient) so that the value is q.",
    "one Householder reflection, (I - 2 r r^T) e, sends e_hat to -q_hat, the opposite direction: add the second "
    "term 2 q_hat (e_hat . e), which makes R a rotation that takes e_hat to q_hat.",
    "one Householder reflection, (I - 2 r r^T) e, sends e_hat to -q_hat: add the term 2 q_hat (e_hat . e), and "
    "scale by lam = |q| / |e|.",
    "the scale is upside down: lam = |q| / |e| takes the rotated e (of length |e|) to q's length.",
], strict=True))


def _observe_rotation(fn, e, q, w):
    return _observe(fn, [e, q], [], w, ["e", "q"])


def _rotation_diagnosis(got, want, e, q, w):
    if np.isnan(got["value"]).any() or np.isnan(got["grad_e"]).any():
        return ("your result (or its gradient) contains NaN: a division by a norm of 0? Clip each norm from below, "
                "ops.maximum(norm, 1e-6).")
    if not close(got["value"], q):
        return "the value must be q itself (up to rounding): lam R e, with R the rotation taking e_hat to q_hat."
    if nonzero(got["grad_q"]):
        return "a gradient reaches q: in the rotation trick only e gets one (make q_hat, r and lam stop-gradients)."
    return "the value is q but the gradient with respect to e is not lam R^T times the incoming one."


def _check_rotate_to(fn):
    rng = np.random.default_rng(71)
    cases = []
    for shape in [(5, 3), (4, 2), (2, 3, 4), (1, 6)]:
        e, q, w = (rng.normal(size=shape).astype("float32") for _ in range(3))
        cases.append((f"With e and q of shape {shape}: ", (e, q, w)))
    # (anti)parallel pairs whose unit vectors are exact in binary (norms 2, 4, 1, 2, 6), so that e_hat + q_hat is
    # exactly 0 on every backend however it divides: q = 2 e, then q = -e / 2 and -3 e
    e = np.array([[1.0, 1.0, -1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [0.0, 2.0, 0.0, 0.0]], "float32")
    q = np.array([[2.0, 2.0, -2.0, 2.0], [-0.5, 0.5, -0.5, 0.5], [0.0, -6.0, 0.0, 0.0]], "float32")
    cases.append(("With e and q parallel (row 0) and antiparallel (rows 1 and 2), shape (3, 4): ",
                  (e, q, rng.normal(size=e.shape).astype("float32"))))
    e, q = np.array([[2.0], [-1.5], [0.5]], "float32"), np.array([[-1.0], [-3.0], [4.0]], "float32")
    cases.append(("With D = 1 (each e and q parallel or antiparallel), shape (3, 1): ",
                  (e, q, rng.normal(size=e.shape).astype("float32"))))
    check_by_observation(fn, cases, _observe_rotation, rotate_to, _ROTATION_MISTAKES, _rotation_diagnosis)


core.register(
    "rotate_to", reference=rotate_to, checker=_check_rotate_to, lesson=7, shows=(quantizers.vq._unit,),
    hints="""
        You need a result whose value is q, built from e by a rotation and a rescaling that are themselves held
        constant, so that the gradient flows back through them to e. The rotation that takes one unit vector to
        another can be written with dot products only, without a D x D matrix.

        Normalise: e_hat = e / |e|, q_hat = q / |q|, r = (e_hat + q_hat) / |e_hat + q_hat|, lam = |q| / |e|, all
        four inside stop_gradient. Then R e = e - 2 r (r . e) + 2 q_hat (e_hat . e), dot products over the last
        axis with keepdims=True, and the result is lam * R e. Divide by each norm clipped from below (the maximum
        of the norm and 1e-6): when e and q point in opposite directions, e_hat + q_hat is 0 and r must be 0, not
        NaN.
        """,
    error_hint="e and q are backend tensors (..., D): use keras.ops (sqrt, sum with axis=-1 and keepdims=True, "
               "stop_gradient).",
    mistakes=_ROTATION_MISTAKES)


# ---------------------------------------------------------------------------------------------
# residual_stage: one stage of residual VQ
# ---------------------------------------------------------------------------------------------
def residual_stage(residual, codebook):
    """One stage of residual VQ: the nearest code ``(N, D)`` to each row of ``residual`` ``(N, D)`` and what it
    leaves for the next stage, ``residual - code``."""
    code = ops.take(codebook, quantizers.nearest_code(residual, codebook), axis=0)
    return code, residual - code


def _nearest(residual, codebook):
    return codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]


_RESIDUAL_MISTAKES = [
    (lambda r, c: (_nearest(r, c), r), "the next residual is what this stage leaves: residual - code, not the "
                                       "residual itself (the next stage would quantize the same vectors again)."),
    (lambda r, c: (_nearest(r, c), _nearest(r, c) - r), "the next residual has the wrong sign: residual - code."),
    (lambda r, c: (_nearest(r, c), r + _nearest(r, c)), "the next residual subtracts the code: residual - code."),
    (lambda r, c: (r - _nearest(r, c), _nearest(r, c)), "the pair is swapped: return (code, residual - code)."),
    (lambda r, c: (c[np.argmax(((r[:, None] - c[None]) ** 2).sum(-1), axis=1)],
                   r - c[np.argmax(((r[:, None] - c[None]) ** 2).sum(-1), axis=1)]),
     "you picked the farthest code: the nearest is the argmin of the squared distances."),
    (lambda r, c: (c[np.argmax(r @ c.T, axis=1)], r - c[np.argmax(r @ c.T, axis=1)]),
     "the largest dot product is not the nearest code when codes differ in length: use the squared distance."),
    (lambda r, c: _over_the_wrong_axis(r, c),
     "you took the argmin over axis 0, the rows of the batch: each row needs the index of its nearest code, the "
     "argmin over the K codes (axis 1 of the (N, K) distances)."),
    (lambda r, c: (c[np.argmin(np.abs(r[:, None] - c[None]).sum(-1), axis=1)],
                   r - c[np.argmin(np.abs(r[:, None] - c[None]).sum(-1), axis=1)]),
     "that is the nearest code by the sum of absolute differences (L1): residual VQ uses the squared Euclidean "
     "distance, as every stage's codebook is trained with it."),
    (lambda r, c: (np.trunc(_nearest(r, c)), r - _nearest(r, c)),
     "the codes were turned into integers: a code is a vector of floats (the codebook's row), not an index."),
]


def _over_the_wrong_axis(residual, codebook):
    """A mistaken stage: the argmin over the batch (axis 0), which gives N codes only when N == K."""
    if len(residual) != len(codebook):
        return np.full_like(residual, np.nan), np.full_like(residual, np.nan)
    code = codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=0)]
    return code, residual - code


def _check_residual_stage(fn):
    rng = np.random.default_rng(73)  # a seed where no two mistakes agree on the first case
    for n, k, d in [(6, 6, 2), (6, 8, 3), (5, 4, 2), (1, 5, 3), (4, 1, 2), (5, 3, 1)]:
        residual = (rng.normal(size=(n, d)) * 2.0).astype("float32")
        codebook = (rng.normal(size=(k, d)) * rng.uniform(0.3, 2.0, size=(k, 1))).astype("float32")
        where = f"With residual of shape (N, D) = {residual.shape} and codebook (K, D) = {codebook.shape}: "
        result = call(fn, residual, codebook)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise Incorrect(f"{where}expected a pair (code, next residual), got a {type(result).__name__}.")
        got = np.stack([to_array(part) for part in result]) if all(
            to_array(part).shape == residual.shape for part in result) else None
        want = np.stack([to_array(part) for part in residual_stage(residual, codebook)])
        if got is None:
            shapes = [to_array(part).shape for part in result]
            index = " (did you return the code's index? return its vector)" if any(len(s) == 1 for s in shapes) else ""
            raise Incorrect(f"{where}expected two arrays of shape (N, D) = {residual.shape}, got {shapes}{index}.")
        mistakes = [(lambda r, c, m=m: np.stack(m(r, c)), text) for m, text in _RESIDUAL_MISTAKES]
        compare(got, want, (residual, codebook), mistakes, where=where, symbols="(2, N, D)")


core.register(
    "residual_stage", reference=residual_stage, checker=_check_residual_stage, lesson=7,
    trial=_in_a_training_step("residual_stage", quantizer="rvq", num_quantizers=2, num_embeddings=8,
                              embedding_dim=4),
    shows=(quantizers.nearest_code, quantizers.pairwise_sq_distances),
    hints="""
        A stage is an ordinary vector quantizer applied to what the stages before it could not express. Find
        each vector's nearest code, then work out what is left over once that code is taken away: that is all
        the next stage sees.

        Take the index of the nearest code of each row (the argmin of the squared distances, lesson 2's
        nearest_code), look the codes up (codebook[indices], or keras.ops.take(codebook, indices, axis=0)), and
        return the pair (code, residual - code).
        """,
    error_hint="residual is (N, D) and codebook (K, D); return a pair of arrays (N, D): the codes and residual - code.",
    mistakes=_RESIDUAL_MISTAKES)


# ---------------------------------------------------------------------------------------------
# Questions: predictions committed before a run, judged against what it measured
# ---------------------------------------------------------------------------------------------
def _judge_fsq_gradient(answer, measured):
    """The gradient of the sum of FSQ's codes with respect to z_e = 0, in a channel of 8 levels."""
    guess = core.as_number(answer, "0.5")
    h = (8 - 1) * (1 - 1e-3) / 2
    why = (f"Measured: {measured:.3f}. The rounding passes the gradient straight through, so what is left is the "
           f"bound's slope divided by L // 2: tanh'(z_e + s) h / 4, with h = {h:.3f} and tanh' near 1 at the small "
           f"shift s, so about h / 4 = {h / 4:.3f}.")
    if abs(guess - measured) <= 0.1 * abs(measured):
        return "Right. " + why
    if guess == 0:
        raise core.Wrong("Not 0: rounding alone has a zero gradient, but FSQ rounds with the straight-through "
                         "estimator, which hands the gradient on unchanged. " + why)
    if abs(guess - 1) < 0.05:
        raise core.Wrong("Not 1: the rounding's straight-through step passes the gradient on unchanged, but the "
                         "bound (tanh times h) and the division by L // 2 have slopes of their own. " + why)
    raise core.Wrong(f"You said {guess:.3g}. " + why)


core.register_question(
    "fsq_gradient_at_zero", kind="predict", lesson=7, judge=_judge_fsq_gradient, example=0.856,
    hints="""
        The codes are a chain of three steps: the bound, the rounding and the division. Multiply their slopes at
        z_e = 0.

        The rounding passes the gradient straight through (slope 1). The bound tanh(z_e + s) h - o has slope
        tanh'(s) h, and tanh' is close to 1 where its argument is small; the division by L // 2 divides the
        slope by 4 for L = 8. h is (L - 1)(1 - 0.001) / 2.
        """)


def _judge_penalty_gap(answer, measured):
    """How many nats lower the unweighted entropy penalty of a batch spread over LFQ's 8 corners is than that of a
    batch at one corner."""
    guess = core.as_number(answer, "1.5")
    why = (f"Measured: the spread batch's penalty is {measured:.2f} nats lower. At a temperature of 0.01 each "
           f"vector's softmax is nearly one-hot in both batches, so their per-vector entropies are both near 0; "
           f"the gap is the batch entropy alone: 0 for one corner, ln 8 = {np.log(8):.2f} nats for 8 corners "
           f"used evenly.")
    if abs(guess - measured) <= 0.25:
        return "Right. " + why
    if abs(guess - 0.1 * measured) <= 0.05:
        raise core.Wrong("That is the gap after the penalty's weight of 0.1; the question asks for the penalty "
                         "itself, per-vector entropy minus batch entropy. " + why)
    if guess < 0:
        raise core.Wrong("The spread batch's penalty is the lower one: the batch entropy is subtracted, and it is "
                         "largest when all the corners are used. " + why)
    raise core.Wrong(f"You said {guess:.3g}. " + why)


core.register_question(
    "lfq_penalty_gap", kind="predict", lesson=7, judge=_judge_penalty_gap, example=2.07,
    hints="""
        Take the two parts one at a time: is either batch unsure of its vectors' codes? How evenly does each batch
        use the 8 codes?

        With a temperature of 0.01, a vector 0.1 from its corner has logits hundreds apart: its softmax is
        one-hot, entropy about 0, in both batches. The batch entropy is that of the batch's average distribution:
        all mass on one code, or 1/8 on each of 8 codes. Entropy is in nats: ln of the number of codes used
        evenly.
        """)
