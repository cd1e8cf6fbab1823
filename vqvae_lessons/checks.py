"""Input checks shared by every model (images, code maps) and batching helpers.

Each check returns its input in the form the models use, or raises a ``ValueError`` that
names what is wrong and how to fix it.
"""

from __future__ import annotations

import numpy as np
from keras import ops

IMAGE_SHAPE = (28, 28, 1)
CODE_GRID = (7, 7)


def in_batches(fn, array, batch_size):
    """``fn`` applied to ``array`` in slices of ``batch_size`` rows, the results (a tensor or a
    tuple of tensors per slice) converted to NumPy and concatenated along the first axis."""
    if len(array) == 0:
        raise ValueError("Got an empty array (0 rows): give at least one image or map of codes.")
    parts = [fn(array[i:i + batch_size]) for i in range(0, len(array), batch_size)]
    if parts and isinstance(parts[0], (tuple, list)):
        return tuple(np.concatenate([ops.convert_to_numpy(part[j]) for part in parts]) for j in range(len(parts[0])))
    return np.concatenate([ops.convert_to_numpy(part) for part in parts])


def concrete(x):
    """``x`` as a NumPy array when its values are known now (a NumPy array, a list, or a backend tensor
    used eagerly), else None: a symbolic tensor inside a compiled training step has no values to check
    (``fit`` checks its arrays before training instead)."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) and not all(np.isscalar(v) or isinstance(v, (list, tuple)) for v in x):
        return None  # a structure of tensors, not an array
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:  # a traced (JAX) or symbolic (TensorFlow, Keras) tensor: no values yet
        return None


def check_pieces(pieces, known, owner):
    """The learner's functions ``pieces`` (``{name: function}`` or None) for ``owner`` (a quantizer, a
    prior, ...), checked against its ``known`` piece names: a dict (empty for None), or a TypeError for what
    is not a dict of functions, a ValueError naming the known pieces for another name. Lessons build models
    from the exercises this way (see :func:`vqvae_lessons.exercises.use`)."""
    if pieces is None:
        return {}
    if not isinstance(pieces, dict):
        raise TypeError(f"pieces must be a dict {{name: function}}, got {type(pieces).__name__}.")
    for name, fn in pieces.items():
        if name not in known:
            raise ValueError(f"pieces: {name!r} is not a piece of {owner}; it knows {list(known) or 'none'}.")
        if not callable(fn):
            raise TypeError(f"pieces[{name!r}] must be a function, got {type(fn).__name__}.")
    return dict(pieces)


def check_train_size(train_size):
    """``train_size`` if it is None (all training images) or an int >= 1, else a ValueError saying so."""
    if train_size is not None and (isinstance(train_size, bool) or not isinstance(train_size, (int, np.integer))
                                   or train_size < 1):
        raise ValueError(f"train_size is the number of training images to train on, an int >= 1 (or None: all "
                         f"of them), got {train_size!r}; a negative number would silently leave out the last "
                         "images instead.")
    return train_size


def check_prior_settings(num_classes, dropout, **sizes):
    """Check the settings every prior shares: ``num_classes`` None (unconditional) or an int >= 1,
    ``dropout`` in [0, 1), and each of ``sizes`` (``channels=96``, ...) a positive integer; a
    ValueError names the first that is wrong."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
                                    or num_classes < 1):
        raise ValueError(f"num_classes is the number of class labels of a class-conditional prior, an int >= 1 "
                         f"(10 for MNIST's digits), or None for an unconditional prior; got {num_classes!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout is the fraction of features dropped while training, in [0, 1), got {dropout!r}.")
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_images(images):
    """Return ``images`` as float32 ``(N, 28, 28, 1)`` in [0, 1], or raise a ValueError that says how to fix them."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"Expected images of shape (N, 28, 28) or (N, 28, 28, 1), got {images.shape}.")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"Expected float images in [0, 1], got dtype {images.dtype}: divide uint8 pixels by 255.0 "
            "(load_mnist() does this for you)."
        )
    if np.isnan(images).any():
        raise ValueError(f"{int(np.isnan(images).sum())} pixels are NaN: find where they come from (a division "
                         "by zero?) or replace them, e.g. np.nan_to_num(images); pixels must be numbers in [0, 1].")
    if images.size and (images.min() < -1e-6 or images.max() > 1 + 1e-6):
        raise ValueError(
            f"Expected pixels in [0, 1], got values from {images.min():.3g} to {images.max():.3g}. "
            "Use load_mnist(scale='unit'); images scaled to [-0.5, 0.5] need 0.5 added."
        )
    return images.astype("float32", copy=False)


def model_images(images):
    """What a model of images computes on, in its ``call``: ``(N, 28, 28)`` images given their channel axis."""
    return ops.expand_dims(images, -1) if len(images.shape) == 3 else images


class ImageInputs:
    """A mixin for a ``keras.Model`` of images: calling the model on images whose values are known
    (NumPy arrays, or tensors used eagerly) checks them as ``encode`` does (:func:`check_images`),
    and so does ``fit`` with NumPy images ``x`` (and those of ``validation_data``), before training,
    giving ``(N, 28, 28)`` images their channel axis. Inside a compiled step there is nothing to check."""

    def __call__(self, *args, **kwargs):
        values = concrete(args[0] if args else kwargs.get("images"))
        if values is not None:
            check_images(values)
        return super().__call__(*args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            kwargs["validation_data"] = (_checked_images(validation[0]), *validation[1:])
        elif validation is not None:
            kwargs["validation_data"] = _checked_images(validation)
        return super().fit(_checked_images(x), y, *args, **kwargs)


def _checked_images(images):
    """NumPy (or list) images checked and shaped ``(N, 28, 28, 1)`` by :func:`check_images`; anything
    else (a ``tf.data.Dataset``, a generator, a backend tensor) as given."""
    if isinstance(images, list):
        images = np.asarray(images)
    return check_images(images) if isinstance(images, np.ndarray) else images


def check_indices(indices, num_embeddings):
    """Return ``indices`` as int32 ``(N, 7, 7)`` in ``[0, num_embeddings)``, or raise a ValueError."""
    indices = np.asarray(indices)
    if indices.ndim != 3 or indices.shape[1:] != CODE_GRID:
        raise ValueError(f"Expected code indices of shape (N, 7, 7), got {indices.shape}.")
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"Expected integer code indices, got dtype {indices.dtype}: use indices.astype('int32').")
    if indices.size and (indices.min() < 0 or indices.max() >= num_embeddings):
        raise ValueError(
            f"Code indices must lie in [0, {num_embeddings}) for a codebook of {num_embeddings} codes, "
            f"got values from {indices.min()} to {indices.max()}."
        )
    return indices.astype("int32", copy=False)
