"""What each change to MaskGIT's training gives, one change at a time, judged on the validation split.

Trains MaskGIT priors over the codes of the default VQ-VAE (``vqvae-k128-d16``), each the baseline with one
change, for ``--epochs`` epochs each (short runs: the differences, not the final quality). The baseline is
MaskGIT's default size (2 blocks of width 64), dropout 0.1, half the training maps moved by a pixel each
epoch with the prior told the move (as the autoregressive priors are), a cosine learning rate and
MaskGIT's cosine mask counts. Each variant is judged on the **validation split** (the last 5,000 training
images, which no prior trained on): the masked cross-entropy (nats per hidden code, masks of seed 0, no
label smoothing), the NLL in raster order (``MaskGITPrior.order_bits``, bits per image, first ``--nll-maps``
validation maps), and ``--n`` maps drawn at 8 steps: the judge's Frechet distance to the validation images
and inception score. Prints a JSON line per variant, then the whole table. Usage::

    python benchmarks/maskgit_training.py [--epochs 6] [--variants baseline label_smoothing ...]
"""

from __future__ import annotations

import argparse
import json
import time

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import numpy as np

from vqvae_lessons import judge, pretrained
from vqvae_lessons.data import load_mnist
from vqvae_lessons.priors import sampling
from vqvae_lessons.train import train_prior

BASELINE = {"channels": 64, "num_layers": 2, "dropout": 0.1, "augment": 0.5, "condition_on_moves": True,
            "lr_schedule": "cosine"}
VARIANTS = {  # name: what changes from the baseline (train_prior's arguments; prior_options the class's)
    "baseline": {},
    "label_smoothing": {"prior_options": {"label_smoothing": 0.1}},
    "uniform_mask_counts": {"prior_options": {"mask_counts": "uniform"}},
    "not_told_the_moves": {"condition_on_moves": False},
    "no_dropout": {"dropout": 0.0},
    "no_moved_maps": {"augment": 0.0, "condition_on_moves": False},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--n", type=int, default=1000, help="maps drawn to judge each variant")
    parser.add_argument("--nll-maps", type=int, default=1000, help="validation maps of the raster-order NLL")
    args = parser.parse_args(argv)
    data, vqvae, the_judge = load_mnist(), pretrained.load("vqvae-k128-d16"), pretrained.load("judge-mnist")
    fit_codes, val_codes = vqvae.encode(data.x_fit), vqvae.encode(data.x_val)
    reference = the_judge.features(data.x_val)
    rows = {}
    for name in args.variants:
        settings = {**BASELINE, **VARIANTS[name]}
        start = time.perf_counter()
        prior, record = train_prior(vqvae, "maskgit", epochs=args.epochs, codes=fit_codes, data=data, verbose=0,
                                    **settings)
        seconds = time.perf_counter() - start
        images = vqvae.decode(sampling.sample(prior, args.n, seed=0, steps=8))
        rows[name] = {
            "changed": VARIANTS[name], "epochs": args.epochs, "train_seconds": round(seconds, 1),
            "val_masked_nats_per_code": round(prior.masked_cross_entropy(val_codes, seed=0), 4),
            "val_raster_bits_per_image": round(float(np.mean(prior.order_bits(val_codes[:args.nll_maps]))), 2),
            "val_frechet_distance": round(judge.frechet_distance(the_judge.features(images), reference), 2),
            "inception_score": round(judge.inception_score(the_judge.probabilities(images)), 3),
            "final_val_loss": round(record["history"]["val_loss"][-1], 4)}
        print(json.dumps({name: rows[name]}), flush=True)
    print(json.dumps({"baseline": BASELINE, "variants": rows}, indent=1))


if __name__ == "__main__":
    main()
