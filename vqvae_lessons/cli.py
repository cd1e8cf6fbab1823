"""Command line: ``python -m vqvae_lessons COMMAND ...``, COMMAND one of train, evaluate, sample, judge, reproduce,
list, sweep, quantizers, grade and export-onnx.

Results are JSON on standard output; progress bars go to standard error. An error is a
one-line message on standard error (exit status 2); ``python -m vqvae_lessons --debug COMMAND ...``
shows its full traceback instead. Run ``python -m vqvae_lessons COMMAND --help`` for each command's flags.

It parses and prints, nothing else: ``train`` builds a recipe (:mod:`~vqvae_lessons.recipes`)
from its flags, whose options are the recipe's fields, and hands it to
:func:`~vqvae_lessons.reproduce.train_and_save` (``--devices N``, not a field: how it trains, not what,
inside :func:`~vqvae_lessons.distribute.training_devices`); ``evaluate`` calls
:func:`~vqvae_lessons.pretrained.evaluate`, ``reproduce``
:func:`~vqvae_lessons.reproduce.reproduce_all` (into ``./reproduced`` unless ``--out`` says otherwise), ``sweep``
:func:`~vqvae_lessons.sweep.run_sweep`, ``quantizers``
:func:`~vqvae_lessons.comparison_training.run_comparison`, ``sample``
:func:`~vqvae_lessons.priors.sampling.generate` and ``judge``
:func:`~vqvae_lessons.judge.judge_images`, the functions the lessons call too; ``grade`` runs learners'
notebooks with ``vqvae_lessons.grading`` (its CSV to ``--csv``, its table on standard error); ``export-onnx``
writes a VQ-VAE's decoder (``--prior``: a PixelCNN prior too; ``--sweep``: the K/D sweep's decoders) as ONNX for
the book's live figures (:func:`~vqvae_lessons.export.export_live` and the functions beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path

from . import comparison, comparison_training, pretrained, quiet, recipes, sweep
from .cards import PretrainedError
from .reproduce import REPRODUCED_DIR, reproduce_all, train_and_save

DEFAULT_OUT = Path("runs")


def build_parser():
    """The command line's parser (``train``'s options are the fields of each kind's recipe)."""
    parser = argparse.ArgumentParser(prog=recipes.PROGRAM,
                                     description="Train, evaluate and reproduce the VQ-VAE Lessons models on MNIST. "
                                                 "Offline, set VQVAE_LESSONS_MNIST to a local mnist.npz.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback instead of the one-line message (before the "
                             "command: python -m vqvae_lessons --debug COMMAND ...)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on MNIST and save its weights and model card")
    models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    helps = {"vqvae": "train a VQ-VAE", "vae": "train a VAE",
             "prior": "train a prior (PixelCNN, transformer or MaskGIT) on the codes of a VQ-VAE",
             "judge": "train the MNIST classifier that judges generated digits"}
    for kind, recipe in recipes.KINDS.items():
        sub = models.add_parser(kind, help=helps[kind], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_recipe_options(sub, recipe)
        sub.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for NAME.weights.h5 and its card")
        sub.add_argument("--name", default=None, help="file name of the weights (default: from the settings)")
        if kind in ("vqvae", "prior"):
            sub.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                             help="train data parallel on the first N GPUs (else CPU devices); --batch-size is "
                                  "the global batch (see vqvae_lessons.distribute). None: the default device")

    evaluate = commands.add_parser("evaluate", help="print a model's MNIST test-set metrics as JSON")
    evaluate.add_argument("model", choices=list(recipes.KINDS))
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", metavar="NAME", help=f"shipped weights: {', '.join(pretrained.names())}")
    source.add_argument("--weights", metavar="PATH", type=Path,
                        help="a .weights.h5 written by train (its .json card beside it)")

    reproduce = commands.add_parser(
        "reproduce", help="retrain shipped weights with their recorded settings (into ./reproduced)",
        description="Retrain shipped weights with the settings their model cards record, in the order they depend "
                    "on one another: the VQ-VAEs, the VAE and the judge first, then the priors, each on the codes "
                    "of its VQ-VAE as reproduced in the same run (of the shipped VQ-VAE when that one is not "
                    "reproduced too). Writes NAME.weights.h5 and its card (NAME.json, NAME.md) into --out, "
                    f"./{REPRODUCED_DIR} in the working directory by default: the shipped weights are "
                    "replaced only if --out names their folder (vqvae_lessons/weights).")
    reproduce.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(pretrained.names())}")
    reproduce.add_argument("--out", type=Path, default=REPRODUCED_DIR,
                           help=f"folder to write them into (default: ./{REPRODUCED_DIR}, in the working "
                                "directory, never the package's own weights)")

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
    sample.add_argument("--steps", type=_positive_int, default=None,
                        help="MaskGIT priors: parallel decoding steps (default 8)")
    sample.add_argument("--out", type=Path, required=True,
                        help="FILE.npy: images (N, 28, 28) in [0, 1] (.npy is added to a name without it)")

    judge_images = commands.add_parser("judge", help="judge generated digits (a .npy of images) with the MNIST "
                                                     "classifier: inception score, squared Fréchet distance, classes")
    judge_images.add_argument("images", type=Path, metavar="FILE.npy", help="images (N, 28, 28[, 1]) in [0, 1]")
    judge_images.add_argument("--label", type=int, default=None,
                              help="the class asked for: also report the share judged to be that class")
    _add_sweep_parser(commands)
    _add_quantizers_parser(commands)
    _add_grade_parser(commands)
    _add_export_onnx_parser(commands)
    return parser


def add_recipe_options(parser, recipe_class, defaults=None, helps=None, skip=()):
    """One option per setting of ``recipe_class`` (its default, help, check and choices), but those in ``skip``;
    ``defaults`` and ``helps`` override a field's. A bool defaulting to True also gets ``--no-...``."""
    defaults, helps = defaults or {}, helps or {}
    for f in recipe_class.settings_fields():
        if f.name in skip:
            continue
        meta = f.metadata
        options = {"default": defaults.get(f.name, f.default), "help": helps.get(f.name, meta["help"])}
        if isinstance(f.default, bool):
            options["action"] = argparse.BooleanOptionalAction if f.default else "store_true"
        else:
            options["type"] = _CHECKS[meta["check"]] if meta["check"] else type(f.default)
            if meta["choices"]:
                options["choices"] = list(meta["choices"])
            if meta.get("many"):
                options["nargs"] = "+"
        parser.add_argument(recipes.option(f.name), **options)


def recipe_of(args):
    """The recipe that ``train``'s parsed ``args`` ask for."""
    recipe_class = recipes.KINDS[args.model]
    return recipe_class(**{f.name: getattr(args, f.name) for f in recipe_class.settings_fields()})


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


_CHECKS = {"positive": _positive_int, "fraction": _fraction, "unit_fraction": _unit_fraction}


def cmd_train(args):
    from . import distribute  # imports Keras: after quiet()

    recipe = recipe_of(args)
    devices = getattr(args, "devices", None)  # how it trains (the card's command says so), not what it is
    where = ((["--devices", devices] if devices else []) + (["--out", args.out] if args.out != DEFAULT_OUT else [])
             + (["--name", args.name] if args.name else []))
    # Keras's progress on stderr: stdout is for the JSON result
    with contextlib.redirect_stdout(sys.stderr), distribute.training_devices(devices):
        return train_and_save(recipe, args.out, args.name, command=recipe.command(*where))


def cmd_evaluate(args):
    kind = pretrained.card_of(args.pretrained, args.weights)["model"]
    if kind != args.model:
        raise SystemExit(f"error: {args.pretrained or args.weights} holds a {kind}, not a {args.model}: "
                         f"run `python -m vqvae_lessons evaluate {kind} ...`.")
    return {"name": args.pretrained or str(args.weights), **pretrained.evaluate(args.pretrained, args.weights)}


def cmd_sample(args):
    import time

    import numpy as np

    from .priors import sampling

    out = _writable_npy(args.out)  # before the minutes of sampling: a bad --out fails at once
    info = pretrained.card_of(args.pretrained, args.weights)
    if info["model"] != "prior":
        raise ValueError(f"{args.pretrained or args.weights} is a {info['model']}, not a prior: sample from one of "
                         f"{', '.join(pretrained.names('prior'))}.")
    prior, vqvae = pretrained.load(args.pretrained, args.weights), pretrained.load_vqvae(info["vqvae"])
    labels = args.label
    if labels is not None and prior.conditional and not 0 <= labels < prior.num_classes:
        raise ValueError(f"--label must be a digit from 0 to {prior.num_classes - 1}, got {labels}.")
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar on stderr: stdout is for the JSON result
        images = sampling.generate(prior, vqvae, args.n, labels=labels, temperature=args.temperature,
                                   seed=args.seed, batch_size=args.batch_size, progress=True,
                                   **({} if args.steps is None else {"steps": args.steps}))[..., 0]
    seconds = time.perf_counter() - start
    np.save(out, images.astype("float32"))
    return {"out": str(out), "shape": list(images.shape), "prior": args.pretrained or str(args.weights),
            "vqvae": info["vqvae"], "seed": args.seed, "temperature": args.temperature, "label": args.label,
            "seconds": round(seconds, 2)}


def _writable_npy(out):
    """``out`` as the ``.npy`` path ``np.save`` will write (the suffix added when missing), after checking that it
    can be written; ValueError otherwise. For checking ``--out`` before sampling, which takes minutes."""
    out = Path(out)
    if out.suffix != ".npy" and not out.is_dir():
        out = out.with_name(out.name + ".npy")
    return _writable(out, "--out", "digits.npy", "runs/digits.npy")


def _writable(path, flag, name, example):
    """``path`` after checking that a file can be written there (its folder made, nothing left behind): the value
    of ``flag``; ValueError naming the problem and an ``example`` otherwise (``name``: a file name to suggest
    inside a folder given by mistake)."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: name the file to write, e.g. {flag} {path / name}.")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as error:
        raise ValueError(f"{flag} {path} cannot be written ({error.strerror or error}): choose a file in a folder "
                         f"you can write to, e.g. {flag} {example}.") from error
    if not existed:
        path.unlink()
    return path


def cmd_judge(args):
    import numpy as np

    from . import judge

    if not args.images.is_file():
        npy = args.images.with_name(args.images.name + ".npy")
        hint = f" (but {npy} does: sample adds .npy to the name it writes)" if npy.is_file() else ""
        raise ValueError(f"{args.images} does not exist{hint}: write images there first, e.g. with "
                         "python -m vqvae_lessons sample --pretrained NAME --out FILE.npy.")
    try:
        images = np.load(args.images, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{args.images} is not a readable .npy file of images ({error}).") from error
    verdict = judge.judge_images(images, label=args.label, judge=pretrained.shipped_judge())
    return {"images": str(args.images), **verdict}


def cmd_reproduce(args):
    for name in args.names:  # every name checked before anything trains
        if name not in recipes.RECIPES:
            raise SystemExit(f"error: no shipped weights are called {name!r}; choose from {pretrained.names()}.")
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress on stderr: stdout is for the JSON result
        return reproduce_all(args.names or None, args.out, log=log)


def cmd_list(args):
    return {**{name: pretrained.card(name)["metrics"] for name in pretrained.names()}, **comparison.listing()}


QUANTIZERS_HELP = ("Train lesson 7's runs (VQ, the rotation trick, SimVQ, FSQ, LFQ, residual VQ; a small prior on the "
                   "codes of those at 343 bits), measure them on the test set, write quantizers.json, README.md and "
                   "the weights the lesson loads with their cards to --out. The shipped results: python -m "
                   "vqvae_lessons quantizers --out vqvae_lessons/weights/quantizers")


def _add_quantizers_parser(commands):
    parser = commands.add_parser("quantizers", help="lesson 7's comparison of quantizers (weights, quantizers.json)",
                                 description=QUANTIZERS_HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=None, metavar="NAME", choices=[r.name for r in comparison.RUNS],
                        help="the runs to train (default: all)")
    for key in ("train_size", "epochs"):
        parser.add_argument(recipes.option(key), type=_positive_int, default=comparison.COMMON[key])
    parser.add_argument("--prior-epochs", type=_positive_int, default=comparison.PRIOR["epochs"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "quantizers", help="folder for the results")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --out with the same settings")
    parser.add_argument("--verbose", action="store_true", help="a line per epoch of every run (on stderr)")


def cmd_quantizers(args):
    runs = comparison.plan(args.runs, prior_epochs=args.prior_epochs, train_size=args.train_size, epochs=args.epochs)
    defaults = vars(build_parser().parse_args(["quantizers"]))
    words = ["quantizers"]
    for key in ("runs", "train_size", "epochs", "prior_epochs"):
        if getattr(args, key) != defaults[key]:
            value = getattr(args, key)
            words += [recipes.option(key), *map(str, value if isinstance(value, list) else [value])]
    command = f"{recipes.PROGRAM} " + shlex.join([*words, "--out", str(args.out)])
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with contextlib.redirect_stdout(sys.stderr):  # Keras's progress on stderr: stdout is for the JSON result
        index = comparison_training.run_comparison(args.out, runs, command=command, resume=args.resume,
                                                   verbose=2 if args.verbose else 0, log=log)
    return {"out": str(args.out), "total_seconds": index["total_seconds"], "runs": comparison.table(index)}


def _add_sweep_parser(commands):
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
    # every point's settings: a VQ-VAE recipe's, with the sweep's defaults
    add_recipe_options(parser, recipes.VQVAERecipe, defaults=sweep.DEFAULTS, skip=("num_embeddings", "embedding_dim"),
                       helps={"train_size": "train each point on the first N training images"})
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "sweep", help="folder for the results")
    parser.add_argument("--resume", action="store_true",
                        help="keep the points already in --out with the same settings; train the others")
    parser.add_argument("--verbose", action="store_true", help="a line per epoch of every point (on stderr)")


def cmd_sweep(args):
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
    defaults = vars(build_parser().parse_args(["sweep"]))
    words = ["sweep"]
    for key, value in vars(args).items():
        if key in ("command", "out", "resume", "verbose", "debug") or value == defaults[key]:
            continue
        flag = recipes.option(key)
        if isinstance(value, bool):
            words.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            words += [flag, *map(str, value if isinstance(value, list) else [value])]
    return f"{recipes.PROGRAM} " + shlex.join([*words, "--out", str(args.out)])


def _add_grade_parser(commands):
    parser = commands.add_parser(
        "grade", help="grade learners' notebooks: run each, read its exercises' verdicts (CSV, and a table)",
        description="Run each learner's notebook in a fresh kernel, in its own folder, and read the verdict each "
                    "exercise's check showed: correct, incorrect, not attempted, not checked, or not run (the "
                    "notebook stopped before it: a cell raised, or the time limit; 'cell N' counts every cell "
                    "from 1). Writes one CSV row per notebook and exercise to --csv (notebook, exercise, verdict, "
                    "message), a table on standard error and the grades as JSON on standard output. The "
                    "notebooks' files are not changed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="the learners' .ipynb files")
    parser.add_argument("--timeout", type=_positive_float, default=600.0, metavar="SECONDS",
                        help="time limit for each notebook, from its first cell")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT.csv", help="write the grades to this file")


def _positive_float(text):
    value = float(text)
    if not 0 < value < float("inf"):  # NaN and inf too
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def cmd_grade(args):
    from . import grading

    out = _writable(Path(args.csv), "--csv", "grades.csv", "grades.csv") if args.csv else None  # before grading
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    grades = grading.grade_notebooks(args.notebooks, timeout=args.timeout, log=log)
    if out:
        grading.write_csv(grades, out)
    log("\n" + grading.summary_table(grades))
    return {"csv": str(out) if out else None, "timeout": args.timeout, "notebooks": [g.as_dict() for g in grades]}


def _add_export_onnx_parser(commands):
    parser = commands.add_parser(
        "export-onnx", help="export a VQ-VAE's decoder to ONNX, with the data of the book's live code editor",
        description="Write DIR/decoder.onnx (code indices int32 (N, 7, 7) to images (N, 28, 28, 1) in [0, 1], with "
                    "Keras's model.export(format='onnx'), checked against Keras with onnxruntime) and "
                    "DIR/codes.json (a test digit of each class and its codes, each code's image) for the book's "
                    "live figures (book/_static/live/vq_live.js); --runtime also copies onnxruntime-web's "
                    "WebAssembly backend into DIR/ort. See vqvae_lessons.export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pretrained", metavar="NAME", default=None,
                        help="shipped VQ-VAE weights (default: the default VQ-VAE, vqvae-k128-d16)")
    source.add_argument("--weights", metavar="PATH", type=Path, help="a VQ-VAE's .weights.h5 written by train")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder to write into (the book reads book/_static/live/generated)")
    parser.add_argument("--runtime", type=Path, default=None, metavar="DIST",
                        help="onnxruntime-web's dist folder (node_modules/onnxruntime-web/dist) to copy from")
    parser.add_argument("--prior", metavar="NAME", default=None,
                        help="also export this shipped unconditional PixelCNN prior over the VQ-VAE's codes, for "
                             "lesson 5's sampler (DIR/prior.onnx, float16 weights; the book uses gated-vqvae)")
    parser.add_argument("--sweep", action="store_true",
                        help="also export the decoders of the shipped K/D sweep's grid points, for lesson 4's "
                             "explorer (DIR/sweep/*.onnx and DIR/sweep.json, with the first 8 test digits)")


def cmd_export_onnx(args):
    from . import export
    from .data import load_mnist

    name = args.pretrained or (None if args.weights else export.DEFAULT_MODEL)
    model = pretrained.load_vqvae(name or args.weights)
    mnist = load_mnist()
    result = export.export_live(model, args.out, mnist.x_test, mnist.y_test, name=name or str(args.weights))
    if args.prior:
        card = pretrained.card_of(args.prior)
        if card["model"] != "prior" or card.get("vqvae") != result["model"]:
            raise ValueError(f"--prior {args.prior} must be a prior over the codes of {result['model']}, the VQ-VAE "
                             f"exported (it is a {card['model']} over {card.get('vqvae')}).")
        result["prior"] = export.export_live_prior(pretrained.load(args.prior), args.out, name=args.prior,
                                                   vqvae_name=result["model"])
    if args.sweep:
        result["sweep"] = export.export_live_sweep(args.out, mnist.x_test[:8])
    if args.runtime:
        result["runtime"] = export.copy_runtime(args.runtime, args.out)
    return result


HANDLERS = {"train": cmd_train, "evaluate": cmd_evaluate, "reproduce": cmd_reproduce, "list": cmd_list,
            "sweep": cmd_sweep, "sample": cmd_sample, "judge": cmd_judge, "quantizers": cmd_quantizers,
            "grade": cmd_grade, "export-onnx": cmd_export_onnx}


def main(argv=None):
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command not in ("list", "grade"):  # list reads the cards only; grade's kernels import Keras, not it
        quiet()  # before a command imports Keras: TensorFlow's start-up noise stays off the terminal
    from .data import MNISTDataError

    try:
        result = HANDLERS[args.command](args)
    except (MNISTDataError, PretrainedError, ValueError) as error:
        if args.debug:  # the whole traceback: a ValueError may be the package's own bug, not a mistake in the flags
            raise
        print(f"error: {error}", file=sys.stderr)
        print(f"(python -m vqvae_lessons --debug {args.command} ... shows the full traceback)", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0
