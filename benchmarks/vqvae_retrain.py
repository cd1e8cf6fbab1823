"""Why did the default VQ-VAE's test figures fall when it was retrained (#29, part 2)? As JSON.

``vqvae-k128-d16`` was retrained with the EMA fix (the k-means start kept by the first update) on the
validation split (55,000 training images) and came out at 27.97 dB test PSNR and perplexity 82.2, against
28.40 dB and 97.9 for the weights it replaced (60,000 images, the old EMA start, seed 0). This script
measures any number of VQ-VAEs trained with the default recipe and another seed or data, given as
``.weights.h5`` files written by ``python -m vqvae_lessons train`` (their cards beside them), beside the
shipped one: PSNR, perplexity and codes used on the validation split (the last 5,000 training images: the
choice between recipes is made there; a model trained on all 60,000 has seen them, and says so) and on the
test set (reported only), with each run's validation curve at every epoch from its card.

Run from the repository root, e.g. after
    python -m vqvae_lessons train vqvae --architecture residual --quantizer ema --num-embeddings 128 \\
        --embedding-dim 16 --epochs 30 --seed 1 --out runs --name vqvae-seed1
then
    VQVAE_LESSONS_MNIST=../shared/data/mnist.npz python benchmarks/vqvae_retrain.py runs/vqvae-seed1.weights.h5
"""

import argparse
import json
from pathlib import Path

from vqvae_lessons import metrics, pretrained
from vqvae_lessons.data import load_mnist

SHIPPED = "vqvae-k128-d16"


def measure(model, card, data):
    training = card["training"]
    seen_validation = training.get("validation") != "split"
    return {
        "seed": training["seed"], "train_size": training["train_size"], "epochs": training["epochs"],
        "validation": {**metrics.evaluate_vqvae(model, data.x_val), "trained_on_these": seen_validation},
        "test": metrics.evaluate_vqvae(model, data.x_test),
        "val_reconstruction_loss_by_epoch": card["history"].get("val_reconstruction_loss"),
        "val_batch_perplexity_by_epoch": card["history"].get("val_batch_perplexity"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="*", help=".weights.h5 files of the default recipe, other seed or data")
    args = parser.parse_args()
    data = load_mnist()
    runs = {SHIPPED: measure(pretrained.load(SHIPPED), pretrained.card(SHIPPED), data)}
    for path in args.weights:
        card = json.loads(Path(path.removesuffix(".weights.h5") + ".json").read_text())
        runs[Path(path).name.removesuffix(".weights.h5")] = measure(pretrained.load(weights_path=path), card, data)
    print(json.dumps({"benchmark": "vqvae_retrain", "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
