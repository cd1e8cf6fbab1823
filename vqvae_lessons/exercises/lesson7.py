"""Lesson 7's exercises (modern quantizers): ``fsq_quantize``, ``rotate_to`` and ``residual_stage``.

``fsq_quantize``'s reference is written out with NumPy and ``keras.ops``, computing FSQ's constants
from the levels itself; it computes what the package's
:class:`~vqvae_lessons.quantizers.FiniteScalarQuantizer` does in its ``bound`` and ``quantize_bounded``.
The other references are the package's own code in :mod:`vqvae_lessons.quantizers`: the rotation trick
(:func:`~vqvae_lessons.quantizers.rotate_to`) and one stage of residual VQ (the loop of
:class:`~vqvae_lessons.quantizers.ResidualVectorQuantizer`, with
:func:`~vqvae_lessons.quantizers.nearest_code`). The first two are checked by their gradients
too, with the active Keras backend.

The learner's ``fsq_quantize`` builds the FSQ VQ-VAE that lesson 7 trains
(``VQVAE(quantizer="fsq", levels=..., pieces={"fsq_quantize": ...})``, see
:class:`~vqvae_lessons.quantizers.FiniteScalarQuantizer`); its trial runs one compiled training step
of a small such VQ-VAE, so that an answer that rounds with NumPy (it passes the check on eager
tensors) falls back to the package's. ``residual_stage`` is a piece of
:class:`~vqvae_lessons.quantizers.ResidualVectorQuantizer` (``pieces={"residual_stage": ...}``), with a
trial of the same kind: an answer in NumPy passes its check but cannot run inside the model.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .. import quantizers, vqvae
from . import core
from .core import _call, _check_by_observation, _close, _compare, _gradients, _Incorrect, _nonzero, _to_array

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


def _fsq_variant(bound="paper", rounding="straight_through", scale="half_width", eps=1e-3):
    """A mistaken FSQ: another bound, rounding or scale."""
    def fsq(z, levels):
        h, offset, shift, half = _constants(levels, eps)
        bounded = {"paper": lambda: ops.tanh(z + shift) * h - offset, "no_offset": lambda: ops.tanh(z) * h,
                   "no_shift": lambda: ops.tanh(z) * h - offset, "none": lambda: z * half}[bound]()
        rounded = {"straight_through": lambda: quantizers.round_ste(bounded), "plain": lambda: ops.round(bounded),
                   "none": lambda: bounded}[rounding]()
        return rounded / {"half_width": half, "h": h, "one": 1.0, "levels": np.asarray(levels, "float32")}[scale]
    return fsq


_FSQ_VARIANTS = [_fsq_variant(rounding="plain"), _fsq_variant(rounding="none"), _fsq_variant(bound="no_offset"),
                 _fsq_variant(bound="no_shift"), _fsq_variant(bound="none"), _fsq_variant(scale="one"),
                 _fsq_variant(scale="h"), _fsq_variant(scale="levels"), _fsq_variant(eps=0.0)]
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
], strict=True))


def _observe(fn, tensors, extra, w, names):
    """The value of ``fn(*tensors, *extra)`` (of the shape of ``w``) and the gradients of ``sum(w * value)`` with
    respect to each of ``tensors``, keyed ``grad_NAME`` by ``names``."""
    value = _to_array(_call(fn, *map(ops.convert_to_tensor, tensors), *extra))
    if value.shape != w.shape:
        raise _Incorrect(f"expected a result of the shape of {' and '.join(names)}, {w.shape}, got {value.shape}.")
    [grads] = _gradients(fn, list(tensors), list(extra),
                         lambda y: [ops.sum(ops.multiply(ops.convert_to_tensor(w), y))])
    return {"value": value, **{f"grad_{name}": grad for name, grad in zip(names, grads, strict=True)}}


def _observe_fsq(fn, z, levels, w):
    return _observe(fn, [z], [levels], w, ["z"])


def _fsq_diagnosis(got, want, z, levels, w):
    if not _close(got["value"], want["value"]):
        grid = sorted({float(v) for v in np.ravel(want["value"])})
        return (f"the codes differ from FSQ's: each channel i must be one of levels[i] values in [-1, 1] (channel 0 "
                f"here takes values such as {', '.join(f'{v:.3g}' for v in grid[:4])}).")
    if not _nonzero(got["grad_z"]):
        return _FSQ_MISTAKES[0][1]
    return ("the values are right but the gradient differs: it must be the bound's, tanh'(z + shift) h / (L // 2), "
            "passed straight through the rounding.")


def _check_fsq_quantize(fn):
    rng = np.random.default_rng(70)
    cases = []
    for levels, n in [((8, 4, 4), 6), ((5, 3), 5), ((7, 5, 5, 5, 5), 3)]:
        z = (rng.normal(size=(n, len(levels))) * 1.5).astype("float32")
        w = rng.normal(size=z.shape).astype("float32")
        cases.append((f"With levels = {levels} and z of shape {z.shape}: ", (z, levels, w)))
    _check_by_observation(fn, cases, _observe_fsq, fsq_quantize, _FSQ_MISTAKES, _fsq_diagnosis)


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
# rotate_to: the rotation trick's Householder form
# ---------------------------------------------------------------------------------------------
def _unit(v):
    norm = ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True))
    return v / norm, norm


def _rotation_variant(stop=True, scale=True, second_term=True, straight=False):
    """A mistaken rotation trick."""
    def rotate(e, q):
        if straight:
            return quantizers.straight_through(e, q)
        e_hat, e_norm = _unit(e)
        q_hat, q_norm = _unit(q)
        r, _ = _unit(e_hat + q_hat)
        lam = q_norm / e_norm
        if stop:
            e_hat, q_hat, r, lam = (ops.stop_gradient(t) for t in (e_hat, q_hat, r, lam))
        dot = lambda a, b: ops.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
        rotated = e - 2.0 * r * dot(r, e) + (2.0 * q_hat * dot(e_hat, e) if second_term else 0.0)
        return lam * rotated if scale else rotated
    return rotate


_ROTATION_MISTAKES = list(zip([
    _rotation_variant(straight=True), _rotation_variant(stop=False), _rotation_variant(scale=False),
    _rotation_variant(second_term=False), _rotation_variant(second_term=False, scale=False)], [
    "that is the straight-through estimator: its value is q, but it hands e the gradient unchanged. The rotation "
    "trick's value is lam R e, whose gradient rotates and rescales the incoming one.",
    "the value is right, but e_hat, q_hat, r and lam must be constants (stop_gradient): the rotation and the "
    "rescaling are held fixed, so that the gradient with respect to e is lam R^T times the incoming one.",
    "the direction is q's but not the length: multiply by lam = |q| / |e| (a stop-gradient) so that the value is q.",
    "one Householder reflection, (I - 2 r r^T) e, sends e_hat to -q_hat, the opposite direction: add the second "
    "term 2 q_hat (e_hat . e), which makes R a rotation that takes e_hat to q_hat.",
    "one Householder reflection, (I - 2 r r^T) e, sends e_hat to -q_hat: add the term 2 q_hat (e_hat . e), and "
    "scale by lam = |q| / |e|.",
], strict=True))


def _observe_rotation(fn, e, q, w):
    return _observe(fn, [e, q], [], w, ["e", "q"])


def _rotation_diagnosis(got, want, e, q, w):
    if not _close(got["value"], q):
        return "the value must be q itself (up to rounding): lam R e, with R the rotation taking e_hat to q_hat."
    if _nonzero(got["grad_q"]):
        return "a gradient reaches q: in the rotation trick only e gets one (make q_hat, r and lam stop-gradients)."
    return "the value is q but the gradient with respect to e is not lam R^T times the incoming one."


def _check_rotate_to(fn):
    rng = np.random.default_rng(71)
    cases = []
    for shape in [(5, 3), (4, 2), (2, 3, 4)]:
        e, q, w = (rng.normal(size=shape).astype("float32") for _ in range(3))
        cases.append((f"With e and q of shape {shape}: ", (e, q, w)))
    _check_by_observation(fn, cases, _observe_rotation, rotate_to, _ROTATION_MISTAKES, _rotation_diagnosis)


core.register(
    "rotate_to", reference=rotate_to, checker=_check_rotate_to, lesson=7, shows=(quantizers.vq._unit,),
    hints="""
        You need a result whose value is q, built from e by a rotation and a rescaling that are themselves held
        constant, so that the gradient flows back through them to e. The rotation that takes one unit vector to
        another can be written with dot products only, without a D x D matrix.

        Normalise: e_hat = e / |e|, q_hat = q / |q|, r = (e_hat + q_hat) / |e_hat + q_hat|, lam = |q| / |e|, all
        four inside stop_gradient. Then R e = e - 2 r (r . e) + 2 q_hat (e_hat . e), dot products over the last
        axis with keepdims=True, and the result is lam * R e.
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
]


def _check_residual_stage(fn):
    rng = np.random.default_rng(72)
    for n, k, d in [(6, 8, 3), (5, 4, 2)]:
        residual = rng.normal(size=(n, d)).astype("float32")
        codebook = (rng.normal(size=(k, d)) * rng.uniform(0.3, 2.0, size=(k, 1))).astype("float32")
        where = f"With residual of shape (N, D) = {residual.shape} and codebook (K, D) = {codebook.shape}: "
        result = _call(fn, residual, codebook)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise _Incorrect(f"{where}expected a pair (code, next residual), got a {type(result).__name__}.")
        got = np.stack([_to_array(part) for part in result]) if all(
            _to_array(part).shape == residual.shape for part in result) else None
        want = np.stack([_to_array(part) for part in residual_stage(residual, codebook)])
        if got is None:
            shapes = [_to_array(part).shape for part in result]
            index = " (did you return the code's index? return its vector)" if any(len(s) == 1 for s in shapes) else ""
            raise _Incorrect(f"{where}expected two arrays of shape (N, D) = {residual.shape}, got {shapes}{index}.")
        mistakes = [(lambda r, c, m=m: np.stack(m(r, c)), text) for m, text in _RESIDUAL_MISTAKES]
        _compare(got, want, (residual, codebook), mistakes, where=where, symbols="(2, N, D)")


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
