"""Model cards: reading, checking, upgrading, writing and rendering them.

A card is ``NAME.json`` (its data: the kind of model, the config that builds it, how it trained, its test
metrics, the library versions) beside ``NAME.md`` (the same for people) and ``NAME.weights.h5``.
:func:`read_card` checks a card as it arrives and :func:`upgrade` s it (the one place that knows older cards'
format); :func:`write_card` writes both files and :func:`render_card` the Markdown. It imports no Keras, so
``python -m vqvae_lessons list`` starts at once.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path

from .recipes import RECIPES

KINDS = ("vqvae", "vae", "prior", "judge")
# A VQ-VAE's fit logs the mean of its batches' perplexities as batch_perplexity; cards (and the
# sweep's index) written before the rename call it perplexity.
RENAMED_METRICS = {"perplexity": "batch_perplexity"}


class PretrainedError(RuntimeError):
    """Trained weights (shipped, or one's own) or their card could not be loaded; the message says why and how
    to fix it."""


def upgrade(card):
    """``card`` (a dict read from a card's JSON) brought up to today's format, in place, and returned: every rule
    for cards written by older versions of the package is here, so that model code reads one format. Today's
    one rule: a VQ-VAE's history names its mean per-batch perplexity ``batch_perplexity`` (older cards,
    ``perplexity``; see :func:`current_history`)."""
    if isinstance(card.get("history"), dict):
        card["history"] = current_history(card["history"], card.get("model", "vqvae"))
    return card


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


def read_json(path, what, fix, error=PretrainedError):
    """The JSON data in ``path``, or ``error`` saying that ``what`` (e.g. "The model card PATH of
    'NAME'") is missing or not readable JSON, and ``fix``."""
    if not path.is_file():
        raise error(f"{what} is missing. {fix}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{what} is not readable JSON ({exc}). {fix}") from exc


def read_card(path, name):
    r"""The card at ``path`` (of the weights ``name``, for messages), checked and :func:`upgrade`\ d; a
    PretrainedError says what is missing or wrong and how to fix it."""
    fix = f"Reinstall the package (pip install -r requirements.txt) or retrain: {rebuild_hint(name)}"
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
    return upgrade(info)


def rebuild_hint(name):
    """The command that trains the weights ``name`` again: its recipe's, or ``train`` for weights of one's own."""
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
