"""Lesson 7's measured comparison of quantizers: the 2017 codebook against its modern answers.

One command trains every run and writes the results the package ships::

    python -m vqvae_lessons quantizers --out vqvae_lessons/weights/quantizers

Every run is a :class:`~vqvae_lessons.vqvae.VQVAE` with the Keras example's encoder and decoder,
trained as lesson 4's sweep trains (the first 20,000 training images, 3 epochs, batch 128, Adam
1e-3, seed 0; :data:`COMMON`), so that its points sit next to the sweep's. Three groups
(:data:`RUNS`; a run may be in several):

* ``"343"``: at 343 bits per image (7x7 positions x 7 bits): the learned codebook with the
  straight-through gradient (K = 128, random start, no restarts: the 2017 recipe), the same with
  the rotation trick, SimVQ, FSQ with levels (8, 4, 4), LFQ with 7 bits, and the course's EMA
  codebook with k-means start and restarts for reference. Each gets a small gated PixelCNN
  (:data:`PRIOR`) whose test NLL says how predictable its codes are.
* ``"rate"``: across rates, about 4 to 12 bits a position: the course's VQ, FSQ, and one
  residual VQ with quantizer dropout measured at 1, 2 and 3 of its stages.
* ``"collapse"``: the learned codebook at K = 512, straight-through against the rotation trick,
  with the codes used on the validation images every 40 steps.

:mod:`~vqvae_lessons.comparison_training` trains and measures the runs. Choices are the recipes' (the
papers' defaults); the test set only measures. The results folder holds
``quantizers.json`` (per run: its command, settings, test and validation metrics, rates, seconds per
epoch, code use during training, its prior's NLL), ``README.md`` and, for the runs the lesson loads
(``shipped``), ``NAME.weights.h5`` with its model card ``NAME.json`` and ``NAME.md``.
:func:`load_results` reads the index, :func:`table` gives one row a run, :func:`load_model` a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .cards import PretrainedError, read_json
from .pretrained import load
from .recipes import PriorRecipe, VQVAERecipe

RESULTS_DIR = Path(__file__).resolve().parent / "weights" / "quantizers"
INDEX = "quantizers.json"
COMMON = {"architecture": "keras-example", "train_size": 20000, "epochs": 3, "batch_size": 128,
          "learning_rate": 1e-3, "seed": 0, "validation": "split", "kmeans_init": False, "restart_dead_codes": False}
PRIOR = {"architecture": "gated", "channels": 32, "num_layers": 4, "epochs": 3}
SHARED = ("architecture", "train_size", "epochs", "batch_size", "learning_rate", "seed", "validation")
MAINTAINED = {"quantizer": "ema", "kmeans_init": True, "restart_dead_codes": True}
DATA = ("MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0): the first train_size training images; the validation "
        "split (the last 5,000 training images) for code use during training; metrics on the 10,000 test images.")


@dataclass(frozen=True)
class Run:
    """One model of the comparison: its name, method, groups, how it differs from :data:`COMMON`."""

    name: str
    method: str
    label: str
    groups: tuple
    settings: dict = field(default_factory=dict)
    prior: bool = False
    shipped: bool = False
    track_every: int = 0  # code use on the validation images every this many steps (0: at epoch ends)
    prior_epochs: int = PRIOR["epochs"]

    def recipe(self):
        """The run's :class:`~vqvae_lessons.recipes.VQVAERecipe` (the command line's ``train vqvae``)."""
        return VQVAERecipe(**{**COMMON, **self.settings})

    def prior_recipe(self, vqvae_path):
        """The recipe of its prior, over the codes of the VQ-VAE saved at ``vqvae_path``."""
        recipe = self.recipe()
        return PriorRecipe(vqvae=str(vqvae_path), **{**PRIOR, "epochs": self.prior_epochs},
                           batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, seed=recipe.seed,
                           train_size=recipe.train_size, validation=recipe.validation)


def _fsq(levels, groups, **kw):
    return Run("fsq-" + "-".join(map(str, levels)), "fsq", f"FSQ, levels {tuple(levels)}", groups,
               {"quantizer": "fsq", "levels": tuple(levels)}, **kw)


RUNS = (
    Run("vq-k128", "vq", "VQ, K = 128: learned codebook, straight-through (2017)", ("343",),
        {"quantizer": "loss"}, prior=True, shipped=True),
    Run("vq-rotation-k128", "rotation", "VQ, K = 128, rotation trick", ("343",),
        {"quantizer": "loss", "gradient": "rotation"}, prior=True, shipped=True),
    Run("simvq-k128", "simvq", "SimVQ, K = 128", ("343",), {"quantizer": "loss", "codebook_transform": True},
        prior=True, shipped=True),
    _fsq((8, 4, 4), ("343", "rate"), prior=True, shipped=True),
    Run("lfq-7", "lfq", "LFQ, 7 bits", ("343",), {"quantizer": "lfq", "bits": 7}, prior=True, shipped=True),
    Run("vq-ema-k128", "vq-ema", "VQ, K = 128: EMA, k-means start, restarts (the course's)", ("343", "rate"),
        MAINTAINED, prior=True, shipped=True),
    Run("vq-k512", "vq", "VQ, K = 512, straight-through", ("collapse",),
        {"quantizer": "loss", "num_embeddings": 512}, track_every=40),
    Run("vq-rotation-k512", "rotation", "VQ, K = 512, rotation trick", ("collapse",),
        {"quantizer": "loss", "num_embeddings": 512, "gradient": "rotation"}, track_every=40),
    Run("vq-ema-k16", "vq-ema", "VQ, K = 16: EMA, k-means start, restarts", ("rate",),
        {**MAINTAINED, "num_embeddings": 16}),
    Run("vq-ema-k1024", "vq-ema", "VQ, K = 1024: EMA, k-means start, restarts", ("rate",),
        {**MAINTAINED, "num_embeddings": 1024}),
    Run("vq-ema-k4096", "vq-ema", "VQ, K = 4096: EMA, k-means start, restarts", ("rate",),
        {**MAINTAINED, "num_embeddings": 4096}),
    _fsq((4, 4), ("rate",)),
    _fsq((8, 5, 5, 5), ("rate",)),
    _fsq((7, 5, 5, 5, 5), ("rate",)),
    Run("rvq-3x16", "rvq", "Residual VQ, 3 stages of K = 16, quantizer dropout 0.5", ("rate",),
        {"quantizer": "rvq", "num_quantizers": 3, "num_embeddings": 16, "quantizer_dropout": 0.5,
         "kmeans_init": True}, shipped=True),
)


def plan(names=None, prior_epochs=None, **settings):
    """The runs ``names`` (default: all of :data:`RUNS`, in their order), with ``settings`` (e.g.
    ``train_size=64, epochs=1``) overriding :data:`COMMON` and ``prior_epochs`` the priors' epochs."""
    known = {run.name: run for run in RUNS}
    unknown = [name for name in names or () if name not in known]
    if unknown:
        raise ValueError(f"No run is called {', '.join(map(repr, unknown))}: choose from {', '.join(known)}.")
    wrong = set(settings) - set(COMMON)
    if wrong:
        raise ValueError(f"Unknown settings {sorted(wrong)}: the runs share {sorted(COMMON)}.")
    runs = [known[name] for name in names] if names else list(RUNS)
    epochs = {"prior_epochs": int(prior_epochs)} if prior_epochs is not None else {}
    return [replace(run, settings={**run.settings, **settings}, **epochs) for run in runs]


def same_settings(record, run):
    """Whether a record of ``quantizers.json`` was trained as ``run`` asks: a setting the record lacks (one
    added to the recipes after it was trained) counts as that setting's default."""
    defaults = _jsonable({f.name: f.default for f in VQVAERecipe.settings_fields()})
    stored = record.get("settings")
    return isinstance(stored, dict) and {**defaults, **stored} == _jsonable(run.recipe().settings())


def _jsonable(settings):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}


def render_readme(index):
    """The results' card (Markdown): what was trained, how to reproduce it, the tables."""
    s, p = index["settings"], index["prior"]
    rows = table(index)
    at_343 = "\n".join(
        f"| {r['name']} | {r['label']} | {r['test_mse']:.5f} | {r['test_psnr_db']:.2f} | {r['codes_used']} | "
        f"{r['test_perplexity']:.1f} | {r['median_seconds_per_epoch']:.1f} | "
        f"{_fmt(r['timed_seconds_per_epoch'], '.1f')} | {_fmt(r.get('prior_nll_bits_per_image'), '.1f')} |"
        for r in rows if "343" in r["groups"])
    rates = "\n".join(f"| {r['name']} | {point['bits_per_position']:.2f} | {point['rate_bits']:.0f} | "
                      f"{point['test_psnr_db']:.2f} |" for r in index["runs"] if "rate" in r["groups"]
                      for point in r["rates"])
    collapse = "\n".join(f"| {r['name']} | {' / '.join(str(c['codes_used']) for c in r['code_use'])} |"
                         for r in index["runs"] if "collapse" in r["groups"])
    versions = ", ".join(f"{k} {v}" for k, v in index["versions"].items())
    return f"""# Lesson 7's comparison of quantizers

{index['description']}

Every run is a VQ-VAE with the Keras example's encoder and decoder trained as lesson 4's sweep trains: the
first {s['train_size']} MNIST training images, {s['epochs']} epochs, batch {s['batch_size']}, Adam
{s['learning_rate']}, seed {s['seed']}; learned codebooks start at random with no restarts unless the row says
otherwise. Each run at 343 bits gets a gated PixelCNN ({p['channels']} channels, {p['num_layers']} layers,
{p['epochs']} epochs on the same images' codes). Short runs: they compare quantizers with each other; the
30-epoch model cards give better absolute figures.

## Intended uses and limitations
For teaching what the modern quantizers change, in the VQ-VAE Lessons course (lesson 7). Trained on MNIST only;
not a general image model.

## Reproduce
```
{index['command']}
```
{len(index['runs'])} runs; training and measuring them (priors included) took {index['total_seconds']:.0f} s
on {index['machine']}. Libraries: {versions}. Each run's own command (`train vqvae ...`, and its prior's
`train prior ...`) is in `quantizers.json`; the weights the lesson loads have model cards (`NAME.md`).
The seconds per epoch of each run were measured while it trained, on a machine shared with other work; the
column timed side by side ({index.get('timing', {}).get('description', 'not measured')}) compares speeds fairly.
{index.get('note', '')}

## At 343 bits per image (MNIST test set)
{_header("name", "quantizer", "MSE", "PSNR (dB)", "codes used", "perplexity", "s per epoch (run)",
          "s per epoch (timed side by side)", "prior NLL (bits per image)")}
{at_343}

## Across rates
| name | bits per position | bits per image | PSNR (dB) |
| --- | --- | --- | --- |
{rates}

## Codebook collapse at K = 512: codes used on the validation images, every 40 steps and at each epoch's end
| name | codes used |
| --- | --- |
{collapse}
"""


def _header(*names):
    return "| " + " | ".join(names) + " |\n" + "| --- " * len(names) + "|"


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


# -- reading the results back (no Keras: `python -m vqvae_lessons list` reads these) ------------------------------
def _fix(directory):
    return (f"Reinstall the package (pip install -r requirements.txt) to restore the shipped results, or rerun the "
            f"comparison: python -m vqvae_lessons quantizers --out {directory}")


def load_results(directory=None):
    """The comparison's index (``quantizers.json``) as a dict; ``directory`` defaults to the shipped results."""
    directory = Path(directory) if directory is not None else RESULTS_DIR
    path = directory / INDEX
    index = read_json(path, f"The comparison's index {path}", _fix(directory))
    if not isinstance(index, dict) or not isinstance(index.get("runs"), list):
        raise PretrainedError(f"The comparison's index {path} has no list of runs. {_fix(directory)}")
    index["directory"] = str(directory)
    return index


def record(name, index=None):
    """The record of the run ``name`` (a :func:`load_results` index's, default the shipped one)."""
    index = index if index is not None else load_results()
    runs = {r["name"]: r for r in index["runs"]}
    if name not in runs:
        raise PretrainedError(f"The comparison has no run {name!r}: choose from {', '.join(runs)}.")
    return runs[name]


def table(index=None, group=None):
    """One flat dict per run (name, method, label, groups, rate, test metrics, seconds per epoch, the prior's
    test NLL in bits per image), those of ``group`` ("343", "rate" or "collapse") if given."""
    index = index if index is not None else load_results()
    return [{"name": r["name"], "method": r["method"], "label": r["label"], "groups": r["groups"],
             "rate_bits": r["rate_bits"], "bits_per_position": r["bits_per_position"], **r["metrics"],
             "median_seconds_per_epoch": r["median_seconds_per_epoch"], "seconds": r["seconds"],
             "timed_seconds_per_epoch": index.get("timing", {}).get("seconds_per_epoch", {}).get(r["name"]),
             "prior_nll_bits_per_image": r.get("prior", {}).get("metrics", {}).get("test_nll_bits_per_image")}
            for r in index["runs"] if group is None or group in r["groups"]]


def rate_points(index=None):
    """The rate-distortion points of the "rate" group: one per run, or per number of stages for residual VQ;
    dicts with ``name``, ``method``, ``label``, ``short`` (a label for the figure), ``stages``,
    ``bits_per_position``, ``rate_bits``, ``test_mse`` and ``test_psnr_db``."""
    index = index if index is not None else load_results()
    points = []
    for r in index["runs"]:
        if "rate" not in r["groups"]:
            continue
        for point in r["rates"]:
            short = {"rvq": f"{point['stages']} stage{'s' if point['stages'] > 1 else ''}",
                     "fsq": str(tuple(r["config"].get("levels", ())))}.get(r["method"],
                                                                          f"K={r['config']['num_embeddings']}")
            points.append({"name": r["name"], "method": r["method"], "label": r["label"], "short": short, **point})
    return points


def load_model(name, index=None):
    """The trained VQ-VAE of a shipped run (``record(name)["weights"]`` is not None), from its card."""
    index = index if index is not None else load_results()
    entry = record(name, index)
    if not entry.get("weights"):
        shipped = [r["name"] for r in index["runs"] if r.get("weights")]
        raise PretrainedError(f"The run {name!r} is measured but its weights are not shipped: load one of "
                              f"{', '.join(shipped)}, or train it: {entry['command']}")
    return load(weights_path=Path(index["directory"]) / entry["weights"])


def listing(directory=None):
    """``{"quantizers/NAME": test metrics}`` of the shipped runs, for ``python -m vqvae_lessons list``."""
    try:
        index = load_results(directory)
    except PretrainedError:
        return {}
    return {f"quantizers/{r['name']}": r["metrics"] for r in index["runs"] if r.get("weights")}
