"""Lesson 7: every quantizer inside a VQVAE (built, saved, rebuilt from its config, trained by the recipe the
command line builds), the comparison's shipped results (complete, consistent, loadable, listed), its figures,
and a tiny comparison run by the command line."""

import json
import math
import shlex

import keras
import numpy as np
import pytest
from command_line import run as run_command  # tests/command_line.py
from matplotlib.figure import Figure

from vqvae_lessons import cards, cli, comparison, metrics, plotting, pretrained, quantizers, recipes, sweep
from vqvae_lessons.data import MNIST_ENV
from vqvae_lessons.pretrained import PretrainedError
from vqvae_lessons.train import train_vqvae
from vqvae_lessons.vqvae import VQVAE

KINDS = {  # VQVAE settings -> (quantizer class, K, D, bits per position)
    "fsq": (dict(quantizer="fsq", levels=(8, 4, 4)), quantizers.FiniteScalarQuantizer, 128, 3, 7),
    "lfq": (dict(quantizer="lfq", bits=5), quantizers.LookupFreeQuantizer, 32, 5, 5),
    "rvq": (dict(quantizer="rvq", num_quantizers=3, num_embeddings=16, embedding_dim=4, quantizer_dropout=0.5),
            quantizers.ResidualVectorQuantizer, 16, 4, 12),
    "rotation": (dict(quantizer="loss", gradient="rotation", num_embeddings=32, embedding_dim=4),
                 quantizers.VectorQuantizer, 32, 4, 5),
    "simvq": (dict(quantizer="loss", codebook_transform=True, num_embeddings=32, embedding_dim=4),
              quantizers.VectorQuantizer, 32, 4, 5),
    "ema-rotation": (dict(quantizer="ema", gradient="rotation", num_embeddings=16, embedding_dim=4),
                     quantizers.VectorQuantizerEMA, 16, 4, 4),
}


def _config(model):
    return {k: v for k, v in model.get_config().items() if k not in pretrained.KERAS_SETTINGS}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_vqvae_builds_every_quantizer_and_rebuilds_it_from_its_config(kind, tiny_mnist):
    settings, cls, k, d, bits = KINDS[kind]
    model = VQVAE("keras-example", **settings)
    assert type(model.quantizer) is cls and (model.num_embeddings, model.embedding_dim) == (k, d)
    assert model.bits_per_position == pytest.approx(bits) and model.rate_bits == pytest.approx(49 * bits)
    assert model.encoder.output.shape[-1] == d and model.decoder.input.shape[-1] == d
    images = tiny_mnist.x_test[:5]
    codes = model.encode(images)
    stages = settings.get("num_quantizers")
    assert codes.shape == ((5, 7, 7, stages) if stages else (5, 7, 7)) and 0 <= codes.min() and codes.max() < k
    assert model.decode(codes).shape == (5, 28, 28, 1)
    out = model(images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["indices"]), codes)
    rebuilt = pretrained.build_model("vqvae", _config(model))  # what a card's config gives back
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.encode(images), codes)
    assert _config(rebuilt) == _config(model)


def test_a_vqvae_with_fsq_survives_keras_serialization():
    model = VQVAE("keras-example", quantizer="fsq", levels=(5, 3))
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert _config(revived) == _config(model) and revived.quantizer.levels == [5, 3]


def test_the_older_quantizers_configs_are_unchanged():
    config = _config(VQVAE("keras-example", 16, 4, "ema"))
    assert set(config) == {"architecture", "num_embeddings", "embedding_dim", "quantizer", "beta", "decay",
                           "data_variance"}


def test_fsq_and_lfq_start_with_encoder_outputs_of_order_one(tiny_mnist):
    keras.utils.set_random_seed(0)
    for settings in (dict(quantizer="fsq", levels=(8, 4, 4)), dict(quantizer="lfq", bits=7)):
        model = VQVAE("keras-example", **settings)
        assert 0.2 < model.encoder_outputs(tiny_mnist.x_test[:32]).std() < 3
        assert len(np.unique(model.encode(tiny_mnist.x_test[:32]))) > 1


def test_residual_vq_decodes_its_first_stages_and_its_metrics_count_every_stage(tiny_mnist):
    model = VQVAE("keras-example", 16, 4, "rvq", num_quantizers=3)
    codes = model.encode(tiny_mnist.x_test[:8])
    one, all_three = model.decode(codes[..., :1]), model.decode(codes)
    assert one.shape == all_three.shape == (8, 28, 28, 1)
    with pytest.raises(ValueError, match=r"\(N, 7, 7, s\), the first s of its 3 stages"):
        model.decode(codes[..., 0])
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        model.decode(codes + 16)
    results = metrics.evaluate_vqvae(model, tiny_mnist.x_test[:8])
    assert results["bits_per_image"] == pytest.approx(49 * 12)
    offsets = codes + 16 * np.arange(3)
    assert results["codes_used"] == len(np.unique(offsets)) and results["codebook_usage"] == results["codes_used"] / 48


@pytest.mark.parametrize("kwargs, message", [
    (dict(quantizer="fsq"), "quantizer='fsq' needs levels"),
    (dict(quantizer="lfq"), "quantizer='lfq' needs bits"),
    (dict(quantizer="rvq"), "quantizer='rvq' needs num_quantizers"),
    (dict(quantizer="ema", levels=(8, 4, 4)), "levels=.* is a setting of quantizer='fsq'"),
    (dict(quantizer="ema", codebook_transform=True), "codebook_transform=True is a setting of quantizer='loss'"),
    (dict(quantizer="fsq", levels=(8, 4), gradient="rotation"), "gradient='rotation' is a setting of"),
    (dict(quantizer="loss", gradient="sideways"), "gradient='sideways' is not known"),
    (dict(quantizer="fsq", levels=(8, 1)), "at least 2 levels"),
])
def test_impossible_quantizer_settings_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VQVAE("keras-example", **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("settings", [dict(quantizer="fsq", levels=(4, 4)),
                                      dict(quantizer="rvq", num_quantizers=2, num_embeddings=8, kmeans_init=True)])
def test_train_vqvae_trains_the_new_quantizers_with_the_maintenance_they_have(settings, tiny_mnist):
    model, record = train_vqvae("keras-example", embedding_dim=4, epochs=1, batch_size=32, train_size=64,
                                data=tiny_mnist, verbose=0, restart_dead_codes=True, **settings)
    assert np.isfinite(record["history"]["loss"][0]) and record["restart_dead_codes"] is False  # nothing to restart
    assert record["kmeans_init"] is (settings["quantizer"] == "rvq")


def test_the_command_line_builds_the_new_quantizers_recipes():
    parse = lambda words: cli.recipe_of(cli.build_parser().parse_args(["train", "vqvae", *words]))  # noqa: E731
    recipe = parse(["--quantizer", "fsq", "--levels", "8", "4", "4"])
    assert recipe == recipes.VQVAERecipe(quantizer="fsq", levels=(8, 4, 4)) and recipe.levels == (8, 4, 4)
    assert recipe.default_name() == "vqvae-fsq-8-4-4"
    for words in (["--quantizer", "lfq", "--bits", "7"], ["--quantizer", "loss", "--gradient", "rotation"],
                  ["--quantizer", "loss", "--codebook-transform"],
                  ["--quantizer", "rvq", "--num-quantizers", "3", "--quantizer-dropout", "0.5"]):
        recipe = parse(words)
        assert parse(shlex.split(recipe.command())[5:]) == recipe  # its command builds it again
    assert parse(["--quantizer", "loss", "--gradient", "rotation"]).default_name() == "vqvae-k128-d16-loss-rotation"
    assert recipes.from_card({"model": "vqvae", "config": {"quantizer": "fsq", "levels": [8, 4, 4]},
                              "training": {"validation": "split"}}).levels == (8, 4, 4)
    with pytest.raises(ValueError, match="levels must be positive integers"):
        recipes.VQVAERecipe(quantizer="fsq", levels=(8, 0))


# -- the shipped results ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    return comparison.load_results()


def test_the_shipped_comparison_holds_every_run(shipped):
    assert shipped["complete"] is True
    assert [r["name"] for r in shipped["runs"]] == [run.name for run in comparison.RUNS]
    assert shipped["command"] == "python -m vqvae_lessons quantizers --out vqvae_lessons/weights/quantizers"
    at_343 = comparison.table(shipped, group="343")
    assert {r["method"] for r in at_343} == {"vq", "rotation", "simvq", "fsq", "lfq", "vq-ema"}
    assert all(r["rate_bits"] == pytest.approx(343) and r["prior_nll_bits_per_image"] > 0 for r in at_343)
    timed = shipped["timing"]["seconds_per_epoch"]
    assert set(timed) == {r["name"] for r in at_343} and all(r["timed_seconds_per_epoch"] > 0 for r in at_343)
    points = comparison.rate_points(shipped)
    for method in ("vq-ema", "fsq", "rvq"):
        rates = [p["bits_per_position"] for p in points if p["method"] == method]
        assert min(rates) <= 4.01 and max(rates) >= 11.99, (method, rates)


def test_the_shipped_runs_are_consistent(shipped):
    for run, r in zip(comparison.RUNS, shipped["runs"], strict=True):
        m, k = r["metrics"], r["config"]["num_embeddings"]
        stages = r["config"].get("num_quantizers", 1)
        assert comparison.same_settings(r, run)
        assert r["rate_bits"] == pytest.approx(49 * stages * math.log2(k)) == pytest.approx(m["bits_per_image"])
        assert 1 <= m["test_perplexity"] <= m["codes_used"] + 1e-9 <= k * stages + 1e-9
        assert m["test_psnr_db"] == pytest.approx(metrics.psnr_db(m["test_mse"]))
        assert r["rates"][-1]["test_psnr_db"] == pytest.approx(m["test_psnr_db"])
        assert len(r["seconds_per_epoch"]) == run.recipe().epochs and r["median_seconds_per_epoch"] > 0
        assert r["code_use"][0]["epoch"] == 0 and r["code_use"][-1]["epoch"] == run.recipe().epochs
        words = shlex.split(r["command"])  # the run's own command builds its recipe
        assert cli.recipe_of(cli.build_parser().parse_args(words[3:-2])) == run.recipe()
        if run.prior:
            prior = r["prior"]
            assert prior["metrics"]["test_nll_bits_per_image"] == pytest.approx(
                49 * prior["metrics"]["test_nll_bits_per_code"])
            assert f"--vqvae vqvae_lessons/weights/quantizers/{run.name}.weights.h5" in prior["command"]
    readme = (comparison.RESULTS_DIR / "README.md").read_text()
    assert readme == comparison.render_readme(shipped) and shipped["command"] in readme


@pytest.mark.parametrize("run", [run for run in comparison.RUNS if run.shipped], ids=lambda run: run.name)
def test_each_shipped_weight_has_its_card_and_loads(run, shipped):
    r = comparison.record(run.name, shipped)
    weights = comparison.RESULTS_DIR / r["weights"]
    assert weights.is_file() and weights.stat().st_size < 500_000
    card = pretrained.card_of(weights_path=weights)
    assert card["metrics"] == r["metrics"] and card["training"]["command"] == r["command"]
    assert (comparison.RESULTS_DIR / f"{run.name}.md").read_text() == cards.render_card(card)
    model = comparison.load_model(run.name, shipped)
    assert model.quantizer_kind == run.recipe().quantizer and model.rate_bits == pytest.approx(r["rate_bits"])


def test_unknown_or_unshipped_runs_say_what_there_is(shipped):
    with pytest.raises(PretrainedError, match="no run 'vq-k9'.*fsq-8-4-4"):
        comparison.record("vq-k9", shipped)
    with pytest.raises(PretrainedError, match="not shipped: load one of .*train vqvae"):
        comparison.load_model("vq-k512", shipped)
    with pytest.raises(ValueError, match="No run is called 'fsq-9'"):
        comparison.plan(["fsq-9"])
    with pytest.raises(ValueError, match="Unknown settings"):
        comparison.plan(quantizer="ema")


def test_list_shows_the_shipped_runs_with_their_test_metrics(shipped):
    listed = cli.cmd_list(None)
    for run in comparison.RUNS:
        if run.shipped:
            entry = listed[f"quantizers/{run.name}"]
            assert {"test_psnr_db", "codes_used", "test_perplexity"} <= set(entry)
    assert set(pretrained.names()) <= set(listed)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsq-8-4-4", "rvq-3x16"])
def test_shipped_runs_reproduce_their_recorded_test_metrics(name, shipped, real_mnist):
    measured = metrics.evaluate_vqvae(comparison.load_model(name, shipped), real_mnist.x_test)
    for key, value in comparison.record(name, shipped)["metrics"].items():
        assert measured[key] == pytest.approx(value, rel=1e-3), key


def test_the_figures_from_the_shipped_results(shipped, tmp_path):
    collapse = [r for r in shipped["runs"] if "collapse" in r["groups"]]
    figures = [plotting.fsq_staircase((8, 4)), plotting.rotation_gradients([1.0, 0.3], [0.4, 1.1], [0.3, -0.5]),
               plotting.quantizers_at_343(comparison.table(shipped, "343")),
               plotting.quantizer_rate_distortion(comparison.rate_points(shipped), sweep.table()),
               plotting.code_use_curves(collapse, num_embeddings=512)]
    for fig in figures:
        assert isinstance(fig, Figure) and fig.get_suptitle()
        assert all(ax.get_xlabel() for ax in fig.axes)
        fig.savefig(tmp_path / "figure.png")
        assert (tmp_path / "figure.png").stat().st_size > 1000


# -- a tiny comparison, run by the command line -----------------------------------------------------------
@pytest.mark.slow
def test_cli_runs_a_tiny_comparison_and_resumes_it(synthetic_npz, tmp_path):
    out = tmp_path / "q"
    args = ["quantizers", "--runs", "fsq-8-4-4", "rvq-3x16", "--train-size", "64", "--epochs", "1",
            "--prior-epochs", "1", "--out", str(out)]
    env = {MNIST_ENV: str(synthetic_npz)}
    result = run_command(*args, env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [r["name"] for r in summary["runs"]] == ["fsq-8-4-4", "rvq-3x16"] and "[2/2] rvq-3x16: PSNR" in result.stderr
    index = comparison.load_results(out)
    assert index["complete"] and index["settings"]["train_size"] == 64 and index["prior"]["epochs"] == 1
    assert shlex.split(index["command"])[3:] == args
    assert [len(r["rates"]) for r in index["runs"]] == [1, 3] and "prior" in index["runs"][0]
    assert comparison.load_model("rvq-3x16", index).num_stages == 3
    assert (out / "README.md").read_text().startswith("# Lesson 7's comparison")
    again = run_command(*args, "--resume", env=env)
    assert again.returncode == 0 and "[1/2] fsq-8-4-4: kept" in again.stderr, again.stderr


def test_the_wheel_s_package_data_lists_the_shipped_results():
    pyproject = (comparison.RESULTS_DIR.parents[2] / "pyproject.toml").read_text()
    assert '"vqvae_lessons.weights.quantizers" = ["*.weights.h5", "*.json", "*.md"]' in pyproject
