"""Training and measuring lesson 7's runs: :mod:`~vqvae_lessons.comparison` says what the runs are
and reads their results back; this module trains them (:func:`run_comparison`, what ``python -m
vqvae_lessons quantizers`` runs), measures each on the test set (:func:`train_run`), counts the codes in
use while one trains (:func:`code_use_callback`) and times the runs side by side (:func:`time_steps`).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .cards import library_versions, machine, write_card
from .comparison import DATA, INDEX, PRIOR, RESULTS_DIR, SHARED, _jsonable, plan, render_readme, same_settings


def code_use_callback(images, every=0):
    """A Keras callback that records in its ``history`` the codes used and their perplexity on ``images``
    at the start, every ``every`` training steps (0: never) and at every epoch's end. (Built when called:
    this module imports no Keras, so that ``python -m vqvae_lessons list`` starts at once.)"""
    import keras

    class CodeUse(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step, self.epoch, self.history = 0, 0, []

        def measure(self, epoch):
            used, perplexity = code_use(self.model.encode(images), self.model.num_embeddings)
            self.history.append({"step": self.step, "epoch": round(epoch, 3), "codes_used": used,
                                 "perplexity": round(perplexity, 3)})

        def on_train_begin(self, logs=None):
            self.measure(0.0)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if every and self.step % every == 0:
                self.measure(self.epoch + (batch + 1) / max(self.params.get("steps") or 1, 1))

        def on_epoch_end(self, epoch, logs=None):
            if self.history[-1]["step"] != self.step:
                self.measure(epoch + 1.0)

    return CodeUse()


def code_use(indices, num_embeddings):
    """``(codes used, perplexity)`` of code indices; with a stage axis (residual VQ, ``(N, 7, 7, S)``) each
    stage's codes count as codes of their own."""
    from . import metrics

    stages = indices.shape[-1] if indices.ndim == 4 else 1
    codes = indices + num_embeddings * np.arange(stages) if stages > 1 else indices
    return metrics.codes_used(codes, num_embeddings * stages), metrics.perplexity(codes, num_embeddings * stages)


def train_run(run, data, verbose=0, weights_dir=None):
    """Train ``run`` on ``data`` (an MNIST), measure it and its prior; return ``(model, record)``, the record
    ``quantizers.json`` keeps (``weights_dir``: where the weights go, for the prior's command)."""
    from . import metrics, train

    recipe = run.recipe()
    x_fit, _, x_val, _ = data.split(recipe.validation)
    tracker = code_use_callback(x_val, run.track_every)
    start = time.perf_counter()
    model, fit = train.train_vqvae(**recipe.settings(), data=data, verbose=verbose, callbacks=[tracker])
    seconds = time.perf_counter() - start
    results = metrics.evaluate_vqvae(model, data.x_test)
    validation = {k.replace("test_", "val_"): v for k, v in metrics.evaluate_vqvae(model, x_val).items()}
    test_codes = model.encode(data.x_test)
    rates = []
    for stages in range(1, model.num_stages + 1):  # residual VQ: each number of stages is a rate
        used = test_codes[..., :stages] if model.num_stages > 1 else test_codes
        error = metrics.mse(data.x_test.reshape(-1, 28, 28, 1), model.decode(used))
        rates.append({"stages": stages, "bits_per_position": stages * math.log2(model.num_embeddings),
                      "rate_bits": 49 * stages * math.log2(model.num_embeddings), "test_mse": error,
                      "test_psnr_db": metrics.psnr_db(error)})
    config = {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    record = {
        "name": run.name, "method": run.method, "label": run.label, "groups": list(run.groups),
        "settings": _jsonable(recipe.settings()), "command": recipe.command("--name", run.name), "config": config,
        "weights": f"{run.name}.weights.h5" if run.shipped else None, "rate_bits": model.rate_bits,
        "bits_per_position": model.bits_per_position, "metrics": results, "validation_metrics": validation,
        "rates": rates, "seconds": round(seconds, 1), "seconds_per_epoch": fit["seconds_per_epoch"],
        "median_seconds_per_epoch": fit["median_seconds_per_epoch"], "kmeans_init": fit["kmeans_init"],
        "restart_dead_codes": fit["restart_dead_codes"], "codes_restarted": fit["codes_restarted"],
        "code_use": tracker.history, "history": fit["history"], "fit": fit,
    }
    if run.prior:
        record["prior"] = _train_prior(run, model, data, x_fit[:recipe.train_size], verbose, weights_dir)
    return model, record


def _train_prior(run, model, data, images, verbose, weights_dir):
    from . import metrics, train

    prior_recipe = run.prior_recipe(Path(weights_dir or "runs") / f"{run.name}.weights.h5")
    settings = {k: v for k, v in prior_recipe.settings().items() if k != "vqvae"}
    codes = model.encode(images)
    start = time.perf_counter()
    prior, fit = train.train_prior(model, **settings, data=data, codes=codes, verbose=verbose)
    seconds = time.perf_counter() - start
    results = metrics.evaluate_prior(prior, model.encode(data.x_test), train_codes=codes)
    return {"settings": _jsonable(prior_recipe.settings()), "command": prior_recipe.command(),
            "metrics": results, "seconds": round(seconds, 1), "seconds_per_epoch": fit["seconds_per_epoch"],
            "median_seconds_per_epoch": fit["median_seconds_per_epoch"], "history": fit["history"]}


def run_comparison(out=RESULTS_DIR, runs=None, data=None, command="", resume=False, verbose=0, log=None):
    """Train every run of ``runs`` (default: :func:`plan`'s), write ``out/quantizers.json`` after each, the
    shipped runs' weights and cards, and ``out/README.md``; return the index (a dict). ``resume=True``
    keeps the runs already in ``out`` with the same settings. ``log``: called with a line a run."""
    from . import pretrained
    from .data import load_mnist

    runs, data, out = plan() if runs is None else list(runs), data or load_mnist(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / INDEX
    done = {r["name"]: r for r in json.loads(previous.read_text()).get("runs", [])} if (
        resume and previous.is_file()) else {}
    index = {"description": "Lesson 7's comparison of quantizers on MNIST: the 2017 learned codebook, the rotation "
                            "trick, SimVQ, FSQ, LFQ and residual VQ, at 343 bits per image and across rates.",
             "command": command, "settings": {k: getattr(runs[0].recipe(), k) for k in SHARED} if runs else {},
             "prior": {**PRIOR, "epochs": runs[0].prior_epochs if runs else PRIOR["epochs"]},
             "machine": machine(), "versions": library_versions(), "data": DATA, "runs": [], "complete": False}
    for number, run in enumerate(runs, 1):
        record = done.get(run.name)
        kept = record is not None and same_settings(record, run) and (
            not run.shipped or (out / f"{run.name}.weights.h5").is_file())
        if not kept:
            model, record = train_run(run, data, verbose, weights_dir=out)
            if run.shipped:
                shipped = pretrained.build_model("vqvae", record["config"])
                shipped.set_weights(model.get_weights())
                pretrained.save_compact(shipped, out / record["weights"])
                write_card(out, run.name, "vqvae", model, record.pop("fit"), record["metrics"],
                                      record["command"], run.label, {"data": DATA})
            record.pop("fit", None)
        if log:
            m = record["metrics"]
            log(f"[{number}/{len(runs)}] {run.name}: {'kept, ' if kept else ''}PSNR {m['test_psnr_db']:.2f} dB, "
                f"{m['codes_used']} codes used, perplexity {m['test_perplexity']:.1f}, {record['seconds']:.0f} s")
        index["runs"].append(record)
        index["total_seconds"] = round(sum(r["seconds"] + r.get("prior", {}).get("seconds", 0)
                                           for r in index["runs"]), 1)
        _write(out / INDEX, json.dumps(index, indent=1) + "\n")
    index["timing"] = time_steps(index, data)
    index["complete"] = True
    _write(out / INDEX, json.dumps(index, indent=1) + "\n")
    (out / "README.md").write_text(render_readme(index))
    return index


def time_steps(index, data, group="343", steps=10, rounds=10):
    """The seconds an epoch of each run of ``group`` takes, timed side by side: fresh models of the runs'
    configs, each round ``steps`` training steps of every model in turn (on a machine shared with other
    work, all are slowed alike), each round's mean step times the epoch's steps. Returns a dict for the
    index: each model's fastest round (the one least disturbed by other work, as ``timeit`` reports), and
    every round's figure (their spread is the noise)."""
    import keras

    from .pretrained import build_model

    records = [r for r in index["runs"] if group in r["groups"]]
    if not records:
        return {}
    settings = records[0]["settings"]
    fit_images = data.split(settings["validation"])[0]
    images, batch = fit_images[:settings["batch_size"] * steps], settings["batch_size"]
    per_epoch = math.ceil(min(settings["train_size"] or len(fit_images), len(fit_images)) / batch)
    models = []
    for r in records:
        model = build_model("vqvae", r["config"])
        model.compile(optimizer=keras.optimizers.Adam(r["settings"]["learning_rate"]))
        model.train_on_batch(images[:batch])  # compiles the step
        models.append(model)
    rounds_seen = {r["name"]: [] for r in records}
    for _ in range(rounds):
        for r, model in zip(records, models, strict=True):
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                model.train_on_batch(images[i:i + batch])
            rounds_seen[r["name"]].append(round((time.perf_counter() - start) / steps * per_epoch, 2))
    return {"description": f"{steps} training steps of each model in turn, {rounds} rounds; each round's mean step "
                           f"times the {per_epoch} steps of an epoch, the fastest round",
            "seconds_per_epoch": {name: min(t) for name, t in rounds_seen.items()},
            "rounds": rounds_seen}


def _write(path, text):
    partial = path.with_suffix(".json.partial")
    partial.write_text(text)
    partial.replace(path)  # never a half-written index
