"""Trained weights shipped inside the package, each with its model card.

``names()`` lists them, ``card(name)`` returns the card (settings, the command
that reproduces the weights, training time, library versions and test metrics)
and ``load(name)`` returns a ready model. Each ``NAME.weights.h5`` lies in
``vqvae_lessons/weights/`` beside ``NAME.json`` (the card's data) and
``NAME.md`` (the card for people).

The same functions serve weights you train: :func:`train_and_save` trains a recipe
(:mod:`~vqvae_lessons.recipes`) and writes its weights and card into a folder,
:func:`reproduce` does so for a shipped weight and :func:`reproduce_all` for several, in the
order they depend on one another (into ``./reproduced`` by default, never over the shipped
files unless asked), and :func:`evaluate` measures saved weights on the test set again. The
command line only calls them.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import json
import platform
from pathlib import Path

from . import recipes
from .recipes import RECIPES

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Where reproduce writes by default: a folder in the working directory, never the package's own
# weights (with an editable install, those are the repository's files).
REPRODUCED_DIR = Path("reproduced")
KINDS = ("vqvae", "vae", "prior", "judge")
# A VQ-VAE's fit logs the mean of its batches' perplexities as batch_perplexity; cards (and the
# sweep's index) written before the rename call it perplexity.
RENAMED_METRICS = {"perplexity": "batch_perplexity"}
ZIP_SIGNATURE = b"PK\x03\x04"  # a .keras archive is a zip


class PretrainedError(RuntimeError):
    """Shipped weights could not be loaded; the message says why and how to fix it."""


def names(kind=None):
    """Names of the shipped weights (of one ``kind``: "vqvae", "vae", "prior" or "judge", if given)."""
    return sorted(name for name, recipe in RECIPES.items() if kind is None or recipe.kind == kind)


def card(name):
    """The model card (a dict) of the shipped weights ``name``. Its ``history`` holds today's metric names
    (:func:`current_history`: a VQ-VAE's ``batch_perplexity``, which older cards call ``perplexity``)."""
    return _read_card(_card_path(name), name)


def current_history(history, kind="vqvae"):
    """A Keras history dict of a ``kind`` of model with the metrics renamed since it was recorded under
    today's names: a VQ-VAE's ``perplexity`` and ``val_perplexity`` (the mean of per-batch
    perplexities) become ``batch_perplexity`` and ``val_batch_perplexity``, as ``VQVAE.fit`` logs them
    now. Histories that have today's names already are returned as they are."""
    if kind != "vqvae":
        return dict(history)
    renamed = {}
    for key, values in history.items():
        prefix, base = ("val_", key[4:]) if key.startswith("val_") else ("", key)
        new = prefix + RENAMED_METRICS.get(base, base)
        renamed[new if new not in history else key] = values
    return renamed


def card_of(name=None, weights_path=None):
    """The model card of the shipped weights ``name``, or of the ``.weights.h5`` at ``weights_path``."""
    if (name is None) == (weights_path is None):
        raise ValueError(f"Give exactly one of name (a shipped weight: {', '.join(names())}) and weights_path.")
    if name is not None:
        return card(name)
    weights = _weights_path(weights_path)
    return _read_card(weights.with_name(weights.name.removesuffix(".weights.h5") + ".json"), str(weights))


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
        card_path, weights = _card_path(name), WEIGHTS_DIR / f"{name}.weights.h5"
    else:
        weights = _weights_path(weights_path)
        card_path = weights.with_name(weights.name.removesuffix(".weights.h5") + ".json")
        name = str(weights)
    info = _read_card(card_path, name)
    model = build_model(info["model"], info["config"], where=f"the model card {card_path}")
    _load_weights(model, weights, info)
    return model


KERAS_SETTINGS = ("name", "trainable", "dtype")  # what every Keras model's config may hold besides its own


def build_model(kind, config, where="a model card"):
    """An untrained model of ``kind`` ("vqvae", "vae", "prior" or "judge") built from a card's ``config``;
    a PretrainedError names an unknown kind or setting (``where``: the card, for the message)."""
    from .judge import Judge
    from .priors import TRANSFORMERS
    from .priors.build import prior_class
    from .priors.pixelcnn import PixelCNN
    from .vae import VAE
    from .vqvae import VQVAE

    models = {"vqvae": VQVAE, "vae": VAE, "prior": PixelCNN, "judge": Judge}
    if kind == "prior" and config.get("architecture") in TRANSFORMERS:  # a transformer prior's card
        models["prior"] = prior_class(config["architecture"])
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


def train_and_save(recipe, directory="runs", name=None, data=None, command=None, verbose="auto", vqvae=None):
    """Train ``recipe`` (see :mod:`~vqvae_lessons.recipes`) on ``data`` (default: MNIST), measure it on the
    test set and write ``NAME.weights.h5`` and its card (``NAME.json``, ``NAME.md``) into ``directory``.

    ``name`` defaults to ``recipe.default_name()``, ``command`` (the card's) to ``recipe.command()``. A
    prior trains on the codes of the VQ-VAE its recipe names, or of ``vqvae`` (a shipped name or a
    ``.weights.h5`` path) when given, which its card then names. Returns a summary: the name, the
    weights' path, the test metrics and the median seconds per epoch.
    """
    from .data import load_dataset

    dataset = getattr(recipe, "dataset", "mnist")
    if data is None or data.dataset != dataset:
        data = load_dataset(dataset)
    source = str(vqvae) if vqvae is not None else getattr(recipe, "vqvae", None)
    vqvae = codes = None
    if recipe.kind == "prior":
        vqvae = load_vqvae(source)
        codes = vqvae.encode(data.split(recipe.validation)[0][:recipe.train_size])  # once: to train, for the unigram
    model, record = recipes.train(recipe, data, vqvae, verbose=verbose, codes=codes)
    results = evaluate_model(model, recipe.kind, data, vqvae, train_codes=codes)
    record["fingerprint"] = recipes.fingerprint(recipe, data, vqvae)  # a few seconds: see recipes.fingerprint
    name = name or recipe.default_name()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A fresh copy holds the model's weights without the optimizer's state (half the file or more).
    shipped = build_model(recipe.kind, model.get_config())
    shipped.set_weights(model.get_weights())
    save_compact(shipped, directory / f"{name}.weights.h5")
    extra = {"vqvae": source} if recipe.kind == "prior" else {}
    write_card(directory, name, recipe.kind, model, record, results, command or recipe.command(),
               recipe.description, extra)
    return {"name": name, "weights": str(directory / f"{name}.weights.h5"), **results,
            "median_seconds_per_epoch": record["median_seconds_per_epoch"]}


def reproduce(name, directory=REPRODUCED_DIR, data=None, verbose="auto", vqvae=None):
    """Train the shipped weights ``name`` again with their recipe (``recipes.RECIPES[name]``) and write them
    and their card into ``directory`` (default: ``./reproduced``, in the working directory; give
    :data:`WEIGHTS_DIR` to replace the shipped files); see :func:`train_and_save`.

    A prior trains on the codes of the shipped VQ-VAE its recipe names, or of ``vqvae`` (the
    ``.weights.h5`` of that VQ-VAE reproduced in the same run: :func:`reproduce_all` passes it).
    """
    _card_path(name)  # an unknown name: the error lists the shipped ones
    recipe, directory = RECIPES[name], Path(directory)
    shipped = directory.resolve() == WEIGHTS_DIR
    if recipe.kind != "prior" or vqvae is None or str(vqvae) == recipe.vqvae:
        vqvae = None
    elif shipped and Path(vqvae).resolve() == WEIGHTS_DIR / f"{recipe.vqvae}.weights.h5":
        vqvae = None  # reproduced into the package's folder: it is the shipped VQ-VAE now, named as cards name it
    command = recipes.reproduce_command(name, out=None if shipped else directory, vqvae=vqvae)
    return train_and_save(recipe, directory, name, data, command, verbose, vqvae=vqvae)


def reproduce_order(chosen=None):
    """The shipped weights ``chosen`` (default: all of them) in an order they can be trained in: the
    VQ-VAEs, the VAE and the judge first, then the priors (each models the codes of a VQ-VAE).
    Raises a PretrainedError naming the shipped weights if one of ``chosen`` is not among them."""
    chosen = names() if chosen is None or not list(chosen) else list(dict.fromkeys(chosen))
    for name in chosen:
        _card_path(name)
    rank = {"vqvae": 0, "vae": 1, "judge": 2, "prior": 3}
    return sorted(chosen, key=lambda name: rank[RECIPES[name].kind])  # stable: the given order within a kind


def reproduce_all(chosen=None, directory=REPRODUCED_DIR, data=None, verbose="auto", log=None):
    """Reproduce the shipped weights ``chosen`` (default: all) into ``directory`` (default: ``./reproduced``),
    in :func:`reproduce_order`; return their summaries in that order.

    Each prior trains on the codes of its VQ-VAE as reproduced in this run when that VQ-VAE is one of
    ``chosen`` (its card then names those weights), else on the shipped VQ-VAE. MNIST (``data``) is
    loaded once; ``log`` is called with a line before each model (e.g. ``print`` to stderr).
    """
    from .data import load_mnist

    order = reproduce_order(chosen)
    data = data or load_mnist()
    reproduced, summaries = {}, []
    for number, name in enumerate(order, 1):
        recipe = RECIPES[name]
        vqvae = reproduced.get(recipe.vqvae) if recipe.kind == "prior" else None
        if log:
            codes = f", on the codes of {vqvae}" if vqvae else ""
            log(f"[{number}/{len(order)}] reproducing {name} into {directory}{codes}")
        summary = reproduce(name, directory, data, verbose, vqvae=vqvae)
        if recipe.kind == "vqvae":
            reproduced[name] = summary["weights"]
        summaries.append(summary)
    return summaries


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


def read_json(path, what, fix, error=PretrainedError):
    """The JSON data in ``path``, or ``error`` saying that ``what`` (e.g. "The model card PATH of
    'NAME'") is missing or not readable JSON, and ``fix``."""
    if not path.is_file():
        raise error(f"{what} is missing. {fix}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{what} is not readable JSON ({exc}). {fix}") from exc


def _read_card(path, name):
    fix = f"Reinstall the package (pip install -r requirements.txt) or retrain: {_rebuild_hint(name)}"
    where = f"The model card {path} of {name!r}"
    info = read_json(path, where, fix)
    if not isinstance(info, dict):
        raise PretrainedError(f"{where} is not a JSON object of entries (model, config, ...). {fix}")
    if "model" not in info:
        raise PretrainedError(f"{where} has no 'model' entry, the kind of model: one of {', '.join(KINDS)}. {fix}")
    if info["model"] not in KINDS:
        raise PretrainedError(f"{where} says its model is {info['model']!r}: expected one of {', '.join(KINDS)}. "
                              f"{fix}")
    if not isinstance(info.get("config"), dict):
        raise PretrainedError(f"{where} has no 'config' entry (the settings that build the model, as "
                              f"model.get_config() gives them){' (it is not a dict)' if 'config' in info else ''}. "
                              f"{fix}")
    if info["model"] == "prior" and not isinstance(info.get("vqvae"), str):
        raise PretrainedError(f"{where} is a prior's but names no 'vqvae', the VQ-VAE whose codes it models: add "
                              f'"vqvae": "NAME" (shipped weights) or "PATH.weights.h5" to the card, or retrain it '
                              f"with python -m vqvae_lessons train prior --vqvae ...")
    if "history" in info and isinstance(info["history"], dict):
        info["history"] = current_history(info["history"], info["model"])
    return info


def _load_weights(model, path, info):
    fix = f"Restore the file (git checkout -- {path.name}, or reinstall the package) or retrain: " \
          f"{_rebuild_hint(info.get('name', str(path)))}"
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
        "data": card_data(record.get("validation", "test"), record.get("dataset", "mnist")),
        **(extra or {}),
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    (directory / f"{name}.md").write_text(render_card(info))
    return info


def curves_on(card):
    """Which images a card's ``val_*`` curves were measured on, in a word: ``"validation"`` (the last
    5,000 training images, held out: :meth:`~vqvae_lessons.data.MNIST.split`) or ``"test"`` (the
    recipes trained with ``validation="test"``, on all 60,000; no shipped weight is)."""
    return "validation" if card["training"].get("validation", "test") == "split" else "test"


def card_data(validation, dataset="mnist"):
    """What a card says of its data: the dataset, which images trained the model and which drew its curves."""
    from .data import VALIDATIONS

    source = {"mnist": "MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0)",
              "fashion_mnist": "Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando Research, MIT licence)"}
    return f"{source[dataset]}: {VALIDATIONS[validation]}; metrics on the 10,000 test images."


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
    fingerprint, recorded = "", training.get("fingerprint")
    if recorded:
        fingerprint = (f"\nFingerprint (the recipe's first {recorded['steps']} steps, TensorFlow; "
                       f"`tests/test_fingerprints.py` retrains them): mean loss {recorded['loss']}, weights "
                       f"signature {recorded.get('weights')}.")
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
{training['machine']}. Libraries: {versions}.{fingerprint}
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
