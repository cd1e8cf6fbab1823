"""Quality of the shipped weights on the MNIST test set, measured afresh, as JSON.

For every shipped VQ-VAE and VAE (the priors: prior_quality.py): the metrics of
``vqvae_lessons.metrics.evaluate_vqvae`` or ``evaluate_vae`` on the 10,000 test images, beside the
figures its model card recorded; then the comparison the foundation issue asks for: the project's default
``vqvae-k128-d16`` against the Keras example's ``keras-example-k128-d16`` at the same
343 bits per image (PSNR gain in dB, perplexity, codes used) and each one's median
training seconds per epoch from its card.

Run from the repository root:
    VQVAE_LESSONS_MNIST=../shared/data/mnist.npz python benchmarks/pretrained_quality.py
"""

import json

from vqvae_lessons import metrics, pretrained
from vqvae_lessons.data import load_mnist
from vqvae_lessons.vae import VAE


def main():
    images = load_mnist().x_test
    result = {"benchmark": "pretrained_quality", "models": {}}
    for name in pretrained.names("vqvae") + pretrained.names("vae"):  # priors: prior_quality.py
        model = pretrained.load(name)
        evaluate = metrics.evaluate_vae if isinstance(model, VAE) else metrics.evaluate_vqvae
        card = pretrained.card(name)
        result["models"][name] = {
            "measured": evaluate(model, images),
            "recorded": card["metrics"],
            "median_seconds_per_epoch": card["training"]["median_seconds_per_epoch"],
        }
    example = result["models"]["keras-example-k128-d16"]["measured"]
    default = result["models"]["vqvae-k128-d16"]["measured"]
    result["default_vs_keras_example"] = {
        "psnr_gain_db": round(default["test_psnr_db"] - example["test_psnr_db"], 3),
        "mse_ratio": round(default["test_mse"] / example["test_mse"], 4),
        "perplexity": [round(example["test_perplexity"], 2), round(default["test_perplexity"], 2)],
        "codes_used": [example["codes_used"], default["codes_used"]],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
