"""Command line: ``python -m vqvae_lessons {train,evaluate,reproduce,list} ...``.

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
    for sub in (vq, vae):
        sub.add_argument("--epochs", type=_positive_int, default=30)
        sub.add_argument("--batch-size", type=_positive_int, default=128)
        sub.add_argument("--learning-rate", type=float, default=1e-3)
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--train-size", type=_positive_int, default=None,
                         help="train on the first N training images only (default: all 60,000)")
        sub.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for NAME.weights.h5 and its card")
        sub.add_argument("--name", default=None, help="file name of the weights (default: from the settings)")

    evaluate = commands.add_parser("evaluate", help="print a model's MNIST test-set metrics as JSON")
    evaluate.add_argument("model", choices=["vqvae", "vae"])
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME", help=f"shipped weights: {', '.join(pretrained.names())}")
    source.add_argument("--weights", metavar="PATH", type=Path,
                        help="a .weights.h5 written by train (its .json card beside it)")

    reproduce = commands.add_parser("reproduce", help="retrain shipped weights with their recorded settings")
    reproduce.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(pretrained.names())}")
    reproduce.add_argument("--out", type=Path, default=pretrained.WEIGHTS_DIR,
                           help="where to write them (default: the package's own weights folder)")

    commands.add_parser("list", help="list the shipped weights and their test metrics as JSON")
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _default_name(args):
    if args.model == "vae":
        return f"vae-z{args.latent_dim}"
    prefix = "keras-example" if args.architecture == "keras-example" else "vqvae"
    return f"{prefix}-k{args.num_embeddings}-d{args.embedding_dim}-{args.quantizer}"


def cmd_train(args, command=None, description=""):
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress on stderr: stdout is for the JSON result
        return _train(args, command, description)


def _train(args, command, description):
    from . import metrics, train
    from .data import load_mnist

    data = load_mnist()
    common = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                  train_size=args.train_size, data=data)
    if args.model == "vqvae":
        model, record = train.train_vqvae(args.architecture, args.num_embeddings, args.embedding_dim, args.quantizer,
                                          beta=args.beta, decay=args.decay, kmeans_init=args.kmeans_init,
                                          restart_dead_codes=args.restart_dead_codes, **common)
        results = metrics.evaluate_vqvae(model, data.x_test)
    else:
        model, record = train.train_vae(args.latent_dim, **common)
        results = metrics.evaluate_vae(model, data.x_test)
    name = args.name or _default_name(args)
    args.out.mkdir(parents=True, exist_ok=True)
    # A fresh copy holds the model's weights without the optimizer's state (half the file or more).
    shipped = pretrained.build_model(args.model, model.get_config())
    shipped.set_weights(model.get_weights())
    shipped.save_weights(args.out / f"{name}.weights.h5")
    command = command or "python -m vqvae_lessons " + shlex.join(sys.argv[1:])
    pretrained.write_card(args.out, name, args.model, model, record, results, command, description)
    return {"name": name, "weights": str(args.out / f"{name}.weights.h5"), **results,
            "median_seconds_per_epoch": record["median_seconds_per_epoch"]}


def cmd_evaluate(args):
    from . import metrics
    from .data import load_mnist

    model = pretrained.load(args.pretrained, args.weights)
    kind = "vqvae" if hasattr(model, "quantizer") else "vae"
    if kind != args.model:
        raise SystemExit(f"error: {args.pretrained or args.weights} holds a {kind}, not a {args.model}: "
                         f"run `python -m vqvae_lessons evaluate {kind} ...`.")
    images = load_mnist().x_test
    evaluate = metrics.evaluate_vqvae if kind == "vqvae" else metrics.evaluate_vae
    return {"name": args.pretrained or str(args.weights), **evaluate(model, images)}


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


def main(argv=None):
    args = _parser().parse_args(argv)
    handlers = {"train": cmd_train, "evaluate": cmd_evaluate, "reproduce": cmd_reproduce, "list": cmd_list}
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
