"""Lesson 2's exercises (vector quantization): ``pairwise_sq_distances``, ``nearest_code``,
``straight_through``, ``vq_losses`` and ``ema_update``.

The first four references are the package's own functions in :mod:`vqvae_lessons.quantizers`;
``straight_through`` and ``vq_losses`` are checked by their gradients too, with the active
Keras backend. ``ema_update`` is one step of
:class:`~vqvae_lessons.quantizers.VectorQuantizerEMA`'s codebook update written in NumPy,
without the layer's bias correction (the tests check it against the layer).

The first four are the quantizer's steps: the lesson builds a VQ-VAE from the learner's
(``VQVAE(pieces={...})``, see :class:`~vqvae_lessons.quantizers.VectorQuantizer`), so each has a
trial, one compiled training step of a small model around a quantizer with the learner's function
(a NumPy answer, which the distance and nearest-code checks accept, cannot run there).
``ema_update`` is not a piece of the EMA layer (NumPy cannot run on the tensors of its compiled
update): the lesson runs it in NumPy, on the EMA layer's first batch, and compares the codebooks.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .. import quantizers
from . import core
from .core import Incorrect, call, check_by_observation, close, compare, gradients_of, nonzero, short, to_array

pairwise_sq_distances = quantizers.pairwise_sq_distances
nearest_code = quantizers.nearest_code
straight_through = quantizers.straight_through
vq_losses = quantizers.vq_losses


class _OneQuantizer(keras.Model):
    """A dense "encoder" before a small codebook quantizer whose ``piece`` is the learner's function: the
    smallest model in which the quantizer runs as in a VQ-VAE, on the symbolic tensors of a compiled training
    step, with gradients to the encoder (straight-through) and to the codebook (the codebook loss)."""

    def __init__(self, piece, fn):
        super().__init__(name="one_quantizer")
        self.encoder = keras.layers.Dense(4)
        self.quantizer = quantizers.VectorQuantizer(8, 4, pieces={piece: fn})

    def call(self, x):
        return self.quantizer(self.encoder(x))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return ops.mean(ops.square(y_pred["quantized"] - x)) + y_pred["loss"]


def _in_a_training_step(piece):
    """A trial (see :func:`core.use`): one compiled training step of :class:`_OneQuantizer` with the learner's
    function as ``piece``; raises if it cannot run on the backend's symbolic tensors (as a NumPy answer cannot)
    or gives a loss that is not finite. (A VQ-VAE's step would take seconds longer to compile.)"""
    def trial(fn):
        vectors = np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32")
        core.trains_one_step(_OneQuantizer(piece, fn), vectors, optimizer="sgd")
    return trial


# ---------------------------------------------------------------------------------------------
# pairwise_sq_distances and nearest_code
# ---------------------------------------------------------------------------------------------
def _brute_force_sq_distances(x, codebook):
    return np.sum((x[:, None, :] - codebook[None, :, :]) ** 2, axis=-1)


def _or_nan(compute, shape):
    """``compute()``, or an array of NaN of ``shape`` where it raises (a mistake that runs for some shapes only)."""
    try:
        return compute()
    except ValueError:
        return np.full(shape, np.nan)


_PAIRWISE_SQ_DISTANCES_MISTAKES = [
    (lambda x, c: np.sum(x**2, 1, keepdims=True) + np.sum(c**2, 1) - x @ c.T,
     "the cross term is -2 x.e: you are missing the factor 2 (|x - e|^2 = |x|^2 + |e|^2 - 2 x.e)."),
    (lambda x, c: np.sum(x**2, 1, keepdims=True) + np.sum(c**2, 1) + 2 * x @ c.T,
     "the cross term has the wrong sign: |x - e|^2 = |x|^2 + |e|^2 - 2 x.e."),
    (lambda x, c: _brute_force_sq_distances(x, c).T,
     "your result is transposed: row n, column k holds the distance from x[n] to codebook[k], shape (N, K)."),
    (lambda x, c: np.sqrt(_brute_force_sq_distances(x, c)),
     "you took the square root: the exercise wants the squared distances |x - e|^2, without sqrt."),
    (lambda x, c: np.sum(x**2, 1, keepdims=True) - 2 * x @ c.T,
     "you forgot the codes' squared norms |e|^2 (sum of codebook**2 over axis 1, added as a row)."),
    (lambda x, c: np.sum(c**2, 1) - 2 * x @ c.T,
     "you forgot the vectors' squared norms |x|^2: the argmin would not change, but these are not the distances."),
    (lambda x, c: np.sum((x[:, None, :] - c[None, :, :]) ** 2, axis=1),
     "you summed over axis 1, the codes, of the (N, K, D) differences: sum over the last axis, the D components."),
    (lambda x, c: np.mean((x[:, None, :] - c[None, :, :]) ** 2, axis=-1),
     "you averaged the squared differences over the D components: sum them."),
    (lambda x, c: np.sum(np.abs(x[:, None, :] - c[None, :, :]), axis=-1),
     "absolute differences give the L1 (Manhattan) distance: square the differences instead."),
    (lambda x, c: np.sum(x[:, None, :] - c[None, :, :], axis=-1) ** 2,
     "you squared the sum of the differences: sum the squared differences instead."),
    (lambda x, c: np.sum(x[:, None, :] - c[None, :, :], axis=-1),
     "you summed the differences without squaring them."),
    (lambda x, c: _or_nan(lambda: np.sum(x**2, 1) + np.sum(c**2, 1) - 2 * x @ c.T, (len(x), len(c))),
     "the squared norms of x were added as a row, not a column: np.sum(x**2, axis=1) has shape (N,), which "
     "broadcasts along the codes' axis (and only runs at all when N equals K or N is 1). Keep it a column, "
     "keepdims=True, shape (N, 1)."),
    (lambda x, c: np.sum(x**2, 1, keepdims=True) + np.sum(c**2) - 2 * x @ c.T,
     "you added the squared norms of all the codes together (np.sum without an axis): each column k needs its own "
     "code's |e_k|^2, np.sum(codebook**2, axis=1), shape (K,)."),
    (lambda x, c: np.sum(x**2) + np.sum(c**2, 1) - 2 * x @ c.T,
     "you added the squared norms of all the vectors together (np.sum without an axis): each row n needs its own "
     "|x_n|^2, np.sum(x**2, axis=1, keepdims=True), shape (N, 1)."),
]


def _distance_cases(seed):
    rng = np.random.default_rng(seed)
    # N == K (a norm added along the wrong axis still runs), and sizes of 1: one vector, one code, one dimension
    for n, k, d in [(4, 4, 3), (5, 8, 3), (7, 4, 2), (1, 3, 6), (3, 1, 2), (6, 5, 1)]:
        x = rng.normal(size=(n, d)).astype("float32")
        # codes of different lengths, so that "largest dot product" differs from "nearest"
        codebook = (rng.normal(size=(k, d)) * rng.uniform(0.3, 2.0, size=(k, 1))).astype("float32")
        yield x, codebook


def _distance_case(x, codebook):
    return f"With x of shape (N, D) = {x.shape} and codebook of shape (K, D) = {codebook.shape}: "


def _check_pairwise_sq_distances(fn):
    for x, codebook in _distance_cases(30):
        compare(to_array(call(fn, x, codebook)), _brute_force_sq_distances(x, codebook), (x, codebook),
                 _PAIRWISE_SQ_DISTANCES_MISTAKES, where=_distance_case(x, codebook), symbols="(N, K)")


core.register(
    "pairwise_sq_distances", reference=pairwise_sq_distances, checker=_check_pairwise_sq_distances, lesson=2,
    trial=_in_a_training_step("pairwise_sq_distances"),
    hints="""
        Expand the square: the squared distance between two vectors splits into the squared length of each plus
        a cross term made of their dot product. The dot products of every row of x with every row of the
        codebook are one matrix product, so you never need to build an (N, K, D) array of differences.

        |x - e|^2 = |x|^2 + |e|^2 - 2 x.e. The squared norms of x must form a column (N, 1) (np.sum with
        keepdims=True), those of the codebook a row (K,), and all the dot products x.e come from one matrix
        product of x with the transposed codebook, (N, D) @ (D, K); broadcasting then gives (N, K).
        """,
    error_hint="x is (N, D) and codebook (K, D): keep the squared norms of x as a column (keepdims=True) so they "
               "broadcast against the codebook's (K,), and take every dot product at once with x @ codebook.T.",
    mistakes=_PAIRWISE_SQ_DISTANCES_MISTAKES)


_NEAREST_CODE_MISTAKES = [
    (lambda x, c: np.argmax(_brute_force_sq_distances(x, c), axis=1),
     "argmax picks the farthest code: use argmin."),
    (lambda x, c: np.argmin(_brute_force_sq_distances(x, c), axis=0),
     "argmin over axis 0 finds, for each code, its nearest vector (K values): take it over axis 1, the codes, "
     "for one index per vector (N,)."),
    (lambda x, c: np.min(_brute_force_sq_distances(x, c), axis=1),
     "you returned the smallest distances; the exercise wants their positions: argmin, not min."),
    (lambda x, c: c[np.argmin(_brute_force_sq_distances(x, c), axis=1)],
     "you returned the code vectors codebook[indices], shape (N, D): return the indices, shape (N,)."),
    (lambda x, c: np.argmax(x @ c.T, axis=1),
     "the largest dot product x.e is the nearest code only if all codes have the same length (without the |e|^2 "
     "term long codes win): use the full squared distance."),
    (lambda x, c: np.argmin(_brute_force_sq_distances(x, c), axis=1).astype("uint8"),
     "your indices wrap around above 255: uint8 holds 0 to 255 only, and codebooks have more codes than that "
     "(lesson 4 sweeps K up to 512). Keep argmin's own integer dtype (int64), or int32."),
    (lambda x, c: np.argmin(_brute_force_sq_distances(x, c), axis=1).astype("int8"),
     "your indices wrap around above 127: int8 holds -128 to 127 only, and codebooks have more codes than that. "
     "Keep argmin's own integer dtype (int64), or int32."),
    (lambda x, c: np.argmin(_brute_force_sq_distances(x, c)),
     "argmin without an axis gives one index into the flattened (N, K) matrix: take it over axis 1, the codes, for "
     "one index per vector (N,)."),
]


def _nearest_code_cases():
    yield from _distance_cases(40)
    rng = np.random.default_rng(41)
    # more codes than uint8 (or int8) can count, with the nearest codes of the points above 255
    codebook = rng.normal(size=(300, 2)).astype("float32")
    yield (codebook[[260, 299, 5, 140, 280]] + 0.01).astype("float32"), codebook
    # a tie: two copies of the same code (either index is right), and one code only
    codebook = rng.normal(size=(4, 3)).astype("float32")
    yield rng.normal(size=(6, 3)).astype("float32"), np.concatenate([codebook, codebook[:1]])
    yield rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=(1, 2)).astype("float32")


def _check_nearest_code(fn):
    for x, codebook in _nearest_code_cases():
        got, distances = to_array(call(fn, x, codebook)), _brute_force_sq_distances(x, codebook)
        if got.shape == (len(x),) and got.dtype.kind in "iu" and np.all((got >= 0) & (got < len(codebook))):
            picked = distances[np.arange(len(x)), got]
            if np.all(picked <= distances.min(axis=1) + 1e-4 * max(1.0, distances.max())):
                continue  # a nearest code (ties may go either way)
        if got.shape == (len(x),) and got.dtype.kind not in "iu" and np.array_equal(got, np.argmin(distances, axis=1)):
            raise Incorrect(f"{_distance_case(x, codebook)}the right codes, but as {got.dtype} numbers: expected "
                             "integer indices (argmin's own int64, or int32), which can index the codebook.")
        compare(got, np.argmin(distances, axis=1), (x, codebook), _NEAREST_CODE_MISTAKES,
                 where=_distance_case(x, codebook), symbols="(N,)", kind="index")


core.register(
    "nearest_code", reference=nearest_code, checker=_check_nearest_code, lesson=2,
    trial=_in_a_training_step("nearest_code"),
    shows=(quantizers.pairwise_sq_distances,),
    hints="""
        The nearest code is the one at the smallest squared distance, and you already know how to compute all
        the distances at once. The exercise wants the position of that code in the codebook: neither its
        distance nor its vector.

        Compute the (N, K) matrix of squared distances (your pairwise_sq_distances, or a broadcast difference),
        then find, in each row, the position of its smallest entry: np.argmin along the axis of the codes gives
        integer indices of shape (N,).
        """,
    error_hint="x is (N, D) and codebook (K, D); return integer indices of shape (N,).",
    mistakes=_NEAREST_CODE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# straight_through (gradients, checked with the Keras backend)
# ---------------------------------------------------------------------------------------------
_ST_NO_GRADIENT = ("the gradient with respect to x is zero (None in TensorFlow), so the encoder would learn nothing: "
                   "{how}. Write x + stop_gradient(q - x): its value is q, and the gradient goes to x.")
_STRAIGHT_THROUGH_MISTAKES = [
    (lambda x, q: q, _ST_NO_GRADIENT.format(how="returning q (or x + (q - x), where the x's cancel) sends the "
                                                "gradient to q instead")),
    (lambda x, q: ops.stop_gradient(q), _ST_NO_GRADIENT.format(how="stop_gradient(q) (or arithmetic in NumPy, "
                                                                   "which has no gradients) has no gradient at all")),
    (lambda x, q: x, "the value is x: it must be q (the quantized vectors), e.g. x + stop_gradient(q - x)."),
    (lambda x, q: ops.stop_gradient(x) + (q - x),
     "the gradient with respect to x is minus the identity: the - x must be inside stop_gradient, "
     "x + stop_gradient(q - x)."),
    (lambda x, q: x + q - ops.stop_gradient(x),
     "the gradient also flows into q: in a VQ-VAE only the codebook loss moves the codes, so put all of q - x "
     "inside stop_gradient: x + stop_gradient(q - x)."),
    (lambda x, q: x - ops.stop_gradient(q - x), "the value is 2x - q: the sign before stop_gradient must be +."),
    (lambda x, q: x * ops.stop_gradient(q / x),
     "scaling x by stop_gradient(q / x) gives the value q but the gradient q / x, not 1 (and NaN where an encoder "
     "output is 0): add the difference instead, x + stop_gradient(q - x), whose gradient is exactly 1."),
]


def _observe_straight_through(fn, x, q, w):
    """Value of ``fn(x, q)`` and the gradients of ``sum(w * fn(x, q))`` with respect to x and q."""
    value = to_array(call(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(q)))
    if value.shape != q.shape:
        raise Incorrect(f"expected a result of the shape of x and q, {q.shape}, got {value.shape}.")
    [(grad_x, grad_q)] = gradients_of(fn, [x, q], [], lambda y: [ops.sum(ops.multiply(ops.convert_to_tensor(w), y))])
    return {"value": value, "grad_x": grad_x, "grad_q": grad_q}


def _straight_through_diagnosis(got, want, x):
    """What differs, for mistakes not in the table."""
    if not close(got["value"], want["value"]):
        if close(got["value"], x):
            return _STRAIGHT_THROUGH_MISTAKES[2][1]
        return "the value differs from q: the result must have exactly the value of q."
    if not nonzero(got["grad_x"]):
        return _ST_NO_GRADIENT.format(how="no path from x to your result carries a gradient")
    if not close(got["grad_x"], want["grad_x"]):
        return ("the gradient with respect to x is not the identity (the gradient of sum(w * result) should be w): "
                "write x + stop_gradient(q - x).")
    return _STRAIGHT_THROUGH_MISTAKES[4][1]  # the only difference left: a gradient into q


def _check_straight_through(fn):
    rng = np.random.default_rng(50)
    cases = [(f"With x and q of shape {shape}: ", tuple(rng.normal(size=shape).astype("float32") for _ in range(3)))
             for shape in [(4, 3), (2, 5, 3), (1, 1)]]  # one vector of one dimension among them
    # a vector that is its own code (q = x), and one that is 0: the gradient must still be exactly w
    x, q, w = (rng.normal(size=(3, 2)).astype("float32") for _ in range(3))
    x[0], q[1] = q[0], 0.0
    x[2] = 0.0
    cases.append(("With x and q of shape (3, 2), a row of x equal to its q and one of x equal to 0: ", (x, q, w)))
    check_by_observation(fn, cases, _observe_straight_through, straight_through, _STRAIGHT_THROUGH_MISTAKES,
                          lambda got, want, x, q, w: _straight_through_diagnosis(got, want, x))


core.register(
    "straight_through", reference=straight_through, checker=_check_straight_through, lesson=2,
    trial=_in_a_training_step("straight_through"),
    hints="""
        You need a result whose value is q, but whose gradient flows back to x as if your function were the
        identity. Think of x plus a correction: a term whose value makes up the difference, but through which no
        gradient passes.

        keras.ops.stop_gradient(t) has the value of t and passes no gradient. Add to x a correction that brings
        the value to q, wrapped in stop_gradient so that no gradient goes through it (nor into q). Use
        keras.ops, not NumPy: your function receives backend tensors.
        """,
    error_hint="Your function receives backend tensors, not NumPy arrays: use keras.ops (e.g. "
               "keras.ops.stop_gradient).",
    mistakes=_STRAIGHT_THROUGH_MISTAKES)


# ---------------------------------------------------------------------------------------------
# vq_losses (gradients, checked with the Keras backend)
# ---------------------------------------------------------------------------------------------
def _mse(a, b):
    return ops.mean(ops.square(a - b))


_sg = ops.stop_gradient
_VQ_LOSSES_MISTAKES = [
    (lambda x, q, beta: (beta * _mse(x, _sg(q)), _mse(q, _sg(x))),
     "you swapped the two losses: return (codebook_loss, commitment_loss), the codebook loss "
     "mean((q - sg(x))**2) first."),
    (lambda x, q, beta: (_mse(q, _sg(x)), _mse(x, _sg(q))),
     "you forgot beta: commitment_loss = beta * mean((x - sg(q))**2)."),
    (lambda x, q, beta: (beta * _mse(q, _sg(x)), _mse(x, _sg(q))),
     "beta is on the wrong loss: it weights the commitment loss, beta * mean((x - sg(q))**2), not the codebook loss."),
    (lambda x, q, beta: (beta * _mse(q, _sg(x)), beta * _mse(x, _sg(q))),
     "beta weights only the commitment loss: the codebook loss is mean((q - sg(x))**2), without beta."),
    (lambda x, q, beta: (_mse(q, x), beta * _mse(x, _sg(q))),
     "the codebook loss is missing its stop_gradient: mean((q - x)**2) also pulls the encoder output x; "
     "write mean((q - stop_gradient(x))**2)."),
    (lambda x, q, beta: (_mse(q, _sg(x)), beta * _mse(x, q)),
     "the commitment loss is missing its stop_gradient: beta * mean((x - q)**2) also moves the codes q; "
     "write beta * mean((x - stop_gradient(q))**2)."),
    (lambda x, q, beta: (_mse(q, x), beta * _mse(x, q)),
     "both losses are missing their stop_gradient: the codebook loss must not move x (stop_gradient(x)), the "
     "commitment loss must not move q (stop_gradient(q))."),
    (lambda x, q, beta: (_mse(_sg(q), x), beta * _mse(_sg(x), q)),
     "the stop_gradients are on the wrong tensors: the codebook loss moves only the codes (stop_gradient(x)), the "
     "commitment loss moves only the encoder output (stop_gradient(q))."),
    (lambda x, q, beta: (_mse(straight_through(x, q), _sg(x)), beta * _mse(x, _sg(q))),
     "you computed the codebook loss on the straight-through output x + stop_gradient(q - x): its value is q, but "
     "its gradient goes to x, so the codebook gets no gradient: use q itself, mean((q - stop_gradient(x))**2)."),
    (lambda x, q, beta: (_mse(_sg(q), _sg(x)), beta * _mse(x, _sg(q))),
     "the codebook gets no gradient at all: your codebook loss has no gradient with respect to q, so the codes "
     "would never move. Stop the gradient of x only: mean((q - stop_gradient(x))**2)."),
    (lambda x, q, beta: (ops.sum(ops.square(q - _sg(x))), beta * ops.sum(ops.square(x - _sg(q)))),
     "you summed the squared differences: both losses are means over all elements."),
    (lambda x, q, beta: (ops.mean(ops.sum(ops.square(q - _sg(x)), axis=-1)),
                         beta * ops.mean(ops.sum(ops.square(x - _sg(q)), axis=-1))),
     "you summed over the last axis before averaging: both losses are means over all elements."),
    (lambda x, q, beta: (ops.mean(ops.abs(q - _sg(x))), beta * ops.mean(ops.abs(x - _sg(q)))),
     "you took absolute differences (an L1 loss): both losses are means of squared differences, mean((q - x)**2)."),
    (lambda x, q, beta: (ops.sqrt(ops.sum(ops.square(q - _sg(x)))), beta * ops.sqrt(ops.sum(ops.square(x - _sg(q))))),
     "you took the norm |q - x| (a square root of the sum of squares): both losses are means of the squared "
     "differences, with no square root."),
]


def _two_losses(result):
    """The learner's ``(codebook_loss, commitment_loss)``, or a verdict saying what came back instead."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return list(result)
    shape = to_array(result).shape
    if shape == (2,):
        return [result[0], result[1]]
    raise Incorrect(f"expected a pair (codebook_loss, commitment_loss), got a {type(result).__name__}"
                     + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else f" of shape {shape}")
                     + ": return the two losses separately, as a tuple.")


def _observe_vq_losses(fn, x, q, beta):
    """Both losses and the gradient of each with respect to x and q."""
    values = [to_array(v) for v in _two_losses(call(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(q), beta))]
    for label, value in zip(("codebook_loss", "commitment_loss"), values, strict=True):
        if value.size != 1:
            raise Incorrect(f"{label} should be a single number (a mean over all elements), got shape {value.shape}.")
    (cb_x, cb_q), (cm_x, cm_q) = gradients_of(fn, [x, q], [beta], lambda out: [ops.sum(v) for v in _two_losses(out)])
    return {"codebook_loss": values[0].reshape(()), "commitment_loss": values[1].reshape(()),
            "codebook/x": cb_x, "codebook/q": cb_q, "commitment/x": cm_x, "commitment/q": cm_q}


def _vq_losses_diagnosis(got, want):
    """What differs, for mistakes not in the table."""
    if not (close(got["codebook_loss"], want["codebook_loss"])
            and close(got["commitment_loss"], want["commitment_loss"])):
        return (f"the values differ: expected codebook_loss = mean((q - x)**2) = {float(want['codebook_loss']):.6g} "
                f"and commitment_loss = beta * mean((x - q)**2) = {float(want['commitment_loss']):.6g}, got "
                f"{float(got['codebook_loss']):.6g} and {float(got['commitment_loss']):.6g}.")
    problems = []
    if nonzero(got["codebook/x"]):
        problems.append("the codebook loss has a gradient with respect to x (write mean((q - stop_gradient(x))**2))")
    if not nonzero(got["codebook/q"]):
        problems.append("the codebook loss has no gradient with respect to q, so the codes would never move")
    if nonzero(got["commitment/q"]):
        problems.append("the commitment loss has a gradient with respect to q (write beta * mean((x - "
                        "stop_gradient(q))**2))")
    if not nonzero(got["commitment/x"]):
        problems.append("the commitment loss has no gradient with respect to x, so the encoder would not commit")
    if not problems:
        problems.append("the values are right but the gradients differ from those of mean((q - sg(x))**2) and "
                        "beta * mean((x - sg(q))**2)")
    return "; ".join(problems) + "."


def _check_vq_losses(fn):
    rng = np.random.default_rng(60)
    cases = [(f"With x and q of shape {shape} and beta = {beta}: ",
              (*(rng.normal(size=shape).astype("float32") for _ in range(2)), beta))
             for shape, beta in [((6, 4), 0.25), ((3, 5, 2), 0.7), ((1, 1), 0.25), ((1, 3), 0.25)]]
    check_by_observation(fn, cases, _observe_vq_losses, vq_losses, _VQ_LOSSES_MISTAKES,
                          lambda got, want, *args: _vq_losses_diagnosis(got, want))


core.register(
    "vq_losses", reference=vq_losses, checker=_check_vq_losses, lesson=2,
    trial=_in_a_training_step("vq_losses"),
    hints="""
        Both losses are a mean squared difference between x and q, and they differ only by beta in value. What
        sets them apart is what each may move: the codebook loss must move only the codes q, the commitment loss
        only the encoder's output x. A stop-gradient on a tensor keeps a loss from moving it.

        Put keras.ops.stop_gradient around the tensor a loss must not move: x in the codebook loss, q in the
        commitment loss. Each loss is a keras.ops.mean of a keras.ops.square of a difference, and only the
        commitment loss is weighted by beta. Return the pair in the order (codebook_loss, commitment_loss).
        """,
    error_hint="Your function receives backend tensors, not NumPy arrays: use keras.ops (mean, square, stop_gradient) "
               "and return a tuple (codebook_loss, commitment_loss).",
    mistakes=_VQ_LOSSES_MISTAKES)


# ---------------------------------------------------------------------------------------------
# ema_update (NumPy)
# ---------------------------------------------------------------------------------------------
def ema_update(cluster_size, embedding_sum, z_e, indices, decay, lam):
    """One EMA codebook step with Laplace smoothing (``VectorQuantizerEMA``'s, without its bias
    correction): ``cluster_size`` N_k (K,), ``embedding_sum`` m_k (K, D), encoder outputs ``z_e``
    (N, D) and their codes ``indices`` (N,) to ``(new_cluster_size, new_embedding_sum, new_codebook)``."""
    num_codes = len(cluster_size)
    one_hot = np.eye(num_codes)[indices]                                             # (N, K)
    new_cluster_size = decay * cluster_size + (1 - decay) * one_hot.sum(axis=0)      # N_k
    new_embedding_sum = decay * embedding_sum + (1 - decay) * one_hot.T @ z_e        # m_k
    n = new_cluster_size.sum()
    smoothed = (new_cluster_size + lam) / (n + num_codes * lam) * n                  # Laplace smoothing
    return new_cluster_size, new_embedding_sum, new_embedding_sum / smoothed[:, None]


def _smooth(counts, lam):
    return (counts + lam) / (counts.sum() + len(counts) * lam) * counts.sum()


def _ema_with(size, sums, z, idx, decay, lam, *, batch=None, mix=None, divide=None):
    """The update with one piece replaced: ``batch(one_hot, z_e) -> (n_k, s_k)``, ``mix(old, new, decay)``,
    ``divide(new_size, new_sum, old_size, old_sum, n_k, s_k, lam) -> codebook``."""
    one_hot = np.eye(len(size))[idx]
    counts, vector_sums = batch(one_hot, z) if batch else (one_hot.sum(axis=0), one_hot.T @ z)
    mix = mix or (lambda old, new, d: d * old + (1 - d) * new)
    new_size, new_sum = mix(size, counts, decay), mix(sums, vector_sums, decay)
    divide = divide or (lambda ns, nm, os, om, c, s, lam: nm / _smooth(ns, lam)[:, None])
    return new_size, new_sum, divide(new_size, new_sum, size, sums, counts, vector_sums, lam)


def _fancy_index_sums(one_hot, z):
    """Counts and sums written with ``counts[indices] += 1``: each repeated index counted once (the last vector)."""
    indices, counts, sums = one_hot.argmax(axis=1), np.zeros(one_hot.shape[1]), np.zeros((one_hot.shape[1], z.shape[1]))
    counts[indices] += 1
    sums[indices] += z
    return counts, sums


def _mistake(**replaced):
    return lambda *args: _ema_with(*args, **replaced)


_EMA_UPDATE_MISTAKES = [
    (_mistake(mix=lambda old, new, d: d * new + (1 - d) * old),
     "decay is on the wrong term: the running averages keep decay of the OLD value, decay * N_k + (1 - decay) * n_k "
     "(and the same for m_k); you wrote decay * new + (1 - decay) * old."),
    (_mistake(mix=lambda old, new, d: d * old + new),
     "the new batch's term needs the weight (1 - decay): decay * N_k + (1 - decay) * n_k, or the averages grow "
     "without bound."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: nm / ns[:, None]),
     "no Laplace smoothing: dividing m_k by the raw N_k divides by zero for the codes no vector has ever picked "
     "(NaN). Smooth the counts first: (N_k + lam) / (n + K lam) * n, with n the sum of the N_k."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: nm / (ns + lam)[:, None]),
     "your smoothing does not renormalise to the total count: (N_k + lam) alone adds K lam to the total; scale it "
     "back, (N_k + lam) / (n + K lam) * n."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: nm / ((ns + lam) / (ns.sum() + len(ns) * lam))[:, None]),
     "you forgot the final * n: (N_k + lam) / (n + K lam) are probabilities that sum to 1; multiply by n, the total "
     "count, so the smoothed counts keep the sum of the N_k."),
    (_mistake(batch=lambda one_hot, z: (one_hot.sum(0), np.tile(z.mean(0), (one_hot.shape[1], 1)))),
     "the sums s_k are not weighted by the assignment: you gave every code the mean of all vectors. s_k sums only "
     "the vectors whose index is k (one_hot.T @ z_e)."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: nm / _smooth(c, lam)[:, None]),
     "you divided the running sums m_k by this batch's counts n_k: divide by the smoothed running counts N_k."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: s / _smooth(c, lam)[:, None]),
     "your codebook is the batch's means s_k / n_k, one Lloyd step that ignores the running averages: divide the "
     "new m_k by the smoothed new N_k."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: om / _smooth(ns, lam)[:, None]),
     "you updated the codebook from the old sums m_k: compute the new embedding_sum first and divide that."),
    (_mistake(batch=lambda one_hot, z: _fancy_index_sums(one_hot, z)),
     "a code picked by several vectors counted only one of them: counts[indices] += 1 and sums[indices] += z_e "
     "write each repeated index once (NumPy does not accumulate repeats in fancy indexing). Use the one-hot matrix "
     "(np.eye(K)[indices]: column sums, and its transpose @ z_e), or np.add.at, or np.bincount(indices, minlength=K)."),
    (_mistake(divide=lambda ns, nm, os, om, c, s, lam: nm / ((ns + lam) / (c.sum() + len(ns) * lam)
                                                             * c.sum())[:, None]),
     "your smoothing uses n = the batch's number of vectors: n is the sum of the running counts N_k, "
     "(N_k + lam) / (n + K lam) * n, so that the smoothed counts keep the running total."),
]


def _ema_cases():
    rng = np.random.default_rng(70)
    # repeated indices, a code no vector picks, a fresh state, and a batch of one vector (sizes of 1)
    for k, d, n, decay, lam, fresh in [(6, 3, 10, 0.8, 0.5, True), (5, 2, 12, 0.9, 0.3, False),
                                       (4, 4, 7, 0.5, 1.0, False), (3, 1, 1, 0.9, 0.1, False)]:
        z_e = rng.normal(size=(n, d)).astype("float32")
        indices = rng.integers(0, k - 1, size=n)  # code k - 1 is never picked
        size = np.zeros(k, "float32") if fresh else rng.uniform(0.0, 3.0, size=k).astype("float32")
        sums = np.zeros((k, d), "float32") if fresh else (size[:, None] * rng.normal(size=(k, d))).astype("float32")
        yield size, sums, z_e, indices, decay, lam


_EMA_OUTPUTS = (("new_cluster_size", "(K,)"), ("new_embedding_sum", "(K, D)"), ("new_codebook", "(K, D)"))


def _three_arrays(result):
    if not (isinstance(result, (tuple, list)) and len(result) == 3):
        raise Incorrect(f"expected a tuple (new_cluster_size, new_embedding_sum, new_codebook), got {short(result)}.")
    return [to_array(part) for part in result]


def _check_ema_update(fn):
    for args in _ema_cases():
        size, sums, z_e, indices, decay, lam = args
        where = (f"With K = {len(size)} codes ({'a fresh, all-zero state' if not size.any() else 'a running state'}), "
                 f"N = {len(z_e)} vectors, decay = {decay} and lam = {lam}: ")
        got, want = _three_arrays(call(fn, *args)), ema_update(*args)
        if all(close(g, w) for g, w in zip(got, want, strict=True)):
            continue
        for mistake, mistake_hint in _EMA_UPDATE_MISTAKES:
            with np.errstate(all="ignore"):
                wrong = mistake(*args)
            if all(close(g, w, equal_nan=True) for g, w in zip(got, wrong, strict=True)):
                raise Incorrect(where + mistake_hint)
        for g, w, (label, symbols) in zip(got, want, _EMA_OUTPUTS, strict=True):
            compare(g, w, args, [], where=f"{where}{label}: ", symbols=symbols)


core.register(
    "ema_update", reference=ema_update, checker=_check_ema_update, lesson=2,
    hints="""
        Three steps. First count, for every code, how many vectors picked it and add up those vectors. Then
        blend these batch statistics into the running ones, keeping most of the old value. Last, divide each
        running sum by its running count, after smoothing the counts so that no code divides by zero and the
        counts still add up to the same total.

        A one-hot matrix of the indices, np.eye(K)[indices] of shape (N, K), gives both batch statistics: its
        column sums are the counts n_k and its transpose times z_e the sums s_k. Then N_k = decay * N_k +
        (1 - decay) * n_k, m_k likewise, n = sum of N_k, smoothed N_k = (N_k + lam) / (n + K lam) * n, and
        the codebook is m_k divided by the smoothed N_k (keep a column with [:, None]).
        """,
    error_hint="cluster_size is (K,), embedding_sum (K, D), z_e (N, D) and indices (N,) integers; return a tuple "
               "of three NumPy arrays (K,), (K, D), (K, D).",
    mistakes=_EMA_UPDATE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# encoder_gradient (derive: the gradient the encoder's outputs receive, worked out by hand)
# ---------------------------------------------------------------------------------------------
def encoder_gradient(grad_q, z_e, z_q, beta):
    """The gradient of the VQ-VAE's loss with respect to the encoder outputs ``z_e`` (N, D), derived by hand:
    the decoder's gradient ``grad_q`` = dL_rec/dz_q (N, D) passes the straight-through estimator unchanged, the
    codebook loss mean((z_q - sg(z_e))^2) sends nothing, and the commitment loss beta * mean((z_e - sg(z_q))^2),
    a mean over all N * D elements, adds 2 beta (z_e - z_q) / (N D)."""
    grad_q, z_e, z_q = (np.asarray(a, "float64") for a in (grad_q, z_e, z_q))
    through_straight_through = grad_q                    # d st(z_e, z_q) / d z_e is the identity
    from_codebook_loss = np.zeros_like(z_e)              # sg(z_e): the codebook loss moves only the codes
    from_commitment_loss = 2.0 * beta * (z_e - z_q) / z_e.size
    return through_straight_through + from_codebook_loss + from_commitment_loss


def _commitment(z_e, z_q, beta, scale):
    return 2.0 * beta * (z_e - z_q) / scale


_ENCODER_GRADIENT_MISTAKES = [
    (lambda g, e, q, beta: np.zeros_like(e),
     "zero is the true gradient of z_q = codebook[argmin ...] with respect to z_e, the gradient the straight-through "
     "estimator replaces: through st(z_e, z_q) = z_e + sg(z_q - z_e) the decoder's gradient grad_q reaches z_e "
     "unchanged (and the commitment loss adds its own)."),
    (lambda g, e, q, beta: g,
     "you have the decoder's gradient through the straight-through estimator, but not the commitment loss's: "
     "beta * mean((z_e - sg(z_q))**2) also depends on z_e. Differentiate it and add it."),
    (lambda g, e, q, beta: _commitment(e, q, beta, e.size),
     "you have the commitment loss's gradient but not the decoder's: the straight-through estimator hands grad_q "
     "to z_e unchanged (d st / d z_e is the identity), so it is part of the gradient too."),
    (lambda g, e, q, beta: g - _commitment(e, q, beta, e.size),
     "the commitment term has the wrong sign: the derivative of (z_e - z_q)^2 with respect to z_e is "
     "+2 (z_e - z_q), which pulls z_e towards its code when you step against the gradient."),
    (lambda g, e, q, beta: g + _commitment(e, q, 1.0 + beta, e.size),
     "you counted the codebook loss too: in mean((z_q - sg(z_e))**2) the encoder output sits inside stop_gradient, "
     "so that term sends z_e nothing; only the commitment loss (weight beta) reaches z_e."),
    (lambda g, e, q, beta: g + _commitment(e, q, 1.0, e.size),
     "you forgot beta: the commitment loss is beta * mean((z_e - sg(z_q))**2), so its gradient carries beta."),
    (lambda g, e, q, beta: g + _commitment(e, q, beta, 1.0),
     "you differentiated a sum, not a mean: the commitment loss averages over all N * D elements, so each element's "
     "derivative 2 beta (z_e - z_q) is divided by N * D (z_e.size)."),
    (lambda g, e, q, beta: g + _commitment(e, q, beta, len(e)),
     "you divided by N, the number of vectors: the mean runs over all N * D elements (z_e.size), not over the rows."),
    (lambda g, e, q, beta: g + _commitment(e, q, beta, e.shape[-1]),
     "you divided by D, the vectors' dimension: the mean runs over all N * D elements (z_e.size)."),
    (lambda g, e, q, beta: g + _commitment(e, q, beta / 2, e.size),
     "the commitment term is half what it should be: the derivative of a square (z_e - z_q)^2 is 2 (z_e - z_q)."),
    (lambda g, e, q, beta: g * _commitment(e, q, beta, e.size),
     "the two contributions add up (the loss is a sum of terms, so its gradient is the sum of their gradients): "
     "you multiplied them."),
]


def _encoder_gradient_cases():
    rng = np.random.default_rng(80)
    for n, d, beta in [(6, 3, 0.25), (4, 2, 0.7), (1, 1, 0.25), (6, 1, 0.4), (1, 4, 0.25)]:  # sizes of 1 too
        z_e = rng.normal(size=(n, d)).astype("float32")
        z_q = (z_e + rng.normal(0.0, 0.5, size=(n, d))).astype("float32")
        z_q[0] = z_e[0]  # a vector that is its own code: the commitment loss sends it nothing
        grad_q = rng.normal(0.0, 0.1, size=(n, d)).astype("float32")
        yield grad_q, z_e, z_q, beta


def _check_encoder_gradient(fn):
    for args in _encoder_gradient_cases():
        grad_q, z_e, z_q, beta = args
        where = f"With z_e and z_q of shape (N, D) = {z_e.shape} and beta = {beta}: "
        compare(to_array(call(fn, *args)), encoder_gradient(*args), args, _ENCODER_GRADIENT_MISTAKES,
                 where=where, symbols="(N, D)")


core.register(
    "encoder_gradient", reference=encoder_gradient, checker=_check_encoder_gradient, lesson=2, kind="derive",
    hints="""
        Follow z_e through the loss L = L_rec(st(z_e, z_q)) + codebook loss + commitment loss, term by term: the
        gradient of a sum is the sum of the terms' gradients. For each term ask two things: does z_e appear in
        it outside a stop_gradient, and if it does, what is the derivative of that term with respect to it?

        The reconstruction term reaches z_e only through st(z_e, z_q) = z_e + sg(z_q - z_e): what is the
        derivative of st with respect to z_e, and so what does the decoder's gradient grad_q become? In the
        codebook loss z_e sits inside sg. The commitment loss is beta times a mean over all N * D elements of a
        square: differentiate one element's square, then remember the mean divides it by z_e.size.

        Write each contribution as an (N, D) array and add them: grad_q itself (the straight-through
        estimator's identity), zeros (the codebook loss), and 2 * beta * (z_e - z_q) divided by the number of
        elements (the commitment loss). The function needs only NumPy: no gradients are computed, you derived
        them.
        """,
    error_hint="grad_q, z_e and z_q are NumPy arrays of shape (N, D) and beta a number; return an (N, D) array.",
    mistakes=_ENCODER_GRADIENT_MISTAKES)


# ---------------------------------------------------------------------------------------------
# unpicked_codes: a prediction, judged against the count of section 2's random codebook
# ---------------------------------------------------------------------------------------------
_UNPICKED_BAND = 2  # a prediction within this many codes of the count is right


def _judge_unpicked(answer, measured):
    """``measured``: ``{"unpicked": how many codes no point picks, "codes": K, "blobs": the number of blobs}``."""
    count = core.as_number(answer, "4")
    unpicked, codes, blobs = (int(measured[key]) for key in ("unpicked", "codes", "blobs"))
    why = (f"{unpicked} of the {codes} random codes are picked by no point. A code is picked as soon as one "
           f"point falls in its Voronoi cell, the region nearer to it than to any other code: {codes} codes in the "
           f"6 by 6 square have cells about 1.5 units across, and the ring of {blobs} blobs, 12.6 units around, "
           f"with thousands of points whose tails stray far from their blobs, crosses most of them. Only a code "
           f"whose whole cell misses the data (a corner code behind codes nearer to the ring) goes unpicked, and "
           f"gets nothing to learn from: the dead codes of section 6 start that way.")
    if count < 0 or count > codes:
        raise core.Wrong(f"the count lies between 0 and {codes}, the number of codes. {why}")
    if abs(count - unpicked) > _UNPICKED_BAND:
        direction = "too many" if count > unpicked else "too few"
        raise core.Wrong(f"{count:g} is {direction}. {why}")
    return f"{count:g} is within {_UNPICKED_BAND} codes of the count. {why}"


core.register_question(
    "unpicked_codes", kind="predict", lesson=2, judge=_judge_unpicked,
    example={"unpicked": 1, "codes": 16, "blobs": 8},
    hints="""
        A code is picked when at least one point is nearer to it than to any other code, that is, when a point
        falls in its Voronoi cell. Think about how large those cells are, and how much of the square the data
        reach.

        The 16 codes share the 6 by 6 square, so a cell is about 1.5 units across on average. The data form a
        ring of radius 2, about 12.6 units around, each blob a quarter of a unit wide, with 2,000 points in all,
        so a few of them stray far into the blobs' tails. How many cells can such a ring cross, and which ones
        does it miss?

        Only a cell that lies wholly out of the data's reach stays empty: a corner code shielded by a code
        nearer to the ring, or a code in the ring's hole whose cell the ring's codes surround. Count how many
        of the 16 codes could be like that, and commit to a number.
        """)
