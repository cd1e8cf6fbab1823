"""Sampling speed: the package's sampler against one forward pass and the Keras example's method.

With perfect caching a sampler computes each position of each layer once, so one forward
pass of the prior over the same maps is its floor. For each prior (by default the
project's gated prior and the Keras example's), this script times, alternating in one
process on the same weights:

* ``forward``: one forward pass over ``--n`` whole maps (``predict_on_batch`` in batches of
  ``--batch-size``, as the sampler batches), the floor;
* ``package``: :func:`vqvae_lessons.priors.sampling.sample` on ``--n`` maps;
* ``old``: with ``--old-sampler FILE``, the ``sample`` of another version of the sampling
  module, for example the one before the gated sampler computed each position once (``git show
  ba1b8b2:vqvae_lessons/priors/sampling.py > /tmp/old_sampling.py``), on its own copy of the prior;
* ``example``: the Keras example's method, 49 full ``predict`` calls (batch size 32, its
  default), one per position, each over one-hot codes (unconditional priors only);
* ``example_lookup``: the same 49 calls on the package's model, whose first layer looks
  kernel rows up instead of convolving one-hot codes.

It prints JSON: per prior and method the seconds of each repeat and their median, each
method's median over the forward pass's (``ratio_to_forward``; the package's is the headline)
and the package's speed-up over the others; with ``--old-sampler``, whether the two samplers
draw the same maps at temperature 0. Usage::

    python benchmarks/sampling_speed.py [--prior NAME ...] [--n 1000] [--repeats 3]
        [--methods forward package old example example_lookup] [--old-sampler FILE]

``--prior untrained-gated`` (or ``untrained-keras-example``) times an untrained prior of
that architecture's default shape (no shipped weights needed; speed does not depend on them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import keras
import numpy as np
from keras import ops

from vqvae_lessons import pretrained, timing
from vqvae_lessons.priors import pixelcnn, sampling

METHODS = ("forward", "package", "old", "example", "example_lookup")


def load_prior(name):
    if name.startswith("untrained-"):
        return pixelcnn.PixelCNN(name.removeprefix("untrained-"), num_codes=128)
    return pretrained.load(name)


def load_sampler(path):
    """The module at ``path``, loaded as part of ``vqvae_lessons.priors`` (its relative imports work)."""
    spec = importlib.util.spec_from_file_location("vqvae_lessons.priors._timed_sampling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forward_method(model, n, labels, batch_size):
    """One forward pass over ``n`` maps, compiled like the sampler's steps."""
    codes = np.random.default_rng(0).integers(0, model.num_codes, (n, *model.grid)).astype("int32")
    inputs = keras.Input(model.grid, dtype="int32")
    if model.conditional:
        label_input = keras.Input((), dtype="int32")
        predictor = keras.Model([inputs, label_input], model((inputs, label_input)))
    else:
        predictor = keras.Model(inputs, model(inputs))

    def run(seed):
        for i in range(0, n, batch_size):
            batch = codes[i:i + batch_size]
            predictor.predict_on_batch(batch if labels is None else [batch, labels[i:i + batch_size]])
    return run


def example_method(model, n, seed, one_hot):
    """The Keras example's sampling loop: a full predict (batch size 32) per position."""
    height, width = model.grid
    inputs = keras.Input((height, width), dtype="int32")
    logits = model(ops.one_hot(inputs, model.num_codes) if one_hot else inputs)
    predictor = keras.Model(inputs, logits)
    rng = np.random.default_rng(seed)
    codes = np.zeros((n, height, width), dtype="int32")
    for row in range(height):
        for column in range(width):
            scores = predictor.predict(codes, verbose=0)[:, row, column].astype("float64")
            probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            codes[:, row, column] = (probs.cumsum(axis=-1) > rng.random((n, 1))).argmax(axis=-1)
    return codes


def time_prior(name, args, old_sampler):
    model = load_prior(name)
    labels = np.arange(args.n, dtype="int32") % model.num_classes if model.conditional else None
    size = {"batch_size": args.batch_size}
    methods = {
        "forward": forward_method(model, args.n, labels, args.batch_size),
        "package": lambda seed: sampling.sample(model, args.n, labels=labels, seed=seed, **size),
    }
    if old_sampler is not None:
        old_model = load_prior(name)  # its own copy: the two samplers keep their compiled steps apart
        old_model.set_weights(model.get_weights())
        methods["old"] = lambda seed: old_sampler.sample(old_model, args.n, labels=labels, seed=seed, **size)
    if not model.conditional:  # the example's method has no labels
        methods["example"] = lambda seed: example_method(model, args.n, seed, one_hot=True)
        methods["example_lookup"] = lambda seed: example_method(model, args.n, seed, one_hot=False)
    methods = {key: method for key, method in methods.items() if key in args.methods}
    result = {}
    if "old" in methods:  # also warms both samplers up
        new, old = (sampler.sample(prior, args.n, labels=labels, temperature=0, **size)
                    for sampler, prior in ((sampling, model), (old_sampler, old_model)))
        result["same_maps_as_old_at_temperature_0"] = bool(np.array_equal(new, old))
    seconds, medians = timing.side_by_side(methods, args.repeats, digits=3)
    result.update({"seconds": seconds, "median_seconds": medians})
    if "forward" in medians:
        result["ratio_to_forward"] = {key: round(value / medians["forward"], 2) for key, value in medians.items()}
    if "package" in medians:
        result.update({f"speedup_package_vs_{key}": round(value / medians["package"], 1)
                       for key, value in medians.items() if key not in ("package", "forward")})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", nargs="+", default=["gated-vqvae", "pixelcnn-keras-example"],
                        help="shipped priors, or untrained-gated / untrained-keras-example")
    parser.add_argument("--n", type=int, default=1000, help="maps to sample per run")
    parser.add_argument("--batch-size", type=int, default=1000, help="the sampler's batch_size (and the forward's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--old-sampler", help="a sampling module's file to time as 'old' (see the docstring)")
    args = parser.parse_args(argv)
    old_sampler = load_sampler(args.old_sampler) if args.old_sampler else None
    priors = {name: time_prior(name, args, old_sampler) for name in args.prior}
    print(json.dumps({"maps": args.n, "batch_size": args.batch_size, "repeats": args.repeats,
                      "backend": keras.backend.backend(), "priors": priors}, indent=1))


if __name__ == "__main__":
    main()
