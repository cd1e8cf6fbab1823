"""Training on several devices: data parallelism with Keras 3's own machinery, nothing home-made.

Data parallelism copies the model onto every device, splits each global batch of ``B`` images
into ``R`` equal shards of ``B / R`` (one a device, a *replica*), and combines the shards'
gradients before one shared update, so that a step on ``R`` devices is, up to rounding, the
step one device takes on the whole batch. Each backend does it its own way:

* JAX: a :class:`keras.distribution.DataParallel` over a mesh of devices. Inside its scope the
  compiled training step is one program over the whole global batch, laid out across the
  devices: a sum over the batch (the EMA codebook's counts, the perplexity) is already the
  global one.
* TensorFlow: a :class:`tf.distribute.MirroredStrategy`. The training step runs once a replica,
  on its shard: Keras sums the gradients, but whatever a layer computes from its batch is the
  shard's, so the quantizers add their statistics over the replicas (:func:`replica_sum`,
  :func:`replica_mean`: the EMA codebook's counts and sums, the perplexity and usage, LFQ's
  codebook entropy) before they use them, and :func:`scale_loss` makes a model's own loss (the
  VQ-VAE's, MaskGIT's) its replica's share of the global batch's, as Keras does for the losses it
  computes itself.

:func:`distribution_for` turns a device count into the backend's object; :func:`scope` is the
context that :func:`~vqvae_lessons.train.train_vqvae` and :func:`~vqvae_lessons.train.train_prior`
build and fit a model in (their ``devices`` argument); :func:`training_devices` sets that argument
for every training inside it (the command line's ``train --devices N``). Outside a strategy's
replica, :func:`replica_sum`, :func:`replica_mean` and :func:`scale_loss` change nothing, so
training on one device runs exactly the code it ran before any of this existed.

On a CPU, split it into devices to try it: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
before JAX starts; ``tf.config.set_logical_device_configuration`` before TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import functools

import keras
from keras import ops

__all__ = ["replica_sum", "replica_mean", "num_replicas", "scale_loss", "distribution_for", "device_count",
           "check_batch_size", "scope", "training_devices", "even", "before_fit"]

# Keras's public distributions (their base class is not public): data parallel, and model parallel with a batch axis.
_KERAS_DISTRIBUTIONS = (keras.distribution.DataParallel, keras.distribution.ModelParallel)
_DEFAULT_DEVICES = [None]  # what devices=None means inside training_devices(...): None, a count or an object


def _replica_context():
    """The TensorFlow replica context of a step running on several replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def num_replicas():
    """How many replicas run the current step side by side: a MirroredStrategy's replicas inside its
    step (TensorFlow), else 1 (JAX's compiled step is one program over the global batch)."""
    context = _replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def replica_sum(x):
    """``x`` (any shape) summed over the replicas of a TensorFlow strategy's step: the same value on each
    (an all-reduce); ``x`` itself everywhere else (one device, JAX, eager code)."""
    context = _replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def replica_mean(x, axis=0):
    """The mean of ``x`` along ``axis`` (a batch axis) over the global batch: ``ops.mean(x, axis)`` on one
    replica, else the replicas' sums over their shards divided by their total length."""
    if _replica_context() is None:
        return ops.mean(x, axis=axis)
    count = ops.cast(ops.shape(x)[axis], x.dtype)
    return replica_sum(ops.sum(x, axis=axis)) / replica_sum(count)


def scale_loss(loss):
    """A replica's share of the global loss: ``loss / R`` in a TensorFlow strategy's step on R replicas
    (their gradients are summed, and Keras logs the sum), ``loss`` itself elsewhere. For a model's own
    ``compute_loss``; Keras scales the losses it computes itself (``compile(loss=...)``)."""
    replicas = num_replicas()
    return loss if replicas == 1 else ops.multiply(loss, ops.cast(1.0 / replicas, loss.dtype))


def even(arrays, count):
    """``arrays`` (a tuple of arrays, or of None) with each cut to its first ``len - len % count`` rows, so that
    every batch of a global batch size that ``count`` divides, an epoch's last one too, splits evenly among
    ``count`` devices (JAX cannot split one otherwise, TensorFlow would hand a device an empty shard):
    at most ``count - 1`` examples are left out. For ``count`` 1, ``arrays`` unchanged."""
    if count == 1:
        return arrays
    return tuple(None if a is None else a[:len(a) - len(a) % count] for a in arrays)


def before_fit(model, inputs, targets=None):
    """Ready a compiled ``model`` to ``fit`` on ``inputs`` (an array, or a tuple of them) and ``targets``
    inside a TensorFlow strategy of several replicas; nothing elsewhere. Keras builds the compiled loss
    there from the replicas' first batch averaged (``strategy.reduce("MEAN", ...)``), which turns integer
    codes into floats that a PixelCNN reads as one-hot maps of the wrong shape; its own loss, computed once
    here on two real examples, is built from their true types instead (``keras.Model.compute_loss``: a
    prior's cross-entropy, without any randomness of a model's own loss)."""
    if targets is None or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return
    x = tuple(a[:2] for a in inputs) if isinstance(inputs, tuple) else inputs[:2]
    keras.Model.compute_loss(model, x=x, y=targets[:2], y_pred=model(x), training=False)


def _available(backend):
    """The accelerators the backend sees, else its CPU devices: ``(kind, names)``."""
    if backend == "jax":
        import jax

        devices = [d for d in jax.devices() if d.platform != "cpu"] or jax.devices("cpu")
        return devices[0].platform.upper(), devices
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return devices[0].device_type, devices


_NAMES = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}


def _too_few(devices, backend, kind, found):
    """The ValueError of asking for more devices than the backend sees, with how to get them."""
    fix = (f"set XLA_FLAGS=--xla_force_host_platform_device_count={devices} before importing JAX"
           if backend == "jax" else
           f"split it into {devices} logical devices before TensorFlow starts (tf.config."
           f"set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * {devices}))")
    return ValueError(f"devices={devices} but {_NAMES[backend]} sees {found} {kind} device{'s' * (found != 1)}: on a "
                      f"CPU, {fix}; or use a runtime with {devices} GPUs (Colab: Runtime > Change runtime type); or "
                      f"ask for devices={found}.")


def distribution_for(devices):
    """The backend's data-parallel object for ``devices``, or None for one device.

    ``devices``: None or 1 (the backend's default device, as without this module), an int N > 1 (data
    parallel over the backend's first N GPUs, else CPU devices: a :class:`keras.distribution.DataParallel`
    on JAX, a :class:`tf.distribute.MirroredStrategy` on TensorFlow), or such an object, returned as it
    is. A ValueError says what to change: fewer devices than asked for, an object of the other
    backend, or a backend (PyTorch) that this package does not distribute.
    """
    if devices is None:
        return None
    backend = keras.backend.backend()
    if isinstance(devices, bool) or not isinstance(devices, int):
        return _checked_object(devices, backend)
    if devices < 1:
        raise ValueError(f"devices={devices} must be a positive number of devices (or None for the default one).")
    if devices == 1:
        return None
    if backend not in ("jax", "tensorflow"):
        raise ValueError(f"devices={devices}: training on several devices needs the JAX or TensorFlow backend, not "
                         f"{_NAMES.get(backend, backend)} (set KERAS_BACKEND=jax or tensorflow before importing "
                         f"Keras).")
    kind, found = _available(backend)
    if len(found) < devices:
        raise _too_few(devices, backend, kind, len(found))
    if backend == "jax":
        return keras.distribution.DataParallel(devices=found[:devices])
    return _mirrored(tuple(device.name for device in found[:devices]))


@functools.cache
def _mirrored(names):
    """One MirroredStrategy per set of devices, made once: TensorFlow numbers each strategy's collective
    operations from the same start, and a second strategy on the same devices in one process would
    reuse the first one's numbers (it fails: "Shape mismatch in the collective instance")."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(list(names))


def _checked_object(devices, backend):
    """``devices`` if it is a distribution this backend trains with, else a ValueError saying which it takes."""
    if isinstance(devices, _KERAS_DISTRIBUTIONS):
        if backend != "jax":
            raise ValueError(f"devices={type(devices).__name__}(...) is a keras.distribution, which Keras runs on the "
                             f"JAX backend only; on {_NAMES[backend]} pass a number of devices or a tf.distribute."
                             f"MirroredStrategy.")
        return devices
    if backend == "tensorflow":
        import tensorflow as tf

        if isinstance(devices, tf.distribute.Strategy):
            return devices
    takes = {"jax": "a keras.distribution.DataParallel", "tensorflow": "a tf.distribute.MirroredStrategy"}
    raise ValueError(f"devices={devices!r} is not a number of devices or a distribution: on "
                     f"{_NAMES.get(backend, backend)} pass None, "
                     f"an int, or {takes.get(backend, 'nothing else')}.")


def device_count(distribution):
    """How many shards a global batch is split into: the devices along a Keras distribution's batch axis,
    a strategy's replicas; 1 for None."""
    if distribution is None:
        return 1
    if isinstance(distribution, _KERAS_DISTRIBUTIONS):
        mesh = distribution.device_mesh
        batch_axis = getattr(distribution, "batch_dim_name", None)
        if batch_axis in mesh.axis_names:
            return int(mesh.shape[list(mesh.axis_names).index(batch_axis)])
        return int(mesh.devices.size)
    return int(distribution.num_replicas_in_sync)


def check_batch_size(batch_size, distribution):
    """Raise a ValueError with the fix unless the global ``batch_size`` splits evenly among the devices."""
    count = device_count(distribution)
    if batch_size % count:
        lower, upper = batch_size - batch_size % count, batch_size - batch_size % count + count
        other = f" or {lower} ({lower // count} a device)" if lower else ""
        raise ValueError(f"batch_size={batch_size} is the global batch, split evenly among the {count} devices: it "
                         f"must be a multiple of {count}; use batch_size={upper} ({upper // count} a device){other}, "
                         f"or another number of devices.")


@contextlib.contextmanager
def scope(devices, batch_size=None):
    """Build and fit models inside this to train them on ``devices`` (see :func:`distribution_for`; None:
    :func:`training_devices`'s, else the default device, and nothing changes). Checks that the global
    ``batch_size`` (when given) splits evenly; yields the number of devices."""
    distribution = distribution_for(_DEFAULT_DEVICES[-1] if devices is None else devices)
    if batch_size is not None:
        check_batch_size(batch_size, distribution)
    if distribution is None:
        yield 1
        return
    with distribution.scope():
        yield device_count(distribution)


@contextlib.contextmanager
def training_devices(devices):
    """Inside this, ``devices=None`` in :func:`~vqvae_lessons.train.train_vqvae` and
    :func:`~vqvae_lessons.train.train_prior` means ``devices``: so that code that calls them with no such
    argument (:func:`~vqvae_lessons.recipes.train`, :func:`~vqvae_lessons.reproduce.train_and_save`)
    trains on several devices. The command line's ``train --devices N`` runs in ``training_devices(N)``."""
    if devices is not None:
        distribution_for(devices)  # a bad setting fails here, before anything loads or trains
    _DEFAULT_DEVICES.append(devices)
    try:
        yield
    finally:
        _DEFAULT_DEVICES.pop()
