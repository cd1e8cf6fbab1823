"""Trained weights shipped inside the package, each with its model card.

``names()`` lists them, ``card(name)`` returns the card (settings, the command
that reproduces the weights, training time, library versions and test metrics)
and ``load(name)`` returns a ready model. Each ``NAME.weights.h5`` lies in
``vqvae_lessons/weights/`` beside ``NAME.json`` (the card's data) and
``NAME.md`` (the card for people).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# Every shipped weight and the command-line arguments that train it
# (``python -m vqvae_lessons reproduce NAME`` runs ``train`` with them).
RECIPES = {
    "keras-example-k128-d16": ["vqvae", "--architecture", "keras-example", "--quantizer", "loss",
                               "--num-embeddings", "128", "--embedding-dim", "16", "--epochs", "30",
                               "--no-kmeans-init", "--no-restart-dead-codes", "--seed", "0"],
    "vqvae-k128-d16": ["vqvae", "--architecture", "residual", "--quantizer", "ema", "--num-embeddings", "128",
                       "--embedding-dim", "16", "--epochs", "30", "--seed", "0"],
    "vae-z2": ["vae", "--latent-dim", "2", "--epochs", "30", "--seed", "0"],
    "pixelcnn-keras-example": ["prior", "--vqvae", "keras-example-k128-d16", "--architecture", "keras-example",
                               "--epochs", "30", "--learning-rate", "3e-4", "--seed", "0"],
    "gated-keras-example": ["prior", "--vqvae", "keras-example-k128-d16", "--architecture", "gated",
                            "--channels", "96", "--dropout", "0.25", "--augment", "0.5", "--epochs", "20",
                            "--lr-schedule", "cosine", "--seed", "0"],
    "gated-vqvae": ["prior", "--vqvae", "vqvae-k128-d16", "--architecture", "gated", "--channels", "96",
                    "--dropout", "0.2", "--augment", "0.5", "--condition-on-moves", "--epochs", "20",
                    "--lr-schedule", "cosine", "--seed", "0"],
    "gated-vqvae-conditional": ["prior", "--vqvae", "vqvae-k128-d16", "--architecture", "gated", "--conditional",
                                "--dropout", "0.1", "--epochs", "24", "--lr-schedule", "cosine", "--seed", "0"],
    "judge-mnist": ["judge", "--epochs", "4", "--seed", "0"],
}

DESCRIPTIONS = {
    "keras-example-k128-d16": "The published Keras example's VQ-VAE, reproduced faithfully: its encoder and "
                              "decoder, a codebook learned by the codebook loss, no codebook maintenance.",
    "vqvae-k128-d16": "The project's default VQ-VAE at the same code budget (7x7 codes of K=128, 343 bits per "
                      "image): a residual encoder and decoder, an EMA codebook with k-means initialisation and "
                      "dead-code restarts.",
    "vae-z2": "A convolutional VAE with a 2-D latent space, for lesson 1's latent map and samples.",
    "pixelcnn-keras-example": "The published Keras example's PixelCNN prior, reproduced faithfully (7x7 type-A "
                              "convolution, two residual blocks, two 1x1 layers; Adam 3e-4, 30 epochs), over the "
                              "codes of keras-example-k128-d16.",
    "gated-keras-example": "The project's gated PixelCNN (no blind spot) over the codes of keras-example-k128-d16, "
                           "to compare with the example's prior on the same codes.",
    "gated-vqvae": "The project's default prior: a gated PixelCNN over the codes of vqvae-k128-d16.",
    "gated-vqvae-conditional": "A class-conditional gated PixelCNN over the codes of vqvae-k128-d16: it draws the "
                               "digit it is asked for.",
    "judge-mnist": "A small MNIST classifier that judges generated digits: its class probabilities give the "
                   "inception score and class histogram, its penultimate features the Frechet distance.",
}


class PretrainedError(RuntimeError):
    """Shipped weights could not be loaded; the message says why and how to fix it."""


def names(kind=None):
    """Names of the shipped weights (of one ``kind``: "vqvae", "vae", "prior" or "judge", if given)."""
    return sorted(name for name in RECIPES if kind is None or RECIPES[name][0] == kind)


def card(name):
    """The model card (a dict) of the shipped weights ``name``."""
    return _read_card(_card_path(name), name)


def card_of(name=None, weights_path=None):
    """The model card of the shipped weights ``name``, or of the ``.weights.h5`` at ``weights_path``."""
    if (name is None) == (weights_path is None):
        raise ValueError(f"Give exactly one of name (a shipped weight: {', '.join(names())}) and weights_path.")
    if name is not None:
        return card(name)
    weights = Path(weights_path)
    return _read_card(weights.with_name(weights.name.removesuffix(".weights.h5") + ".json"), str(weights))


def load(name=None, weights_path=None):
    """A ready model: the shipped weights ``name``, or ``weights_path`` (a
    ``.weights.h5`` written by ``python -m vqvae_lessons train``, its ``.json``
    card beside it)."""
    if (name is None) == (weights_path is None):
        raise ValueError(f"Give exactly one of name (a shipped weight: {', '.join(names())}) and weights_path.")
    if name is not None:
        card_path, weights = _card_path(name), WEIGHTS_DIR / f"{name}.weights.h5"
    else:
        weights = Path(weights_path)
        card_path = weights.with_name(weights.name.removesuffix(".weights.h5") + ".json")
        name = str(weights)
    info = _read_card(card_path, name)
    model = build_model(info["model"], info["config"])
    _load_weights(model, weights, info)
    return model


def build_model(kind, config):
    """An untrained model of ``kind`` ("vqvae", "vae", "prior" or "judge") built from a card's ``config``."""
    from .judge import Judge
    from .priors.pixelcnn import PixelCNN
    from .vae import VAE
    from .vqvae import VQVAE

    models = {"vqvae": VQVAE, "vae": VAE, "prior": PixelCNN, "judge": Judge}
    if kind not in models:
        raise PretrainedError(f"Unknown model kind {kind!r} in a model card: expected one of {sorted(models)}.")
    return models[kind](**config)


def save_compact(model, path):
    """Save ``model``'s weights (no optimizer state) to ``path``, a ``.weights.h5``, compressed.

    The kernel entries a PixelCNN's masks hide never change an output, so they are set to
    0 first: a prior's file then shrinks to about half. Any Keras loads the file as usual.
    """
    import h5py

    for layer in model._flatten_layers():
        if hasattr(layer, "mask") and hasattr(layer, "kernel") and hasattr(layer, "taps"):  # a MaskedConv2D
            layer.kernel.assign(layer.kernel * layer.mask[:, :, None, None])
    path = Path(path)
    model.save_weights(path)
    plain = path.with_name(path.name + ".plain")
    path.rename(plain)
    with h5py.File(plain, "r") as source, h5py.File(path, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value

        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                options = {"compression": "gzip", "shuffle": True} if item.shape else {}
                target.create_dataset(name, data=item[()], **options)
            else:
                target.require_group(name)
            for key, value in item.attrs.items():
                target[name].attrs[key] = value

        source.visititems(copy)
    plain.unlink()


def _card_path(name):
    if name not in RECIPES:
        raise PretrainedError(f"No shipped weights are called {name!r}. Choose one of: {', '.join(names())}.")
    return WEIGHTS_DIR / f"{name}.json"


def _read_card(path, name):
    fix = f"Reinstall the package (pip install -r requirements.txt) or retrain: {_rebuild_hint(name)}"
    if not path.is_file():
        raise PretrainedError(f"The model card {path} of {name!r} is missing. {fix}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PretrainedError(f"The model card {path} of {name!r} is not readable JSON ({error}). {fix}") from error


def _load_weights(model, path, info):
    fix = f"Restore the file (git checkout -- {path.name}, or reinstall the package) or retrain: " \
          f"{_rebuild_hint(info.get('name', str(path)))}"
    if not path.is_file():
        raise PretrainedError(f"The weights file {path} is missing. {fix}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        hint = " (it looks like a Git LFS pointer)" if head.startswith(b"version") else ""
        raise PretrainedError(f"The weights file {path} is not an HDF5 file{hint}: it is corrupt or truncated. {fix}")
    try:
        model.load_weights(path)
    except Exception as error:  # h5py and Keras raise many kinds for damaged or mismatched files
        raise PretrainedError(
            f"The weights file {path} does not fit the model its card describes ({info.get('config')}): "
            f"{type(error).__name__}: {error}. {fix}"
        ) from error


def _rebuild_hint(name):
    return f"python -m vqvae_lessons reproduce {name}" if name in RECIPES else "python -m vqvae_lessons train ..."


def write_card(directory, name, kind, model, record, metrics, command, description="", extra=None):
    """Write ``NAME.json`` and ``NAME.md`` (the model card) beside ``NAME.weights.h5`` in ``directory``.
    ``extra`` adds entries to the card's data (a prior's ``vqvae``, the weights whose codes it models)."""
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    info = {
        "name": name,
        "model": kind,
        "description": description,
        "config": config,
        "training": {**{k: v for k, v in record.items() if k != "history"}, "command": command,
                     "machine": machine()},
        "metrics": metrics,
        "history": record.get("history", {}),
        "versions": library_versions(),
        "data": "MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0): 60,000 training images; metrics on the "
                "10,000 test images.",
        **(extra or {}),
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    (directory / f"{name}.md").write_text(render_card(info))
    return info


def render_card(info):
    """The model card as Markdown, from its data."""
    training = info["training"]
    rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in info["metrics"].items())
    settings = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in info["config"].items())
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    optional = [("learning-rate schedule", training.get("lr_schedule")),
                ("training images moved by a pixel each epoch (fraction)", training.get("augment")),
                ("told which move made each map, sampled unmoved", training.get("condition_on_moves"))]
    optional = "".join(f"\n| {name} | {value} |" for name, value in optional if value)
    codes = ""
    if "vqvae" in info:
        codes = f"It models the codes of the VQ-VAE `{info['vqvae']}`: sample with both (`sampling.generate`)."
    return f"""# Model card: {info['name']}

{info['description']}
{codes}

## Intended uses and limitations
For learning and teaching how VQ-VAEs and VAEs work, in the VQ-VAE Lessons course: reconstructing,
encoding and generating 28x28 handwritten digits. It was trained on MNIST only; it is not a general
image model and says nothing reliable about images unlike MNIST digits.

## Data
{info['data']}

## Settings
| setting | value |
| --- | --- |
{settings}
| epochs | {training['epochs']} |
| batch size | {training['batch_size']} |
| learning rate (Adam) | {training['learning_rate']} |{optional}
| seed | {training['seed']} |

## Reproduce
```
{training['command']}
```
Training took {training['total_seconds']} s ({training['median_seconds_per_epoch']} s per epoch, median) on
{training['machine']}. Libraries: {versions}.
{training.get('note', '')}

## Test metrics (MNIST test set)
| metric | value |
| --- | --- |
{rows}

Measure them again with `python -m vqvae_lessons evaluate {info['model']} --pretrained {info['name']}`.
"""


def _fmt(value):
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def machine():
    """The machine a model trained on, for its card: architecture and CPU cores."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()}, {cores} CPU cores, no GPU"


def library_versions():
    """Python's, Keras's (and its backend), NumPy's and TensorFlow's versions, for a card."""
    import keras
    import numpy

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__,
                "backend": keras.backend.backend()}
    try:
        versions["tensorflow"] = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        pass
    return versions
