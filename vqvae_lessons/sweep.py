"""Lesson 4's sweep: how the number K and the size D of the codes change a VQ-VAE.

One command trains every point and writes the results the package ships::

    python -m vqvae_lessons sweep --out vqvae_lessons/weights/sweep

The grid is a cross through a base point (K=128, D=16 by default): codebook sizes
``K`` at the base ``D``, and code sizes ``D`` at the base ``K``. Ablations at the base
point change one thing each: the codebook's learning rule (EMA or the codebook
loss), the codebook maintenance (k-means start, dead-code restarts) and ``beta``.
Every point is the small ``"keras-example"`` architecture, trained with
:func:`~vqvae_lessons.train.train_vqvae` and measured with
:func:`~vqvae_lessons.metrics.evaluate_vqvae` on the 10,000 test images.

The results folder holds ``sweep.json`` (the command, the settings, and for each
point its settings, test metrics, rate in bits and training seconds) and one
``NAME.weights.h5`` per point. :func:`load_sweep` reads the index,
:func:`point` one point's record and :func:`load_point` its trained model.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cards import PretrainedError, current_history, library_versions, machine, read_json
from .metrics import bits_per_image
from .pretrained import build_model, load_weights

SWEEP_DIR = Path(__file__).resolve().parent / "weights" / "sweep"
INDEX = "sweep.json"

GRID_NUM_EMBEDDINGS = (8, 16, 32, 64, 128, 256, 512)
GRID_EMBEDDING_DIM = (2, 4, 8, 16, 32, 64)
BASE = (128, 16)

# What every point shares unless an ablation changes it (the CLI's defaults).
DEFAULTS = {
    "architecture": "keras-example",
    "quantizer": "ema",
    "beta": 0.25,
    "decay": 0.99,
    "kmeans_init": True,
    "restart_dead_codes": True,
    "train_size": 20000,
    "epochs": 3,
    "batch_size": 128,
    "learning_rate": 1e-3,
    "seed": 0,
}

# Each ablation changes one or two settings of the base point; ``label`` says how, for tables and figures.
ABLATIONS = {
    "ema-no-restarts": {"label": "EMA, k-means start, no restarts", "restart_dead_codes": False},
    "ema-no-maintenance": {"label": "EMA, random start, no restarts", "kmeans_init": False,
                           "restart_dead_codes": False},
    "loss": {"label": "codebook loss, k-means start, restarts", "quantizer": "loss"},
    "loss-no-maintenance": {"label": "codebook loss, random start, no restarts (the Keras example)",
                            "quantizer": "loss", "kmeans_init": False, "restart_dead_codes": False},
    "beta-0.05": {"label": "EMA as the sweep, beta 0.05", "beta": 0.05},
    "beta-1": {"label": "EMA as the sweep, beta 1", "beta": 1.0},
    "seed-1": {"label": "EMA as the sweep, another seed (run-to-run spread)", "seed": 1},
}
BASE_LABEL = "EMA, k-means start, restarts (the sweep's setting)"


class SweepError(PretrainedError):
    """Sweep results are missing, damaged or don't hold what was asked for; the message says how to fix it."""


@dataclass(frozen=True)
class Point:
    """One model of the sweep: its name, group ("grid" or "ablation") and settings."""

    name: str
    group: str
    num_embeddings: int
    embedding_dim: int
    settings: dict = field(default_factory=dict)
    label: str = ""

    @property
    def rate_bits(self):
        """Bits per image the codes hold: 49 log2 K."""
        return rate_bits(self.num_embeddings)


def rate_bits(num_embeddings):
    """The rate of a ``7 x 7`` map of codes from ``K = num_embeddings``: ``49 log2(K)`` bits per image
    (:func:`~vqvae_lessons.metrics.bits_per_image`)."""
    return bits_per_image(num_embeddings)


def point_name(num_embeddings, embedding_dim, ablation=None):
    """``"k128-d16"``, or ``"k128-d16-loss"`` for an ablation."""
    return f"k{num_embeddings}-d{embedding_dim}" + (f"-{ablation}" if ablation else "")


def default_base(num_embeddings, embedding_dim):
    """The base ``(K, D)`` for lists of K and D: the values nearest (on a log scale) to 128 and 16."""
    nearest = lambda values, target: min(values, key=lambda v: (abs(math.log2(v / target)), v))  # noqa: E731
    return nearest(num_embeddings, BASE[0]), nearest(embedding_dim, BASE[1])


def plan(num_embeddings=GRID_NUM_EMBEDDINGS, embedding_dim=GRID_EMBEDDING_DIM, base=None, ablations=tuple(ABLATIONS),
         **settings):
    """The points a sweep trains, in order: the grid (K at the base D, then D at the base K), then the ablations.

    ``settings`` override :data:`DEFAULTS` for every point (e.g. ``train_size=256``).
    """
    num_embeddings = sorted({int(k) for k in num_embeddings})
    embedding_dim = sorted({int(d) for d in embedding_dim})
    if not num_embeddings or not embedding_dim or min(num_embeddings) < 2 or min(embedding_dim) < 1:
        raise ValueError(f"The sweep needs codebook sizes K >= 2 and code sizes D >= 1, got K={num_embeddings}, "
                         f"D={embedding_dim}.")
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown sweep settings {sorted(unknown)}: the settings are {sorted(DEFAULTS)}.")
    for ablation in ablations:
        if ablation not in ABLATIONS:
            raise ValueError(f"No ablation is called {ablation!r}: choose from {', '.join(ABLATIONS)}.")
    base_k, base_d = base or default_base(num_embeddings, embedding_dim)
    common = {**DEFAULTS, **settings}
    pairs = [(k, base_d) for k in num_embeddings] + [(base_k, d) for d in embedding_dim if d != base_d]
    if (base_k, base_d) not in pairs:
        pairs.append((base_k, base_d))  # the ablations compare with the base point: train it too
    points = [Point(point_name(k, d), "grid", k, d, dict(common), BASE_LABEL) for k, d in pairs]
    for ablation in ablations:
        changes = {k: v for k, v in ABLATIONS[ablation].items() if k != "label"}
        points.append(Point(point_name(base_k, base_d, ablation), "ablation", base_k, base_d, {**common, **changes},
                            ABLATIONS[ablation]["label"]))
    return points


def train_point(spec, data, verbose=0):
    """Train one :class:`Point` on ``data`` (an MNIST); return ``(model, record)``.

    ``record`` holds the point's name, group, K, D, rate, settings, test metrics,
    training seconds and Keras history (what ``sweep.json`` stores per point).
    """
    from . import metrics, train

    s = spec.settings
    start = time.perf_counter()
    model, fit = train.train_vqvae(s["architecture"], spec.num_embeddings, spec.embedding_dim, s["quantizer"],
                                   beta=s["beta"], decay=s["decay"], epochs=s["epochs"], batch_size=s["batch_size"],
                                   learning_rate=s["learning_rate"], seed=s["seed"], kmeans_init=s["kmeans_init"],
                                   restart_dead_codes=s["restart_dead_codes"], train_size=s["train_size"], data=data,
                                   validate=False, verbose=verbose)
    seconds = time.perf_counter() - start
    results = metrics.evaluate_vqvae(model, data.x_test)
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    record = {
        "name": spec.name,
        "group": spec.group,
        "label": spec.label,
        "num_embeddings": spec.num_embeddings,
        "embedding_dim": spec.embedding_dim,
        "rate_bits": spec.rate_bits,
        "settings": {**s, "train_size": fit["train_size"]},
        "config": config,
        "weights": f"{spec.name}.weights.h5",
        "metrics": {k: float(v) if isinstance(v, float) else v for k, v in results.items()},
        "seconds": round(seconds, 1),
        "seconds_per_epoch": fit["seconds_per_epoch"],
        "codes_restarted": fit["codes_restarted"],
        "history": fit["history"],
    }
    return model, record


def run_sweep(out=SWEEP_DIR, points=None, data=None, command="", resume=False, verbose=0, log=None):
    """Train every point of ``points`` (default: :func:`plan`'s full sweep), save each model's
    weights to ``out/NAME.weights.h5`` and the index ``out/sweep.json``; return the index (a dict).

    The index is rewritten after every point, so an interrupted sweep keeps what it finished;
    ``resume=True`` keeps points already in ``out`` whose settings match and trains only the rest.
    ``log`` is called with a line of progress per point (e.g. ``print`` to stderr).
    """
    from .data import load_mnist

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = plan() if points is None else list(points)
    data = data or load_mnist()
    done = {}
    if resume and (out / INDEX).is_file():
        try:
            previous = json.loads((out / INDEX).read_text())
            done = {r["name"]: r for r in previous.get("points", []) if (out / r["weights"]).is_file()}
        except (OSError, ValueError, KeyError, TypeError):
            done = {}
    index = {
        "description": "Lesson 4's sweep over the codebook size K and the code size D of a VQ-VAE on MNIST, "
                       "with ablations of the codebook's learning rule, its maintenance and beta at the base point.",
        "command": command,
        "settings": dict(points[0].settings) if points else {},
        "grid": {"num_embeddings": sorted({p.num_embeddings for p in points if p.group == "grid"}),
                 "embedding_dim": sorted({p.embedding_dim for p in points if p.group == "grid"}),
                 "base": _base_of(points)},
        "ablations": {p.name: p.label for p in points if p.group == "ablation"},
        "machine": machine(),
        "versions": library_versions(),
        "data": "MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0): the first train_size training images; metrics "
                "on the 10,000 test images.",
        "points": [],
        "complete": False,
    }
    for number, spec in enumerate(points, 1):
        record = done.get(spec.name)
        if record is not None and _same_settings(record, spec):
            if log:
                log(f"[{number}/{len(points)}] {spec.name}: kept from the previous run")
        else:
            model, record = train_point(spec, data, verbose)
            # A fresh copy holds the weights without the optimizer's state (a third of the file or less).
            shipped = build_model("vqvae", record["config"])
            shipped.set_weights(model.get_weights())
            shipped.save_weights(out / record["weights"])
            if log:
                m = record["metrics"]
                log(f"[{number}/{len(points)}] {spec.name}: PSNR {m['test_psnr_db']:.2f} dB, perplexity "
                    f"{m['test_perplexity']:.1f}, {m['codes_used']}/{spec.num_embeddings} codes used, "
                    f"{record['seconds']:.0f} s")
        index["points"].append(record)
        index["total_seconds"] = round(sum(r["seconds"] for r in index["points"]), 1)
        _write_index(out, index)
    index["complete"] = True
    _write_index(out, index)
    (out / "README.md").write_text(render_readme(index))
    return index


def _same_settings(record, spec):
    """Whether a point of an earlier run was trained exactly as ``spec`` asks (``train_size`` as it was
    used: the data may have fewer images than asked for)."""
    settings = record.get("settings")
    return isinstance(settings, dict) and settings == {**spec.settings, "train_size": settings.get("train_size")}


def _base_of(points):
    ablation = next((p for p in points if p.group == "ablation"), None)
    if ablation is not None:
        return [ablation.num_embeddings, ablation.embedding_dim]
    grid = [(p.num_embeddings, p.embedding_dim) for p in points if p.group == "grid"]
    if not grid:
        return None
    return list(default_base(sorted({k for k, _ in grid}), sorted({d for _, d in grid})))


def _write_index(out, index):
    path = Path(out) / INDEX
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(index, indent=1) + "\n")
    partial.replace(path)  # never a half-written index


def render_readme(index):
    """The results' card (Markdown): what was trained, how to reproduce it, how long it took, the metrics."""
    s = index["settings"]
    rows = "\n".join(
        f"| {r['name']} | {r['num_embeddings']} | {r['embedding_dim']} | {r['rate_bits']:.0f} | "
        f"{r['metrics']['test_psnr_db']:.2f} | {r['metrics']['test_perplexity']:.1f} | "
        f"{r['metrics']['codes_used']} | {r['label']} |" for r in index["points"])
    versions = ", ".join(f"{k} {v}" for k, v in index["versions"].items())
    return f"""# Lesson 4's sweep: number and size of the codes

{index['description']}

Each point is a VQ-VAE with the Keras example's encoder and decoder (`architecture="keras-example"`)
trained on the first {s.get('train_size')} MNIST training images for {s.get('epochs')} epochs (batch
{s.get('batch_size')}, Adam {s.get('learning_rate')}, seed {s.get('seed')}); unless its row says otherwise
an EMA codebook (decay {s.get('decay')}) started at k-means centroids with dead-code restarts, beta
{s.get('beta')}. Short runs: the numbers compare settings with each other; the model cards of the shipped
30-epoch models give better absolute figures.

## Intended uses and limitations
For teaching how K and D trade rate against distortion, in the VQ-VAE Lessons course (lesson 4). Trained
on MNIST only; not a general image model.

## Reproduce
```
{index['command']}
```
{len(index['points'])} models; their training took {index['total_seconds']:.0f} s in all (the sum of each point's
`seconds` in `sweep.json`; evaluating each on the test set adds a few seconds) on {index['machine']}.
Libraries: {versions}.
{index.get('note', '')}

## Test metrics (MNIST test set, 10,000 images)
| name | K | D | bits per image | PSNR (dB) | perplexity | codes used | codebook |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

`sweep.json` holds these with every setting and each point's training history;
`vqvae_lessons.sweep.load_point(K, D)` loads a point's model.
"""


# -- reading the results back ------------------------------------------------------------------------------
def _fix(directory):
    return (f"Reinstall the package (pip install -r requirements.txt) to restore the shipped results, or rerun the "
            f"sweep: python -m vqvae_lessons sweep --out {directory}")


def load_sweep(directory=None):
    """The sweep's index (``sweep.json``) as a dict; ``directory`` defaults to the shipped results.

    ``index["points"]`` is a list of per-point records, each with ``name``, ``group``,
    ``num_embeddings``, ``embedding_dim``, ``rate_bits``, ``settings``, ``metrics``
    (``test_mse``, ``test_psnr_db``, ``test_perplexity``, ``codes_used``, ``codebook_usage``,
    ``bits_per_image``), ``seconds`` and ``history`` (with today's metric names: see
    :func:`~vqvae_lessons.cards.current_history`).
    """
    directory = Path(directory) if directory is not None else SWEEP_DIR
    path = directory / INDEX
    index = read_json(path, f"The sweep's index {path}", _fix(directory), SweepError)
    if not isinstance(index, dict) or not isinstance(index.get("points"), list):
        raise SweepError(f"The sweep's index {path} has no list of points: it is not a sweep.json. {_fix(directory)}")
    index["directory"] = str(directory)
    for record in index["points"]:  # today's metric names (batch_perplexity; older indexes say perplexity)
        if isinstance(record, dict) and isinstance(record.get("history"), dict):
            record["history"] = current_history(record["history"])
    return index


def table(index=None, group=None):
    """One flat dict per point (name, group, label, K, D, rate_bits and the metrics), for tables and figures."""
    index = index if index is not None else load_sweep()
    return [{"name": r["name"], "group": r["group"], "label": r.get("label", ""), "K": r["num_embeddings"],
             "D": r["embedding_dim"], "rate_bits": r["rate_bits"], **r["metrics"], "seconds": r["seconds"],
             "codes_restarted": r.get("codes_restarted", 0)}
            for r in index["points"] if group is None or r["group"] == group]


def point(num_embeddings=None, embedding_dim=None, ablation=None, index=None):
    """The record of one point: grid point ``(K, D)``, or an ablation by name (at the base point).

    ``point(128, 16)``, ``point(ablation="loss")``; ``index`` is a :func:`load_sweep` result
    (default: the shipped sweep). Raises :class:`SweepError` naming the points there are.
    """
    index = index if index is not None else load_sweep()
    records = {r["name"]: r for r in index["points"]}
    if ablation is not None:
        base = index.get("grid", {}).get("base") or BASE
        k = num_embeddings if num_embeddings is not None else base[0]
        d = embedding_dim if embedding_dim is not None else base[1]
        name = point_name(k, d, ablation)
    else:
        if num_embeddings is None or embedding_dim is None:
            raise SweepError("Give a grid point as point(K, D), e.g. point(128, 16), or an ablation as "
                             "point(ablation='loss').")
        name = point_name(num_embeddings, embedding_dim)
    if name not in records:
        grid = ", ".join(f"({r['num_embeddings']}, {r['embedding_dim']})" for r in index["points"]
                         if r["group"] == "grid")
        ablations = ", ".join(r["name"].split("-", 2)[-1] for r in index["points"] if r["group"] == "ablation")
        raise SweepError(f"The sweep in {index.get('directory', SWEEP_DIR)} has no point {name!r}. Grid points "
                         f"(K, D): {grid or 'none'}; ablations: {ablations or 'none'}. The sweep varies K at the "
                         f"base D and D at the base K, so other pairs were not trained: train one with python -m "
                         f"vqvae_lessons train vqvae --architecture keras-example --num-embeddings K "
                         f"--embedding-dim D.")
    return records[name]


def load_point(num_embeddings=None, embedding_dim=None, ablation=None, index=None):
    """The trained :class:`~vqvae_lessons.vqvae.VQVAE` of one point (arguments as :func:`point`)."""
    index = index if index is not None else load_sweep()
    record = point(num_embeddings, embedding_dim, ablation, index)
    directory = Path(index.get("directory", SWEEP_DIR))
    model = build_model("vqvae", record["config"])
    return load_weights(model, directory / record["weights"], _fix(directory), "sweep.json", record["config"],
                        what=f" of the sweep's point {record['name']!r}", error=SweepError)
