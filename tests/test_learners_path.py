"""What the learner writes is what runs (#28): the package's models take the exercises' pieces, and a model
built from the folded solutions, pasted as a learner pastes them, trains to the package path's figures (same
seeds), while a planted mistake changes them: so the lessons' figures are the learner's own."""

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from test_lessons import assert_learners_path  # tests/test_lessons.py

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


def fit_vqvae(**learners):
    """Two seeded epochs of the Keras example's VQ-VAE (learned codebook) on 256 fixed MNIST-like images."""
    from vqvae_lessons.vqvae import VQVAE

    keras.utils.set_random_seed(0)
    model = VQVAE("keras-example", 16, 4, quantizer="loss", data_variance=0.1, **learners)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = (np.random.default_rng(2).uniform(size=(256, 28, 28, 1)) > 0.8).astype("float32")
    history = model.fit(images, epochs=2, batch_size=64, shuffle=False, verbose=0).history
    return history, np.concatenate([w.ravel() for w in model.get_weights()])


def test_a_vqvae_trained_through_the_learners_forward_pass_trains_as_the_packages():
    """Lesson 3 trains through ``use("vqvae_forward", ...)``: the learner's pasted answer or the package's reference
    (which looks its codes up with ``take``, a sparse gradient for the codebook, where the package's quantizer
    multiplies a one-hot matrix: Adam treats the two differently, so both paths go through ``forward``)."""
    from vqvae_lessons.exercises import lesson3

    package_history, package_weights = fit_vqvae(forward=lesson3.vqvae_forward)
    forward = pasted("vqvae_forward")
    history, weights = fit_vqvae(forward=forward)
    for key in ("loss", "reconstruction_loss", "vq_loss", "batch_perplexity"):
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(weights, package_weights, atol=1e-6)
    chain_history, _ = fit_vqvae()  # the package's own chain: the same model, trained a little differently
    np.testing.assert_allclose(chain_history["loss"], package_history["loss"], rtol=0.1)

    def without_commitment(*args):  # a planted mistake: the commitment loss left out
        return {**forward(*args), "commitment_loss": 0.0 * forward(*args)["commitment_loss"]}

    mistaken, _ = fit_vqvae(forward=without_commitment)
    assert not np.allclose(mistaken["vq_loss"], package_history["vq_loss"], rtol=1e-2)


def test_a_forward_pass_needs_a_learned_codebook():
    from vqvae_lessons.vqvae import VQVAE

    with pytest.raises(ValueError, match="forward must be a function, for quantizer='loss'"):
        VQVAE("keras-example", 16, 4, quantizer="ema", forward=pasted("vqvae_forward"))


class FakeJudge:
    """A judge of fixed probabilities and features, so that judge_images's scores are the pieces' alone."""

    def __init__(self, n):
        rng = np.random.default_rng(3)
        self.probs = rng.dirichlet(np.ones(10) * 0.3, size=n)
        self.feats = rng.normal(size=(n, 6)) @ rng.normal(size=(6, 6))

    def probabilities(self, images):
        return self.probs

    def features(self, images):
        return self.feats


def test_judge_images_scores_with_the_learners_pieces(monkeypatch):
    from vqvae_lessons import judge

    fake = FakeJudge(200)
    monkeypatch.setattr(judge, "reference_features", lambda j, data: np.random.default_rng(4).normal(size=(300, 6)))
    images = np.zeros((200, 28, 28, 1), "float32")
    package = judge.judge_images(images, judge=fake)
    learners = {"inception_score": pasted("inception_score"), "frechet_distance": pasted("frechet_distance")}
    yours = judge.judge_images(images, judge=fake, pieces=learners)
    for key in ("inception_score", "frechet_distance"):
        assert yours[key] == pytest.approx(package[key], rel=1e-9)
    doubled = judge.judge_images(images, judge=fake, pieces={"frechet_distance": lambda a, b: 2 * learners[
        "frechet_distance"](a, b)})  # a planted mistake shows in the result
    assert doubled["frechet_distance"] == pytest.approx(2 * package["frechet_distance"], rel=1e-9)
    with pytest.raises(ValueError, match=r"not a piece of judge_images; it knows \['inception_score'"):
        judge.judge_images(images, judge=fake, pieces={"fid": learners["frechet_distance"]})


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("01_autoencoders_and_vae")
