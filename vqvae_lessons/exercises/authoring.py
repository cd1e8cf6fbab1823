"""The authoring API of the exercises: what a lesson module's checkers use to call the learner's function, read
its result, compare it with the reference, name a known mistake and check gradients.

A checker raises :class:`Incorrect` (the message says what differs, and the likely mistake) or
:class:`NotAttempted`; :func:`call` turns what the learner's function raises into :class:`LearnerError` (an
Incorrect to which :func:`~vqvae_lessons.exercises.check` adds the exercise's hint for errors). The usual
checker is one line: :func:`check_number` (a function that returns one number), a loop of :func:`compare` (an
array), or :func:`check_by_observation` (values and gradients, for the exercises whose point is the gradient).
Register the exercise with :func:`vqvae_lessons.exercises.core.register`. This module imports no lesson.
"""

from __future__ import annotations

import re

import numpy as np
from keras import ops

from ..gradients import gradients

__all__ = ["RESULT_KINDS", "Incorrect", "LearnerError", "NotAttempted", "as_numpy", "call", "check_by_observation",
           "check_number", "close", "compare", "describe_indices", "gradients_of", "known_mistake", "nonzero",
           "same_observation", "short", "to_array"]


class Incorrect(Exception):
    """The learner's function gives a wrong result; the message says what differs."""


class LearnerError(Incorrect):
    """The learner's function raised; :func:`check` adds the exercise's hint for errors."""


class NotAttempted(Exception):
    """The learner has not written the function yet; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Calling the learner's function, converting and comparing results
# ---------------------------------------------------------------------------------------------
def short(text, limit=300):
    """``text`` on one line, without a terminal's colours, cut to ``limit`` characters."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(text)).split())  # without a terminal's colours
    return text if len(text) <= limit else text[:limit] + " ..."


def call(fn, *args):
    """Call the learner's function (on copies of NumPy inputs, so it can't change ours) and
    turn what it raises or a missing result into a verdict."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        result = fn(*args)
    except NotImplementedError:
        raise NotAttempted("your function raises NotImplementedError: replace "
                            "`raise NotImplementedError` with your code and return the result.") from None
    except Exception as error:
        raise LearnerError(f"your function raised {type(error).__name__}: {short(error)}") from None
    if result is None or result is Ellipsis:
        raise NotAttempted(f"your function returned {result!r}: write your code and `return` the result.")
    return result


def to_array(value):
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
        raise Incorrect(f"your function returned a {type(value).__name__}, not an array of numbers.")
    return array


def as_numpy(value):
    """A NumPy array of a reference's result (the package's references return backend tensors)."""
    return np.asarray(ops.convert_to_numpy(value))


def close(got, want, equal_nan=False):
    """Same shape and the same values up to float32 round-off."""
    got, want = np.asarray(got, "float64"), np.asarray(want, "float64")
    if got.shape != want.shape:
        return False
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return bool(np.allclose(got, want, rtol=1e-4, atol=1e-5 * scale, equal_nan=equal_nan))


def nonzero(gradient):
    """Whether a gradient (a NumPy array) has an entry that is not (numerically) zero."""
    return bool(np.max(np.abs(gradient), initial=0.0) > 1e-6)


def known_mistake(got, args, mistakes):
    """The hint of the first mistaken implementation whose result on ``args`` equals ``got``."""
    for mistake, mistake_hint in mistakes:
        with np.errstate(all="ignore"):
            if close(got, to_array(mistake(*args)), equal_nan=True):
                return mistake_hint
    return None


RESULT_KINDS = {  # dtype kinds each kind of result may have, and what to say otherwise
    "float": ("f", "expected floating-point numbers, got dtype {dtype}"),
    "index": ("iu", "expected integer indices, got dtype {dtype}"),
    "mask": ("biuf", "expected an array of 0 and 1, got dtype {dtype}"),
    "number": ("iuf", "expected a number, got dtype {dtype}"),
}


def compare(got, want, args, mistakes, *, where, symbols, kind="float"):
    """Raise :class:`Incorrect` with the most specific hint unless ``got`` equals ``want``.

    In order: a known mistake, the shape (``symbols`` names the axes, e.g. ``"(N, K)"``),
    the dtype, NaN, and finally the first value that differs."""
    kinds, dtype_message = RESULT_KINDS[kind]
    if got.dtype.kind in kinds and close(got, want):
        return
    mistake_hint = known_mistake(got, args, mistakes)
    if mistake_hint:
        raise Incorrect(where + mistake_hint)
    if got.shape != want.shape:
        if want.shape == ():
            raise Incorrect(f"{where}expected a single number, got an array of shape {got.shape}.")
        message = f"{where}expected shape {symbols} = {want.shape}, got {got.shape}"
        if got.ndim == 2 and got.shape == want.shape[::-1]:
            message += ": did you transpose?"
        raise Incorrect(message + ".")
    if got.dtype.kind not in kinds:
        raise Incorrect(where + dtype_message.format(dtype=got.dtype) + ".")
    if np.isnan(got.astype("float64")).any():
        raise Incorrect(f"{where}your result contains NaN: a square root or log of a negative number, or 0 * log(0)?")
    if want.shape == ():
        raise Incorrect(f"{where}expected {float(want):.6g}, got {float(got):.6g}.")
    index = np.unravel_index(np.argmax(~np.isclose(got, want, rtol=1e-4, atol=1e-5)), want.shape)
    raise Incorrect(f"{where}the values differ: at index {tuple(int(i) for i in index)} expected "
                     f"{float(want[index]):.6g}, got {float(got[index]):.6g}.")


def check_number(fn, cases, reference, mistakes, where):
    """Check a learner's function that returns one number, on each case ``args`` of ``cases``;
    ``where(*args)`` says which case it was."""
    for args in cases:
        got = to_array(call(fn, *args))
        got = got.reshape(()) if got.size == 1 else got
        compare(got, as_numpy(reference(*args)), args, mistakes, where=where(*args), symbols="()", kind="number")


def describe_indices(indices, num_codes):
    """The start of a message about a case of codes: "With indices of shape ... and num_codes = K: "."""
    return f"With indices of shape {indices.shape} and num_codes = {num_codes}: "


# ---------------------------------------------------------------------------------------------
# Gradient checks (with the active Keras backend)
# ---------------------------------------------------------------------------------------------
def gradients_of(fn, inputs, extra_args, scalarize):
    """Differentiate the learner's function with the active Keras backend.

    Calls ``fn(*inputs, *extra_args)`` with ``inputs`` as backend tensors; ``scalarize``
    maps its result to a list of scalar tensors. Returns, for each scalar, the list of its
    gradients with respect to each of ``inputs`` as float64 NumPy arrays (zeros where the
    backend says there is no gradient, e.g. TensorFlow's None)."""
    try:
        return gradients(lambda *tensors: list(scalarize(call(fn, *tensors, *extra_args))), inputs)
    except RuntimeError as error:  # a backend that can't differentiate
        raise NotAttempted(str(error)) from error


def same_observation(got, want):
    """Two dicts of named arrays (values and gradients) agree."""
    return all(close(got[key], want[key], equal_nan=True) for key in want)


def check_by_observation(fn, cases, observe, reference, mistakes, diagnose):
    """The loop the gradient-checked exercises share: for each ``(where, args)`` case, observe
    the learner's function and the reference (values and gradients); when they differ, name
    the known mistake that matches, or else say what differs (``diagnose(got, want, *args)``)."""
    for where, args in cases:
        try:
            got = observe(fn, *args)
        except Incorrect as verdict:
            raise type(verdict)(where + str(verdict)) from None
        want = observe(reference, *args)
        if same_observation(got, want):
            continue
        for mistake, mistake_hint in mistakes:
            if same_observation(got, observe(mistake, *args)):
                raise Incorrect(where + mistake_hint)
        raise Incorrect(where + diagnose(got, want, *args))
