"""MNIST, loaded and scaled the way the lessons and models expect.

Online, :func:`load_mnist` uses Keras's own download (``keras.datasets.mnist``).
Offline, point the environment variable ``VQVAE_LESSONS_MNIST`` at an ``.npz``
file in Keras's layout (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``;
images ``uint8`` of shape ``(N, 28, 28)``, labels ``uint8`` of shape ``(N,)``).
Every problem with that file raises :class:`MNISTDataError`, whose message names
the file, what is wrong with it, and how to fix it.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

MNIST_ENV = "VQVAE_LESSONS_MNIST"
SCALES = {"unit": (0.0, 1.0), "centered": (-0.5, 0.5)}
_EXPECTED = {
    "x_train": ((28, 28), np.uint8),
    "y_train": ((), np.uint8),
    "x_test": ((28, 28), np.uint8),
    "y_test": ((), np.uint8),
}
_FIX = (
    f"Point {MNIST_ENV} at an .npz in Keras's layout (as keras.datasets.mnist.load_data() "
    f"returns it: x_train uint8 (60000, 28, 28), y_train uint8 (60000,), x_test uint8 "
    f"(10000, 28, 28), y_test uint8 (10000,)), or unset {MNIST_ENV} on a machine that "
    "can download MNIST."
)


class MNISTDataError(RuntimeError):
    """MNIST could not be loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class MNIST:
    """MNIST as float32 images of shape ``(N, 28, 28, 1)`` and uint8 labels ``(N,)``.

    ``variance`` is the pixel variance of the scaled training images: the
    Keras example divides its reconstruction loss by it. ``scale`` is the name
    of the pixel range ("unit" is [0, 1], "centered" is [-0.5, 0.5]).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    variance: float
    scale: str
    source: str


def load_mnist(scale: str = "unit", path: str | os.PathLike | None = None) -> MNIST:
    """Load MNIST, scale its pixels and return an :class:`MNIST`.

    Args:
        scale: "unit" for pixels in [0, 1] (what every model in this package
            takes) or "centered" for [-0.5, 0.5] (what the Keras example feeds).
        path: an ``.npz`` in Keras's layout. Defaults to the file named by the
            environment variable ``VQVAE_LESSONS_MNIST`` and, when that is unset,
            to Keras's download.

    Raises:
        MNISTDataError: the file is missing, unreadable or not in Keras's layout,
            or there is no file and the download failed.
        ValueError: ``scale`` is not one of "unit" and "centered".
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is not known: use one of {sorted(SCALES)}.")
    path = path if path is not None else os.environ.get(MNIST_ENV) or None
    if path is not None:
        arrays, source = _read_npz(os.fspath(path)), os.fspath(path)
    else:
        arrays, source = _download(), "keras.datasets.mnist"
    low, _ = SCALES[scale]
    x_train, x_test = (arrays[k].astype("float32")[..., None] / 255.0 + low for k in ("x_train", "x_test"))
    return MNIST(
        x_train=x_train,
        y_train=arrays["y_train"],
        x_test=x_test,
        y_test=arrays["y_test"],
        variance=float(np.var(x_train, dtype="float64")),
        scale=scale,
        source=source,
    )


def _read_npz(path: str) -> dict[str, np.ndarray]:
    where = f"{MNIST_ENV}={path}" if os.environ.get(MNIST_ENV) == path else path
    if os.path.isdir(path):
        inside = ", ".join(sorted(name for name in os.listdir(path) if name.endswith(".npz"))) or "no .npz file"
        raise MNISTDataError(f"MNIST path {where} is a folder, not a file (it holds {inside}): name the .npz "
                             f"itself, e.g. {os.path.join(path, 'mnist.npz')}. {_FIX}")
    if not os.path.isfile(path):
        raise MNISTDataError(f"MNIST file not found: {where} does not exist. {_FIX}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(_EXPECTED) - set(npz.files))
            if missing:
                raise MNISTDataError(
                    f"MNIST file {where} lacks the keys {missing} (it has {sorted(npz.files)}). {_FIX}"
                )
            arrays = {key: npz[key] for key in _EXPECTED}
    except MNISTDataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise MNISTDataError(f"MNIST file {where} is not a readable .npz ({error}). {_FIX}") from error
    _check_arrays(arrays, where)
    return arrays


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    for key, (item_shape, dtype) in _EXPECTED.items():
        array = arrays[key]
        if array.ndim != 1 + len(item_shape) or array.shape[1:] != item_shape:
            raise MNISTDataError(
                f"MNIST file {where}: {key} has shape {array.shape}, expected (N, {', '.join(map(str, item_shape))})"
                .replace(", )", ")") + f". {_FIX}"
            )
        if array.dtype != dtype:
            raise MNISTDataError(f"MNIST file {where}: {key} has dtype {array.dtype}, expected uint8. {_FIX}")
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels) or len(images) == 0:
            raise MNISTDataError(
                f"MNIST file {where}: x_{split} has {len(images)} images but y_{split} has "
                f"{len(labels)} labels. {_FIX}"
            )
        if labels.max() > 9:
            raise MNISTDataError(f"MNIST file {where}: y_{split} holds labels above 9. {_FIX}")


def _download() -> dict[str, np.ndarray]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # the download raises many kinds of errors offline
        raise MNISTDataError(
            f"Could not download MNIST with keras.datasets.mnist.load_data() ({type(error).__name__}: "
            f"{error}). On a machine without internet access, download mnist.npz elsewhere and set "
            f"{MNIST_ENV}=/path/to/mnist.npz."
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    _check_arrays(arrays, "keras.datasets.mnist")
    return arrays


def random_shift(images, seed=0, max_shift=1, return_moves=False):
    """Each image moved by its own random whole number of pixels: ``(N, 28, 28, 1)``, as given.

    The moves ``(dy, dx)`` are drawn uniformly from ``-max_shift .. max_shift`` in each
    direction, never ``(0, 0)``, and the pixels moved in from the border are 0 (background).
    Whole pixels need no interpolation, so the strokes stay exactly as sharp as MNIST's
    (a turn or a fractional move would blur them, and the codes of blurred digits are
    unlike those of the test digits). MNIST centres each digit only to the nearest pixel,
    so a move of a pixel or two still makes a digit as MNIST draws it, while to a prior its
    map of codes is a new one. The same ``seed`` gives the same moves.

    ``return_moves``: also return each image's move as a number ``(N,)`` int32 from 1 to
    ``len(shift_moves(max_shift))``, ``shift_moves(max_shift)[number - 1]`` being its
    ``(dy, dx)`` (0 is left for "not moved").
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(f"Expected images of shape (N, 28, 28, 1), got {images.shape}: add the channel axis with "
                         "images[..., None].")
    if not isinstance(max_shift, (int, np.integer)) or not 1 <= max_shift < 28:
        raise ValueError(f"max_shift is a whole number of pixels from 1 to 27, got {max_shift!r}.")
    moves = shift_moves(max_shift)
    chosen = np.random.default_rng(seed).integers(len(moves), size=len(images))
    padded = np.pad(images, [(0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)])
    moved = np.empty_like(images)
    for move, (dy, dx) in enumerate(moves):
        which = chosen == move
        top, left = max_shift - dy, max_shift - dx  # the content moves down by dy and right by dx
        moved[which] = padded[which, top:top + 28, left:left + 28]
    return (moved, (chosen + 1).astype("int32")) if return_moves else moved


def shift_moves(max_shift=1):
    """The moves ``(dy, dx)`` :func:`random_shift` draws from: every one within ``max_shift``
    pixels in each direction but ``(0, 0)``, row by row (8 for ``max_shift=1``)."""
    return [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)
            if (dy, dx) != (0, 0)]
