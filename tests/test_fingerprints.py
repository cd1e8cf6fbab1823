"""A card's command gives the card's model: every shipped weight's card records a fingerprint of its
training (:func:`vqvae_lessons.recipes.fingerprint`: the loss after each of its recipe's first 20 seeded
steps and a signature of the weights after them), and this test trains those steps with today's code and
compares, within :func:`vqvae_lessons.recipes.fingerprint_tolerance`. A change that alters how a shipped recipe
trains fails here, until its weights are trained again (``python -m vqvae_lessons reproduce NAME``) or the card
says why not. The tolerance holds on any CPU (thread counts, oneDNN on or off) and still catches a real change:
the last two tests prove both sides."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import pytest

from vqvae_lessons import pretrained, recipes

pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                reason="the cards' fingerprints are TensorFlow's: the seeded draws differ by backend")


def recorded_and_measured(name, data, recipe=None):
    """The fingerprint ``name``'s card records, and the one ``recipe`` (default: the card's) gives today."""
    recipe = recipe or recipes.RECIPES[name]
    vqvae = pretrained.load_vqvae(recipe.vqvae) if recipe.kind == "prior" else None
    return pretrained.card(name)["training"]["fingerprint"], recipes.fingerprint(recipe, data, vqvae)


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_the_recipe_trains_as_its_card_recorded(name, real_mnist, request):
    data = real_mnist
    if getattr(recipes.RECIPES[name], "dataset", "mnist") == "fashion_mnist":
        data = request.getfixturevalue("real_fashion_mnist")
    recorded, measured = recorded_and_measured(name, data)
    tolerance = recipes.fingerprint_tolerance(recipes.RECIPES[name])
    differences = recipes.fingerprint_differences(measured, recorded, tolerance)
    assert not differences, f"{name} no longer trains as its card recorded: " + "; ".join(differences)


# The recipes whose curves moved most under another thread count or oneDNN setting, one of each tolerance.
NOISIEST = ("judge-mnist", "vqvae-k128-d16")


@pytest.mark.slow
def test_fingerprints_hold_with_one_thread_and_onednn_off(real_mnist):
    """A fresh process with TensorFlow on one thread and oneDNN off (another float32 summation order, as another
    CPU gives) still matches the cards."""
    code = ("import json, vqvae_lessons; vqvae_lessons.quiet()\n"
            "from vqvae_lessons import pretrained, recipes\n"
            "from vqvae_lessons.data import load_mnist\n"
            "data, found = load_mnist(), {}\n"
            f"for name in {NOISIEST!r}:\n"
            "    recipe = recipes.RECIPES[name]\n"
            "    vqvae = pretrained.load_vqvae(recipe.vqvae) if recipe.kind == 'prior' else None\n"
            "    found[name] = recipes.fingerprint(recipe, data, vqvae)\n"
            "print(json.dumps(found))\n")
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_ENABLE_ONEDNN_OPTS": "0",
           "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    for name in NOISIEST:
        recorded = pretrained.card(name)["training"]["fingerprint"]
        tolerance = recipes.fingerprint_tolerance(recipes.RECIPES[name])
        assert recipes.fingerprint_differences(measured[name], recorded, tolerance) == [], name


@pytest.mark.slow
@pytest.mark.parametrize("name, change", [
    ("judge-mnist", "learning_rate"),  # x 1.1
    ("judge-mnist", "data_order"),  # the same images in reverse order
    ("vqvae-k128-d16", "data_order"),  # the smallest real change measured on the looser tolerance's recipes
])
def test_a_real_change_fails_its_card_s_fingerprint(name, change, real_mnist):
    recipe, data = recipes.RECIPES[name], real_mnist
    if change == "learning_rate":
        recipe = dataclasses.replace(recipe, learning_rate=recipe.learning_rate * 1.1)
    else:
        size = recipes.FINGERPRINT_STEPS * recipe.batch_size
        images, labels = data.x_train.copy(), data.y_train.copy()
        images[:size], labels[:size] = images[:size][::-1], labels[:size][::-1]
        data = dataclasses.replace(data, x_train=images, y_train=labels)
    recorded, measured = recorded_and_measured(name, data, recipe)
    assert recipes.fingerprint_differences(measured, recorded, recipes.fingerprint_tolerance(recipe)), change


def test_a_fingerprint_tells_recipes_apart(tiny_mnist):
    """It is a signature of training: the same recipe gives the same one, another seed or learning rate another."""
    base = recipes.VQVAERecipe(architecture="keras-example", quantizer="loss", kmeans_init=False,
                               restart_dead_codes=False, batch_size=8)
    first = recipes.fingerprint(base, tiny_mnist)
    assert first == recipes.fingerprint(base, tiny_mnist)
    assert first["train_size"] == 20 * 8 and first["steps"] == 20 and len(first["losses"]) == 20
    assert first["losses"][-1] == pytest.approx(first["loss"], abs=1e-6)  # the epoch's mean is the last running mean
    for changed in (dict(seed=1), dict(learning_rate=3e-4)):
        other = recipes.fingerprint(dataclasses.replace(base, **changed), tiny_mnist)
        assert recipes.fingerprint_differences(other, first), changed


def test_fingerprint_differences_name_what_differs():
    recorded = {"steps": 2, "train_size": 16, "loss": 1.5, "losses": [2.0, 1.5], "weights": 0.3, "scale": 0.5}
    assert recipes.fingerprint_differences(dict(recorded), recorded) == []
    nearly = {**recorded, "losses": [2.0, 1.5 * (1 + 2e-4)], "weights": 0.3 + 0.004}
    assert recipes.fingerprint_differences(nearly, recorded) == []
    (moved,) = recipes.fingerprint_differences({**recorded, "losses": [2.0, 1.501]}, recorded)
    assert "after step 2" in moved
    (moved,) = recipes.fingerprint_differences({**recorded, "weights": 0.31}, recorded)
    assert "signature" in moved
    old = {key: value for key, value in recorded.items() if key not in ("losses", "scale")}
    assert any("record it again" in problem for problem in recipes.fingerprint_differences(recorded, old))
    assert recipes.fingerprint_differences({**recorded, "steps": 3}, recorded)
