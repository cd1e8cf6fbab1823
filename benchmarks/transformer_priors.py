"""Sampling speed of the transformer priors against the gated PixelCNN's sampler, side by side.

Times :func:`vqvae_lessons.priors.sampling.sample` drawing ``--n`` maps with MaskGIT at each of
``--steps`` (4, 8 and 16 by default), with the autoregressive transformer's key/value-cached
sampler and with the gated PixelCNN's sampler, alternating the methods in one process (after a
warm-up call each, which compiles), and prints JSON: per method the seconds of each repeat,
their median, and the PixelCNN's median over each method's (``speedup_over_pixelcnn``). Usage::

    python benchmarks/transformer_priors.py --untrained [--n 1000] [--repeats 5] [--steps 4 8 16]
    python benchmarks/transformer_priors.py --maskgit NAME --transformer NAME --pixelcnn gated-vqvae [--judge]

``--untrained`` builds untrained priors of each architecture's default size (speed does not depend
on the weights): ``--maskgit-size``, ``--transformer-size`` and ``--pixelcnn-size`` (channels and
layers) change them; the PixelCNN's default is the shipped ``gated-vqvae``'s (96 channels, 6 layers).
Otherwise ``--maskgit``, ``--transformer`` and ``--pixelcnn`` name shipped priors
(``pretrained.load``); a method whose prior is not given is left out. ``--judge`` also judges
each method's ``--n`` maps of seed 0 (the shipped judge: Frechet distance to the test set,
inception score, class histogram) and prints each Frechet distance over the PixelCNN's.
"""

from __future__ import annotations

import argparse
import json

# isort: off
import vqvae_lessons  # noqa: F401  (first: keeps TensorFlow's start-up quiet)
# isort: on
import keras

from vqvae_lessons import pretrained, timing
from vqvae_lessons.priors import ARCHITECTURES, sampling
from vqvae_lessons.priors.build import build_prior

UNTRAINED_SIZES = {**{kind: (ARCHITECTURES[kind]["channels"], ARCHITECTURES[kind]["num_layers"])
                      for kind in ("maskgit", "transformer")}, "gated": (96, 6)}


def load_priors(args):
    """``{architecture: prior}`` for the methods to time."""
    if args.untrained:
        keras.utils.set_random_seed(0)
        sizes = {"maskgit": args.maskgit_size, "transformer": args.transformer_size, "gated": args.pixelcnn_size}
        return {kind: build_prior(kind, 128, channels=size[0], num_layers=size[1]) for kind, size in sizes.items()}
    names = {"maskgit": args.maskgit, "transformer": args.transformer, "gated": args.pixelcnn}
    return {kind: pretrained.load(name) for kind, name in names.items() if name}


def methods_of(priors, args):
    """``{method name: function of a seed}``: MaskGIT at each number of steps, then the two others."""
    def sampler(prior, **kwargs):
        labels = 0 if prior.conditional else None  # a conditional prior draws zeros: the speed is the same
        return lambda seed: sampling.sample(prior, args.n, labels=labels, seed=seed, batch_size=args.batch_size,
                                            **kwargs)

    methods = {}
    if "maskgit" in priors:
        methods.update({f"maskgit_{steps}_steps": sampler(priors["maskgit"], steps=steps) for steps in args.steps})
    if "transformer" in priors:
        methods["transformer_cached"] = sampler(priors["transformer"])
    if "gated" in priors:
        methods["gated_pixelcnn"] = sampler(priors["gated"])
    return methods


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--untrained", action="store_true", help="untrained priors of the default sizes")
    parser.add_argument("--maskgit", metavar="NAME", help="a shipped MaskGIT prior")
    parser.add_argument("--transformer", metavar="NAME", help="a shipped autoregressive transformer prior")
    parser.add_argument("--pixelcnn", metavar="NAME", default="gated-vqvae", help="a shipped gated PixelCNN")
    for kind, flag in (("maskgit", "--maskgit-size"), ("transformer", "--transformer-size"),
                       ("gated", "--pixelcnn-size")):
        parser.add_argument(flag, type=int, nargs=2, default=UNTRAINED_SIZES[kind], metavar=("CHANNELS", "LAYERS"),
                            help="with --untrained: the prior's width and number of blocks")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16], help="MaskGIT's numbers of steps")
    parser.add_argument("--n", type=int, default=1000, help="maps to draw per run")
    parser.add_argument("--batch-size", type=int, default=1000, help="the sampler's batch_size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--judge", action="store_true",
                        help="also judge each method's --n maps (seed 0), decoded by the priors' VQ-VAE: Frechet "
                             "distance and inception score at equal sample counts (shipped priors only)")
    args = parser.parse_args(argv)
    if args.judge and args.untrained:
        parser.error("--judge judges shipped priors' samples: leave out --untrained")
    priors = load_priors(args)
    methods = methods_of(priors, args)
    seconds, medians = timing.side_by_side(methods, args.repeats)
    result = {"maps": args.n, "batch_size": args.batch_size, "repeats": args.repeats,
              "backend": keras.backend.backend(), "untrained": args.untrained,
              "priors": {kind: {key: prior.get_config()[key] for key in ("channels", "num_layers")}
                         for kind, prior in priors.items()},
              "seconds": seconds, "median_seconds": medians}
    if "gated_pixelcnn" in medians:
        result["speedup_over_pixelcnn"] = {key: round(medians["gated_pixelcnn"] / value, 2)
                                           for key, value in medians.items() if key != "gated_pixelcnn"}
    if args.judge:
        result["judged"] = judged(methods, priors, args)
        if "gated_pixelcnn" in result["judged"]:
            gated = result["judged"]["gated_pixelcnn"]["frechet_distance"]
            result["frechet_ratio_to_pixelcnn"] = {key: round(value["frechet_distance"] / gated, 3)
                                                   for key, value in result["judged"].items()
                                                   if key != "gated_pixelcnn"}
    print(json.dumps(result, indent=1))


def judged(methods, priors, args):
    """``{method: the judge's verdict}`` on each method's maps of seed 0, decoded by its prior's VQ-VAE."""
    from vqvae_lessons import judge
    from vqvae_lessons.data import load_mnist

    data, the_judge = load_mnist(), pretrained.shipped_judge()
    names = {"maskgit": args.maskgit, "transformer": args.transformer, "gated": args.pixelcnn}
    vqvaes = {kind: pretrained.load(pretrained.card(names[kind])["vqvae"]) for kind in priors}
    verdicts = {}
    for key, method in methods.items():
        kind = "maskgit" if key.startswith("maskgit") else "transformer" if key.startswith("transformer") else "gated"
        images = vqvaes[kind].decode(method(0))
        verdict = judge.judge_images(images, judge=the_judge, data=data)
        verdicts[key] = {k: round(v, 3) if isinstance(v, float) else v for k, v in verdict.items()}
    return verdicts


if __name__ == "__main__":
    main()
