"""Command line: ``python -m vqvae_lessons {train,evaluate,sample,judge,reproduce,list,sweep} ...``.

Results are JSON on standard output; progress bars go to standard error.
Run ``python -m vqvae_lessons COMMAND --help`` for each command's flags.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path

from . import pretrained

DEFAULT_OUT = Path("runs")


def _parser():
    parser = argparse.ArgumentParser(prog="python -m vqvae_lessons",
                                     description="Train, evaluate and reproduce the VQ-VAE Lessons models on MNIST. "
                                                 "Offline, set VQVAE_LESSONS_MNIST to a local mnist.npz.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on MNIST and save its weights and model card")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    vq = models.add_parser("vqvae", help="train a VQ-VAE", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    vq.add_argument("--architecture", choices=["keras-example", "residual"], default="residual")
    vq.add_argument("--quantizer", choices=["loss", "ema"], default="ema",
                    help="codebook learned by the codebook loss, or by exponential moving averages")
    vq.add_argument("--num-embeddings", type=_positive_int, default=128, help="K, the codebook size")
    vq.add_argument("--embedding-dim", type=_positive_int, default=16, help="D, the size of each code")
    vq.add_argument("--beta", type=float, default=0.25, help="weight of the commitment loss")
    vq.add_argument("--decay", type=float, default=0.99, help="EMA decay (--quantizer ema)")
    vq.add_argument("--kmeans-init", action=argparse.BooleanOptionalAction, default=True,
                    help="start the codebook at k-means centroids of encoder outputs")
    vq.add_argument("--restart-dead-codes", action=argparse.BooleanOptionalAction, default=True,
                    help="move unused codes onto recent encoder outputs every 200 steps")
    vae = models.add_parser("vae", help="train a VAE", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    vae.add_argument("--latent-dim", type=_positive_int, default=2)
    prior = models.add_parser("prior", help="train a PixelCNN prior on the codes of a VQ-VAE",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    prior.add_argument("--vqvae", default="vqvae-k128-d16",
                       help="the VQ-VAE whose codes it models: shipped weights, or a .weights.h5 written by train")
    prior.add_argument("--architecture", choices=["gated", "keras-example"], default="gated")
    prior.add_argument("--conditional", action="store_true", help="condition on the digit's class (gated only)")
    prior.add_argument("--channels", type=_positive_int, default=None, help="width (default: the architecture's)")
    prior.add_argument("--num-layers", type=_positive_int, default=None,
                       help="gated blocks, or the example's residual blocks (default: the architecture's)")
    prior.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                       help="cosine: the learning rate falls to 0 along a cosine over the run")
    prior.add_argument("--dropout", type=_fraction, default=0.0,
                       help="fraction of the gated blocks' features dropped while training (gated only)")
    prior.add_argument("--augment", type=_unit_fraction, default=0.0,
                       help="fraction of the training images moved by a random pixel each epoch before encoding "
                            "(fresh maps against overfitting)")
    prior.add_argument("--condition-on-moves", action="store_true",
                       help="with --augment: tell the prior which move made each map and keep the prior of unmoved "
                            "maps, so that it does not learn to draw moved digits (gated, unconditional)")
    judge = models.add_parser("judge", help="train the MNIST classifier that judges generated digits",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for sub in (vq, vae, prior, judge):
        sub.add_argument("--epochs", type=_positive_int, default=30)
        sub.add_argument("--batch-size", type=_positive_int, default=128)
        sub.add_argument("--learning-rate", type=float, default=1e-3)
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--train-size", type=_positive_int, default=None,
                         help="train on the first N training images only (default: all 60,000)")
        sub.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for NAME.weights.h5 and its card")
        sub.add_argument("--name", default=None, help="file name of the weights (default: from the settings)")

    evaluate = commands.add_parser("evaluate", help="print a model's MNIST test-set metrics as JSON")
    evaluate.add_argument("model", choices=["vqvae", "vae", "prior", "judge"])
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME", help=f"shipped weights: {', '.join(pretrained.names())}")
    source.add_argument("--weights", metavar="PATH", type=Path,
                        help="a .weights.h5 written by train (its .json card beside it)")

    reproduce = commands.add_parser("reproduce", help="retrain shipped weights with their recorded settings")
    reproduce.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(pretrained.names())}")
    reproduce.add_argument("--out", type=Path, default=pretrained.WEIGHTS_DIR,
                           help="where to write them (default: the package's own weights folder)")

    commands.add_parser("list", help="list the shipped weights and their test metrics as JSON")

    sample = commands.add_parser("sample", help="generate digits with a prior and its VQ-VAE; save them as .npy",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME", help="a shipped prior")
    source.add_argument("--weights", metavar="PATH", type=Path, help="a prior's .weights.h5 written by train")
    sample.add_argument("--n", type=_positive_int, default=100, help="how many digits")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--temperature", type=float, default=1.0, help="below 1: likelier codes; 0: the most likely")
    sample.add_argument("--label", type=int, default=None, help="the digit to draw (class-conditional priors)")
    sample.add_argument("--batch-size", type=_positive_int, default=1000, help="maps sampled at once")
    sample.add_argument("--out", type=Path, required=True, help="FILE.npy: images (N, 28, 28) in [0, 1]")

    judge_images = commands.add_parser("judge", help="judge generated digits (a .npy of images) with the MNIST "
                                                     "classifier: inception score, Frechet distance, classes")
    judge_images.add_argument("images", type=Path, metavar="FILE.npy", help="images (N, 28, 28[, 1]) in [0, 1]")
    judge_images.add_argument("--label", type=int, default=None,
                              help="the class asked for: also report the share judged to be that class")
    _add_sweep_parser(commands)
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text, one_allowed=False):
    value, interval = float(text), "[0, 1]" if one_allowed else "[0, 1)"
    if not (0 <= value <= 1 if one_allowed else 0 <= value < 1):
        raise argparse.ArgumentTypeError(f"must be a fraction in {interval}, got {text}")
    return value


def _unit_fraction(text):
    return _fraction(text, one_allowed=True)


def _default_name(args):
    if args.model == "vae":
        return f"vae-z{args.latent_dim}"
    if args.model == "judge":
        return "judge-mnist"
    if args.model == "prior":
        vqvae = Path(args.vqvae).name.removesuffix(".weights.h5")
        return f"pixelcnn-{args.architecture}{'-conditional' if args.conditional else ''}-{vqvae}"
    prefix = "keras-example" if args.architecture == "keras-example" else "vqvae"
    return f"{prefix}-k{args.num_embeddings}-d{args.embedding_dim}-{args.quantizer}"


def cmd_train(args, command=None, description=""):
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress on stderr: stdout is for the JSON result
        return _train(args, command, description)


def _train(args, command, description):
    from . import metrics, train
    from .data import load_mnist

    data = load_mnist()
    extra = {}
    common = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                  train_size=args.train_size, data=data)
    if args.model == "vqvae":
        model, record = train.train_vqvae(args.architecture, args.num_embeddings, args.embedding_dim, args.quantizer,
                                          beta=args.beta, decay=args.decay, kmeans_init=args.kmeans_init,
                                          restart_dead_codes=args.restart_dead_codes, **common)
        results = metrics.evaluate_vqvae(model, data.x_test)
    elif args.model == "prior":
        vqvae = _load_vqvae(args.vqvae)
        codes = vqvae.encode(data.x_train[:args.train_size])  # encoded once: to train, and for the unigram baseline
        model, record = train.train_prior(vqvae, args.architecture, args.conditional, args.channels, args.num_layers,
                                          lr_schedule=args.lr_schedule, dropout=args.dropout, augment=args.augment,
                                          condition_on_moves=args.condition_on_moves, codes=codes, **common)
        results = _evaluate_prior(model, vqvae, data, codes)
        extra = {"vqvae": args.vqvae}
    elif args.model == "judge":
        from . import judge

        model, record = judge.train_judge(**common)
        results = judge.evaluate_judge(model, data)
    else:
        model, record = train.train_vae(args.latent_dim, **common)
        results = metrics.evaluate_vae(model, data.x_test)
    name = args.name or _default_name(args)
    args.out.mkdir(parents=True, exist_ok=True)
    # A fresh copy holds the model's weights without the optimizer's state (half the file or more).
    shipped = pretrained.build_model(args.model, model.get_config())
    shipped.set_weights(model.get_weights())
    pretrained.save_compact(shipped, args.out / f"{name}.weights.h5")
    command = command or "python -m vqvae_lessons " + shlex.join(sys.argv[1:])
    pretrained.write_card(args.out, name, args.model, model, record, results, command, description, extra)
    return {"name": name, "weights": str(args.out / f"{name}.weights.h5"), **results,
            "median_seconds_per_epoch": record["median_seconds_per_epoch"]}


def cmd_evaluate(args):
    from . import metrics
    from .data import load_mnist

    info = pretrained.card_of(args.pretrained, args.weights)
    kind = info["model"]
    if kind != args.model:
        raise SystemExit(f"error: {args.pretrained or args.weights} holds a {kind}, not a {args.model}: "
                         f"run `python -m vqvae_lessons evaluate {kind} ...`.")
    model, data = pretrained.load(args.pretrained, args.weights), load_mnist()
    if kind == "prior":
        results = _evaluate_prior(model, _load_vqvae(info["vqvae"]), data)
    elif kind == "judge":
        from . import judge

        results = judge.evaluate_judge(model, data)
    else:
        evaluate = metrics.evaluate_vqvae if kind == "vqvae" else metrics.evaluate_vae
        results = evaluate(model, data.x_test)
    return {"name": args.pretrained or str(args.weights), **results}


def _load_vqvae(source):
    """A VQ-VAE from shipped weights' name or a .weights.h5 path."""
    is_path = source.endswith(".weights.h5")
    model = pretrained.load(None if is_path else source, source if is_path else None)
    if not hasattr(model, "quantizer"):
        raise ValueError(f"{source} is not a VQ-VAE: give a VQ-VAE's shipped name or weights (--vqvae).")
    return model


def _evaluate_prior(prior, vqvae, data, train_codes=None):
    from . import metrics

    labels = data.y_test.astype("int32") if prior.conditional else None
    train_codes = vqvae.encode(data.x_train) if train_codes is None else train_codes
    return metrics.evaluate_prior(prior, vqvae.encode(data.x_test), labels, train_codes=train_codes)


def cmd_sample(args):
    import time

    import numpy as np

    from .priors import sampling

    info = pretrained.card_of(args.pretrained, args.weights)
    if info["model"] != "prior":
        raise ValueError(f"{args.pretrained or args.weights} is a {info['model']}, not a prior: sample from one of "
                         f"{', '.join(pretrained.names('prior'))}.")
    prior, vqvae = pretrained.load(args.pretrained, args.weights), _load_vqvae(info["vqvae"])
    labels = args.label
    if labels is not None and prior.conditional and not 0 <= labels < prior.num_classes:
        raise ValueError(f"--label must be a digit from 0 to {prior.num_classes - 1}, got {labels}.")
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar on stderr: stdout is for the JSON result
        images = sampling.generate(prior, vqvae, args.n, labels=labels, temperature=args.temperature,
                                   seed=args.seed, batch_size=args.batch_size, progress=True)[..., 0]
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, images.astype("float32"))
    return {"out": str(args.out), "shape": list(images.shape), "prior": args.pretrained or str(args.weights),
            "vqvae": info["vqvae"], "seed": args.seed, "temperature": args.temperature, "label": args.label,
            "seconds": round(seconds, 2)}


def cmd_judge(args):
    import numpy as np

    from . import judge

    if not args.images.is_file():
        raise ValueError(f"{args.images} does not exist: write images there first, e.g. with "
                         "python -m vqvae_lessons sample --pretrained NAME --out FILE.npy.")
    try:
        images = np.load(args.images, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{args.images} is not a readable .npy file of images ({error}).") from error
    return {"images": str(args.images), **judge.judge_images(images, label=args.label)}


def cmd_reproduce(args):
    results = []
    for name in args.names or pretrained.names():
        if name not in pretrained.RECIPES:
            raise SystemExit(f"error: no shipped weights are called {name!r}; choose from {pretrained.names()}.")
        train_args = _parser().parse_args(["train", *pretrained.RECIPES[name], "--out", str(args.out), "--name", name])
        command = f"python -m vqvae_lessons reproduce {name}  # = train {shlex.join(pretrained.RECIPES[name])}"
        results.append(cmd_train(train_args, command, pretrained.DESCRIPTIONS[name]))
    return results


def cmd_list(args):
    return {name: pretrained.card(name)["metrics"] for name in pretrained.names()}


def _add_sweep_parser(commands):
    from . import sweep

    parser = commands.add_parser(
        "sweep", help="lesson 4's sweep over the codebook size K and code size D (weights and sweep.json)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a VQ-VAE for each codebook size K at the base D and each code size D at the base K, "
                    "plus ablations at the base point; write NAME.weights.h5 per point, sweep.json (settings and "
                    "test metrics) and README.md to --out. The shipped results: python -m vqvae_lessons sweep "
                    "--out vqvae_lessons/weights/sweep")
    parser.add_argument("--num-embeddings", type=_positive_int, nargs="+", default=list(sweep.GRID_NUM_EMBEDDINGS),
                        metavar="K", help="codebook sizes K, each trained at the base D")
    parser.add_argument("--embedding-dim", type=_positive_int, nargs="+", default=list(sweep.GRID_EMBEDDING_DIM),
                        metavar="D", help="code sizes D, each trained at the base K")
    parser.add_argument("--base", type=_positive_int, nargs=2, default=None, metavar=("K", "D"),
                        help="the point the two lines cross and the ablations change (default: the K nearest 128 "
                             "and the D nearest 16)")
    parser.add_argument("--ablations", nargs="+", default=["all"], metavar="NAME",
                        choices=["all", "none", *sweep.ABLATIONS],
                        help=f"ablations at the base point: all, none, or some of {', '.join(sweep.ABLATIONS)}")
    d = sweep.DEFAULTS
    parser.add_argument("--architecture", choices=["keras-example", "residual"], default=d["architecture"])
    parser.add_argument("--quantizer", choices=["loss", "ema"], default=d["quantizer"])
    parser.add_argument("--beta", type=float, default=d["beta"], help="weight of the commitment loss")
    parser.add_argument("--decay", type=float, default=d["decay"], help="EMA decay (--quantizer ema)")
    parser.add_argument("--kmeans-init", action=argparse.BooleanOptionalAction, default=d["kmeans_init"])
    parser.add_argument("--restart-dead-codes", action=argparse.BooleanOptionalAction,
                        default=d["restart_dead_codes"])
    parser.add_argument("--train-size", type=_positive_int, default=d["train_size"],
                        help="train each point on the first N training images")
    parser.add_argument("--epochs", type=_positive_int, default=d["epochs"])
    parser.add_argument("--batch-size", type=_positive_int, default=d["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    parser.add_argument("--seed", type=int, default=d["seed"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "sweep", help="folder for the results")
    parser.add_argument("--resume", action="store_true",
                        help="keep the points already in --out with the same settings; train the others")
    parser.add_argument("--verbose", action="store_true", help="a line per epoch of every point (on stderr)")


def cmd_sweep(args):
    from . import sweep

    ablations = list(sweep.ABLATIONS) if "all" in args.ablations else [a for a in args.ablations if a != "none"]
    settings = {key: getattr(args, key) for key in sweep.DEFAULTS}
    points = sweep.plan(args.num_embeddings, args.embedding_dim, tuple(args.base) if args.base else None,
                        ablations, **settings)
    command = _sweep_command(args)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    log(f"Sweep: {len(points)} models, {args.train_size} images x {args.epochs} epochs each, into {args.out}")
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress on stderr: stdout is for the JSON result
        index = sweep.run_sweep(args.out, points, command=command, resume=args.resume,
                                verbose=2 if args.verbose else 0, log=log)
    return {"out": str(args.out), "total_seconds": index["total_seconds"],
            "points": [{"name": r["name"], "K": r["num_embeddings"], "D": r["embedding_dim"],
                        "rate_bits": round(r["rate_bits"], 2), "test_psnr_db": round(r["metrics"]["test_psnr_db"], 3),
                        "test_perplexity": round(r["metrics"]["test_perplexity"], 2),
                        "codes_used": r["metrics"]["codes_used"], "seconds": r["seconds"]}
                       for r in index["points"]]}


def _sweep_command(args):
    """The command that reruns this sweep: ``--out`` and every flag that differs from its default."""
    defaults = vars(_parser().parse_args(["sweep"]))
    words = ["sweep"]
    for key, value in vars(args).items():
        if key in ("command", "out", "resume", "verbose") or value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            words += [flag, *map(str, value if isinstance(value, list) else [value])]
    return "python -m vqvae_lessons " + shlex.join([*words, "--out", str(args.out)])


def main(argv=None):
    args = _parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "reproduce": cmd_reproduce, "list": cmd_list,
                "sweep": cmd_sweep, "sample": cmd_sample, "judge": cmd_judge}
    from .data import MNISTDataError

    try:
        result = handlers[args.command](args)
    except (MNISTDataError, pretrained.PretrainedError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
