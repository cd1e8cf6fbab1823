"""Training shipped recipes again, and writing weights with their cards.

:func:`train_and_save` trains a recipe (:mod:`~vqvae_lessons.recipes`) and writes its weights and card into a
folder; :func:`reproduce` does so for a shipped weight and :func:`reproduce_all` for several, in the order they
depend on one another (:func:`reproduce_order`), into ``./reproduced`` by default, never over the shipped files
unless asked. The command line (``python -m vqvae_lessons train`` and ``reproduce``) only calls them.
"""

from __future__ import annotations

from pathlib import Path

from . import pretrained, recipes
from .cards import write_card
from .pretrained import WEIGHTS_DIR, card_path, names
from .recipes import RECIPES

# Where reproduce writes by default: a folder in the working directory, never the package's own
# weights (with an editable install, those are the repository's files).
REPRODUCED_DIR = Path("reproduced")


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
        vqvae = pretrained.load_vqvae(source)
        codes = vqvae.encode(data.split(recipe.validation)[0][:recipe.train_size])  # once: to train, for the unigram
    model, record = recipes.train(recipe, data, vqvae, verbose=verbose, codes=codes)
    results = pretrained.evaluate_model(model, recipe.kind, data, vqvae, train_codes=codes)
    record["fingerprint"] = recipes.fingerprint(recipe, data, vqvae)  # a few seconds: see recipes.fingerprint
    name = name or recipe.default_name()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A fresh copy holds the model's weights without the optimizer's state (half the file or more).
    shipped = pretrained.build_model(recipe.kind, model.get_config())
    shipped.set_weights(model.get_weights())
    pretrained.save_compact(shipped, directory / f"{name}.weights.h5")
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
    card_path(name)  # an unknown name: the error lists the shipped ones
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
        card_path(name)
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


