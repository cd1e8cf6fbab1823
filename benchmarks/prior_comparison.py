"""The priors compared side by side on the test set: size, training, likelihood, samples and speed.

For each prior (shipped names, or ``.weights.h5`` files that ``train`` wrote, with their cards), over the codes
of its VQ-VAE:

* ``parameters``, ``epochs`` and ``train_seconds`` (its card's total; epochs timed on 2 shared CPU cores);
* ``test_nll_bits_per_image`` on the first ``--nll-maps`` test maps: an autoregressive prior's exact NLL;
  for MaskGIT, used in a fixed order (``MaskGITPrior.order_bits``), ``raster`` (the autoregressive priors'
  order) and ``random_order`` (a random order per map, seed 0), each with its standard error;
* ``--n`` maps drawn (seed 0; MaskGIT at ``--steps`` steps), decoded and judged against the test set:
  the Frechet distance and inception score of the course's judge;
* ``seconds_to_draw``: the median over ``--repeats`` of drawing ``--n`` maps, every prior timed in turn in
  one process (``timing.side_by_side``).

Prints a JSON line per prior as it finishes, then one JSON object with every row and a Markdown table.
Usage::

    python benchmarks/prior_comparison.py --priors gated-vqvae transformer-vqvae maskgit-vqvae \
        maskgit-vqvae-wide [--n 1000] [--nll-maps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import numpy as np

from vqvae_lessons import judge, pretrained, timing
from vqvae_lessons.data import load_mnist
from vqvae_lessons.priors import sampling
from vqvae_lessons.priors.transformer import MaskGITPrior


def load(source):
    """``(prior, card)`` of a shipped prior's name or of a ``.weights.h5`` that ``train`` wrote."""
    if source.endswith(".weights.h5"):
        return pretrained.load(weights_path=source), pretrained.card_of(weights_path=source)
    return pretrained.load(source), pretrained.card(source)


def mean_and_error(bits):
    return {"mean": round(float(np.mean(bits)), 2), "standard_error": round(float(np.std(bits) / np.sqrt(len(bits))),
                                                                            2)}


def likelihood(prior, maps):
    """Bits per image on ``maps``: exact for an autoregressive prior, in raster and random orders for MaskGIT."""
    if isinstance(prior, MaskGITPrior):
        return {"raster": mean_and_error(prior.order_bits(maps)),
                "random_order": mean_and_error(prior.order_bits(maps, order_seed=0))}
    return {"exact": mean_and_error(-prior.log_probs(maps).reshape(len(maps), -1).sum(axis=1) / np.log(2))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--priors", nargs="+", default=["gated-vqvae", "transformer-vqvae", "maskgit-vqvae",
                                                        "maskgit-vqvae-wide"])
    parser.add_argument("--n", type=int, default=1000, help="maps drawn, judged and timed per prior")
    parser.add_argument("--nll-maps", type=int, default=10000, help="test maps of the likelihoods")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT's decoding steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed draws per prior (the median is reported)")
    args = parser.parse_args(argv)
    data, the_judge = load_mnist(), pretrained.load("judge-mnist")
    loaded = {source: load(source) for source in args.priors}
    vqvaes = {}
    for _prior, card in loaded.values():
        vqvaes.setdefault(card["vqvae"], pretrained.load_vqvae(card["vqvae"]))
    rows = {}
    for source, (prior, card) in loaded.items():
        vqvae, training = vqvaes[card["vqvae"]], card["training"]
        steps = {"steps": args.steps} if isinstance(prior, MaskGITPrior) else {}
        images = vqvae.decode(sampling.sample(prior, args.n, seed=0, **steps))
        verdict = judge.judge_images(images, judge=the_judge, data=data)
        rows[source] = {"architecture": prior.architecture, "parameters": prior.count_params(),
                        "epochs": training["epochs"], "train_seconds": training.get("total_seconds"),
                        "test_nll_bits_per_image": likelihood(prior, vqvae.encode(data.x_test[:args.nll_maps])),
                        "frechet_distance": round(verdict["frechet_distance"], 2),
                        "inception_score": round(verdict["inception_score"], 3), **steps}
        print(json.dumps({source: rows[source]}), flush=True)

    def drawer(prior):
        steps = {"steps": args.steps} if isinstance(prior, MaskGITPrior) else {}
        return lambda seed: sampling.sample(prior, args.n, seed=seed, **steps)

    seconds, medians = timing.side_by_side({source: drawer(prior) for source, (prior, _) in loaded.items()},
                                           args.repeats)
    for source in rows:
        rows[source].update(seconds_to_draw=round(medians[source], 2), seconds_each_draw=seconds[source])
    print(json.dumps({"n": args.n, "nll_maps": args.nll_maps, "rows": rows, "table": table(rows)}, indent=1))


def table(rows):
    """The rows as a Markdown table."""
    lines = ["| prior | parameters | epochs | training (s) | test NLL (bits per image) | Frechet distance "
             "| inception score | s to draw maps |", "|---|---|---|---|---|---|---|---|"]
    for source, row in rows.items():
        nll = row["test_nll_bits_per_image"]
        text = (f"{nll['exact']['mean']:.1f}" if "exact" in nll else
                f"{nll['raster']['mean']:.1f} raster, {nll['random_order']['mean']:.1f} random order")
        seconds = "-" if row["train_seconds"] is None else f"{row['train_seconds']:,.0f}"
        lines.append(f"| {source} | {row['parameters']:,d} | {row['epochs']} | {seconds} | {text} "
                     f"| {row['frechet_distance']:.1f} | {row['inception_score']:.2f} | {row['seconds_to_draw']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
