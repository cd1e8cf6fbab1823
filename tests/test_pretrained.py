import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vqvae_lessons import cards, judge, metrics, pretrained, recipes, reproduce
from vqvae_lessons.judge import Judge
from vqvae_lessons.pretrained import PretrainedError
from vqvae_lessons.priors.pixelcnn import PixelCNN
from vqvae_lessons.priors.transformer import ARTransformerPrior, MaskGITPrior
from vqvae_lessons.vae import VAE
from vqvae_lessons.vqvae import VQVAE

SHIPPED = pretrained.names()
KINDS = {"vqvae": VQVAE, "vae": VAE, "prior": (PixelCNN, ARTransformerPrior, MaskGITPrior), "judge": Judge}
METRICS = {"vqvae": {"test_mse", "test_psnr_db"}, "vae": {"test_mse", "test_psnr_db"}, "judge": {"test_accuracy"},
           "prior": {"test_nll_nats_per_code", "test_nll_bits_per_code", "test_nll_bits_per_image"},
           "maskgit": {"test_masked_nats_per_code", "test_masked_bits_per_code"}}  # no exact likelihood


def card_metrics(info):
    """The metrics a card of this kind must report: MaskGIT's masked cross-entropy in place of an NLL."""
    return METRICS["maskgit" if info["config"].get("architecture") == "maskgit" else info["model"]]


def test_the_issue_s_weights_are_shipped():
    assert {"keras-example-k128-d16", "vqvae-k128-d16", "vae-z2"} <= set(SHIPPED)
    assert {"pixelcnn-keras-example", "gated-vqvae", "gated-vqvae-conditional", "judge-mnist"} <= set(SHIPPED)
    assert pretrained.names("prior") == ["gated-keras-example", "gated-vqvae", "gated-vqvae-conditional",
                                         "maskgit-vqvae", "maskgit-vqvae-matched", "maskgit-vqvae-wide",
                                         "pixelcnn-keras-example",
                                         "transformer-vqvae"]


@pytest.mark.parametrize("name", SHIPPED)
def test_each_card_says_what_a_model_card_must(name):
    info, recipe = pretrained.card(name), recipes.RECIPES[name]
    assert info["name"] == name and info["training"]["seed"] == 0 and info["model"] == recipe.kind
    # the card's command is the recipe that reproduce runs, every setting of it (see test_recipes.py)
    assert info["training"]["command"] == recipes.reproduce_command(name)
    assert info["training"]["median_seconds_per_epoch"] > 0 and info["training"]["epochs"] == recipe.epochs
    assert {"keras", "tensorflow", "numpy", "python"} <= set(info["versions"])
    assert card_metrics(info) <= set(info["metrics"])
    text = (pretrained.WEIGHTS_DIR / f"{name}.md").read_text()
    assert text == cards.render_card(info), f"{name}.md is out of date: render it again from {name}.json"
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
        if isinstance(model, MaskGITPrior):  # no exact likelihood: the masked cross-entropy it trained on
            assert 0 < model.masked_cross_entropy(codes) < np.log(model.num_codes) + 5
        else:
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


@pytest.fixture(scope="module")
def shipped_maps(real_mnist):
    """``maps(vqvae_name, validation)``: the test maps and the unigram's training maps that a shipped VQ-VAE gives
    MNIST, encoded once for every prior over its codes (six priors share ``vqvae-k128-d16``'s)."""
    encoded = {}

    def maps(name, validation):
        if (name, validation) not in encoded:
            vqvae = pretrained.load(name)
            fitted = real_mnist.split(validation)[0]  # the unigram's training maps
            encoded[name, validation] = vqvae.encode(real_mnist.x_test), vqvae.encode(fitted)
        return encoded[name, validation]

    return maps


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reproduce_their_recorded_test_metrics(name, real_mnist, request):
    info = pretrained.card(name)
    recorded, kind, model = info["metrics"], info["model"], pretrained.load(name)
    if info["training"].get("dataset", "mnist") == "fashion_mnist":
        real_mnist = request.getfixturevalue("real_fashion_mnist")  # measured on the data it was trained on
    if kind == "prior":
        labels = real_mnist.y_test.astype("int32") if model.conditional else None
        test_maps, fitted_maps = request.getfixturevalue("shipped_maps")(
            info["vqvae"], info["training"].get("validation", "test"))
        measured = metrics.evaluate_prior(model, test_maps, labels, train_codes=fitted_maps)
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


@pytest.mark.parametrize("change, message", [
    (lambda info: info.pop("model"), "has no 'model' entry, the kind of model: one of vqvae, vae, prior, judge"),
    (lambda info: info.update(model="gan"), "says its model is 'gan': expected one of vqvae"),
    (lambda info: info.pop("config"), "has no 'config' entry"),
    (lambda info: info.update(config=[1, 2]), "has no 'config' entry .*it is not a dict"),
    (lambda info: info["config"].update(codebook_size=64),
     "settings a VQVAE does not take: 'codebook_size' \\(it takes architecture, num_embeddings.*Remove those"),
])
def test_a_damaged_card_is_a_clear_error(copied, change, message):
    card_path = copied.with_name("m.json")
    info = json.loads(card_path.read_text())
    change(info)
    card_path.write_text(json.dumps(info))
    with pytest.raises(PretrainedError, match=message):
        pretrained.load(weights_path=copied)


def test_a_prior_s_card_must_name_its_vq_vae(tmp_path):
    info = pretrained.card("gated-vqvae")
    del info["vqvae"]
    (tmp_path / "p.json").write_text(json.dumps(info))
    for read in (pretrained.load, pretrained.card_of):
        with pytest.raises(PretrainedError, match="is a prior's but names no 'vqvae'.*--vqvae"):
            read(weights_path=tmp_path / "p.weights.h5")


def test_a_keras_archive_where_weights_belong_says_what_it_is(copied, tmp_path):
    model = pretrained.load(weights_path=copied)
    model.save(tmp_path / "whole.keras")
    for path in (tmp_path / "whole.keras", copied):
        if path == copied:
            copied.write_bytes((tmp_path / "whole.keras").read_bytes())  # a zip named .weights.h5
        with pytest.raises(PretrainedError, match=r"is a \.keras archive \(a whole saved model, a zip file\), "
                                                   r"not the NAME\.weights\.h5.*keras\.saving\.load_model"):
            pretrained.load(weights_path=path)
    with pytest.raises(PretrainedError, match=r"\.keras archive"):
        pretrained.load_vqvae(tmp_path / "whole.keras")
    import keras

    assert keras.saving.load_model(tmp_path / "whole.keras").num_embeddings == 128  # what the message advises


def test_old_cards_give_the_batch_perplexity_its_name():
    on_disk = json.loads((pretrained.WEIGHTS_DIR / "vqvae-k128-d16.json").read_text())["history"]
    history = pretrained.card("vqvae-k128-d16")["history"]
    recorded = "perplexity" in on_disk  # the shipped cards were written before the rename
    assert "perplexity" not in history and "val_perplexity" not in history
    assert history["batch_perplexity"] == on_disk["perplexity" if recorded else "batch_perplexity"]
    assert history["val_batch_perplexity"] == on_disk["val_perplexity" if recorded else "val_batch_perplexity"]
    assert history["loss"] == on_disk["loss"]
    today = {"loss": [1.0], "batch_perplexity": [3.0], "val_batch_perplexity": [2.0]}
    assert cards.current_history(today) == today
    assert cards.current_history({"perplexity": [4.0], "val_perplexity": [5.0]}) == \
        {"batch_perplexity": [4.0], "val_batch_perplexity": [5.0]}
    assert cards.current_history({"perplexity": [4.0]}, "prior") == {"perplexity": [4.0]}


# -- reproduce: the order, and each prior on the codes of the VQ-VAE reproduced with it ------------------
def test_reproduce_trains_in_dependency_order():
    everything = reproduce.reproduce_order()
    kinds = [recipes.RECIPES[name].kind for name in everything]
    assert sorted(everything) == SHIPPED and kinds == sorted(kinds, key=["vqvae", "vae", "judge", "prior"].index)
    assert reproduce.reproduce_order(["gated-vqvae", "judge-mnist", "vqvae-k128-d16", "gated-vqvae"]) == \
        ["vqvae-k128-d16", "judge-mnist", "gated-vqvae"]
    with pytest.raises(PretrainedError, match="No shipped weights are called 'vqvae-k9'"):
        reproduce.reproduce_order(["vqvae-k128-d16", "vqvae-k9"])


@pytest.fixture
def fake_training(monkeypatch, tiny_mnist):
    """recipes.train replaced by a tiny untrained model of each kind (and the test metrics by a constant):
    reproduce runs everything else for real. Returns the calls: (name of the kind, recipe, vqvae, model)."""
    import keras

    from vqvae_lessons.vqvae import VQVAE

    calls = []

    def train(recipe, data=None, vqvae=None, verbose="auto", codes=None):
        keras.utils.set_random_seed(len(calls) + 1)
        model = {"vqvae": lambda: VQVAE("keras-example", 16, 4, "loss"), "vae": lambda: VAE(2),
                 "judge": lambda: Judge(),
                 "prior": lambda: PixelCNN("gated", vqvae.num_embeddings, channels=4, num_layers=2)}[recipe.kind]()
        if recipe.kind == "prior":
            fitted = data.split(recipe.validation)[0]
            np.testing.assert_array_equal(codes, vqvae.encode(fitted[:recipe.train_size]))
        calls.append((recipe, vqvae, model))
        record = {"epochs": 1, "batch_size": 1, "learning_rate": 1e-3, "seed": 0, "seconds_per_epoch": [0.1],
                  "median_seconds_per_epoch": 0.1, "total_seconds": 0.1, "history": {"loss": [1.0]}}
        return model, record

    monkeypatch.setattr(recipes, "train", train)
    import dataclasses

    from vqvae_lessons import data as data_module  # a recipe of another dataset gets the tiny one, renamed
    monkeypatch.setattr(data_module, "load_dataset",
                        lambda name="mnist", *args, **kwargs: dataclasses.replace(tiny_mnist, dataset=name))
    monkeypatch.setattr(recipes, "fingerprint", lambda *args: {"steps": 20, "loss": 1.0})
    monkeypatch.setattr(pretrained, "evaluate_model", lambda *args, **kwargs: {"fake_metric": 1.0})
    return calls


def _codebook(vqvae):
    import keras

    return keras.ops.convert_to_numpy(vqvae.quantizer.embeddings)


@pytest.mark.slow
def test_reproducing_everything_hands_each_prior_the_vq_vae_reproduced_with_it(fake_training, tiny_mnist, tmp_path):
    shipped_files = {p.name: p.stat().st_mtime_ns for p in pretrained.WEIGHTS_DIR.iterdir()}
    summaries = reproduce.reproduce_all(directory=tmp_path, data=tiny_mnist, verbose=0)
    order = [recipe for recipe, _, _ in fake_training]
    assert [s["name"] for s in summaries] == reproduce.reproduce_order() and len(order) == len(SHIPPED)
    first_prior = [r.kind for r in order].index("prior")
    others = sum(pretrained.card(name)["model"] != "prior" for name in SHIPPED)
    assert all(r.kind == "prior" for r in order[first_prior:]) and first_prior == others  # all others first
    trained = {reproduce.reproduce_order()[i]: model for i, (_, _, model) in enumerate(fake_training)}
    for recipe, vqvae, _ in fake_training[first_prior:]:
        # the prior's VQ-VAE is the one trained in this run (its file reloaded), not the shipped one
        np.testing.assert_array_equal(_codebook(vqvae), _codebook(trained[recipe.vqvae]))
        assert not np.array_equal(_codebook(vqvae), _codebook(pretrained.load(recipe.vqvae)))
    for name in pretrained.names("prior"):
        card = pretrained.card_of(weights_path=tmp_path / f"{name}.weights.h5")
        vqvae_file = tmp_path / f"{recipes.RECIPES[name].vqvae}.weights.h5"
        assert card["vqvae"] == str(vqvae_file)  # evaluate and sample pair it with that VQ-VAE
        command = card["training"]["command"]
        assert command.startswith(f"python -m vqvae_lessons reproduce {recipes.RECIPES[name].vqvae} {name} "
                                  f"--out {tmp_path}  # = train prior --vqvae {vqvae_file} ")
        assert pretrained.load_vqvae(card["vqvae"]).num_embeddings == 16
    assert sorted(p.name.removesuffix(".weights.h5") for p in tmp_path.glob("*.weights.h5")) == SHIPPED
    assert {p.name: p.stat().st_mtime_ns for p in pretrained.WEIGHTS_DIR.iterdir()} == shipped_files


@pytest.mark.slow
def test_reproducing_a_prior_alone_uses_the_shipped_vq_vae(fake_training, tiny_mnist, tmp_path):
    (summary,) = reproduce.reproduce_all(["gated-vqvae"], directory=tmp_path, data=tiny_mnist, verbose=0)
    ((recipe, vqvae, _),) = fake_training
    np.testing.assert_array_equal(_codebook(vqvae), _codebook(pretrained.load("vqvae-k128-d16")))
    card = pretrained.card_of(weights_path=summary["weights"])
    assert card["vqvae"] == "vqvae-k128-d16" and summary["weights"] == str(tmp_path / "gated-vqvae.weights.h5")
    assert card["training"]["command"] == recipes.reproduce_command("gated-vqvae", out=tmp_path)
    assert card["training"]["command"].startswith(f"python -m vqvae_lessons reproduce gated-vqvae --out {tmp_path}  #")


def test_reproduce_writes_into_the_working_directory_by_default(fake_training, tiny_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert reproduce.REPRODUCED_DIR == Path("reproduced") and not reproduce.REPRODUCED_DIR.is_absolute()
    (summary,) = reproduce.reproduce_all(["vae-z2"], data=tiny_mnist, verbose=0)
    assert (tmp_path / "reproduced" / "vae-z2.weights.h5").is_file() and summary["weights"].startswith("reproduced")


def test_upgrade_holds_the_rules_for_old_cards_and_loading_applies_them(tmp_path):
    """Every rule for cards written by older versions is in cards.upgrade; read_card (so load and card) applies it."""
    old = {"model": "vqvae", "config": {}, "history": {"perplexity": [4.0], "val_perplexity": [5.0], "loss": [1.0]}}
    assert cards.upgrade(json.loads(json.dumps(old)))["history"] == {
        "batch_perplexity": [4.0], "val_batch_perplexity": [5.0], "loss": [1.0]}
    assert cards.upgrade({"model": "prior", "config": {}, "history": {"perplexity": [4.0]}})["history"] == {
        "perplexity": [4.0]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert "batch_perplexity" in cards.read_card(tmp_path / "old.json", "old")["history"]
    today = pretrained.card("vqvae-k128-d16")
    assert cards.upgrade(json.loads(json.dumps(today))) == today  # a card of today's format is left as it is
