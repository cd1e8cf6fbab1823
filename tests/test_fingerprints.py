"""A card's command gives the card's model: every shipped weight's card records a fingerprint of its
training (:func:`vqvae_lessons.recipes.fingerprint`: the mean loss of its recipe's first 20 seeded
steps), and this test trains those steps with today's code and compares. A change that alters how a
shipped recipe trains fails here, until its weights are trained again (``python -m vqvae_lessons
reproduce NAME``) or the card says why not."""

import keras
import numpy as np
import pytest

from vqvae_lessons import pretrained, recipes

pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                reason="the cards' fingerprints are TensorFlow's: the seeded draws differ by backend")


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_the_recipe_trains_as_its_card_recorded(name, real_mnist, request):
    card = pretrained.card(name)
    recorded = card["training"].get("fingerprint")
    assert recorded is not None, f"{name}'s card records no fingerprint: reproduce it, or record one"
    recipe = recipes.RECIPES[name]
    vqvae = pretrained.load_vqvae(recipe.vqvae) if recipe.kind == "prior" else None
    data = real_mnist
    if getattr(recipe, "dataset", "mnist") == "fashion_mnist":
        data = request.getfixturevalue("real_fashion_mnist")
    measured = recipes.fingerprint(recipe, data, vqvae)
    assert measured["steps"] == recorded["steps"] and measured["train_size"] == recorded["train_size"]
    tolerance = recipes.FINGERPRINT_TOLERANCE
    np.testing.assert_allclose(measured["loss"], recorded["loss"], rtol=tolerance,
                               err_msg=f"{name} no longer trains as its card recorded")
    np.testing.assert_allclose(measured["weights"], recorded["weights"], atol=tolerance,
                               err_msg=f"{name}'s weights after 20 steps are no longer those its card recorded")


def test_a_fingerprint_tells_recipes_apart(tiny_mnist):
    """It is a signature of training: another seed or learning rate gives another one."""
    base = recipes.VQVAERecipe(architecture="keras-example", quantizer="loss", kmeans_init=False,
                               restart_dead_codes=False, batch_size=8)
    first = recipes.fingerprint(base, tiny_mnist)
    assert first == recipes.fingerprint(base, tiny_mnist)
    assert first["train_size"] == 20 * 8 and first["steps"] == 20
    for changed in (dict(seed=1), dict(learning_rate=3e-4)):
        other = recipes.fingerprint(recipes.dataclasses.replace(base, **changed), tiny_mnist)
        assert abs(other["weights"] - first["weights"]) > 100 * recipes.FINGERPRINT_TOLERANCE, changed
