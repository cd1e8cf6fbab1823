"""The command line: ``python -m vqvae_lessons ...``, run in this process (``command_line.run``: the same
``cli.main`` a new process runs, without its seconds of TensorFlow start-up), and as a learner runs it, in a new
process (``test_the_command_runs_in_a_new_process_as_a_learner_runs_it``)."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from command_line import run, run_in_a_new_process  # tests/command_line.py

from vqvae_lessons import cli, pretrained, recipes, reproduce
from vqvae_lessons.data import MNIST_ENV, load_mnist


def test_the_command_runs_in_a_new_process_as_a_learner_runs_it(tmp_path):
    result = run_in_a_new_process("--help")
    assert result.returncode == 0 and "usage: python -m vqvae_lessons" in result.stdout
    result = run_in_a_new_process("evaluate", "vqvae", "--pretrained", "vqvae-k128-d16",
                                  env={MNIST_ENV: str(tmp_path / "no.npz")})
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [[], ["train"], ["train", "vqvae"], ["train", "vae"], ["train", "prior"],
                                  ["train", "judge"], ["evaluate"], ["reproduce"], ["sample"], ["judge"]])
def test_help_everywhere(args):
    result = run(*args, "--help")
    assert result.returncode == 0 and "usage: python -m vqvae_lessons" in result.stdout


@pytest.mark.slow
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
    words = shlex.split(card["training"]["command"])  # rendered from the recipe: it reruns the same training
    assert words[:3] == ["python", "-m", "vqvae_lessons"] and words[-4:] == ["--out", str(tmp_path), "--name", "tiny"]
    assert cli.recipe_of(cli.build_parser().parse_args(words[3:])) == \
        recipes.VQVAERecipe(architecture="keras-example", num_embeddings=16, epochs=1)
    result = run("evaluate", "vqvae", "--weights", str(tmp_path / "tiny.weights.h5"), env=env)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    for key in ("test_mse", "test_psnr_db", "test_perplexity", "codes_used"):
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-6)


def test_evaluate_shipped_weights(real_mnist):
    result = run("evaluate", "vqvae", "--pretrained", "keras-example-k128-d16")
    assert result.returncode == 0, result.stderr
    assert {"test_mse", "test_psnr_db", "test_perplexity", "codes_used"} <= set(json.loads(result.stdout))


@pytest.mark.slow
def test_missing_data_is_a_clear_error_not_a_traceback(tmp_path):
    result = run("evaluate", "vqvae", "--pretrained", "vqvae-k128-d16", env={MNIST_ENV: str(tmp_path / "no.npz")})
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_wrong_model_kind_and_bad_flags():
    result = run("evaluate", "vae", "--pretrained", "vqvae-k128-d16", env={MNIST_ENV: "unused"})
    assert result.returncode != 0 and "holds a vqvae, not a vae" in result.stderr
    result = run("train", "vqvae", "--num-embeddings", "0")
    assert result.returncode == 2 and "must be a positive integer" in result.stderr
    result = run("reproduce", "nonexistent")
    assert result.returncode != 0 and "no shipped weights are called 'nonexistent'" in result.stderr


@pytest.mark.slow
def test_train_a_tiny_prior_then_evaluate_sample_and_judge(synthetic_npz, tmp_path):
    env = {MNIST_ENV: str(synthetic_npz)}
    assert run("train", "vqvae", "--architecture", "keras-example", "--num-embeddings", "16", "--epochs", "1",
               "--out", str(tmp_path), "--name", "vq", env=env).returncode == 0
    result = run("train", "prior", "--vqvae", str(tmp_path / "vq.weights.h5"), "--conditional", "--channels", "8",
                 "--num-layers", "2", "--epochs", "1", "--lr-schedule", "cosine", "--dropout", "0.2",
                 "--augment", "0.5", "--out", str(tmp_path), "--name", "prior", env=env)
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    card = json.loads((tmp_path / "prior.json").read_text())
    assert card["model"] == "prior" and card["vqvae"].endswith("vq.weights.h5") and card["config"]["num_classes"] == 10
    assert card["config"]["dropout"] == 0.2 and card["training"]["lr_schedule"] == "cosine"
    assert card["training"]["augment"] == 0.5
    card_text = (tmp_path / "prior.md").read_text()
    assert "| training images moved by a pixel each epoch (fraction) | 0.5 |" in card_text
    # the card's recipe (what the lessons' TRAIN_FROM_SCRATCH trains) repeats the card's run, every setting included
    _, again = recipes.train(recipes.from_card(card), data=load_mnist(path=synthetic_npz),
                             vqvae=pretrained.load_vqvae(tmp_path / "vq.weights.h5"), verbose=0)
    assert again["lr_schedule"] == "cosine" and again["epochs"] == 1 and again["augment"] == 0.5
    assert again["history"]["loss"] == pytest.approx(card["history"]["loss"], rel=1e-3)
    result = run("evaluate", "prior", "--weights", str(tmp_path / "prior.weights.h5"), env=env)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    for key in ("test_nll_nats_per_code", "test_nll_bits_per_code", "test_nll_bits_per_image"):
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-5)
    out = tmp_path / "digits.npy"
    result = run("sample", "--weights", str(tmp_path / "prior.weights.h5"), "--n", "6", "--seed", "1", "--label", "3",
                 "--temperature", "0.8", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    images = np.load(out)
    assert images.shape == (6, 28, 28) and images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    result = run("judge", str(out), "--label", "3", env=env)
    assert result.returncode == 0, result.stderr
    judged = json.loads(result.stdout)
    assert judged["n"] == 6 and sum(judged["class_histogram"]) == 6 and 0 <= judged["label_accuracy"] <= 1
    assert {"inception_score", "frechet_distance"} <= set(judged)
    result = run("sample", "--weights", str(tmp_path / "prior.weights.h5"), "--n", "2", "--label", "12",
                 "--out", str(out), env=env)
    assert result.returncode == 2 and "--label must be a digit from 0 to 9" in result.stderr
    # a prior told which move made each map: trained on the codes of that VQ-VAE, shipped unconditional
    result = run("train", "prior", "--vqvae", str(tmp_path / "vq.weights.h5"), "--channels", "8", "--num-layers", "2",
                 "--epochs", "1", "--augment", "0.5", "--condition-on-moves", "--out", str(tmp_path), "--name",
                 "told", env=env)
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "told.json").read_text())
    assert card["config"]["num_classes"] is None and card["training"]["condition_on_moves"] is True
    assert "| told which move made each map, sampled unmoved | True |" in (tmp_path / "told.md").read_text()
    _, again = recipes.train(recipes.from_card(card), data=load_mnist(path=synthetic_npz),
                             vqvae=pretrained.load_vqvae(tmp_path / "vq.weights.h5"), verbose=0)
    assert again["condition_on_moves"] is True
    assert again["history"]["val_loss"] == pytest.approx(card["history"]["val_loss"], rel=1e-3)
    result = run("train", "prior", "--vqvae", str(tmp_path / "vq.weights.h5"), "--condition-on-moves",
                 "--out", str(tmp_path), env=env)
    assert result.returncode == 2 and "needs augment > 0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_sampling_and_judging_mistakes_are_clear_errors(tmp_path):
    result = run("sample", "--pretrained", "vqvae-k128-d16", "--out", str(tmp_path / "x.npy"))
    assert result.returncode == 2 and "is a vqvae, not a prior" in result.stderr
    result = run("judge", str(tmp_path / "missing.npy"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    result = run("judge", str(tmp_path / "bad.npy"))
    assert result.returncode == 2 and "not a readable .npy file" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_a_shipped_prior(real_mnist):
    result = run("evaluate", "prior", "--pretrained", "pixelcnn-keras-example")
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["test_nll_bits_per_image"] == pytest.approx(49 * evaluated["test_nll_bits_per_code"])
    assert evaluated["test_nll_bits_per_code"] < evaluated["unigram_bits_per_code"] < 7.0


def test_reproduce_writes_into_the_working_directory_and_says_so():
    args = cli.build_parser().parse_args(["reproduce"])
    assert args.out == reproduce.REPRODUCED_DIR == Path("reproduced") and not args.out.is_absolute()
    assert args.out.resolve() != pretrained.WEIGHTS_DIR
    result = run("reproduce", "--help")
    text = " ".join(result.stdout.split())
    assert "./reproduced" in text and "in the working directory" in text
    assert "VQ-VAEs, the VAE and the judge first, then the priors" in text


def test_reproduce_checks_every_name_before_training_any(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "reproduce_all", lambda *args, **kwargs: calls.append(args) or [])
    with pytest.raises(SystemExit, match="no shipped weights are called 'vqvae-k9'"):
        cli.main(["reproduce", "vqvae-k128-d16", "vqvae-k9"])
    assert calls == []
    assert cli.main(["reproduce", "gated-vqvae", "vqvae-k128-d16", "--out", "elsewhere"]) == 0
    assert calls == [(["gated-vqvae", "vqvae-k128-d16"], Path("elsewhere"))]  # reproduce_all orders them


@pytest.mark.slow
def test_debug_shows_the_full_traceback(tmp_path, capsys):
    missing = str(tmp_path / "missing.npy")
    assert cli.main(["judge", missing]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("error: ") and "does not exist" in lines[0] and "--debug" in lines[1]
    with pytest.raises(ValueError, match="does not exist"):  # --debug: the error itself, with its traceback
        cli.main(["--debug", "judge", missing])
    result = run("--debug", "judge", missing)
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr
    assert "cmd_judge" in result.stderr and "ValueError" in result.stderr


@pytest.fixture
def no_sampling(monkeypatch):
    """Sampling replaced by blank images, counted: the tests of ``sample --out`` need no real samples."""
    from vqvae_lessons.priors import sampling

    calls = []

    def generate(prior, vqvae, n, **kwargs):
        calls.append(n)
        return np.zeros((n, 28, 28, 1), "float32")

    monkeypatch.setattr(sampling, "generate", generate)
    return calls


def test_sample_out_must_be_a_file_that_can_be_written(tmp_path, capsys, monkeypatch, no_sampling):
    monkeypatch.setattr(pretrained, "load", lambda *args, **kwargs: pytest.fail("loaded a model before checking"))
    assert cli.main(["sample", "--pretrained", "gated-vqvae", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder: name the file to write, e.g. --out {tmp_path / 'digits.npy'}" in \
        capsys.readouterr().err
    (tmp_path / "digits.npy").mkdir()
    assert cli.main(["sample", "--pretrained", "gated-vqvae", "--out", str(tmp_path / "digits")]) == 2
    assert "digits.npy is a folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    assert cli.main(["sample", "--pretrained", "gated-vqvae", "--out", str(tmp_path / "notes.txt" / "x.npy")]) == 2
    assert f"--out {tmp_path / 'notes.txt' / 'x.npy'} cannot be written" in capsys.readouterr().err
    assert no_sampling == [] and not (tmp_path / "notes.txt" / "x.npy").exists()


def test_sample_reports_the_file_it_wrote(tmp_path, capsys, no_sampling):
    for out, written in [(tmp_path / "x", tmp_path / "x.npy"), (tmp_path / "new" / "y.npy",) * 2]:
        assert cli.main(["sample", "--pretrained", "gated-vqvae", "--n", "3", "--out", str(out)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["out"] == str(written) and np.load(written).shape == (3, 28, 28)
    assert not (tmp_path / "x").exists() and no_sampling == [3, 3]
