"""How far a shipped recipe's fingerprint moves under what legitimately varies, and under a real change.

What it measures
    For each recipe of ``recipes.RECIPES``, the quantities a fingerprint can be made of, after the
    recipe's first ``--steps`` seeded training steps (TensorFlow): the loss after each step (Keras's
    running mean of the epoch, so entry k is the mean loss of steps 1..k) and ``weights``
    (``recipes.weights_signature`` of the weights after the steps).

    * ``--settings``: what may legitimately differ between two machines that run the same code, each run
      in a fresh process: TensorFlow's thread counts (``threads-1``, ``threads-2``, ``threads-4``: intra-
      and inter-op pools), oneDNN off (``onednn-off``: ``TF_ENABLE_ONEDNN_OPTS=0``, plain Eigen kernels with
      another float32 summation order), and ``as-is`` (this machine's defaults). XLA is off in every
      setting: the package never compiles with it on a CPU.
    * ``--changes``: what a real change to the code or the recipe does, in the ``as-is`` process:
      ``seed`` (the recipe's seed + 1), ``learning-rate`` (x 1.1), ``loss-term`` (an L2 penalty of 1e-2
      times the mean squared weight added to the model's loss), ``initializer`` (Glorot-uniform layers
      drawn from Glorot-normal instead), ``data-order`` (the same training images, their order reversed).

Output
    One JSON object: ``runs``, ``{setting or change: {recipe: fingerprint}}`` (``recipes.fingerprint``'s dicts),
    and ``summary``, per recipe its tolerance, the largest move across the settings and the smallest under a
    change (each as ``[losses, weights]``: the largest relative difference over the steps' losses, and the
    weights' signature difference over its ``scale``), and the changes ``recipes.fingerprint_differences``
    catches and misses.

Usage (from the repository root; about a minute a recipe and setting on two cores)::

    VQVAE_LESSONS_MNIST=../shared/data/mnist.npz VQVAE_LESSONS_FASHION_MNIST=../shared/data/fashion-mnist.npz \\
        python benchmarks/fingerprint_spread.py > spread.json
    python benchmarks/fingerprint_spread.py --settings as-is threads-1 onednn-off --change-recipes judge-mnist \\
        vae-z2 vqvae-k128-d16 keras-example-k128-d16 gated-vqvae transformer-vqvae maskgit-vqvae   # the README's
    python benchmarks/fingerprint_spread.py --recipes judge-mnist --settings as-is threads-1 --changes seed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

SETTINGS = {
    "as-is": {},
    "threads-1": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    "threads-2": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"},
    "threads-4": {"TF_NUM_INTRAOP_THREADS": "4", "TF_NUM_INTEROP_THREADS": "4"},
    "onednn-off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}
CHANGES = ("seed", "learning-rate", "loss-term", "initializer", "data-order")


def measure(names, change, steps):
    """``{name: {"losses", "weights", "scale"}}`` of each recipe's first ``steps`` steps, under ``change``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import dataclasses

    from vqvae_lessons import pretrained, recipes
    from vqvae_lessons.data import load_dataset

    results = {}
    for name in names:
        recipe = recipes.RECIPES[name]
        data = load_dataset(getattr(recipe, "dataset", "mnist"))
        vqvae = pretrained.load_vqvae(recipe.vqvae) if recipe.kind == "prior" else None
        if change == "seed":
            recipe = dataclasses.replace(recipe, seed=recipe.seed + 1)
        elif change == "learning-rate":
            recipe = dataclasses.replace(recipe, learning_rate=recipe.learning_rate * 1.1)
        elif change == "data-order":
            size = steps * recipe.batch_size
            reordered = data.x_train.copy(), data.y_train.copy()
            for array in reordered:
                array[:size] = array[:size][::-1]
            data = dataclasses.replace(data, x_train=reordered[0], y_train=reordered[1])
        with changed_code(change):
            record = recipes.fingerprint(recipe, data, vqvae, steps=steps)
        results[name] = record
        print(f"{change or 'as-is'} {name}: {record}", file=sys.stderr)
    return results


class changed_code:
    """A real change to the package's code for the duration of a ``with``: ``loss-term`` (every model that
    ``fit`` trains gets an L2 penalty added to its loss) or ``initializer``; any other ``change``: none."""

    def __init__(self, change):
        self.change, self.undo = change, []

    def __enter__(self):
        import keras

        if self.change == "initializer":
            glorot_uniform = keras.initializers.GlorotUniform.__call__

            def glorot_normal(initializer, shape, dtype=None):
                return keras.initializers.GlorotNormal(seed=initializer.seed)(shape, dtype)

            keras.initializers.GlorotUniform.__call__ = glorot_normal
            self.undo.append(lambda: setattr(keras.initializers.GlorotUniform, "__call__", glorot_uniform))
        if self.change == "loss-term":
            fit = keras.Model.fit

            def fit_with_penalty(model, *args, **kwargs):
                if "compute_loss" not in vars(model):  # the step is traced at its first call: after this
                    loss_of = model.compute_loss

                    def compute_loss(*loss_args, **loss_kwargs):
                        penalty = sum(keras.ops.mean(keras.ops.square(w)) for w in model.trainable_weights)
                        return loss_of(*loss_args, **loss_kwargs) + 1e-2 * penalty

                    model.compute_loss = compute_loss
                return fit(model, *args, **kwargs)

            keras.Model.fit = fit_with_penalty
            self.undo.append(lambda: setattr(keras.Model, "fit", fit))
        return self

    def __exit__(self, *exc):
        for undo in reversed(self.undo):
            undo()


def summarize(runs, settings, changes):
    """Per recipe, as the README's table gives it: the tolerance, the largest move over ``settings`` (against the
    first) and the smallest under ``changes``, each as (losses: the largest relative difference over the steps,
    weights: the signature's difference over its scale), and which changes ``recipes.fingerprint_differences``
    catches."""
    from vqvae_lessons import recipes

    def move(a, b):
        losses = max(abs(x - y) / abs(y) for x, y in zip(a["losses"], b["losses"], strict=True))
        return losses, abs(a["weights"] - b["weights"]) / b["scale"]

    summary = {}
    for name, base in runs[settings[0]].items():
        tolerance = recipes.fingerprint_tolerance(recipes.RECIPES[name])
        noise = [move(runs[s][name], base) for s in settings[1:] if name in runs.get(s, {})]
        moved = {c: move(runs[c][name], base) for c in changes if name in runs.get(c, {})}
        summary[name] = {
            "tolerance": tolerance,
            "largest_move_across_settings": [max(column) for column in zip(*noise, strict=True)] if noise else None,
            "smallest_move_of_a_change": ([min(column) for column in zip(*moved.values(), strict=True)]
                                          if moved else None),
            "moves_of_changes": moved,
            "caught": [c for c in moved if recipes.fingerprint_differences(runs[c][name], base, tolerance)],
            "missed": [c for c in moved if not recipes.fingerprint_differences(runs[c][name], base, tolerance)],
        }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=None, help="recipe names (default: every shipped one)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--changes", nargs="*", default=list(CHANGES), choices=list(CHANGES))
    parser.add_argument("--change-recipes", nargs="+", default=None,
                        help="the recipes to change (default: --recipes); the README's table used judge-mnist vae-z2 "
                             "vqvae-k128-d16 keras-example-k128-d16 gated-vqvae transformer-vqvae maskgit-vqvae")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the fingerprint's)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # a setting's process: measure, print JSON
    args = parser.parse_args(argv)
    from vqvae_lessons import recipes

    names = args.recipes or sorted(recipes.RECIPES)
    steps = args.steps or recipes.FINGERPRINT_STEPS
    if args.child is not None:
        change = None if args.child == "as-is" else args.child
        print(json.dumps(measure(names, change, steps)))
        return
    runs = {}
    for setting in args.settings:
        env = {**os.environ, **SETTINGS[setting]}
        command = [sys.executable, __file__, "--child", "as-is", "--steps", str(steps), "--recipes", *names]
        runs[setting] = json.loads(subprocess.run(command, env=env, check=True, capture_output=True,
                                                  text=True).stdout.strip().splitlines()[-1])
    for change in args.changes:
        command = [sys.executable, __file__, "--child", change, "--steps", str(steps), "--recipes",
                   *(args.change_recipes or names)]
        runs[change] = json.loads(subprocess.run(command, check=True, capture_output=True,
                                                 text=True).stdout.strip().splitlines()[-1])
    print(json.dumps({"steps": steps, "settings": args.settings, "changes": args.changes,
                      "summary": summarize(runs, args.settings, args.changes), "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
