"""Sampling speed: the package's sampler against the Keras example's method, side by side.

The example draws a map of codes with 49 full ``predict`` calls (batch size 32, its
default), one per position, each recomputing the whole 7x7 map from one-hot codes.
This script times, on the same prior (same weights), alternating runs of:

* ``example``: the example's method, one-hot codes through the masked convolutions;
* ``example_lookup``: the same 49 ``predict`` calls on the package's model, whose
  first layer looks kernel rows up instead of convolving one-hot codes;
* ``package``: :func:`vqvae_lessons.sampling.sample`, which computes one row per
  position from cached rows above.

It prints JSON: per method the seconds of each repeat and their median, and the ratios
of medians. Usage::

    python benchmarks/sampling_speed.py [--prior NAME] [--n 1000] [--repeats 3]

``--prior untrained-keras-example`` times an untrained prior of the example's shape
(no shipped weights needed; speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import keras
import numpy as np
from keras import ops

from vqvae_lessons import pretrained
from vqvae_lessons.priors import pixelcnn, sampling


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="pixelcnn-keras-example",
                        help="a shipped prior, or untrained-keras-example / untrained-gated")
    parser.add_argument("--n", type=int, default=1000, help="maps to sample per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.prior.startswith("untrained-"):
        model = pixelcnn.PixelCNN(args.prior.removeprefix("untrained-"), num_codes=128)
    else:
        model = pretrained.load(args.prior)
    if model.conditional:
        parser.error("time an unconditional prior: the example's method has no labels")
    methods = {
        "example": lambda seed: example_method(model, args.n, seed, one_hot=True),
        "example_lookup": lambda seed: example_method(model, args.n, seed, one_hot=False),
        "package": lambda seed: sampling.sample(model, args.n, seed=seed),
    }
    for method in methods.values():  # warm up: build and compile once
        method(0)
    seconds = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method(repeat + 1)
            seconds[name].append(round(time.perf_counter() - start, 3))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(json.dumps({
        "prior": args.prior, "maps": args.n, "repeats": args.repeats, "backend": keras.backend.backend(),
        "seconds": seconds, "median_seconds": medians,
        "speedup_package_vs_example": round(medians["example"] / medians["package"], 1),
        "speedup_package_vs_example_lookup": round(medians["example_lookup"] / medians["package"], 1),
    }, indent=1))


if __name__ == "__main__":
    main()
