"""What the learner writes is what runs (#28), lesson 2: a VQ-VAE built from the learner's distances, nearest
code, straight-through estimator and losses (``VQVAE(pieces={...})``, pasted as a learner pastes the folded
solutions) trains to the package path's figures (same seeds), a planted mistake changes them, and an answer
that passes its check in NumPy but cannot run inside the model falls back to the package's through ``use``."""

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from test_lessons import assert_learners_path  # tests/test_lessons.py

from vqvae_lessons import quantizers
from vqvae_lessons.exercises import lesson2, use
from vqvae_lessons.quantizers import CodebookMaintenance
from vqvae_lessons.vqvae import VQVAE

PIECES = ("pairwise_sq_distances", "nearest_code", "straight_through", "vq_losses")


def fit_vqvae(pieces=None):
    """Two seeded epochs of the Keras example's VQ-VAE (K = 32) on 64 fixed random images, with the lesson's
    codebook maintenance: the per-epoch history, the weights and the codes of the images."""
    images = np.random.default_rng(1).uniform(size=(64, 28, 28, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = VQVAE(architecture="keras-example", num_embeddings=32, embedding_dim=8, quantizer="loss", pieces=pieces)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    maintenance = CodebookMaintenance(images, every=2, sample_size=16, seed=0)
    history = model.fit(images, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[maintenance]).history
    return history, np.concatenate([w.ravel() for w in model.get_weights()]), model.encode(images)


@pytest.fixture(scope="module")
def package_path():
    return fit_vqvae()


def test_a_vqvae_built_from_the_learners_quantizer_trains_as_the_packages(package_path):
    package_history, package_weights, package_codes = package_path
    history, weights, codes = fit_vqvae({name: pasted(name) for name in PIECES})
    for key in ("loss", "reconstruction_loss", "vq_loss", "batch_perplexity"):
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(weights, package_weights, atol=1e-5)
    np.testing.assert_array_equal(codes, package_codes)


def test_the_stubs_path_is_the_package_path(package_path):
    """What ``use`` gives for every stub (the package's functions) computes the package path exactly."""
    history, weights, _ = fit_vqvae({name: getattr(quantizers, name) for name in PIECES})
    assert history == package_path[0]
    np.testing.assert_array_equal(weights, package_path[1])


def test_a_planted_mistake_changes_what_the_model_learns(package_path):
    learners = {name: pasted(name) for name in PIECES}

    def no_beta(x, q, beta):  # a planted mistake: beta forgotten, the commitment loss weighs as much as the other
        return learners["vq_losses"](x, q, 1.0)

    mistaken, weights, _ = fit_vqvae(learners | {"vq_losses": no_beta})
    assert not np.allclose(mistaken["vq_loss"], package_path[0]["vq_loss"], rtol=0.05)
    assert not np.allclose(weights, package_path[1], atol=1e-3)


def numpy_distances(x, codebook):
    """A right answer in NumPy: the check takes it, but it cannot run on a compiled step's symbolic tensors."""
    return np.sum(x**2, axis=1, keepdims=True) + np.sum(codebook**2, axis=1) - 2 * x @ codebook.T


def numpy_nearest(x, codebook):
    return np.argmin(numpy_distances(x, codebook), axis=1)


@pytest.mark.parametrize("name, answer", [("pairwise_sq_distances", numpy_distances),
                                          ("nearest_code", numpy_nearest)])
def test_a_numpy_answer_passes_its_check_but_the_model_runs_the_packages(capsys, name, answer):
    assert use(name, answer) is getattr(lesson2, name)
    out = capsys.readouterr().out
    assert out.startswith("Using the package's: yours passes its check but cannot run inside the model"), out
    assert "keras.ops" in out


@pytest.mark.parametrize("name", PIECES)
def test_a_right_answer_passes_its_trial(capsys, name):
    learners = pasted(name)
    assert use(name, learners) is learners
    assert capsys.readouterr().out.startswith("Using yours")


def test_the_learners_ema_step_is_the_layers_first_update_with_lam_scaled():
    """The lesson's claim: from a zero state, ema_update with lam = (1 - decay) epsilon gives the codebook of the
    EMA layer's first (bias-corrected) update."""
    k, d, decay = 6, 2, 0.9
    rng = np.random.default_rng(3)
    start, batch = rng.uniform(-3, 3, size=(k, d)).astype("float32"), rng.normal(size=(40, d)).astype("float32")
    layer = quantizers.VectorQuantizerEMA(k, d, decay=decay)
    layer.build((None, d))
    layer.set_codes(np.arange(k), start)
    layer(batch, training=True)
    codes = keras.ops.convert_to_numpy(quantizers.nearest_code(batch, start))
    _, _, stepped = pasted("ema_update")(np.zeros(k), np.zeros((k, d)), batch, codes, decay,
                                         (1 - decay) * layer.epsilon)
    np.testing.assert_allclose(stepped, keras.ops.convert_to_numpy(layer.embeddings), atol=1e-5)


def test_the_lessons_gradient_comparison_runs_the_learners_derivation_when_it_passes(capsys):
    """Section 5 compares ``use("encoder_gradient", ...)`` with the backend's gradient: the learner's derivation
    runs when right; a wrong one (the commitment term forgotten) falls back to the package's, which agrees."""
    yours = pasted("encoder_gradient")
    assert use("encoder_gradient", yours) is yours
    assert "Using yours" in capsys.readouterr().out
    forgot_commitment = lambda grad_q, z_e, z_q, beta: grad_q * 1.0  # noqa: E731
    assert use("encoder_gradient", forgot_commitment) is lesson2.encoder_gradient
    assert "Using the package's" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("02_vector_quantization")
