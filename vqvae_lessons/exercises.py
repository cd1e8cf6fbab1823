"""Exercises for the lessons, checked in the notebook (in the style of Kaggle's learntools).

The learner writes a function, then asks for a verdict::

    from vqvae_lessons.exercises import check, hint, solution

    def reparameterize(mean, log_var, eps):
        # Your code here
        raise NotImplementedError

    check("reparameterize", reparameterize)   # Not attempted: ...
    hint("reparameterize")                    # a first hint
    solution("reparameterize")                # the reference's source code

:func:`check` runs the function on a few seeded inputs of varied shapes, compares
its results with a reference and shows "Correct", "Incorrect: <what differs, and
the likely mistake>" or "Not attempted: <what to do>" (a coloured box in Jupyter,
plain text elsewhere), returning True, False or None. It never raises: whatever the
learner's function raises becomes an "Incorrect" that names the exception.

Each exercise has a small reference (NumPy, or ``keras.ops`` where gradients
matter), one checker and a table of known mistakes: mistaken implementations, each
with the hint a learner gets when their result equals that mistake's result.
:func:`names` lists the exercises.
"""

from __future__ import annotations

import difflib
import html
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from keras import ops

from .gradients import gradients

__all__ = ["check", "hint", "solution", "names"]


# ---------------------------------------------------------------------------------------------
# Verdicts and how they are shown
# ---------------------------------------------------------------------------------------------
class _Incorrect(Exception):
    """The learner's function gives a wrong result; the message says what differs."""


class _LearnerError(_Incorrect):
    """The learner's function raised; :func:`check` adds the exercise's hint for errors."""


class _NotAttempted(Exception):
    """The learner has not written the function yet; the message says what to do."""


_COLOURS = {  # label: (text and border, background)
    "Correct": ("#1b5e20", "#e8f5e9"),
    "Incorrect": ("#b71c1c", "#ffebee"),
    "Not attempted": ("#8a5300", "#fff8e1"),
}


def _notebook_display():
    """IPython's ``display`` when running inside IPython (Jupyter, Colab), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


def _report(label, message=""):
    """Show a verdict: a small coloured box in a notebook, one line of text elsewhere."""
    text = f"{label}: {message}" if message else label
    display = _notebook_display()
    if display is None:
        print(text)
        return
    colour, background = _COLOURS[label]
    detail = f": {html.escape(message)}" if message else ""
    box = (f'<div style="border-left: 4px solid {colour}; background: {background}; padding: 6px 10px; '
           f'margin: 4px 0; font-family: sans-serif;"><b style="color: {colour};">{label}</b>{detail}</div>')
    display({"text/plain": text, "text/html": box}, raw=True)


# ---------------------------------------------------------------------------------------------
# Shared helpers: calling the learner's function, converting and comparing results
# ---------------------------------------------------------------------------------------------
def _short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _call(fn, *args):
    """Call the learner's function (on copies of NumPy inputs, so it can't change ours) and
    turn what it raises or a missing result into a verdict."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        result = fn(*args)
    except NotImplementedError:
        raise _NotAttempted("your function raises NotImplementedError: replace "
                            "`raise NotImplementedError` with your code and return the result.") from None
    except Exception as error:
        raise _LearnerError(f"your function raised {type(error).__name__}: {_short(error)}") from None
    if result is None or result is Ellipsis:
        raise _NotAttempted(f"your function returned {result!r}: write your code and `return` the result.")
    return result


def _to_array(value):
    """A NumPy array of the learner's result (NumPy array, backend tensor, list or number)."""
    if hasattr(value, "detach"):  # a torch tensor that requires grad
        value = value.detach()
    try:
        array = np.asarray(ops.convert_to_numpy(value))
    except Exception:
        try:
            array = np.asarray(value)
        except Exception:
            array = None
    if array is None or array.dtype.kind not in "biuf":
        raise _Incorrect(f"your function returned a {type(value).__name__}, not an array of numbers.")
    return array


def _close(got, want, equal_nan=False):
    """Same shape and the same values up to float32 round-off."""
    got, want = np.asarray(got, "float64"), np.asarray(want, "float64")
    if got.shape != want.shape:
        return False
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return bool(np.allclose(got, want, rtol=1e-4, atol=1e-5 * scale, equal_nan=equal_nan))


def _nonzero(gradient):
    return bool(np.max(np.abs(gradient), initial=0.0) > 1e-6)


def _known_mistake(got, args, mistakes):
    """The hint of the first mistaken implementation whose result on ``args`` equals ``got``."""
    for mistake, mistake_hint in mistakes:
        with np.errstate(all="ignore"):
            if _close(got, _to_array(mistake(*args)), equal_nan=True):
                return mistake_hint
    return None


_KINDS = {  # dtype kinds each kind of result may have, and what to say otherwise
    "float": ("f", "expected floating-point numbers, got dtype {dtype}"),
    "index": ("iu", "expected integer indices, got dtype {dtype}"),
    "mask": ("biuf", "expected an array of 0 and 1, got dtype {dtype}"),
    "number": ("iuf", "expected a number, got dtype {dtype}"),
}


def _compare(got, want, args, mistakes, *, where, symbols, kind="float"):
    """Raise :class:`_Incorrect` with the most specific hint unless ``got`` equals ``want``.

    In order: a known mistake, the shape (``symbols`` names the axes, e.g. ``"(N, K)"``),
    the dtype, NaN, and finally the first value that differs."""
    kinds, dtype_message = _KINDS[kind]
    if got.dtype.kind in kinds and _close(got, want):
        return
    mistake_hint = _known_mistake(got, args, mistakes)
    if mistake_hint:
        raise _Incorrect(where + mistake_hint)
    if got.shape != want.shape:
        if want.shape == ():
            raise _Incorrect(f"{where}expected a single number, got an array of shape {got.shape}.")
        message = f"{where}expected shape {symbols} = {want.shape}, got {got.shape}"
        if got.ndim == 2 and got.shape == want.shape[::-1]:
            message += ": did you transpose?"
        raise _Incorrect(message + ".")
    if got.dtype.kind not in kinds:
        raise _Incorrect(where + dtype_message.format(dtype=got.dtype) + ".")
    if np.isnan(got.astype("float64")).any():
        raise _Incorrect(f"{where}your result contains NaN: a square root or log of a negative number, or 0 * log(0)?")
    if want.shape == ():
        raise _Incorrect(f"{where}expected {float(want):.6g}, got {float(got):.6g}.")
    index = np.unravel_index(np.argmax(~np.isclose(got, want, rtol=1e-4, atol=1e-5)), want.shape)
    raise _Incorrect(f"{where}the values differ: at index {tuple(int(i) for i in index)} expected "
                     f"{float(want[index]):.6g}, got {float(got[index]):.6g}.")


def _gradients(fn, inputs, extra_args, scalarize):
    """Differentiate the learner's function with the active Keras backend.

    Calls ``fn(*inputs, *extra_args)`` with ``inputs`` as backend tensors; ``scalarize``
    maps its result to a list of scalar tensors. Returns, for each scalar, the list of its
    gradients with respect to each of ``inputs`` as float64 NumPy arrays (zeros where the
    backend says there is no gradient, e.g. TensorFlow's None)."""
    try:
        return gradients(lambda *tensors: list(scalarize(_call(fn, *tensors, *extra_args))), inputs)
    except RuntimeError as error:  # a backend that can't differentiate
        raise _NotAttempted(str(error)) from error


def _same_observation(got, want):
    """Two dicts of named arrays (values and gradients) agree."""
    return all(_close(got[key], want[key], equal_nan=True) for key in want)


# ---------------------------------------------------------------------------------------------
# Lesson 1: reparameterize
# ---------------------------------------------------------------------------------------------
def reparameterize(mean, log_var, eps):
    """z = mean + exp(log_var / 2) * eps, all ``(N, L)``: a sample of N(mean, exp(log_var))."""
    std = np.exp(log_var / 2)  # the standard deviation: sqrt of the variance exp(log_var)
    return mean + std * eps


_REPARAMETERIZE_MISTAKES = [
    (lambda mean, log_var, eps: mean + np.exp(log_var) * eps,
     "you used the variance exp(log_var) where the standard deviation belongs: scale eps by exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.exp(log_var) / 2 * eps,
     "exp(log_var) / 2 is half the variance, not the standard deviation: the halving goes inside the "
     "exponential, exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.sqrt(log_var) * eps,
     "sqrt(log_var) is not the standard deviation: log_var is the log of the variance, so the standard deviation "
     "is exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + log_var * eps,
     "you used the log-variance log_var itself as the standard deviation: exponentiate, exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + log_var / 2 * eps,
     "log_var / 2 is the log of the standard deviation: the standard deviation is exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.exp(-log_var / 2) * eps,
     "exp(-log_var / 2) is one over the standard deviation: drop the minus sign."),
    (lambda mean, log_var, eps: mean - np.exp(log_var / 2) * eps,
     "you subtracted the noise term: z = mean + exp(log_var / 2) * eps, with a plus."),
    (lambda mean, log_var, eps: mean + np.exp(log_var / 2),
     "you forgot eps: the noise exp(log_var / 2) * eps is what makes z a random sample."),
    (lambda mean, log_var, eps: mean + eps,
     "you forgot to scale eps by the standard deviation exp(log_var / 2)."),
    (lambda mean, log_var, eps: np.exp(log_var / 2) * eps,
     "you forgot to add the mean: z = mean + exp(log_var / 2) * eps."),
]


def _reparameterize_cases():
    rng = np.random.default_rng(10)
    for shape in [(5, 3), (2, 7), (1, 2)]:
        yield tuple(rng.normal(size=shape).astype("float32") for _ in range(3))


def _check_reparameterize(fn):
    for mean, log_var, eps in _reparameterize_cases():
        where = f"With mean, log_var and eps of shape {mean.shape}: "
        got, want = _to_array(_call(fn, mean, log_var, eps)), reparameterize(mean, log_var, eps)
        if got.shape == want.shape and not _close(got, want):
            if not _close(_to_array(_call(fn, mean, log_var, eps)), got, equal_nan=True):
                raise _Incorrect(where + "your function gives a different result each time it is called: use the "
                                 "eps you are given instead of drawing new noise.")
        _compare(got, want, (mean, log_var, eps), _REPARAMETERIZE_MISTAKES, where=where, symbols="(N, L)")


# ---------------------------------------------------------------------------------------------
# Lesson 1: kl_divergence
# ---------------------------------------------------------------------------------------------
def kl_divergence(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last axis: ``(N, L)`` to ``(N,)``."""
    per_dimension = -0.5 * (1 + log_var - mean**2 - np.exp(log_var))
    return np.sum(per_dimension, axis=-1)


def _kl_terms(mean, log_var):
    return 1 + log_var - mean**2 - np.exp(log_var)


_KL_DIVERGENCE_MISTAKES = [
    (lambda mean, log_var: 0.5 * np.sum(_kl_terms(mean, log_var), axis=-1),
     "wrong sign: a KL divergence is never negative; it is -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.mean(_kl_terms(mean, log_var), axis=-1),
     "you averaged over the latent dimensions: the KL of independent dimensions is their sum (sum over axis=-1)."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var), axis=0),
     "you summed over axis 0, the batch, and got one value per latent dimension (L,): sum over the last axis "
     "for one value per example (N,)."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var)),
     "you summed over all axes and got a single number: sum over the last axis only (axis=-1), for one value "
     "per example (N,)."),
    (lambda mean, log_var: np.mean(-0.5 * np.sum(_kl_terms(mean, log_var), axis=-1)),
     "you returned the batch mean: return one value per example, shape (N,) (the loss averages them later)."),
    (lambda mean, log_var: -np.sum(_kl_terms(mean, log_var), axis=-1),
     "your values are twice the KL: you are missing the factor 0.5."),
    (lambda mean, log_var: -0.5 * np.sum(1 - mean**2, axis=-1),
     "your log_var and exp(log_var) terms cancel: you used the variance where the log-variance belongs (or the "
     "reverse). The formula has both: log_var, the log-variance, and exp(log_var), the variance."),
    (lambda mean, log_var: -0.5 * np.sum(1 + np.log(log_var) - mean**2 - log_var, axis=-1),
     "you treated log_var as the variance (log(log_var), and log_var where exp(log_var) belongs): it is already "
     "the log-variance; the variance is exp(log_var)."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var / 2), axis=-1),
     "exp(log_var / 2) is the standard deviation: the formula needs the variance exp(log_var)."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var) ** 2, axis=-1),
     "you squared the variance: exp(log_var) already is sigma**2."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean - np.exp(log_var), axis=-1),
     "the mean must be squared: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var + mean**2 - np.exp(log_var), axis=-1),
     "the sign of mean**2 is wrong: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.sum(log_var - mean**2 - np.exp(log_var), axis=-1),
     "you forgot the 1 inside the sum: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
]


def _kl_divergence_cases():
    rng = np.random.default_rng(20)
    for shape in [(5, 3), (4, 7), (1, 2)]:
        yield rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")


def _check_kl_divergence(fn):
    for mean, log_var in _kl_divergence_cases():
        where = f"With mean and log_var of shape (N, L) = {mean.shape}: "
        _compare(_to_array(_call(fn, mean, log_var)), kl_divergence(mean, log_var), (mean, log_var),
                 _KL_DIVERGENCE_MISTAKES, where=where, symbols="(N,)")


# ---------------------------------------------------------------------------------------------
# Lesson 2: pairwise_sq_distances and nearest_code
# ---------------------------------------------------------------------------------------------
def pairwise_sq_distances(x, codebook):
    """Squared Euclidean distances from each row of ``x`` ``(N, D)`` to each row of ``codebook``
    ``(K, D)``: ``(N, K)``, by the expansion |x - e|^2 = |x|^2 + |e|^2 - 2 x.e."""
    x_norms = np.sum(x**2, axis=1, keepdims=True)  # (N, 1)
    code_norms = np.sum(codebook**2, axis=1)  # (K,), broadcast as a row
    return x_norms + code_norms - 2 * x @ codebook.T


def _brute_force_sq_distances(x, codebook):
    return np.sum((x[:, None, :] - codebook[None, :, :]) ** 2, axis=-1)


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
]


def _distance_cases(seed):
    rng = np.random.default_rng(seed)
    for n, k, d in [(5, 8, 3), (7, 4, 2), (1, 3, 6)]:
        x = rng.normal(size=(n, d)).astype("float32")
        # codes of different lengths, so that "largest dot product" differs from "nearest"
        codebook = (rng.normal(size=(k, d)) * rng.uniform(0.3, 2.0, size=(k, 1))).astype("float32")
        yield x, codebook


def _check_pairwise_sq_distances(fn):
    for x, codebook in _distance_cases(30):
        where = f"With x of shape (N, D) = {x.shape} and codebook of shape (K, D) = {codebook.shape}: "
        _compare(_to_array(_call(fn, x, codebook)), _brute_force_sq_distances(x, codebook), (x, codebook),
                 _PAIRWISE_SQ_DISTANCES_MISTAKES, where=where, symbols="(N, K)")


def nearest_code(x, codebook):
    """Index ``(N,)`` of the row of ``codebook`` ``(K, D)`` nearest to each row of ``x`` ``(N, D)``."""
    return np.argmin(pairwise_sq_distances(x, codebook), axis=1)


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
]


def _check_nearest_code(fn):
    for x, codebook in _distance_cases(40):
        where = f"With x of shape (N, D) = {x.shape} and codebook of shape (K, D) = {codebook.shape}: "
        got, distances = _to_array(_call(fn, x, codebook)), _brute_force_sq_distances(x, codebook)
        if got.shape == (len(x),) and got.dtype.kind in "iu" and np.all((got >= 0) & (got < len(codebook))):
            picked = distances[np.arange(len(x)), got]
            if np.all(picked <= distances.min(axis=1) + 1e-4 * max(1.0, distances.max())):
                continue  # a nearest code (ties may go either way)
        _compare(got, np.argmin(distances, axis=1), (x, codebook), _NEAREST_CODE_MISTAKES, where=where,
                 symbols="(N,)", kind="index")


# ---------------------------------------------------------------------------------------------
# Lesson 2: straight_through and vq_losses (gradients, checked with the Keras backend)
# ---------------------------------------------------------------------------------------------
def straight_through(x, q):
    """The value of ``q`` with the gradient of ``x`` (the identity), for backend tensors."""
    return x + ops.stop_gradient(q - x)


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
]


def _observe_straight_through(fn, x, q, w):
    """Value of ``fn(x, q)`` and the gradients of ``sum(w * fn(x, q))`` with respect to x and q."""
    value = _to_array(_call(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(q)))
    if value.shape != q.shape:
        raise _Incorrect(f"expected a result of the shape of x and q, {q.shape}, got {value.shape}.")
    [(grad_x, grad_q)] = _gradients(fn, [x, q], [], lambda y: [ops.sum(ops.multiply(ops.convert_to_tensor(w), y))])
    return {"value": value, "grad_x": grad_x, "grad_q": grad_q}


def _straight_through_diagnosis(got, want, x):
    """What differs, for mistakes not in the table."""
    if not _close(got["value"], want["value"]):
        if _close(got["value"], x):
            return _STRAIGHT_THROUGH_MISTAKES[2][1]
        return "the value differs from q: the result must have exactly the value of q."
    if not _nonzero(got["grad_x"]):
        return _ST_NO_GRADIENT.format(how="no path from x to your result carries a gradient")
    if not _close(got["grad_x"], want["grad_x"]):
        return ("the gradient with respect to x is not the identity (the gradient of sum(w * result) should be w): "
                "write x + stop_gradient(q - x).")
    return _STRAIGHT_THROUGH_MISTAKES[4][1]  # the only difference left: a gradient into q


def _check_by_observation(fn, cases, observe, reference, mistakes, diagnose):
    """The loop the gradient-checked exercises share: for each ``(where, args)`` case, observe
    the learner's function and the reference (values and gradients); when they differ, name
    the known mistake that matches, or else say what differs (``diagnose(got, want, *args)``)."""
    for where, args in cases:
        try:
            got = observe(fn, *args)
        except _Incorrect as verdict:
            raise type(verdict)(where + str(verdict)) from None
        want = observe(reference, *args)
        if _same_observation(got, want):
            continue
        for mistake, mistake_hint in mistakes:
            if _same_observation(got, observe(mistake, *args)):
                raise _Incorrect(where + mistake_hint)
        raise _Incorrect(where + diagnose(got, want, *args))


def _check_straight_through(fn):
    rng = np.random.default_rng(50)
    cases = [(f"With x and q of shape {shape}: ", tuple(rng.normal(size=shape).astype("float32") for _ in range(3)))
             for shape in [(4, 3), (2, 5, 3)]]
    _check_by_observation(fn, cases, _observe_straight_through, straight_through, _STRAIGHT_THROUGH_MISTAKES,
                          lambda got, want, x, q, w: _straight_through_diagnosis(got, want, x))


def vq_losses(x, q, beta):
    """``(codebook_loss, commitment_loss)`` of the VQ-VAE paper, means over all elements:
    the codebook loss moves the codes q towards the encoder outputs x, the commitment
    loss keeps the encoder near its codes."""
    codebook_loss = ops.mean(ops.square(q - ops.stop_gradient(x)))
    commitment_loss = beta * ops.mean(ops.square(x - ops.stop_gradient(q)))
    return codebook_loss, commitment_loss


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
    (lambda x, q, beta: (ops.sum(ops.square(q - _sg(x))), beta * ops.sum(ops.square(x - _sg(q)))),
     "you summed the squared differences: both losses are means over all elements."),
    (lambda x, q, beta: (ops.mean(ops.sum(ops.square(q - _sg(x)), axis=-1)),
                         beta * ops.mean(ops.sum(ops.square(x - _sg(q)), axis=-1))),
     "you summed over the last axis before averaging: both losses are means over all elements."),
]


def _two_losses(result):
    """The learner's ``(codebook_loss, commitment_loss)``, or a verdict saying what came back instead."""
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return list(result)
    shape = _to_array(result).shape
    if shape == (2,):
        return [result[0], result[1]]
    raise _Incorrect(f"expected a pair (codebook_loss, commitment_loss), got a {type(result).__name__}"
                     + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else f" of shape {shape}")
                     + ": return the two losses separately, as a tuple.")


def _observe_vq_losses(fn, x, q, beta):
    """Both losses and the gradient of each with respect to x and q."""
    values = [_to_array(v) for v in _two_losses(_call(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(q), beta))]
    for label, value in zip(("codebook_loss", "commitment_loss"), values, strict=True):
        if value.size != 1:
            raise _Incorrect(f"{label} should be a single number (a mean over all elements), got shape {value.shape}.")
    (cb_x, cb_q), (cm_x, cm_q) = _gradients(fn, [x, q], [beta], lambda out: [ops.sum(v) for v in _two_losses(out)])
    return {"codebook_loss": values[0].reshape(()), "commitment_loss": values[1].reshape(()),
            "codebook/x": cb_x, "codebook/q": cb_q, "commitment/x": cm_x, "commitment/q": cm_q}


def _vq_losses_diagnosis(got, want):
    """What differs, for mistakes not in the table."""
    if not (_close(got["codebook_loss"], want["codebook_loss"])
            and _close(got["commitment_loss"], want["commitment_loss"])):
        return (f"the values differ: expected codebook_loss = mean((q - x)**2) = {float(want['codebook_loss']):.6g} "
                f"and commitment_loss = beta * mean((x - q)**2) = {float(want['commitment_loss']):.6g}, got "
                f"{float(got['codebook_loss']):.6g} and {float(got['commitment_loss']):.6g}.")
    problems = []
    if _nonzero(got["codebook/x"]):
        problems.append("the codebook loss has a gradient with respect to x (write mean((q - stop_gradient(x))**2))")
    if not _nonzero(got["codebook/q"]):
        problems.append("the codebook loss has no gradient with respect to q, so the codes would never move")
    if _nonzero(got["commitment/q"]):
        problems.append("the commitment loss has a gradient with respect to q (write beta * mean((x - "
                        "stop_gradient(q))**2))")
    if not _nonzero(got["commitment/x"]):
        problems.append("the commitment loss has no gradient with respect to x, so the encoder would not commit")
    if not problems:
        problems.append("the values are right but the gradients differ from those of mean((q - sg(x))**2) and "
                        "beta * mean((x - sg(q))**2)")
    return "; ".join(problems) + "."


def _check_vq_losses(fn):
    rng = np.random.default_rng(60)
    cases = [(f"With x and q of shape {shape} and beta = {beta}: ",
              (*(rng.normal(size=shape).astype("float32") for _ in range(2)), beta))
             for shape, beta in [((6, 4), 0.25), ((3, 5, 2), 0.7)]]
    _check_by_observation(fn, cases, _observe_vq_losses, vq_losses, _VQ_LOSSES_MISTAKES,
                          lambda got, want, *args: _vq_losses_diagnosis(got, want))


# ---------------------------------------------------------------------------------------------
# Lesson 3: codebook_perplexity
# ---------------------------------------------------------------------------------------------
def codebook_perplexity(indices, num_codes):
    """exp(entropy) of the empirical distribution of the codes in ``indices`` (any shape);
    unused codes contribute 0. Equals num_codes when all codes are used equally, 1 for one code."""
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    probs = counts / counts.sum()
    probs = probs[probs > 0]  # 0 * log(0) counts as 0
    entropy = -np.sum(probs * np.log(probs))
    return float(np.exp(entropy))


def _entropy_nats(indices, num_codes, divide_by=None):
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    probs = counts / (counts.sum() if divide_by is None else divide_by)
    probs = probs[probs > 0]
    return -np.sum(probs * np.log(probs))


def _per_row_perplexity(indices, num_codes):
    rows = np.reshape(indices, (len(indices), -1)) if np.ndim(indices) > 1 else [indices]
    return np.mean([codebook_perplexity(row, num_codes) for row in rows])


def _perplexity_with_zeros(indices, num_codes):
    probs = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
    return np.exp(-np.sum(probs * np.log(probs)))


_CODEBOOK_PERPLEXITY_MISTAKES = [
    (lambda i, k: _entropy_nats(i, k),
     "you returned the entropy: the perplexity is its exponential, exp(entropy)."),
    (lambda i, k: _entropy_nats(i, k) / np.log(2),
     "you returned the entropy in bits: the perplexity is exp(entropy in nats), or 2 ** (entropy in bits)."),
    (lambda i, k: 2 ** _entropy_nats(i, k),
     "you took 2 ** entropy with the entropy in nats (natural log): use exp(entropy); log2 goes with 2 **, ln with "
     "exp."),
    (lambda i, k: np.exp(_entropy_nats(i, k) / np.log(2)),
     "you took exp of an entropy in bits (log2): use the natural log with exp (log2 goes with 2 **)."),
    (lambda i, k: np.exp(-_entropy_nats(i, k)),
     "you got 1 / perplexity: the entropy is -sum(p * log(p)), with a minus sign."),
    (lambda i, k: float(k),
     "you returned num_codes: the perplexity weights codes by how often they are used (it equals num_codes only "
     "when all codes are used equally)."),
    (lambda i, k: float(len(np.unique(i))),
     "you returned the number of distinct codes used: the perplexity weights codes by their frequency (the two "
     "agree only when the used codes are equally frequent)."),
    (lambda i, k: np.exp(_entropy_nats(i, k, divide_by=k)),
     "you divided the counts by num_codes: the probabilities are counts / the number of indices (they sum to 1)."),
    (_per_row_perplexity,
     "you averaged one perplexity per row: compute one distribution over all the indices (flatten them first)."),
    (_perplexity_with_zeros,
     "your result is NaN: unused codes have p = 0 and 0 * log(0) is NaN in floating point; leave them out "
     "(p = p[p > 0]): they contribute 0 to the entropy."),
]


def _codebook_perplexity_cases():
    rng = np.random.default_rng(70)
    yield rng.choice(6, size=(4, 6), p=[0.4, 0.3, 0.2, 0.1, 0.0, 0.0]), 9
    yield rng.choice(5, size=50, p=[0.5, 0.25, 0.15, 0.1, 0.0]), 5
    yield rng.integers(0, 3, size=(2, 3, 5)), 8
    yield np.full((3, 3), 2), 4  # a single code: perplexity 1


def _check_number(fn, cases, reference, mistakes, where):
    """Check a learner's function that returns one number, on each case ``args`` of ``cases``;
    ``where(*args)`` says which case it was."""
    for args in cases:
        got = _to_array(_call(fn, *args))
        got = got.reshape(()) if got.size == 1 else got
        _compare(got, np.asarray(reference(*args)), args, mistakes, where=where(*args), symbols="()", kind="number")


def _indices_case(indices, num_codes):
    return f"With indices of shape {indices.shape} and num_codes = {num_codes}: "


def _check_codebook_perplexity(fn):
    _check_number(fn, _codebook_perplexity_cases(), codebook_perplexity, _CODEBOOK_PERPLEXITY_MISTAKES,
                  _indices_case)


# ---------------------------------------------------------------------------------------------
# Lesson 5 (PixelCNN): causal_mask
# ---------------------------------------------------------------------------------------------
def causal_mask(kernel_size, mask_type):
    """The ``(k, k)`` mask of a PixelCNN convolution: 1 for the positions before the centre in
    raster order (rows above; left of the centre in the centre row), and the centre itself
    for type "B" only."""
    mask = np.zeros((kernel_size, kernel_size), dtype="float32")
    centre = kernel_size // 2
    mask[:centre, :] = 1  # every row above the centre row
    mask[centre, :centre] = 1  # left of the centre, in the centre row
    if mask_type == "B":
        mask[centre, centre] = 1
    return mask


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
]


def _check_causal_mask(fn):
    for kernel_size, mask_type in [(5, "A"), (3, "B"), (7, "B"), (7, "A"), (1, "A"), (1, "B")]:
        where = f"With kernel_size = {kernel_size} and mask_type = {mask_type!r}: "
        got, want = _to_array(_call(fn, kernel_size, mask_type)), causal_mask(kernel_size, mask_type)
        if got.dtype.kind in "iuf" and got.shape == want.shape and not np.all((got == 0) | (got == 1)):
            raise _Incorrect(f"{where}a mask holds only 0 and 1, got values {np.unique(got)[:6]}.")
        _compare(got, want, (kernel_size, mask_type), _CAUSAL_MASK_MISTAKES, where=where, symbols="(k, k)",
                 kind="mask")


# ---------------------------------------------------------------------------------------------
# Lesson 5 (PixelCNN): sample_codes
# ---------------------------------------------------------------------------------------------
def _softmax(logits):
    exp = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return exp / np.sum(exp, axis=-1, keepdims=True)


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
    reproduces the expected map if every position sees the codes sampled before it."""

    def logits(self, codes):
        n, h, w = self.shape
        weighted = codes.reshape(n, h * w) * np.arange(1, h * w + 1)
        before = np.cumsum(weighted, axis=1) - weighted  # depends on the positions before p only
        peak = (before + 2 * np.arange(h * w) + 3 * np.arange(n)[:, None]) % self.num_codes
        return 30.0 * np.eye(self.num_codes)[peak].reshape(n, h, w, self.num_codes)


class _FixedLogits(_LogitsFn):
    """The same logits ``(K,)`` at every position, whatever the codes."""

    def __init__(self, shape, logits):
        super().__init__(shape, len(logits))
        self.fixed = np.asarray(logits, dtype="float64")

    def logits(self, codes):
        return np.broadcast_to(self.fixed, (*self.shape, self.num_codes)).copy()


def _sampler(*, one_call=False, feedback=True, columns_first=False, per_example=True, greedy=False, own_rng=False):
    """A sampling loop with one known mistake switched on (the mistakes table of sample_codes)."""

    def sample(logits_fn, shape, rng):
        n, h, w = shape
        codes, zeros = np.zeros(shape, dtype="int64"), np.zeros(shape, dtype="int64")
        rng = np.random.default_rng() if own_rng else rng
        order = [(i, j) for j in range(w) for i in range(h)] if columns_first else np.ndindex(h, w)
        logits = np.asarray(logits_fn(zeros)) if one_call else None
        for i, j in order:
            if not one_call:
                logits = np.asarray(logits_fn(codes if feedback else zeros))
            probs = _softmax(logits[:, i, j, :].astype("float64"))
            if greedy:
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
]


def _sampled(fn, logits_fn, seed, where):
    """The learner's codes for ``logits_fn``, checked for shape, dtype and range."""
    shape, k = logits_fn.shape, logits_fn.num_codes
    got = _to_array(_call(fn, logits_fn, shape, np.random.default_rng(seed)))
    if got.shape != shape:
        looks_like_logits = got.shape == (*shape, k)
        extra = ": those look like logits or probabilities, return the sampled codes" if looks_like_logits else ""
        raise _Incorrect(f"{where}expected codes of shape (N, H, W) = {shape}, got {got.shape}{extra}.")
    if got.dtype.kind not in "iu":
        raise _Incorrect(f"{where}codes are integer indices, got dtype {got.dtype}: start from "
                         "np.zeros(shape, dtype=int).")
    if got.size and (got.min() < 0 or got.max() >= k):
        raise _Incorrect(f"{where}codes must lie in [0, K) = [0, {k}), got {got.min()} to {got.max()}.")
    return got


def _check_sample_codes(fn):
    # 1. Deterministic: the correct loop reproduces one exact map.
    for shape, k, seed in [((2, 3, 4), 5, 0), ((3, 2, 5), 7, 1), ((1, 4, 4), 3, 2)]:
        where = f"With shape = {shape}, K = {k} and a logits_fn that all but fixes each code given those before it: "
        logits_fn = _PeakedLogits(shape, k)
        got = _sampled(fn, logits_fn, seed, where)
        want = sample_codes(_PeakedLogits(shape, k), shape, np.random.default_rng(seed))
        if np.array_equal(got, want):
            continue
        if np.array_equal(got, _PeakedLogits(shape, k)(np.zeros(shape)).argmax(-1)):  # what zeros alone give
            raise _Incorrect(where + (_SAMPLE_ONE_CALL if logits_fn.calls == 1 else _SAMPLE_NO_FEEDBACK))
        for mistake, mistake_hint in _SAMPLE_CODES_MISTAKES:
            if np.array_equal(got, mistake(_PeakedLogits(shape, k), shape, np.random.default_rng(seed))):
                raise _Incorrect(where + mistake_hint)
        positions = shape[1] * shape[2]
        if logits_fn.calls < positions:
            raise _Incorrect(f"{where}logits_fn was called {logits_fn.calls} times for {positions} positions: call "
                             "it once per position, after writing the codes before it.")
        flat_got, flat_want = got.reshape(shape[0], -1), want.reshape(shape[0], -1)
        wrong = np.argwhere(flat_got != flat_want)  # (example, raster position) pairs
        example, position = wrong[np.argmin(wrong[:, 1])]
        i, j = divmod(int(position), shape[2])
        raise _Incorrect(f"{where}at position (i, j) = ({i}, {j}) of example {example}, logits_fn put almost all the "
                         f"probability on code {flat_want[example, position]}, but you sampled "
                         f"{flat_got[example, position]}. Take the logits at [:, i, j, :], apply a softmax over the "
                         "last axis and draw with those probabilities, visiting positions row by row.")
    # 2. Statistical: with equal logits the codes spread out; with skewed ones they follow the softmax.
    shape = (8, 8, 8)
    where = f"With shape = {shape} and the same logits at every position: "
    flat = _sampled(fn, _FixedLogits(shape, np.zeros(4)), 3, where)
    shares = np.bincount(flat.ravel(), minlength=4) / flat.size
    if shares.min() < 0.12 or shares.max() > 0.4:
        raise _Incorrect(f"{where}the logits are equal for the 4 codes, but your codes' shares are "
                         f"{np.round(shares, 2).tolist()}, not about 0.25 each: {_SAMPLE_GREEDY}")
    if not np.array_equal(flat, _sampled(fn, _FixedLogits(shape, np.zeros(4)), 3, where)):
        raise _Incorrect(where + _SAMPLE_OWN_RNG)
    probs = np.array([0.5, 0.3, 0.2, 1e-18])
    skewed = _sampled(fn, _FixedLogits(shape, np.log(probs)), 4, where)
    shares = np.bincount(skewed.ravel(), minlength=4) / skewed.size
    if np.max(np.abs(shares - probs)) > 0.1:
        raise _Incorrect(f"{where}with logits log([0.5, 0.3, 0.2, 0]) the codes' shares should be close to those "
                         f"probabilities, got {np.round(shares, 2).tolist()}: draw with probabilities "
                         "softmax(logits) over the last axis.")


# ---------------------------------------------------------------------------------------------
# Lesson 4 (number and size of the codes): rate_bits_per_image
# ---------------------------------------------------------------------------------------------
def rate_bits_per_image(grid_shape, num_codes):
    """The rate of a grid of codes: each of the ``prod(grid_shape)`` cells holds one of ``num_codes``
    codes, ``log2(num_codes)`` bits, so an image costs ``prod(grid_shape) * log2(num_codes)`` bits
    (343 for a 7x7 grid of K = 128 codes)."""
    cells = int(np.prod(grid_shape))
    return float(cells * np.log2(num_codes))


def _cells(grid_shape):
    return float(np.prod(grid_shape))


_RATE_BITS_MISTAKES = [
    (lambda g, k: _cells(g) * np.log(k),
     "you used the natural log, which counts nats: bits need log2 (np.log2), and 1 nat = 1 / ln 2 bits."),
    (lambda g, k: _cells(g) * np.log10(k),
     "you used log10, which counts decimal digits: bits need log2 (np.log2)."),
    (lambda g, k: float(np.log2(k)),
     "that is the rate of one code: an image has one code per cell of the grid, so multiply by the number of "
     "cells, prod(grid_shape)."),
    (lambda g, k: float(np.sum(g) * np.log2(k)),
     "you added the grid's sides (7 + 7): the number of cells is their product, 7 * 7 = 49 (np.prod)."),
    (lambda g, k: float(g[0] * np.log2(k)),
     "you counted one row of the grid: the number of cells is the product of all its sides (np.prod(grid_shape))."),
    (lambda g, k: _cells(g) * k,
     "you multiplied by the number of codes: one code among K is worth log2(K) bits, not K."),
    (lambda g, k: _cells(g) * np.ceil(np.log2(k)),
     "you rounded log2(K) up: that is the length of a fixed-length binary code for one index, but the rate here "
     "is the information, log2(K) bits exactly (the two agree when K is a power of 2)."),
    (lambda g, k: float(np.log2(_cells(g) * k)),
     "you took log2 of cells * K: the bits of the cells add up, log2(K ** cells) = cells * log2(K)."),
    (lambda g, k: _cells(g) * np.log2(k - 1),
     "you used log2(K - 1), from the largest index: there are K possible codes, so each holds log2(K) bits."),
]


def _rate_bits_cases():
    yield (7, 7), 128
    yield (7, 7), 100
    yield (4, 6), 10
    yield (8, 8), 2
    yield (7, 7), 512
    yield (3, 5), 1  # a codebook of one code tells nothing: 0 bits


def _check_rate_bits_per_image(fn):
    _check_number(fn, _rate_bits_cases(), rate_bits_per_image, _RATE_BITS_MISTAKES,
                  lambda grid_shape, num_codes: f"With grid_shape = {grid_shape} and num_codes = {num_codes}: ")


# ---------------------------------------------------------------------------------------------
# Lesson 4 (number and size of the codes): codebook_usage
# ---------------------------------------------------------------------------------------------
def codebook_usage(indices, num_codes):
    """The fraction of the ``num_codes`` codes that occur at least once in ``indices`` (any shape):
    1.0 when every code is used, ``1 / num_codes`` when one code is."""
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    return np.count_nonzero(counts) / num_codes


def _rows_usage(indices, num_codes):
    rows = np.reshape(indices, (len(indices), -1)) if np.ndim(indices) > 1 else [indices]
    return float(np.mean([codebook_usage(row, num_codes) for row in rows]))


_CODEBOOK_USAGE_MISTAKES = [
    (lambda i, k: float(len(np.unique(i))),
     "you returned the number of codes used: the usage is that number divided by num_codes, a fraction."),
    (lambda i, k: len(np.unique(i)) / np.size(i),
     "you divided by the number of indices: the usage is the share of the codebook, codes used / num_codes."),
    (lambda i, k: 1.0 - len(np.unique(i)) / k,
     "you returned the share of unused (dead) codes: the usage is the share of codes used at least once."),
    (lambda i, k: (np.max(i) + 1) / k,
     "you assumed the codes used are 0 to max(indices): codes in between can be unused; count the distinct "
     "values (np.unique, or the nonzero counts of np.bincount)."),
    (_rows_usage,
     "you averaged a usage per row: a code counts as used if it occurs anywhere, so take all indices together "
     "(flatten them first)."),
    (lambda i, k: codebook_perplexity(i, k) / k,
     "you divided the perplexity by num_codes: the perplexity weights codes by how often they occur, while the "
     "usage counts every code that occurs at least once, however rarely."),
]


def _codebook_usage_cases():
    rng = np.random.default_rng(40)
    yield rng.choice([0, 2, 3, 5, 9], size=(3, 7, 7), p=[0.5, 0.2, 0.15, 0.1, 0.05]), 16
    yield rng.choice([1, 4, 6], size=20, p=[0.8, 0.15, 0.05]), 8
    yield rng.integers(0, 12, size=(2, 4, 4)), 12
    yield np.full((2, 3), 3), 4  # a single code: 1 / num_codes


def _check_codebook_usage(fn):
    _check_number(fn, _codebook_usage_cases(), codebook_usage, _CODEBOOK_USAGE_MISTAKES, _indices_case)


# ---------------------------------------------------------------------------------------------
# The registry and the learner's entry points
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Exercise:
    """An exercise: its reference solution, its checker, a first hint, a hint for when the
    learner's function raises, and its table of known mistakes ``[(mistaken_fn, hint), ...]``."""

    reference: Callable
    checker: Callable
    hint: str
    error_hint: str
    mistakes: list


_EXERCISES = {
    "reparameterize": _Exercise(
        reparameterize, _check_reparameterize,
        "The standard deviation is exp(log_var / 2), the square root of the variance exp(log_var): "
        "z = mean + exp(log_var / 2) * eps.",
        "mean, log_var and eps are NumPy arrays of shape (N, L); the result is elementwise.",
        _REPARAMETERIZE_MISTAKES),
    "kl_divergence": _Exercise(
        kl_divergence, _check_kl_divergence,
        "Per latent dimension, KL(N(mu, sigma^2) || N(0, 1)) = -0.5 * (1 + log(sigma^2) - mu^2 - sigma^2), with "
        "log(sigma^2) = log_var; sum it over the last axis.",
        "mean and log_var are NumPy arrays of shape (N, L); return one value per row: sum over axis=-1.",
        _KL_DIVERGENCE_MISTAKES),
    "pairwise_sq_distances": _Exercise(
        pairwise_sq_distances, _check_pairwise_sq_distances,
        "|x - e|^2 = |x|^2 + |e|^2 - 2 x.e: the squared norms of x as a column (N, 1), those of the codebook as a "
        "row (K,), and the matrix product x @ codebook.T (N, K).",
        "x is (N, D) and codebook (K, D): keep the squared norms of x as a column (keepdims=True) so they broadcast "
        "against the codebook's (K,), or broadcast x[:, None, :] - codebook[None, :, :].",
        _PAIRWISE_SQ_DISTANCES_MISTAKES),
    "nearest_code": _Exercise(
        nearest_code, _check_nearest_code,
        "Compute the (N, K) squared distances, then the position of the smallest in each row: argmin over axis 1.",
        "x is (N, D) and codebook (K, D); return integer indices of shape (N,).",
        _NEAREST_CODE_MISTAKES),
    "straight_through": _Exercise(
        straight_through, _check_straight_through,
        "You want the value of q with the gradient of x: x + keras.ops.stop_gradient(q - x).",
        "Your function receives backend tensors, not NumPy arrays: use keras.ops (e.g. keras.ops.stop_gradient).",
        _STRAIGHT_THROUGH_MISTAKES),
    "vq_losses": _Exercise(
        vq_losses, _check_vq_losses,
        "codebook_loss = mean((q - sg(x))**2) moves the codes, commitment_loss = beta * mean((x - sg(q))**2) moves "
        "the encoder; sg is keras.ops.stop_gradient. Return them as a tuple.",
        "Your function receives backend tensors, not NumPy arrays: use keras.ops (mean, square, stop_gradient) and "
        "return a tuple (codebook_loss, commitment_loss).",
        _VQ_LOSSES_MISTAKES),
    "codebook_perplexity": _Exercise(
        codebook_perplexity, _check_codebook_perplexity,
        "Count each code (np.bincount of the flattened indices, minlength=num_codes), divide by the number of "
        "indices to get p, keep p > 0, then H = -sum(p * log(p)) and the perplexity is exp(H).",
        "indices is an integer NumPy array of any shape: flatten it (np.ravel) first; return one number.",
        _CODEBOOK_PERPLEXITY_MISTAKES),
    "rate_bits_per_image": _Exercise(
        rate_bits_per_image, _check_rate_bits_per_image,
        "Each cell of the grid holds one of num_codes codes, log2(num_codes) bits; the grid has np.prod(grid_shape) "
        "cells: multiply the two.",
        "grid_shape is a tuple of ints such as (7, 7) and num_codes an int; return one number (np.prod and np.log2 "
        "help).",
        _RATE_BITS_MISTAKES),
    "codebook_usage": _Exercise(
        codebook_usage, _check_codebook_usage,
        "Count the distinct codes among all the indices (np.unique of the flattened array, or np.count_nonzero of "
        "np.bincount(..., minlength=num_codes)) and divide by num_codes.",
        "indices is an integer NumPy array of any shape: flatten it (np.ravel) first; return one number.",
        _CODEBOOK_USAGE_MISTAKES),
    "causal_mask": _Exercise(
        causal_mask, _check_causal_mask,
        "Start from zeros((k, k)); set the rows above the centre row c = k // 2 to 1, then the centre row left of "
        "the centre; for type 'B' also the centre itself.",
        "kernel_size is an odd int k and mask_type the string 'A' or 'B'; return a (k, k) array of 0 and 1.",
        _CAUSAL_MASK_MISTAKES),
    "sample_codes": _Exercise(
        sample_codes, _check_sample_codes,
        "codes = np.zeros(shape, dtype=int); for each row i, for each column j: logits = logits_fn(codes)[:, i, j, :], "
        "probs = softmax(logits), and for each example n: codes[n, i, j] = rng.choice(K, p=probs[n]).",
        "logits_fn takes the whole (N, H, W) array of codes and returns logits (N, H, W, K); rng.choice(K, p=...) "
        "needs one row of probabilities that sum to 1: a softmax of the logits at one position for one example.",
        _SAMPLE_CODES_MISTAKES),
}


def names():
    """The names of the exercises, in the order of the lessons."""
    return list(_EXERCISES)


def _lookup(name):
    """The exercise called ``name``, or None after saying which names exist."""
    exercise = _EXERCISES.get(name) if isinstance(name, str) else None
    if exercise is None:
        close = difflib.get_close_matches(str(name), names(), n=1)
        maybe = f" Did you mean {close[0]!r}?" if close else ""
        _report("Not attempted", f"there is no exercise called {name!r}.{maybe} The exercises are: "
                                 f"{', '.join(names())}.")
    return exercise


def check(name, fn):
    """Check the learner's function ``fn`` for exercise ``name``, show the verdict and
    return True (correct), False (incorrect) or None (not attempted). Never raises."""
    exercise = _lookup(name)
    if exercise is None:
        return None
    if fn is None or fn is Ellipsis:
        _report("Not attempted", f"write your function, then pass it itself: check({name!r}, {name}).")
        return None
    if not callable(fn):
        _report("Incorrect", f"check needs your function itself, not a {type(fn).__name__}: "
                             f"check({name!r}, {name}), without parentheses after {name}.")
        return False
    try:
        with np.errstate(all="ignore"):
            exercise.checker(fn)
    except _NotAttempted as verdict:
        _report("Not attempted", str(verdict))
        return None
    except _LearnerError as verdict:
        _report("Incorrect", f"{verdict}. {exercise.error_hint}")
        return False
    except _Incorrect as verdict:
        _report("Incorrect", str(verdict))
        return False
    except Exception as error:  # a result so unexpected that comparing it failed
        _report("Incorrect", f"your result could not be checked ({type(error).__name__}: {_short(error)}). "
                             f"{exercise.error_hint}")
        return False
    _report("Correct")
    return True


def hint(name):
    """Show, and return, a first hint for exercise ``name``."""
    exercise = _lookup(name)
    if exercise is None:
        return None
    print(f"Hint: {exercise.hint}")
    return exercise.hint


def solution(name):
    """Show the source code of the reference solution of exercise ``name``.

    In a notebook it is displayed as highlighted code (and None is returned, so the
    cell shows it once); elsewhere it is printed and returned as a string."""
    exercise = _lookup(name)
    if exercise is None:
        return None
    source = inspect.getsource(exercise.reference)
    display = _notebook_display()
    if display is None:
        print(source)
    else:
        from IPython.display import Code

        display(Code(source, language="python"))
        return None
    return source
