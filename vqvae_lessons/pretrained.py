"""Trained weights shipped inside the package, each with its model card, and loading weights you trained.

``names()`` lists them, ``card(name)`` returns the card (settings, the command
that reproduces the weights, training time, library versions and test metrics)
and ``load(name)`` returns a ready model. Each ``NAME.weights.h5`` lies in
``vqvae_lessons/weights/`` beside ``NAME.json`` (the card's data) and
``NAME.md`` (the card for people).

The same functions load weights you trained (``load(weights_path=...)``), and :func:`evaluate` measures saved
weights on the test set again. Cards are read and written by :mod:`~vqvae_lessons.cards`; training recipes
again and saving their weights is :mod:`~vqvae_lessons.reproduce`.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

from .cards import PretrainedError, read_card, rebuild_hint
from .recipes import RECIPES

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ZIP_SIGNATURE = b"PK\x03\x04"  # a .keras archive is a zip
__all__ = ["PretrainedError", "WEIGHTS_DIR", "build_model", "card", "card_of", "evaluate", "evaluate_model", "load",
           "load_vqvae", "load_weights", "names", "save_compact", "shipped_judge"]


def names(kind=None):
    """Names of the shipped weights (of one ``kind``: "vqvae", "vae", "prior" or "judge", if given)."""
    return sorted(name for name, recipe in RECIPES.items() if kind is None or recipe.kind == kind)


def card(name):
    """The model card (a dict) of the shipped weights ``name``, in today's format (:func:`~vqvae_lessons.cards.upgrade`:
    e.g. a VQ-VAE's history says ``batch_perplexity``, which older cards call ``perplexity``)."""
    return read_card(card_path(name), name)


def card_of(name=None, weights_path=None):
    """The model card of the shipped weights ``name``, or of the ``.weights.h5`` at ``weights_path``."""
    if (name is None) == (weights_path is None):
        raise ValueError(f"Give exactly one of name (a shipped weight: {', '.join(names())}) and weights_path.")
    if name is not None:
        return card(name)
    weights = _weights_path(weights_path)
    return read_card(weights.with_name(weights.name.removesuffix(".weights.h5") + ".json"), str(weights))


def _weights_path(weights_path):
    """``weights_path`` as a Path, or a PretrainedError if it names a ``.keras`` archive (a whole saved model)."""
    weights = Path(weights_path)
    if weights.suffix == ".keras":
        raise PretrainedError(_keras_archive(weights))
    return weights


def _keras_archive(path):
    return (f"{path} is a .keras archive (a whole saved model, a zip file), not the NAME.weights.h5 that "
            f"python -m vqvae_lessons train writes with its NAME.json card beside it. Load the archive with "
            f"keras.saving.load_model({str(path)!r}) after importing vqvae_lessons (which registers its models), "
            f"or give the .weights.h5 file here.")


def load(name=None, weights_path=None):
    """A ready model: the shipped weights ``name``, or ``weights_path`` (a
    ``.weights.h5`` written by ``python -m vqvae_lessons train``, its ``.json``
    card beside it)."""
    if (name is None) == (weights_path is None):
        raise ValueError(f"Give exactly one of name (a shipped weight: {', '.join(names())}) and weights_path.")
    if name is not None:
        card_file, weights = card_path(name), WEIGHTS_DIR / f"{name}.weights.h5"
    else:
        weights = _weights_path(weights_path)
        card_file = weights.with_name(weights.name.removesuffix(".weights.h5") + ".json")
        name = str(weights)
    info = read_card(card_file, name)
    model = build_model(info["model"], info["config"], where=f"the model card {card_file}")
    _load_weights(model, weights, info)
    return model


KERAS_SETTINGS = ("name", "trainable", "dtype")  # what every Keras model's config may hold besides its own


def build_model(kind, config, where="a model card"):
    """An untrained model of ``kind`` ("vqvae", "vae", "prior" or "judge") built from a card's ``config``;
    a PretrainedError names an unknown kind or setting (``where``: the card, for the message)."""
    from .judge import Judge
    from .priors.build import prior_class
    from .priors.pixelcnn import PixelCNN
    from .vae import VAE
    from .vqvae import VQVAE

    models = {"vqvae": VQVAE, "vae": VAE, "prior": PixelCNN, "judge": Judge}
    if kind == "prior" and "architecture" in config:  # the class of the card's architecture (PixelCNN's default)
        try:
            models["prior"] = prior_class(config["architecture"])
        except ValueError as error:
            raise PretrainedError(f"The prior in {where}: {error}") from None
    if kind not in models:
        raise PretrainedError(f"Unknown model kind {kind!r} in {where}: expected one of {sorted(models)}.")
    parameters = inspect.signature(models[kind].__init__).parameters
    known = [p for p in parameters if p != "self" and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(config) - set(known) - set(KERAS_SETTINGS))
    if unknown:
        raise PretrainedError(f"The config in {where} has settings a {models[kind].__name__} does not take: "
                              f"{', '.join(map(repr, unknown))} (it takes {', '.join(known)}). Was it written by "
                              f"another version of vqvae_lessons, or edited by hand? Remove those entries, or "
                              f"retrain with python -m vqvae_lessons train {kind} ...")
    return models[kind](**config)


@functools.cache
def shipped_judge():
    """The shipped judge, ``load("judge-mnist")``, loaded once (for :func:`~vqvae_lessons.judge.judge_images`)."""
    return load("judge-mnist")


def load_vqvae(source):
    """A VQ-VAE from shipped weights' name or a ``.weights.h5`` path (what a prior's recipe and card name)."""
    source = str(source)
    is_path = source.endswith((".weights.h5", ".keras"))
    model = load(None if is_path else source, source if is_path else None)
    if not hasattr(model, "quantizer"):
        raise ValueError(f"{source} is not a VQ-VAE: give a VQ-VAE's shipped name or weights (--vqvae).")
    return model


def evaluate_model(model, kind, data, vqvae=None, train_codes=None):
    """The MNIST test-set metrics of ``model``, a ``kind`` ("vqvae", "vae", "prior" or "judge"), on ``data``.

    A prior is measured on the codes of ``vqvae``, with the unigram baseline of ``train_codes``
    (default: the codes of all of ``data``'s training images). See
    :func:`~vqvae_lessons.metrics.evaluate_vqvae`, :func:`~vqvae_lessons.metrics.evaluate_vae`,
    :func:`~vqvae_lessons.metrics.evaluate_prior` and :func:`~vqvae_lessons.judge.evaluate_judge`.
    """
    from . import judge, metrics

    if kind == "prior":
        labels = data.y_test.astype("int32") if model.conditional else None
        train_codes = vqvae.encode(data.x_train) if train_codes is None else train_codes
        return metrics.evaluate_prior(model, vqvae.encode(data.x_test), labels, train_codes=train_codes)
    if kind == "judge":
        return judge.evaluate_judge(model, data)
    evaluate_kind = metrics.evaluate_vqvae if kind == "vqvae" else metrics.evaluate_vae
    return evaluate_kind(model, data.x_test)


def evaluate(name=None, weights_path=None, data=None):
    """The test-set metrics of the shipped weights ``name``, or of ``weights_path`` (weights written by
    :func:`train_and_save`), measured again on ``data`` (default: the dataset
    its card names: MNIST, or Fashion-MNIST)."""
    from .data import load_dataset

    info = card_of(name, weights_path)
    model, data = load(name, weights_path), data or load_dataset(info["training"].get("dataset", "mnist"))
    vqvae = load_vqvae(info["vqvae"]) if info["model"] == "prior" else None
    return evaluate_model(model, info["model"], data, vqvae)


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


def card_path(name):
    """The path of the card of the shipped weights ``name``; a PretrainedError lists the shipped names."""
    if name not in RECIPES:
        raise PretrainedError(f"No shipped weights are called {name!r}. Choose one of: {', '.join(names())}.")
    return WEIGHTS_DIR / f"{name}.json"


def _load_weights(model, path, info):
    fix = f"Restore the file (git checkout -- {path.name}, or reinstall the package) or retrain: " \
          f"{rebuild_hint(info.get('name', str(path)))}"
    return load_weights(model, path, fix, "its card", info.get("config"))


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_weights(model, path, fix, described="its card", config=None, what="", error=PretrainedError):
    """Load the ``.weights.h5`` at ``path`` into ``model`` and return it, or raise ``error`` saying what is
    wrong (missing, not HDF5, not this model's: ``described`` names where ``config`` comes from) and ``fix``.
    ``what`` follows the file's name in the message of a missing file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"The weights file {path}{what} is missing. {fix}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(ZIP_SIGNATURE):
        raise error(f"{_keras_archive(path)} {fix}")
    if head != HDF5_SIGNATURE:
        hint = " (it looks like a Git LFS pointer)" if head.startswith(b"version") else ""
        raise error(f"The weights file {path} is not an HDF5 file{hint}: it is corrupt or truncated. {fix}")
    try:
        model.load_weights(path)
    except Exception as failure:  # h5py and Keras raise many kinds for damaged or mismatched files
        raise error(f"The weights file {path} does not fit the model {described} describes ({config}): "
                    f"{type(failure).__name__}: {failure}. {fix}") from failure
    return model
