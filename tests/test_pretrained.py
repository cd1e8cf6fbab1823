import json
import shutil

import numpy as np
import pytest

from vqvae_lessons import judge, metrics, pretrained, recipes
from vqvae_lessons.judge import Judge
from vqvae_lessons.pretrained import PretrainedError
from vqvae_lessons.priors.pixelcnn import PixelCNN
from vqvae_lessons.vae import VAE
from vqvae_lessons.vqvae import VQVAE

SHIPPED = pretrained.names()
KINDS = {"vqvae": VQVAE, "vae": VAE, "prior": PixelCNN, "judge": Judge}
METRICS = {"vqvae": {"test_mse", "test_psnr_db"}, "vae": {"test_mse", "test_psnr_db"}, "judge": {"test_accuracy"},
           "prior": {"test_nll_nats_per_code", "test_nll_bits_per_code", "test_nll_bits_per_image"}}


def test_the_issue_s_weights_are_shipped():
    assert {"keras-example-k128-d16", "vqvae-k128-d16", "vae-z2"} <= set(SHIPPED)
    assert {"pixelcnn-keras-example", "gated-vqvae", "gated-vqvae-conditional", "judge-mnist"} <= set(SHIPPED)
    assert pretrained.names("prior") == ["gated-keras-example", "gated-vqvae", "gated-vqvae-conditional",
                                         "pixelcnn-keras-example"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_card_says_what_a_model_card_must(name):
    info, recipe = pretrained.card(name), recipes.RECIPES[name]
    assert info["name"] == name and info["training"]["seed"] == 0 and info["model"] == recipe.kind
    # the card's command is the recipe that reproduce runs, every setting of it (see test_recipes.py)
    assert info["training"]["command"] == recipes.reproduce_command(name)
    assert info["training"]["median_seconds_per_epoch"] > 0 and info["training"]["epochs"] == recipe.epochs
    assert {"keras", "tensorflow", "numpy", "python"} <= set(info["versions"])
    assert METRICS[info["model"]] <= set(info["metrics"])
    text = (pretrained.WEIGHTS_DIR / f"{name}.md").read_text()
    assert text == pretrained.render_card(info), f"{name}.md is out of date: render it again from {name}.json"
    for heading in ("Intended uses and limitations", "Data", "Settings", "Reproduce", "Test metrics"):
        assert f"## {heading}" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_load_returns_a_ready_model(name):
    model, kind = pretrained.load(name), pretrained.card(name)["model"]
    assert isinstance(model, KINDS[kind])
    images = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    if kind in ("vqvae", "vae"):
        assert model.reconstruct(images).shape == (2, 28, 28, 1)
    elif kind == "judge":
        assert model.probabilities(images).shape == (2, 10)
    else:
        vqvae = pretrained.load(pretrained.card(name)["vqvae"])
        assert model.num_codes == vqvae.num_embeddings
        codes = vqvae.encode(images)
        assert model.log_probs(codes, labels=[1, 2] if model.conditional else None).shape == (2, 7, 7)


def test_the_model_card_settings_are_the_issue_s():
    example, default = pretrained.card("keras-example-k128-d16"), pretrained.card("vqvae-k128-d16")
    assert example["config"]["architecture"] == "keras-example" and example["config"]["quantizer"] == "loss"
    for info in (example, default):
        assert info["config"]["num_embeddings"] == 128 and info["config"]["embedding_dim"] == 16
        assert info["metrics"]["bits_per_image"] == pytest.approx(343.0)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(PretrainedError, match="Choose one of: .*keras-example-k128-d16"):
        pretrained.load("vqvae-k4096")


@pytest.fixture
def copied(tmp_path):
    """A copy of the shipped keras-example weights and card, to damage."""
    for suffix in (".weights.h5", ".json"):
        shutil.copy(pretrained.WEIGHTS_DIR / f"keras-example-k128-d16{suffix}", tmp_path / f"m{suffix}")
    return tmp_path / "m.weights.h5"


def test_a_copy_loads_from_its_path(copied):
    model = pretrained.load(weights_path=copied)
    assert model.num_embeddings == 128


def test_corrupt_weights(copied):
    copied.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    with pytest.raises(PretrainedError, match="not an HDF5 file .*Git LFS pointer.*Restore the file"):
        pretrained.load(weights_path=copied)


def test_truncated_weights(copied):
    copied.write_bytes(copied.read_bytes()[:2000])
    with pytest.raises(PretrainedError, match="does not fit the model its card describes"):
        pretrained.load(weights_path=copied)


def test_weights_that_do_not_match_their_card(copied):
    card_path = copied.with_name("m.json")
    info = json.loads(card_path.read_text())
    info["config"]["num_embeddings"] = 64
    card_path.write_text(json.dumps(info))
    with pytest.raises(PretrainedError, match="does not fit the model its card describes"):
        pretrained.load(weights_path=copied)


def test_missing_weights_and_card(copied):
    copied.with_name("m.json").unlink()
    with pytest.raises(PretrainedError, match="model card .* is missing"):
        pretrained.load(weights_path=copied)
    with pytest.raises(PretrainedError, match="weights file .* is missing.*reproduce vqvae-k128-d16"):
        pretrained._load_weights(VQVAE(), copied.with_name("gone.weights.h5"), {"name": "vqvae-k128-d16"})


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reproduce_their_recorded_test_metrics(name, real_mnist):
    info = pretrained.card(name)
    recorded, kind, model = info["metrics"], info["model"], pretrained.load(name)
    if kind == "prior":
        vqvae = pretrained.load(info["vqvae"])
        labels = real_mnist.y_test.astype("int32") if model.conditional else None
        measured = metrics.evaluate_prior(model, vqvae.encode(real_mnist.x_test), labels,
                                          train_codes=vqvae.encode(real_mnist.x_train))
    elif kind == "judge":
        measured = judge.evaluate_judge(model, real_mnist)
    else:
        evaluate = metrics.evaluate_vae if isinstance(model, VAE) else metrics.evaluate_vqvae
        measured = evaluate(model, real_mnist.x_test)
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, rel=0.01), key


def test_compact_weights_keep_every_output_and_zero_what_the_masks_hide(tmp_path):
    prior = PixelCNN("gated", num_codes=12, channels=8, num_layers=2)
    codes = np.random.default_rng(0).integers(0, 12, (3, 7, 7)).astype("int32")
    before = prior.log_probs(codes)
    pretrained.save_compact(prior, tmp_path / "p.weights.h5")
    again = PixelCNN("gated", num_codes=12, channels=8, num_layers=2)
    again.load_weights(tmp_path / "p.weights.h5")
    np.testing.assert_allclose(again.log_probs(codes), before, atol=1e-6)
    first = again.stages[0].vertical
    hidden = np.asarray(first.kernel)[first.mask == 0]
    assert hidden.size and np.all(hidden == 0)
