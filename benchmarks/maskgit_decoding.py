"""How MaskGIT's decoding settings change its samples, judged on the validation split.

For each prior (a shipped name, or a ``.weights.h5`` that ``train`` wrote, with its card beside it) and
each combination of ``--steps``, ``--choice-temperatures``, ``--temperatures`` and ``--confidences``
(MaskGIT's priors; the others are drawn once per temperature), draws ``--n`` maps (seed 0), decodes
them with the prior's VQ-VAE and judges them with the shipped judge against the **validation split**
(the last 5,000 training images, which no prior or judge trained on), so that settings are chosen
without the test set. Prints one JSON object: per prior and setting the Frechet distance, the
inception score and the seconds of the draw, and the floor (the VQ-VAE's reconstructions of ``--n``
validation images, judged the same way). Usage::

    python benchmarks/maskgit_decoding.py --priors maskgit-vqvae-wide gated-vqvae \
        --steps 8 --choice-temperatures 0 2 4.5 --confidences drawn top [--n 1000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
from vqvae_lessons import judge, pretrained
from vqvae_lessons.data import load_mnist
from vqvae_lessons.priors import sampling
from vqvae_lessons.priors.transformer import MaskGITPrior


def load(source):
    """``(prior, vqvae, name)`` of a shipped prior's name or a ``.weights.h5`` path."""
    if source.endswith(".weights.h5"):
        prior, info = pretrained.load(weights_path=source), pretrained.card_of(weights_path=source)
    else:
        prior, info = pretrained.load(source), pretrained.card(source)
    return prior, pretrained.load_vqvae(info["vqvae"]), info.get("name", source)


def verdict(the_judge, images, reference):
    """Frechet distance to the reference features and inception score of ``images``."""
    features = the_judge.features(images)
    return {"frechet_distance": round(judge.frechet_distance(features, reference), 3),
            "inception_score": round(judge.inception_score(the_judge.probabilities(images)), 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--priors", nargs="+", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="+", default=[8])
    parser.add_argument("--choice-temperatures", type=float, nargs="+", default=[4.5])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    parser.add_argument("--confidences", nargs="+", default=["drawn"])
    args = parser.parse_args(argv)
    data, the_judge = load_mnist(), pretrained.load("judge-mnist")
    reference = the_judge.features(data.x_val)
    result = {"n": args.n, "reference": "validation split (the last 5,000 training images)", "priors": {}}
    for source in args.priors:
        prior, vqvae, name = load(source)
        if "floor" not in result:
            result["floor"] = verdict(the_judge, vqvae.reconstruct(data.x_val[:args.n]), reference)
        settings = ([dict(steps=s, choice_temperature=c, temperature=t, confidence=k) for s, c, t, k in
                     itertools.product(args.steps, args.choice_temperatures, args.temperatures, args.confidences)]
                    if isinstance(prior, MaskGITPrior) else [dict(temperature=t) for t in args.temperatures])
        rows = []
        for setting in settings:
            sampling.sample(prior, 8, seed=1, **setting)  # compile
            start = time.perf_counter()
            codes = sampling.sample(prior, args.n, seed=0, **setting)
            seconds = time.perf_counter() - start
            rows.append({**setting, **verdict(the_judge, vqvae.decode(codes), reference),
                         "seconds": round(seconds, 2)})
            print(json.dumps({name: rows[-1]}), flush=True)
        result["priors"][name] = rows
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
