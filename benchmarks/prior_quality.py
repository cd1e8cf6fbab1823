"""Quality of the shipped priors: test NLL, and the judge's verdict on generated digits.

Prints JSON with:

* ``nll``: each shipped prior's test negative log-likelihood (nats and bits per code, bits
  per image) on the MNIST test set's codes, and the gated prior's reduction against the
  example's prior on the same codes (those of ``keras-example-k128-d16``);
* ``generation``: for ``--n`` digits from each pipeline (seeded), the judge's inception
  score, Frechet distance to the MNIST test set, class histogram and mean confidence;
  ``real`` is ``--n`` real training digits (the ceiling); ``conditional`` asks the
  class-conditional prior for each digit equally often and reports ``label_accuracy``;
* ``frechet_ratio_default_vs_example``: the default pipeline's Frechet distance over the
  keras-example pipeline's (the issue asks for at most 0.5).

Usage::

    python benchmarks/prior_quality.py [--n 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import numpy as np

from vqvae_lessons import judge, metrics, pretrained
from vqvae_lessons.data import load_mnist
from vqvae_lessons.priors import sampling

PIPELINES = {"keras_example": "pixelcnn-keras-example", "default": "gated-vqvae",
             "conditional": "gated-vqvae-conditional"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="digits per pipeline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data, the_judge = load_mnist(), pretrained.load("judge-mnist")

    nll = {}
    for name in pretrained.names("prior"):
        prior, vqvae = pretrained.load(name), pretrained.load(pretrained.card(name)["vqvae"])
        labels = data.y_test.astype("int32") if prior.conditional else None
        nll[name] = metrics.evaluate_prior(prior, vqvae.encode(data.x_test), labels)
    example, gated = (nll[name]["test_nll_nats_per_code"] for name in ("pixelcnn-keras-example",
                                                                        "gated-keras-example"))
    generation = {"real": judge.judge_images(data.x_train[:args.n], label=data.y_train[:args.n].astype("int64"),
                                             judge=the_judge, data=data)}
    for pipeline, name in PIPELINES.items():
        prior, vqvae = pretrained.load(name), pretrained.load(pretrained.card(name)["vqvae"])
        labels = np.arange(args.n) % 10 if prior.conditional else None
        start = time.perf_counter()
        images = sampling.generate(prior, vqvae, args.n, labels=labels, seed=args.seed)
        seconds = time.perf_counter() - start
        generation[pipeline] = {"prior": name, "sampling_seconds": round(seconds, 1),
                                **judge.judge_images(images, label=labels, judge=the_judge, data=data)}
    print(json.dumps({
        "n": args.n, "seed": args.seed, "nll": nll,
        "gated_nll_reduction_vs_example_on_example_codes": round(1 - gated / example, 4),
        "generation": generation,
        "frechet_ratio_default_vs_example": round(generation["default"]["frechet_distance"]
                                                  / generation["keras_example"]["frechet_distance"], 4),
    }, indent=1))


if __name__ == "__main__":
    main()
