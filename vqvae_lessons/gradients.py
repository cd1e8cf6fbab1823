"""Gradients on every Keras 3 backend, for checks that look at where a gradient flows.

Keras itself has no ``grad`` function: each backend differentiates its own way
(TensorFlow's ``GradientTape``, ``jax.grad``, PyTorch's autograd). :func:`gradients`
hides the difference, so the exercises' gradient checks, the tests and the lessons
run unchanged on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["gradients"]


def gradients(fn, inputs, variables=()):
    """Gradients of ``fn(*inputs)`` with respect to each input and each Keras variable.

    Args:
        fn: a function of backend tensors that returns one scalar, or a list or tuple
            of scalars.
        inputs: float arrays (NumPy or backend), one per argument of ``fn``; each is
            given to ``fn`` as a backend tensor of its dtype.
        variables: Keras variables ``fn`` reads (a layer's weights, say).

    Returns:
        For one scalar, a list with one float64 NumPy array per input and then per
        variable, each of that input's or variable's shape; for several scalars, one
        such list per scalar. Where a scalar does not depend on an input, its gradient
        is zeros (TensorFlow's ``None``, too).
    """
    inputs, variables = [np.asarray(ops.convert_to_numpy(a)) for a in inputs], list(variables)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        raw, single = _tensorflow(fn, inputs, variables)
    elif backend == "jax":
        raw, single = _jax(fn, inputs, variables)
    elif backend == "torch":
        raw, single = _torch(fn, inputs, variables)
    else:
        raise RuntimeError(f"gradients can't be taken with the {backend!r} Keras backend: set the environment "
                           "variable KERAS_BACKEND to tensorflow, jax or torch before importing keras.")
    shapes = [a.shape for a in inputs] + [tuple(v.shape) for v in variables]
    rows = [[np.zeros(shape) if g is None else np.asarray(ops.convert_to_numpy(g), "float64")
             for g, shape in zip(row, shapes, strict=True)] for row in raw]
    return rows[0] if single else rows


def _scalars(result):
    """``(list of scalars, whether fn returned a single one)``."""
    if isinstance(result, (list, tuple)):
        return list(result), False
    return [result], True


def _tensorflow(fn, inputs, variables):
    import tensorflow as tf

    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape(persistent=True) as tape:
        for tensor in tensors:
            tape.watch(tensor)
        scalars, single = _scalars(fn(*tensors))
    sources = tensors + [v.value for v in variables]
    return [[tape.gradient(s, source) for source in sources] for s in scalars], single


def _jax(fn, inputs, variables):
    import jax

    tensors = [jax.numpy.asarray(a) for a in inputs]
    values = [v.value for v in variables]

    def call(*args):
        with keras.StatelessScope(state_mapping=list(zip(variables, args[len(tensors):], strict=True))):
            return _scalars(fn(*args[:len(tensors)]))

    scalars, single = call(*tensors, *values)
    argnums = tuple(range(len(tensors) + len(values)))
    rows = [list(jax.grad(lambda *args, i=i: call(*args)[0][i], argnums=argnums)(*tensors, *values))
            for i in range(len(scalars))]
    return rows, single


def _torch(fn, inputs, variables):
    import torch

    tensors = [ops.convert_to_tensor(a).detach().requires_grad_(True) for a in inputs]
    sources = tensors + [v.value for v in variables]
    scalars, single = _scalars(fn(*tensors))
    rows = [list(torch.autograd.grad(s, sources, retain_graph=True, allow_unused=True))
            if isinstance(s, torch.Tensor) and s.requires_grad else [None] * len(sources) for s in scalars]
    return rows, single
