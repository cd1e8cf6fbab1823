"""Training speed of the default VQ-VAE and the default prior under Keras's compile options, side by side.

What it measures
    Seconds per training step of the course's default VQ-VAE (``vqvae-k128-d16``'s architecture:
    residual encoder and decoder, EMA codebook, K=128, D=16) and default prior (``gated-vqvae``'s:
    a gated PixelCNN of width 96 with dropout 0.2), each compiled with every combination of
    ``jit_compile`` (XLA: Keras's "auto" leaves it off on a CPU-only TensorFlow) and
    ``steps_per_execution`` given by ``--jit`` and ``--steps-per-execution``, and for the prior each of
    ``--kernels``: "half", the package's horizontal stack, whose one-row type-B kernels compute only the
    columns up to their centre (``MaskedConv2D.columns``), or "full", every kernel column computed and the
    masked ones multiplied by 0, as before. Each setting fits a fresh
    model (seed 0) on ``--steps`` batches of 128 (real MNIST images; random codes for the prior, whose
    cost does not depend on the codes), after one warm-up fit of the same length that traces and
    compiles the step; settings alternate for ``--repeats`` rounds so that background load hits all.
    Each round also times the machine's float32 matrix product (2048 x 2048), its best rate, and for
    the prior each setting's rate is given against it: the prior's step does a known number of
    multiply-adds (``prior_training_gflop``), so ``share_of_matmul_rate`` says how near the machine's
    limit it runs.

Output
    One JSON object: per model and setting the seconds per step of each repeat, their median, the
    median scaled to a 55,000-image epoch, the seconds one validation over the 5,000 held-out images
    takes and its share of an epoch with validation (``validation_share_of_epoch``: what validating
    only every few epochs could save), and ``ratio_to_baseline`` (median over the median of
    ``jit_compile=False, steps_per_execution=1`` with the package's kernels; below 1 is faster).

Usage (from the repository root, on an otherwise idle machine)::

    VQVAE_LESSONS_MNIST=../shared/data/mnist.npz python benchmarks/training_speed.py
    python benchmarks/training_speed.py --steps 10 --repeats 1      # a quick check
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

# isort: off
import vqvae_lessons

vqvae_lessons.quiet()
# isort: on
import keras  # noqa: E402
import numpy as np  # noqa: E402

from vqvae_lessons.data import load_mnist  # noqa: E402
from vqvae_lessons.priors.masked import MaskedConv2D  # noqa: E402
from vqvae_lessons.priors.pixelcnn import PixelCNN  # noqa: E402
from vqvae_lessons.vqvae import VQVAE  # noqa: E402

BATCH = 128
VALIDATION = 5000  # the held-out images of data.MNIST.split


def build(which, variance, kernels="half"):
    if which == "vqvae":
        model = VQVAE("residual", 128, 16, "ema", data_variance=variance)
        return model, None
    model = PixelCNN("gated", 128, channels=96, dropout=0.2)
    if kernels == "full":  # the masked columns computed too, times 0: the same outputs, the old cost
        for layer in model._flatten_layers():
            if isinstance(layer, MaskedConv2D):
                layer.columns = layer.kernel_size[1]
    return model, keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def prior_training_gflop(model, batch=BATCH):
    """About the floating-point work of one training step of a PixelCNN prior over ``batch`` maps, in
    GFLOP: the multiply-adds its kernels compute at each of the 49 positions (a masked convolution
    computes its visible rows and ``columns``; the first block's lookups add no products), times 2
    FLOP each, times 3 for the forward pass and the backward pass's two products."""
    macs = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, MaskedConv2D) and layer.num_codes is None:
            macs += (layer.rows_above + 1) * layer.columns * int(layer.kernel.shape[2]) * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            macs += int(np.prod(layer.kernel.shape))
    return 3 * 2 * macs * batch * 49 / 1e9


def matmul_gflops(size=2048, repeats=5):
    """The machine's float32 rate, in GFLOP/s, on its best case: the median of ``repeats`` (size x size)
    matrix products through the backend (warmed up once)."""
    a = keras.random.normal((size, size), seed=0)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, a))
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def seconds_per_step(which, data, codes, steps, jit, per_execution, kernels="half"):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, loss = build(which, data.variance, kernels)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit,
                  steps_per_execution=per_execution)
    inputs, targets = (data.x_fit[:steps * BATCH], None) if which == "vqvae" else (codes[:steps * BATCH],) * 2
    model.fit(inputs, targets, batch_size=BATCH, epochs=1, verbose=0)  # traces and compiles the step
    start = time.perf_counter()
    model.fit(inputs, targets, batch_size=BATCH, epochs=1, verbose=0)
    step = (time.perf_counter() - start) / steps
    # validating on the 5,000 held-out images (their maps for the prior), as every epoch of training does
    held_out = data.x_val if which == "vqvae" else codes[:VALIDATION]
    model.evaluate(held_out, None if which == "vqvae" else held_out, batch_size=BATCH, verbose=0)  # traces
    start = time.perf_counter()
    model.evaluate(held_out, None if which == "vqvae" else held_out, batch_size=BATCH, verbose=0)
    return step, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["vqvae", "prior"], choices=["vqvae", "prior"])
    parser.add_argument("--steps", type=int, default=40, help="batches of 128 timed per fit")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jit", nargs="+", default=["false", "true"], choices=["false", "true"])
    parser.add_argument("--steps-per-execution", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--kernels", nargs="+", default=["half", "full"], choices=["half", "full"],
                        help="the prior's one-row kernels: up to the centre (the package's) or every column")
    args = parser.parse_args(argv)
    data = load_mnist()
    codes = np.random.default_rng(0).integers(0, 128, (max(args.steps * BATCH, VALIDATION), 7, 7)).astype("int32")
    settings = [(which, jit, per_execution, kernels) for which, jit, per_execution, kernels in itertools.product(
                    args.models, [j == "true" for j in args.jit], args.steps_per_execution, args.kernels)
                if which == "prior" or kernels == args.kernels[0]]  # the VQ-VAE has no masked kernels
    times, validating = {s: [] for s in settings}, {s: [] for s in settings}
    peak = []
    for round_ in range(args.repeats):
        peak.append(matmul_gflops())
        for setting in settings:
            step, validation = seconds_per_step(*setting[:1], data, codes, args.steps, *setting[1:])
            times[setting].append(step)
            validating[setting].append(validation)
            which, jit, per_execution, kernels = setting
            print(f"round {round_ + 1}: {which} jit_compile={jit} steps_per_execution={per_execution} "
                  f"kernels={kernels}: {times[setting][-1]:.4f} s per step", file=sys.stderr, flush=True)
    result = {"steps": args.steps, "repeats": args.repeats, "batch_size": BATCH, "backend": keras.config.backend(),
              "matmul_gflops": [round(p, 1) for p in peak], "median_matmul_gflops": round(statistics.median(peak), 1),
              "models": {}}
    work = {kernels: prior_training_gflop(build("prior", 1.0, kernels)[0]) for kernels in args.kernels}
    for which in args.models:
        base = (which, False, 1, args.kernels[0])
        baseline = statistics.median(times[base]) if base in times else None
        rows = {}
        for (model, jit, per_execution, kernels), values in times.items():
            if model != which:
                continue
            median = statistics.median(values)
            validation = statistics.median(validating[(model, jit, per_execution, kernels)])
            epoch = median * 55000 / BATCH
            name = f"jit_compile={jit}, steps_per_execution={per_execution}"
            rows[name + (f", kernels={kernels}" if which == "prior" else "")] = {
                "seconds_per_step": [round(v, 5) for v in values], "median_seconds_per_step": round(median, 5),
                "seconds_per_55000_image_epoch": round(epoch, 1),
                "validation_seconds_5000": round(validation, 2),
                "validation_share_of_epoch": round(validation / (epoch + validation), 4),
                "ratio_to_baseline": round(median / baseline, 3) if baseline else None}
            if which == "prior":  # how near the step runs to the machine's matmul rate
                rows[name + f", kernels={kernels}"].update(
                    training_gflop_per_step=round(work[kernels], 2),
                    gflops=round(work[kernels] / median, 1),
                    share_of_matmul_rate=round(work[kernels] / median / statistics.median(peak), 3))
        result["models"][which] = rows
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
