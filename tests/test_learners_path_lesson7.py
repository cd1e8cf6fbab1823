"""What the learner writes is what runs (#28), lesson 7: FSQ, LFQ and residual VQ take the exercises' pieces. A VQ-VAE
whose FSQ quantizes with the pasted ``fsq_quantize`` trains as the package's (same seeds), and a residual VQ whose
stages run the pasted ``residual_stage`` gives the package's codes and trains as it does; a planted mistake changes
them; the trials (what ``use`` runs: one compiled training step) refuse an answer that rounds or searches with
NumPy, which passes the check on eager tensors or NumPy arrays, so that ``use`` falls back to the package's.
Tolerances: the pasted ``fsq_quantize`` is the package's computation, so FSQ's losses, weights and codes agree to
1e-6; residual VQ's sum of codes is the codes themselves with the pasted piece and ``x + (code - x)`` (the
straight-through value) without it, which rounds differently: its outputs, training losses (rtol) and weights
agree to 1e-5."""

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from keras import ops
from test_lessons import assert_learners_path  # tests/test_lessons.py

from vqvae_lessons import exercises
from vqvae_lessons.exercises import lesson7
from vqvae_lessons.quantizers import FiniteScalarQuantizer, LookupFreeQuantizer, ResidualVectorQuantizer
from vqvae_lessons.vqvae import VQVAE


def images(n=64, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, 28, 28, 1)).astype("float32")


def fit(pieces=None, epochs=2, **settings):
    """Two seeded epochs of a small VQ-VAE on 64 fixed random images: the history, the weights and the codes."""
    keras.utils.set_random_seed(0)
    model = VQVAE("keras-example", pieces=pieces, **settings)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(images(), epochs=epochs, batch_size=16, shuffle=False, verbose=0).history
    return history, np.concatenate([w.ravel() for w in model.get_weights()]), model.encode(images(8, seed=2))


FSQ = {"quantizer": "fsq", "levels": (8, 4, 4)}
RVQ = {"quantizer": "rvq", "num_quantizers": 2, "num_embeddings": 8, "embedding_dim": 4}


def numpy_fsq(z, levels):
    """A learner's FSQ that rounds with NumPy: right on eager tensors (so it passes the check), but np.round cannot
    take the compiled step's symbolic tensors."""
    levels = np.asarray(levels, "float32")
    h = (levels - 1) * (1 - 1e-3) / 2
    offset = np.where(levels % 2 == 0, 0.5, 0.0).astype("float32")
    bounded = ops.tanh(z + np.tan(offset / h).astype("float32")) * h - offset
    return (bounded + ops.stop_gradient(np.round(bounded) - bounded)) / np.floor(levels / 2)


def numpy_stage(residual, codebook):
    """A learner's residual stage in NumPy, as the exercise allows (it passes the check on NumPy arrays)."""
    residual, codebook = np.asarray(residual), np.asarray(codebook)
    code = codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
    return code, residual - code


# -- FSQ ----------------------------------------------------------------------------------------
def test_an_fsq_layer_with_the_learners_function_gives_the_packages_codes_and_gradient():
    z = np.random.default_rng(0).normal(size=(3, 7, 7, 3)).astype("float32") * 1.5
    package, learners = (FiniteScalarQuantizer((8, 4, 4), pieces=pieces)
                         for pieces in (None, {"fsq_quantize": pasted("fsq_quantize")}))
    want, got = package(z), learners(z)
    for key in ("quantized", "indices", "perplexity", "usage"):
        np.testing.assert_array_equal(ops.convert_to_numpy(got[key]), ops.convert_to_numpy(want[key]), err_msg=key)
    np.testing.assert_array_equal(ops.convert_to_numpy(learners.code_indices(z)),
                                  ops.convert_to_numpy(package.code_indices(z)))
    from vqvae_lessons.gradients import gradients

    weights = np.random.default_rng(1).normal(size=z.shape).astype("float32")
    [want_grad], [got_grad] = (gradients(lambda t, layer=layer: ops.sum(layer(t)["quantized"] * weights), [z])
                               for layer in (package, learners))
    np.testing.assert_allclose(got_grad, want_grad, atol=1e-6)
    assert "pieces" not in learners.get_config()


def test_a_vqvae_with_the_learners_fsq_trains_as_the_packages():
    package_history, package_weights, package_codes = fit(**FSQ)
    learners = {"fsq_quantize": pasted("fsq_quantize")}
    history, weights, codes = fit(learners, **FSQ)
    for key in ("loss", "reconstruction_loss"):
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(weights, package_weights, atol=1e-6)
    np.testing.assert_array_equal(codes, package_codes)

    no_offset = lesson7._fsq_variant(bound="no_offset")  # a planted mistake: even L rounds to L - 1 values
    mistaken, _, mistaken_codes = fit({"fsq_quantize": no_offset}, **FSQ)
    assert abs(mistaken["loss"][-1] / package_history["loss"][-1] - 1) > 1e-3
    assert np.mean(mistaken_codes != package_codes) > 0.1


def test_fsq_refuses_pieces_it_does_not_know_or_that_are_not_functions():
    with pytest.raises(ValueError, match=r"'nearest_code' is not a piece of FSQ; it knows \['fsq_quantize"):
        FiniteScalarQuantizer((8, 4, 4), pieces={"nearest_code": np.argmin})
    with pytest.raises(TypeError, match=r"pieces\['fsq_quantize'\] must be a function"):
        FiniteScalarQuantizer((8, 4, 4), pieces={"fsq_quantize": "round"})
    with pytest.raises(TypeError, match="pieces must be a dict"):
        FiniteScalarQuantizer((8, 4, 4), pieces=[pasted("fsq_quantize")])


def test_an_fsq_answer_that_rounds_with_numpy_passes_the_check_but_use_falls_back(capsys):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("np.round calls the array's own round, which a JAX tracer has: the answer runs on JAX")
    assert exercises.check("fsq_quantize", numpy_fsq) is True
    capsys.readouterr()
    assert exercises.use("fsq_quantize", numpy_fsq) is exercises._EXERCISES["fsq_quantize"].reference
    assert capsys.readouterr().out.startswith("Using the package's: yours passes its check but cannot run inside "
                                              "the model")


# -- LFQ's entropy penalty ----------------------------------------------------------------------
LFQ = {"quantizer": "lfq", "bits": 3}


def numpy_entropies(logits):
    """A learner's entropy terms in NumPy: right on eager tensors (it passes the check), but not inside the
    compiled step (and with no gradient)."""
    logits = np.asarray(logits, "float64")
    log_p = logits - logits.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    p, average = np.exp(log_p), np.exp(log_p).mean(0)
    return np.float32(-(p * log_p).sum(-1).mean()), np.float32(-(average * np.log(average + 1e-10)).sum())


def test_an_lfq_layer_with_the_learners_entropy_terms_gives_the_packages_losses_and_gradient():
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32") * 0.3
    package, learners = (LookupFreeQuantizer(3, pieces=pieces)
                         for pieces in (None, {"entropy_terms": pasted("entropy_terms")}))
    want, got = package(x), learners(x)
    for key in ("quantized", "indices", "loss", "codebook_loss", "per_sample_entropy", "codebook_entropy"):
        np.testing.assert_allclose(ops.convert_to_numpy(got[key]), ops.convert_to_numpy(want[key]), rtol=1e-5,
                                   atol=1e-6, err_msg=key)
    from vqvae_lessons.gradients import gradients

    [want_grad], [got_grad] = (gradients(lambda t, layer=layer: layer(t)["loss"], [x]) for layer in (package, learners))
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    assert "pieces" not in learners.get_config()
    swapped = LookupFreeQuantizer(3, pieces={"entropy_terms": lesson7._ENTROPY_MISTAKES[0][0]})  # a planted mistake
    assert float(swapped(x)["codebook_loss"]) == pytest.approx(-float(want["codebook_loss"]), rel=1e-4)


def test_a_vqvae_with_the_learners_entropy_terms_trains_as_the_packages():
    package_history, package_weights, package_codes = fit(**LFQ)
    history, weights, codes = fit({"entropy_terms": pasted("entropy_terms")}, **LFQ)
    for key in ("loss", "reconstruction_loss"):  # the pasted penalty is the package's computation, op for op
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-6, err_msg=key)
    np.testing.assert_allclose(weights, package_weights, atol=1e-6)
    np.testing.assert_array_equal(codes, package_codes)

    swapped = lesson7._ENTROPY_MISTAKES[0][0]  # a planted mistake: the pair swapped, so the penalty changes sign
    mistaken, _, _ = fit({"entropy_terms": swapped}, **LFQ)
    assert abs(mistaken["loss"][-1] - package_history["loss"][-1]) > 1e-3


def test_an_entropy_terms_in_numpy_passes_the_check_but_use_falls_back(capsys):
    assert exercises.check("entropy_terms", numpy_entropies) is False  # no gradient reaches the logits
    capsys.readouterr()
    assert exercises.use("entropy_terms", pasted("entropy_terms")) is not exercises._EXERCISES[
        "entropy_terms"].reference
    assert capsys.readouterr().out.startswith("Using yours")
    assert exercises.use("entropy_terms", numpy_entropies) is exercises._EXERCISES["entropy_terms"].reference


# -- residual VQ --------------------------------------------------------------------------------
def test_a_residual_quantizer_with_the_learners_stage_gives_the_packages_codes():
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 4)).astype("float32")
    package, learners = (ResidualVectorQuantizer(3, 8, 4, pieces=pieces) for pieces in
                         (None, {"residual_stage": pasted("residual_stage")}))
    package.build(x.shape)
    learners.build(x.shape)
    learners.set_weights(package.get_weights())
    want, got = package(x), learners(x)
    np.testing.assert_array_equal(ops.convert_to_numpy(got["indices"]), ops.convert_to_numpy(want["indices"]))
    for key in ("quantized", "loss", "commitment_loss", "perplexity"):
        np.testing.assert_allclose(ops.convert_to_numpy(got[key]), ops.convert_to_numpy(want[key]), atol=1e-5,
                                   err_msg=key)
    farthest = lesson7._RESIDUAL_MISTAKES[4][0]  # a planted mistake: each stage picks its farthest code
    wrong = ResidualVectorQuantizer(3, 8, 4, pieces={"residual_stage": lambda r, c: tuple(
        ops.convert_to_tensor(part) for part in farthest(ops.convert_to_numpy(r), ops.convert_to_numpy(c)))})
    wrong.build(x.shape)
    wrong.set_weights(package.get_weights())
    assert np.abs(ops.convert_to_numpy(wrong(x)["quantized"] - want["quantized"])).max() > 0.1
    assert "pieces" not in learners.get_config()
    with pytest.raises(ValueError, match=r"it knows \['residual_stage'\]"):
        ResidualVectorQuantizer(3, 8, 4, pieces={"fsq_quantize": pasted("fsq_quantize")})


def test_a_vqvae_with_the_learners_residual_stage_trains_as_the_packages():
    package_history, package_weights, package_codes = fit(**RVQ)
    history, weights, codes = fit({"residual_stage": pasted("residual_stage")}, **RVQ)
    for key in ("loss", "reconstruction_loss"):
        np.testing.assert_allclose(history[key], package_history[key], rtol=1e-5, err_msg=key)
    if keras.backend.backend() == "tensorflow":
        np.testing.assert_array_equal(codes, package_codes)
        np.testing.assert_allclose(weights, package_weights, atol=1e-5)
    else:  # XLA's round-off differs between the two paths: measured on JAX, 0.8% of the codes and 10% of the
        assert np.mean(codes == package_codes) > 0.98  # weights (by up to 0.04) differ, the losses agree to 1e-5

    def keeps_the_residual(residual, codebook):  # a planted mistake: the next stage gets the same vectors again
        code, _ = pasted("residual_stage")(residual, codebook)
        return code, residual

    mistaken, mistaken_weights, _ = fit({"residual_stage": keeps_the_residual}, **RVQ)
    assert abs(mistaken["reconstruction_loss"][-1] / package_history["reconstruction_loss"][-1] - 1) > 1e-4
    assert np.abs(mistaken_weights - package_weights).max() > 1e-2


def test_a_residual_stage_in_numpy_passes_the_check_but_use_falls_back(capsys):
    assert exercises.check("residual_stage", numpy_stage) is True
    capsys.readouterr()
    assert exercises.use("residual_stage", numpy_stage) is exercises._EXERCISES["residual_stage"].reference
    assert capsys.readouterr().out.startswith("Using the package's: yours passes its check but cannot run inside "
                                              "the model")


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("07_modern_quantizers")
