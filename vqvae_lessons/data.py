"""MNIST (and Fashion-MNIST), loaded and scaled the way the lessons and models expect.

Online, :func:`load_mnist` uses Keras's own download (``keras.datasets.mnist``).
Offline, point the environment variable ``VQVAE_LESSONS_MNIST`` at an ``.npz``
file in Keras's layout (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``;
images ``uint8`` of shape ``(N, 28, 28)``, labels ``uint8`` of shape ``(N,)``).
Every problem with that file raises :class:`MNISTDataError`, whose message names
the file, what is wrong with it, and how to fix it.

:func:`load_dataset` loads either dataset by name: ``"mnist"`` or ``"fashion_mnist"``
(Zalando's 28x28 clothes in ten classes, in the same layout: Keras's download online,
offline the ``.npz`` that ``VQVAE_LESSONS_FASHION_MNIST`` names).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

MNIST_ENV = "VQVAE_LESSONS_MNIST"
FASHION_MNIST_ENV = "VQVAE_LESSONS_FASHION_MNIST"
DATASETS = {  # name: (environment variable of the offline file, keras.datasets module, what it holds)
    "mnist": (MNIST_ENV, "mnist", "MNIST"),
    "fashion_mnist": (FASHION_MNIST_ENV, "fashion_mnist", "Fashion-MNIST"),
}
VALIDATION_SHARE = 12  # the last twelfth of the training images (MNIST's last 5,000): the validation split
VALIDATIONS = {
    "split": "trained on the first 55,000 training images; curves and choices on the last 5,000 (validation)",
    "test": "trained on all 60,000 training images; curves on the test set (as recipes did before the split)",
}
SCALES = {"unit": (0.0, 1.0), "centered": (-0.5, 0.5)}
_EXPECTED = {
    "x_train": ((28, 28), np.uint8),
    "y_train": ((), np.uint8),
    "x_test": ((28, 28), np.uint8),
    "y_test": ((), np.uint8),
}


def _fix(env=MNIST_ENV, module="mnist", title="MNIST"):
    return (f"Point {env} at an .npz in Keras's layout (as keras.datasets.{module}.load_data() "
            f"returns it: x_train uint8 (60000, 28, 28), y_train uint8 (60000,), x_test uint8 "
            f"(10000, 28, 28), y_test uint8 (10000,)), or unset {env} on a machine that can download {title}.")


_FIX = _fix()


class MNISTDataError(RuntimeError):
    """MNIST could not be loaded; the message says why and how to fix it."""


@dataclass(frozen=True)
class MNIST:
    """MNIST as float32 images of shape ``(N, 28, 28, 1)`` and uint8 labels ``(N,)``.

    ``variance`` is the pixel variance of the scaled training images: the
    Keras example divides its reconstruction loss by it. ``scale`` is the name
    of the pixel range ("unit" is [0, 1], "centered" is [-0.5, 0.5]).

    The validation split is fixed: ``x_val, y_val`` are the last twelfth of the training images
    (:data:`VALIDATION_SHARE`; MNIST's last 5,000), on which every epoch curve, early choice and
    recipe comparison is made, and ``x_fit, y_fit`` the rest (MNIST's first 55,000), which the
    models are fitted on. The test set ``x_test, y_test`` only reports final figures. ``x_train``
    is all of the training images (60,000), as Keras gives them.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    variance: float
    scale: str
    source: str
    dataset: str = "mnist"  # the name load_dataset knows it by: "mnist" or "fashion_mnist"

    @property
    def fit_size(self):
        """How many training images the models are fitted on: all but the last twelfth (55,000)."""
        return len(self.x_train) - len(self.x_train) // VALIDATION_SHARE

    x_fit = property(lambda self: self.x_train[:self.fit_size], doc="The first 55,000 training images.")
    y_fit = property(lambda self: self.y_train[:self.fit_size], doc="Their labels.")
    x_val = property(lambda self: self.x_train[self.fit_size:], doc="The last 5,000: the validation split.")
    y_val = property(lambda self: self.y_train[self.fit_size:], doc="Their labels.")

    def split(self, validation="split"):
        """``(x_fit, y_fit, x_val, y_val)``: the images a model trains on and those its curves use.

        ``validation="split"`` (every new recipe): the first 55,000 training images, and the
        last 5,000. ``"test"``: all 60,000, and the test set (how the older shipped recipes
        trained; their cards say so)."""
        if validation not in VALIDATIONS:
            raise ValueError(f"validation={validation!r} is not known: use 'split' (the last 5,000 training "
                             f"images) or 'test' (all 60,000, curves on the test set, as before the split).")
        if validation == "test":
            return self.x_train, self.y_train, self.x_test, self.y_test
        return self.x_fit, self.y_fit, self.x_val, self.y_val


def load_dataset(name: str = "mnist", scale: str = "unit", path: str | os.PathLike | None = None) -> MNIST:
    """Load the dataset ``name`` (``"mnist"`` or ``"fashion_mnist"``), scaled, as an :class:`MNIST`
    (the same fields, splits and validation split; ``source`` says where it came from).

    ``path``: an ``.npz`` in Keras's layout; default: the file the dataset's environment variable
    names (``VQVAE_LESSONS_MNIST``, ``VQVAE_LESSONS_FASHION_MNIST``), else Keras's download.
    Raises :class:`MNISTDataError` as :func:`load_mnist` does, naming the dataset's variable.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is not known: use one of {sorted(DATASETS)}.")
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is not known: use one of {sorted(SCALES)}.")
    env, module, title = DATASETS[name]
    path = path if path is not None else os.environ.get(env) or None
    if path is not None:
        arrays, source = _read_npz(os.fspath(path), env, title, _fix(env, module, title)), os.fspath(path)
    else:
        arrays, source = _download(module, env, title), f"keras.datasets.{module}"
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
        dataset=name,
    )


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
    return load_dataset("mnist", scale, path)


def _read_npz(path: str, env=MNIST_ENV, title="MNIST", fix=_FIX) -> dict[str, np.ndarray]:
    where = f"{env}={path}" if os.environ.get(env) == path else path
    if os.path.isdir(path):
        inside = ", ".join(sorted(name for name in os.listdir(path) if name.endswith(".npz"))) or "no .npz file"
        raise MNISTDataError(f"{title} path {where} is a folder, not a file (it holds {inside}): name the .npz "
                             f"itself, e.g. {os.path.join(path, title.lower() + '.npz')}. {fix}")
    if not os.path.isfile(path):
        raise MNISTDataError(f"{title} file not found: {where} does not exist. {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(set(_EXPECTED) - set(npz.files))
            if missing:
                raise MNISTDataError(
                    f"{title} file {where} lacks the keys {missing} (it has {sorted(npz.files)}). {fix}"
                )
            arrays = {key: npz[key] for key in _EXPECTED}
    except MNISTDataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise MNISTDataError(f"{title} file {where} is not a readable .npz ({error}). {fix}") from error
    _check_arrays(arrays, where, title, fix)
    return arrays


def _check_arrays(arrays: dict[str, np.ndarray], where: str, title="MNIST", fix=_FIX) -> None:
    for key, (item_shape, dtype) in _EXPECTED.items():
        array = arrays[key]
        if array.ndim != 1 + len(item_shape) or array.shape[1:] != item_shape:
            raise MNISTDataError(
                f"{title} file {where}: {key} has shape {array.shape}, expected (N, {', '.join(map(str, item_shape))})"
                .replace(", )", ")") + f". {fix}"
            )
        if array.dtype != dtype:
            raise MNISTDataError(f"{title} file {where}: {key} has dtype {array.dtype}, expected uint8. {fix}")
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(images) != len(labels) or len(images) == 0:
            raise MNISTDataError(
                f"{title} file {where}: x_{split} has {len(images)} images but y_{split} has "
                f"{len(labels)} labels. {fix}"
            )
        if labels.max() > 9:
            raise MNISTDataError(f"{title} file {where}: y_{split} holds labels above 9. {fix}")


def _download(module="mnist", env=MNIST_ENV, title="MNIST") -> dict[str, np.ndarray]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, module).load_data()
    except Exception as error:  # the download raises many kinds of errors offline
        raise MNISTDataError(
            f"Could not download {title} with keras.datasets.{module}.load_data() ({type(error).__name__}: "
            f"{error}). On a machine without internet access, download {module}.npz elsewhere and set "
            f"{env}=/path/to/{module}.npz."
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    _check_arrays(arrays, f"keras.datasets.{module}", title, _fix(env, module, title))
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
