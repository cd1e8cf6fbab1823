"""Recipes: one record of settings per trained model, the single source of how it trains.

A recipe is a frozen dataclass, one class per kind of model: :class:`VQVAERecipe`,
:class:`VAERecipe`, :class:`PriorRecipe` and :class:`JudgeRecipe`. Its fields are the
settings, with the command line's defaults; :data:`RECIPES` holds the recipe of every
shipped weight. From one record come

* the command line's ``train`` options (``python -m vqvae_lessons train KIND --help``
  lists the fields of ``KIND``'s recipe, with their defaults),
* the command a model card records: :meth:`Recipe.command`, and for a shipped weight
  :func:`reproduce_command`,
* the training itself: :func:`train` trains any recipe; ``python -m vqvae_lessons
  reproduce NAME`` trains ``RECIPES[NAME]``.

:func:`from_card` reads the recipe back from a model card, to repeat a run::

    recipe = recipes.from_card(pretrained.card("gated-vqvae"))   # == recipes.RECIPES["gated-vqvae"]
    prior, record = recipes.train(recipe, data=mnist, vqvae=pretrained.load(recipe.vqvae))

Importing this module imports neither Keras nor the models: :func:`train` does, when called.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from .priors import ARCHITECTURES as PRIOR_ARCHITECTURES  # no Keras: the package of the priors, not their modules
from .priors import TRANSFORMERS

PROGRAM = "python -m vqvae_lessons"
# A card's train_size of every image its validation trains on (see data.MNIST.split): the recipe's None.
FULL_TRAIN_SIZE = {"split": 55000, "test": 60000}


def setting(default, help=None, *, check=None, choices=None, shown=False, fit=False, many=False):
    """A recipe's field: ``default`` is the command line's too, ``help`` its help text.

    ``check``: "positive" (an int >= 1), "fraction" (in [0, 1)) or "unit_fraction" (in
    [0, 1]), which the command line enforces; ``choices``: the values allowed. A rendered
    command names a ``shown`` setting always and any other only when it differs from its
    default; the settings of how the model is fitted (``fit``) follow ``--epochs`` there. ``many``: a tuple
    of values (``--levels 8 4 4``), each checked by ``check``.
    """
    return field(default=default, metadata={"setting": True, "help": help, "check": check, "choices": choices,
                                            "shown": shown, "fit": fit, "many": many})


@dataclass(frozen=True)
class Recipe:
    """What every recipe holds: the length and pace of training, the seed and the data used."""

    kind: ClassVar[str] = ""
    epochs: int = setting(30, check="positive", shown=True)
    batch_size: int = setting(128, check="positive")
    learning_rate: float = setting(1e-3)
    seed: int = setting(0, shown=True)
    train_size: int | None = setting(None, "train on the first N training images only (default: all of them)",
                                     check="positive")
    validation: str = setting("split", "split: train on the first 55,000 training images, curves and choices on "
                                       "the last 5,000; test: train on all 60,000, curves on the test set (as "
                                       "recipes did before the split; no shipped weight does now)",
                              choices=("split", "test"))
    # What the recipe is for: a shipped weight's card says it. Not a setting: recipes equal without it.
    description: str = field(default="", compare=False, repr=False)

    def __post_init__(self):
        """Check every setting as the command line does (``check`` and ``choices``): a recipe built in
        Python cannot hold what ``train`` would refuse, such as ``train_size=0`` or ``train_size=-5``."""
        for f in self.settings_fields():
            value, meta = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            if meta.get("many"):  # a tuple of values (a card's JSON and the command line give a list)
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not len(value):
                    raise ValueError(f"{type(self).__name__}: {f.name} must be a sequence of values, got {value!r}.")
                value = tuple(value)
                object.__setattr__(self, f.name, value)
                if meta["check"] == "positive" and any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                       for v in value):
                    raise ValueError(f"{type(self).__name__}: {f.name} must be positive integers, got {value!r}.")
                continue
            if meta["check"] == "positive" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{type(self).__name__}: {f.name} must be a positive integer"
                                 f"{' (or None)' if f.default is None else ''}, got {value!r}.")
            if meta["check"] in ("fraction", "unit_fraction"):
                top = 1 if meta["check"] == "unit_fraction" else None
                if not isinstance(value, (int, float)) or not (0 <= value <= 1 if top else 0 <= value < 1):
                    raise ValueError(f"{type(self).__name__}: {f.name} must be a fraction in "
                                     f"{'[0, 1]' if top else '[0, 1)'}, got {value!r}.")
            if meta["choices"] and value not in meta["choices"]:
                raise ValueError(f"{type(self).__name__}: {f.name} must be one of {list(meta['choices'])}, got "
                                 f"{value!r}.")

    @classmethod
    def settings_fields(cls):
        """The fields that are settings: the kind's own first, then those every recipe has."""
        settings = [f for f in dataclasses.fields(cls) if f.metadata.get("setting")]
        return [f for f in settings if f.name not in _COMMON] + [f for f in settings if f.name in _COMMON]

    def settings(self):
        """The settings as a dict (the keyword arguments of the kind's ``train_*`` function)."""
        return {f.name: getattr(self, f.name) for f in self.settings_fields()}

    def arguments(self):
        """The words after ``train`` of the command line that trains this recipe: ``["vqvae", "--architecture", ...]``.

        The kind's settings of the model and its data, then ``--epochs``, ``--batch-size`` and
        ``--learning-rate``, then the kind's settings of the fit, then ``--seed`` and ``--train-size``.
        """
        own = [f for f in self.settings_fields() if f.name not in _COMMON]
        by_name = {f.name: f for f in self.settings_fields()}
        order = ([f for f in own if not f.metadata["fit"]] + [by_name[n] for n in _COMMON[:3]]
                 + [f for f in own if f.metadata["fit"]] + [by_name[n] for n in _COMMON[3:]])
        words = [self.kind]
        for f in order:
            value, flag = getattr(self, f.name), option(f.name)
            if value is None or (value == f.default and not f.metadata["shown"]):
                continue
            if isinstance(value, bool):
                words.append(flag if value else flag.replace("--", "--no-", 1))
            elif isinstance(value, tuple):
                words += [flag, *map(_text, value)]
            else:
                words += [flag, _text(value)]
        return words

    def command(self, *extra):
        """The command that trains this recipe: ``python -m vqvae_lessons train KIND ...``, then ``extra`` words."""
        return f"{PROGRAM} " + shlex.join(["train", *self.arguments(), *map(str, extra)])

    def default_name(self):
        """The file name ``train`` gives the weights when no ``--name`` is given."""
        return self.kind

    @classmethod
    def _from_card_values(cls, card):
        """The settings a card records: what the training did (``training``), else the model (``config``)."""
        config, training = card.get("config", {}), card.get("training", {})
        values = {f.name: training.get(f.name, config.get(f.name, f.default)) for f in cls.settings_fields()}
        values["validation"] = training.get("validation", "test")  # cards older than the split trained so
        if values["train_size"] == FULL_TRAIN_SIZE[values["validation"]]:
            values["train_size"] = None
        return values


_COMMON = ("epochs", "batch_size", "learning_rate", "seed", "train_size", "validation")


@dataclass(frozen=True)
class VQVAERecipe(Recipe):
    """A :class:`~vqvae_lessons.vqvae.VQVAE`, trained by :func:`~vqvae_lessons.train.train_vqvae`."""

    kind: ClassVar[str] = "vqvae"
    architecture: str = setting("residual", choices=("keras-example", "residual"), shown=True)
    quantizer: str = setting("ema", "codebook learned by the codebook loss, or by exponential moving averages; "
                                    "fsq (--levels), lfq (--bits) or residual VQ rvq (--num-quantizers)",
                             choices=("loss", "ema", "fsq", "lfq", "rvq"), shown=True)
    num_embeddings: int = setting(128, "K, the codebook size", check="positive", shown=True)
    embedding_dim: int = setting(16, "D, the size of each code", check="positive", shown=True)
    beta: float = setting(0.25, "weight of the commitment loss")
    decay: float = setting(0.99, "EMA decay (--quantizer ema, and rvq's stages)")
    gradient: str = setting("straight_through", "how the gradient passes the codebook (loss, ema): rotation is the "
                                                "rotation trick", choices=("straight_through", "rotation"))
    codebook_transform: bool = setting(False, "SimVQ: codes C W, C frozen and random, W learned (--quantizer loss)")
    levels: tuple | None = setting(None, "FSQ's levels per channel, e.g. 8 4 4 (--quantizer fsq)", check="positive",
                                   many=True)
    bits: int | None = setting(None, "LFQ's bits per code (--quantizer lfq)", check="positive")
    num_quantizers: int | None = setting(None, "residual VQ's stages (--quantizer rvq)", check="positive")
    quantizer_dropout: float = setting(0.0, "residual VQ's quantizer dropout (--quantizer rvq)", check="unit_fraction")
    kmeans_init: bool = setting(True, "start the codebook at k-means centroids of encoder outputs", fit=True)
    restart_dead_codes: bool = setting(True, "move unused codes onto recent encoder outputs every 200 steps",
                                       fit=True)
    dataset: str = setting("mnist", "the images to train on: MNIST's digits or Fashion-MNIST's clothes",
                           choices=("mnist", "fashion_mnist"))

    def default_name(self):
        prefix = "keras-example" if self.architecture == "keras-example" else "vqvae"
        if self.quantizer == "fsq":
            return f"{prefix}-fsq-{'-'.join(map(str, self.levels or ()))}"
        if self.quantizer == "lfq":
            return f"{prefix}-lfq-{self.bits}"
        stages = f"-s{self.num_quantizers}" if self.quantizer == "rvq" else ""
        extra = ("-rotation" if self.gradient == "rotation" else "") + ("-simvq" if self.codebook_transform else "")
        return f"{prefix}-k{self.num_embeddings}-d{self.embedding_dim}-{self.quantizer}{stages}{extra}"


@dataclass(frozen=True)
class VAERecipe(Recipe):
    """A :class:`~vqvae_lessons.vae.VAE`, trained by :func:`~vqvae_lessons.train.train_vae`."""

    kind: ClassVar[str] = "vae"
    latent_dim: int = setting(2, check="positive", shown=True)

    def default_name(self):
        return f"vae-z{self.latent_dim}"


@dataclass(frozen=True)
class PriorRecipe(Recipe):
    """A prior over the codes of the VQ-VAE ``vqvae`` (a :class:`~vqvae_lessons.priors.pixelcnn.PixelCNN`, or
    a transformer of :mod:`~vqvae_lessons.priors.transformer`), trained by :func:`~vqvae_lessons.train.train_prior`."""

    kind: ClassVar[str] = "prior"
    vqvae: str = setting("vqvae-k128-d16", "the VQ-VAE whose codes it models: shipped weights, or a .weights.h5 "
                                           "written by train", shown=True)
    architecture: str = setting("gated", choices=tuple(PRIOR_ARCHITECTURES), shown=True)
    conditional: bool = setting(False, "condition on the digit's class (not the Keras example's)")
    channels: int | None = setting(None, "width (default: the architecture's)", check="positive")
    num_layers: int | None = setting(None, "gated or transformer blocks, or the example's residual blocks "
                                           "(default: the architecture's)", check="positive")
    heads: int | None = setting(None, "a transformer's attention heads (default: the architecture's)",
                                check="positive")
    mlp_ratio: int | None = setting(None, "a transformer's MLP width, in multiples of its channels (default: the "
                                          "architecture's)", check="positive")
    lr_schedule: str = setting("constant", "cosine: the learning rate falls to 0 along a cosine over the run",
                               choices=("constant", "cosine"), fit=True)
    dropout: float = setting(0.0, "fraction of the gated or transformer blocks' features dropped while training "
                                  "(not the Keras example's)", check="fraction")
    augment: float = setting(0.0, "fraction of the training images moved by a random pixel each epoch before "
                                  "encoding (fresh maps against overfitting)", check="unit_fraction")
    condition_on_moves: bool = setting(False, "with --augment: tell the prior which move made each map and keep "
                                              "the prior of unmoved maps, so that it does not learn to draw moved "
                                              "digits (unconditional)")

    def default_name(self):
        vqvae = Path(self.vqvae).name.removesuffix(".weights.h5")
        kind = self.architecture if self.architecture in TRANSFORMERS else f"pixelcnn-{self.architecture}"
        return f"{kind}{'-conditional' if self.conditional else ''}-{vqvae}"

    @classmethod
    def _from_card_values(cls, card):
        values = super()._from_card_values(card)
        # a prior told the moves is shipped unconditional (fix_label): num_classes None
        values.update(vqvae=card["vqvae"], conditional=card["config"].get("num_classes") is not None)
        for size, default in PRIOR_ARCHITECTURES.get(values["architecture"], {}).items():
            if values[size] == default:  # a card records the sizes the architecture gave: the recipe's None
                values[size] = None
        return values


@dataclass(frozen=True)
class JudgeRecipe(Recipe):
    """The MNIST classifier :class:`~vqvae_lessons.judge.Judge`, trained by
    :func:`~vqvae_lessons.judge.train_judge`."""

    kind: ClassVar[str] = "judge"

    def default_name(self):
        return "judge-mnist"


KINDS = {cls.kind: cls for cls in (VQVAERecipe, VAERecipe, PriorRecipe, JudgeRecipe)}

# Every shipped weight's recipe (``python -m vqvae_lessons reproduce NAME`` trains it).
RECIPES = {
    "keras-example-k128-d16": VQVAERecipe(
        architecture="keras-example", quantizer="loss", kmeans_init=False, restart_dead_codes=False,
        description="The published Keras example's VQ-VAE, reproduced faithfully: its encoder and decoder, a "
                    "codebook learned by the codebook loss, no codebook maintenance."),
    "vqvae-k128-d16": VQVAERecipe(
        description="The project's default VQ-VAE at the same code budget (7x7 codes of K=128, 343 bits per "
                    "image): a residual encoder and decoder, an EMA codebook with k-means initialisation and "
                    "dead-code restarts."),
    "vqvae-fashion-k128-d16": VQVAERecipe(
        dataset="fashion_mnist", epochs=10,
        description="The default VQ-VAE's recipe (7x7 codes of K=128, 343 bits per image) trained on Fashion-MNIST's "
                    "clothes instead of digits, for 10 epochs: what changes when the digits are not digits."),
    "vae-z2": VAERecipe(
        description="A convolutional VAE with a 2-D latent space, for lesson 1's latent map and samples."),
    "pixelcnn-keras-example": PriorRecipe(
        vqvae="keras-example-k128-d16", architecture="keras-example", learning_rate=3e-4,
        description="The published Keras example's PixelCNN prior, reproduced faithfully (7x7 type-A "
                    "convolution, two residual blocks, two 1x1 layers; Adam 3e-4, 30 epochs), over the codes of "
                    "keras-example-k128-d16."),
    "gated-keras-example": PriorRecipe(
        vqvae="keras-example-k128-d16", channels=96, dropout=0.2, augment=0.5, condition_on_moves=True, epochs=20,
        lr_schedule="cosine",
        description="The project's gated PixelCNN (no blind spot) with gated-vqvae's recipe, over the codes of "
                    "keras-example-k128-d16, to compare with the example's prior on the same codes."),
    "gated-vqvae": PriorRecipe(
        channels=96, dropout=0.2, augment=0.5, condition_on_moves=True, epochs=20, lr_schedule="cosine",
        description="The project's default prior: a gated PixelCNN over the codes of vqvae-k128-d16."),
    "gated-vqvae-conditional": PriorRecipe(
        conditional=True, dropout=0.1, epochs=24, lr_schedule="cosine",
        description="A class-conditional gated PixelCNN over the codes of vqvae-k128-d16: it draws the digit it "
                    "is asked for."),
    "transformer-vqvae": PriorRecipe(
        architecture="transformer", dropout=0.1, augment=0.5, condition_on_moves=True, epochs=20,
        lr_schedule="cosine",
        description="An autoregressive transformer prior (4 pre-norm causal blocks of width 128, 2-D position "
                    "embeddings) over the codes of vqvae-k128-d16, against gated-vqvae on the same codes."),
    "maskgit-vqvae": PriorRecipe(
        architecture="maskgit", dropout=0.1, augment=0.5, epochs=40, lr_schedule="cosine",
        description="A MaskGIT prior (2 bidirectional blocks of width 64, trained to fill in masked codes) over "
                    "the codes of vqvae-k128-d16: a whole map in a few parallel steps."),
    "maskgit-vqvae-wide": PriorRecipe(
        architecture="maskgit", channels=128, num_layers=4, dropout=0.1, augment=0.5, epochs=16,
        lr_schedule="cosine",
        description="A MaskGIT prior of the autoregressive transformer's depth and width (4 bidirectional blocks of "
                    "width 128, half its heads and MLP width) over the codes of vqvae-k128-d16: what a bigger "
                    "network buys MaskGIT, and what it costs."),
    "maskgit-vqvae-matched": PriorRecipe(
        architecture="maskgit", channels=128, num_layers=4, heads=4, mlp_ratio=4, dropout=0.1, augment=0.5,
        condition_on_moves=True, epochs=20, lr_schedule="cosine",
        description="A MaskGIT prior of the autoregressive transformer's size (4 bidirectional blocks of width 128, "
                    "4 heads, an MLP 4 times as wide) trained with its recipe, on the same moved maps and told the "
                    "moves, over the codes of vqvae-k128-d16: MaskGIT at equal parameters and training compute."),
    "judge-mnist": JudgeRecipe(
        epochs=4,
        description="A small MNIST classifier that judges generated digits: its class probabilities give the "
                    "inception score and class histogram, its penultimate features the Frechet distance."),
}


def option(name):
    """The command-line flag of a setting: ``"num_embeddings"`` -> ``"--num-embeddings"``."""
    return "--" + name.replace("_", "-")


def _text(value):
    """A setting's value as the command line reads it; a float in its shorter spelling (``3e-4``, ``0.25``)."""
    if isinstance(value, float):
        plain, scientific = repr(value), format(Decimal(repr(value)), "e")
        return scientific if len(scientific) < len(plain) else plain
    return str(value)


def reproduce_command(name, out=None, vqvae=None):
    """The command a shipped weight's card records: ``python -m vqvae_lessons reproduce NAME  # = train ...``.

    A reproduction written elsewhere (``out``, a folder) says ``--out OUT``; a prior trained on the codes
    of its VQ-VAE reproduced in the same run (``vqvae``, that VQ-VAE's ``.weights.h5``) names both
    models to reproduce, and its ``train`` words that VQ-VAE's file.
    """
    recipe = RECIPES[name]
    words = [name] if vqvae is None else [recipe.vqvae, name]
    if out is not None:
        words += ["--out", str(out)]
    trained = recipe if vqvae is None else dataclasses.replace(recipe, vqvae=str(vqvae))
    return f"{PROGRAM} reproduce {shlex.join(words)}  # = train {shlex.join(trained.arguments())}"


def from_card(card):
    """The recipe a model card (a dict, such as ``pretrained.card("gated-vqvae")``) records, every setting of it.

    A card's ``train_size`` of all 60,000 training images is the recipe's ``None``; its
    ``description`` is the recipe's. For a shipped card, ``from_card(card) == RECIPES[card["name"]]``.
    """
    kind = card.get("model")
    if kind not in KINDS:
        raise ValueError(f"A model card's model is one of {sorted(KINDS)}, got {kind!r}.")
    cls = KINDS[kind]
    return cls(**cls._from_card_values(card), description=card.get("description", ""))


def train(recipe, data=None, vqvae=None, verbose="auto", codes=None, validate=True, callbacks=()):
    """Train ``recipe`` on MNIST (``data``, an already loaded :class:`~vqvae_lessons.data.MNIST`, or
    :func:`~vqvae_lessons.data.load_mnist`'s); return ``(model, record)`` as the kind's ``train_*`` does.

    A prior trains on the codes of ``vqvae``, the VQ-VAE its recipe names, loaded (e.g.
    ``pretrained.load(recipe.vqvae)``); ``codes``: the training images' maps, when already encoded.
    ``validate=False`` skips the validation curves; ``callbacks``: more Keras callbacks for the fit.
    """
    from . import judge
    from . import train as training

    settings = recipe.settings()
    if recipe.kind == "prior":
        if vqvae is None:
            raise ValueError(f"A prior trains on the codes of a VQ-VAE: pass the one its recipe names, "
                             f"vqvae=pretrained.load_vqvae({recipe.vqvae!r}).")
        del settings["vqvae"]
        return training.train_prior(vqvae, **settings, data=data, verbose=verbose, codes=codes, validate=validate,
                                    callbacks=callbacks)
    trainers = {"vqvae": training.train_vqvae, "vae": training.train_vae, "judge": judge.train_judge}
    return trainers[recipe.kind](**settings, data=data, verbose=verbose, validate=validate, callbacks=callbacks)


FINGERPRINT_STEPS = 20
# How far two machines may differ in a fingerprint (relative), and why these numbers: measured by
# benchmarks/fingerprint_spread.py on every shipped recipe, TensorFlow 2.21 on two cores, each setting against this
# machine's defaults, and each real change against the same (the README's "Fingerprints" gives the table).
# - What legitimately varies (1 thread instead of 2, oneDNN off: another float32 summation order) moved the loss
#   curve of every recipe by at most 9.1e-5 (judge-mnist at step 16), except the VQ-VAEs whose codebook starts at
#   k-means centroids and moves by counts (EMA), where a near-tie that flips one assignment moved it by up to 8.9e-4
#   (vqvae-k128-d16; 1.0e-3 on an AMD EPYC, #25). The weights' signature moved by at most 4.5e-3 of its scale.
# - A real change (seed + 1, learning rate x 1.1, the training images in another order, Glorot-normal for
#   Glorot-uniform, an L2 term of 1e-2 times the weights' mean squares in the loss), on seven recipes: each of the
#   35 moved the curve or the weights beyond the tolerance; the smallest curve moves outside the L2 term were 8.6e-4
#   (transformer-vqvae, learning rate) and, for those VQ-VAEs, 8.4e-3 (vqvae-k128-d16, data order). The L2 term,
#   about 2e-4 of the loss, clears a tolerance by as little as 1.1x.
# The tolerances sit between: at least 2.2x above every machine-to-machine move.
FINGERPRINT_TOLERANCE = {"losses": 3e-4, "weights": 1e-2}
FINGERPRINT_TOLERANCE_COUNTED_CODEBOOK = {"losses": 3e-3, "weights": 1e-2}


def fingerprint_tolerance(recipe):
    """The relative tolerances a fingerprint of ``recipe`` is compared with (:data:`FINGERPRINT_TOLERANCE`): the
    looser :data:`FINGERPRINT_TOLERANCE_COUNTED_CODEBOOK` for a VQ-VAE whose codebook starts at k-means centroids
    or moves by counts (EMA), whose discrete assignments turn float rounding into larger moves."""
    counted = recipe.kind == "vqvae" and (recipe.kmeans_init or recipe.quantizer == "ema")
    return FINGERPRINT_TOLERANCE_COUNTED_CODEBOOK if counted else FINGERPRINT_TOLERANCE


def fingerprint_differences(measured, recorded, tolerance=FINGERPRINT_TOLERANCE):
    """What differs between two fingerprints (:func:`fingerprint`'s dicts) beyond ``tolerance``: a list of
    sentences, empty when they agree. The steps and images must be equal; each running mean of ``losses`` may
    differ by ``tolerance["losses"]`` of its value; ``weights`` by ``tolerance["weights"]`` of ``scale``."""
    problems = [f"{key}: {measured.get(key)} against {recorded.get(key)}" for key in ("steps", "train_size")
                if measured.get(key) != recorded.get(key)]
    for key in ("losses", "weights", "scale"):
        if key not in recorded:
            problems.append(f"the recorded fingerprint has no {key!r}: record it again (recipes.fingerprint)")
    if problems:
        return problems
    worst, step = max((abs(a - b) / abs(b), k) for k, (a, b) in enumerate(zip(measured["losses"],
                                                                             recorded["losses"], strict=True)))
    if worst > tolerance["losses"]:
        problems.append(f"the loss after step {step + 1} is {measured['losses'][step]} against "
                        f"{recorded['losses'][step]} (relative {worst:.1e} > {tolerance['losses']:.0e})")
    moved = abs(measured["weights"] - recorded["weights"]) / recorded["scale"]
    if moved > tolerance["weights"]:
        problems.append(f"the weights' signature is {measured['weights']} against {recorded['weights']} "
                        f"({moved:.1e} of its scale {recorded['scale']} > {tolerance['weights']:.0e})")
    return problems


def fingerprint(recipe, data=None, vqvae=None, steps=FINGERPRINT_STEPS):
    """A short, seeded signature of how ``recipe`` trains, which a model card records: ``{"steps",
    "train_size", "loss", "losses", "weights", "scale"}``. It trains the recipe for its first ``steps``
    steps (one epoch on its first ``steps * batch_size`` training images, no validation) and records
    their mean training loss, ``losses`` (the running mean after each step: entry k is the mean loss of
    steps 1..k), ``weights``, a fixed random projection of every weight after them
    (:func:`weights_signature`), and ``scale``, the size of such a projection (the root of the sum of the
    weights' mean squares). A prior's needs ``vqvae``, as :func:`train` does.
    """
    import keras

    class Losses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_train_batch_end(self, batch, logs=None):
            self.values.append(float(logs["loss"]))

    size = steps * recipe.batch_size
    quick = dataclasses.replace(recipe, epochs=1, train_size=size)
    losses = Losses()
    model, record = train(quick, data, vqvae, verbose=0, validate=False, callbacks=[losses])
    return {"steps": steps, "train_size": size, "loss": round(record["history"]["loss"][0], 6),
            "losses": [round(value, 8) for value in losses.values], "weights": round(weights_signature(model), 6),
            "scale": round(signature_scale(model), 6)}


def signature_scale(model):
    """The size of :func:`weights_signature`'s projection of ``model``'s weights: the root of the sum over its
    weights of their mean square (each term of the signature has that term's root mean square as its spread)."""
    import numpy as np

    return float(np.sqrt(sum(np.mean(np.square(np.asarray(w, "float64"))) for w in model.get_weights())))


def weights_signature(model):
    """One number that depends on every weight of ``model``: the sum over its weights ``w`` (in order)
    of ``w . r / sqrt(w.size)``, ``r`` standard normal draws of a fixed seed. Of order the weights' size."""
    import numpy as np

    rng, total = np.random.default_rng(0), 0.0
    for weight in model.get_weights():
        flat = np.asarray(weight, "float64").ravel()
        total += float(flat @ rng.standard_normal(flat.size)) / max(flat.size, 1) ** 0.5
    return total
