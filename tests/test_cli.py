"""The command line, run as a learner runs it: ``python -m vqvae_lessons ...`` in a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from vqvae_lessons.data import MNIST_ENV


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vqvae_lessons", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args", [[], ["train"], ["train", "vqvae"], ["train", "vae"], ["evaluate"], ["reproduce"]])
def test_help_everywhere(args):
    result = run(*args, "--help")
    assert result.returncode == 0 and "usage: python -m vqvae_lessons" in result.stdout


def test_train_then_evaluate_a_tiny_model(synthetic_npz, tmp_path):
    env = {MNIST_ENV: str(synthetic_npz)}
    result = run("train", "vqvae", "--architecture", "keras-example", "--num-embeddings", "16", "--epochs", "1",
                 "--out", str(tmp_path), "--name", "tiny", env=env)
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert (tmp_path / "tiny.weights.h5").is_file() and (tmp_path / "tiny.md").is_file()
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["config"]["num_embeddings"] == 16 and "train vqvae --architecture keras-example" in \
        card["training"]["command"]
    result = run("evaluate", "vqvae", "--weights", str(tmp_path / "tiny.weights.h5"), env=env)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    for key in ("test_mse", "test_psnr_db", "test_perplexity", "codes_used"):
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-6)


def test_evaluate_shipped_weights(real_mnist):
    result = run("evaluate", "vqvae", "--pretrained", "keras-example-k128-d16")
    assert result.returncode == 0, result.stderr
    assert {"test_mse", "test_psnr_db", "test_perplexity", "codes_used"} <= set(json.loads(result.stdout))


def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path):
    result = run("evaluate", "vqvae", "--pretrained", "vqvae-k128-d16", env={MNIST_ENV: str(tmp_path / "no.npz")})
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_wrong_model_kind_and_bad_flags():
    result = run("evaluate", "vae", "--pretrained", "vqvae-k128-d16", env={MNIST_ENV: "unused"})
    assert result.returncode != 0 and "holds a vqvae, not a vae" in result.stderr
    result = run("train", "vqvae", "--num-embeddings", "0")
    assert result.returncode == 2 and "must be a positive integer" in result.stderr
    result = run("reproduce", "nonexistent")
    assert result.returncode != 0 and "no shipped weights are called 'nonexistent'" in result.stderr
