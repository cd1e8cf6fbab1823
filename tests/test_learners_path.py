"""What the learner writes is what runs (#28): the package's models take the exercises' pieces, and a model
built from the folded solutions, pasted as a learner pastes them, trains to the package path's figures (same
seeds), while a planted mistake changes them: so the lessons' figures are the learner's own."""

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py

from vqvae_lessons import vae


def fit_vae(**pieces):
    """Two seeded epochs of a small VAE on 64 fixed random images: the per-epoch losses and the weights."""
    keras.utils.set_random_seed(0)
    model = vae.VAE(latent_dim=2, seed=0, **pieces)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(1).uniform(size=(64, 28, 28, 1)).astype("float32")
    history = model.fit(images, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    return history, np.concatenate([w.ravel() for w in model.get_weights()])


def test_a_vae_built_from_the_learners_pieces_trains_as_the_packages():
    package_history, package_weights = fit_vae()
    learners = {"reparameterize": pasted("reparameterize"), "kl_divergence": pasted("kl_divergence"),
                "loss": pasted("vae_loss")}
    history, weights = fit_vae(**learners)
    for key in ("loss", "kl_loss", "reconstruction_loss"):
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(weights, package_weights, atol=1e-5)

    def kl_twice(mean, log_var):  # a planted mistake: the factor 1/2 forgotten
        return 2 * learners["kl_divergence"](mean, log_var)

    mistaken, _ = fit_vae(**learners | {"kl_divergence": kl_twice})
    assert abs(mistaken["kl_loss"][0] / package_history["kl_loss"][0] - 2) < 0.01


def test_a_vae_refuses_a_piece_that_is_not_a_function():
    with pytest.raises(TypeError, match="loss must be a function"):
        vae.VAE(latent_dim=2, loss="binary_crossentropy")
