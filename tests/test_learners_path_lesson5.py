"""Lesson 5's pieces are what runs (#28): a PixelCNN built with the learner's ``causal_mask`` (pasted from the
folded solution) trains exactly as the package's, the learner's ``nll_bits_per_image`` measures it as the package
does, and the learner's ``sample_codes`` draws through ``sampling.sample_with`` what the package's loop draws;
a planted mistake changes each result; the trials send an answer that passes the check but cannot run the model
back to the package's."""

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from test_lessons import assert_learners_path  # tests/test_lessons.py

from vqvae_lessons import exercises, metrics
from vqvae_lessons.exercises import lesson5
from vqvae_lessons.priors import pixelcnn, sampling

K = 16


def fit_prior(architecture="keras-example", channels=16, num_layers=1, **pieces):
    """Two seeded epochs of a small PixelCNN on 64 fixed random maps: losses, weights, the prior."""
    keras.utils.set_random_seed(0)
    prior = pixelcnn.PixelCNN(architecture, K, channels=channels, num_layers=num_layers, **pieces)
    prior.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    codes = np.random.default_rng(1).integers(0, K, size=(64, 7, 7)).astype("int32")
    history = prior.fit(codes, codes, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    return history["loss"], np.concatenate([w.ravel() for w in prior.get_weights()]), prior


def test_a_prior_built_with_the_learners_masks_trains_as_the_packages():
    package_losses, package_weights, package_prior = fit_prior()
    losses, weights, prior = fit_prior(mask_fn=pasted("causal_mask"))
    np.testing.assert_allclose(losses, package_losses, rtol=1e-5)  # same seeds, same masks: round-off only
    np.testing.assert_allclose(weights, package_weights, atol=1e-5)
    for ours, theirs in zip(prior._flatten_layers(), package_prior._flatten_layers(), strict=True):
        if hasattr(ours, "mask"):
            np.testing.assert_array_equal(ours.mask, theirs.mask)

    def centre_always_visible(kernel_size, mask_type):  # a planted mistake: type A sees its own code
        return pasted("causal_mask")(kernel_size, "B")

    mistaken, _, cheat = fit_prior(mask_fn=centre_always_visible)
    assert not np.allclose(mistaken, package_losses, rtol=1e-3)
    codes = np.random.default_rng(2).integers(0, K, size=(1, 7, 7)).astype("int32")
    changed = codes.copy()
    changed[0, 3, 3] = (codes[0, 3, 3] + 1) % K  # the code at (3, 3): its own prediction must not see it
    for model, sees_itself in [(prior, False), (cheat, True)]:
        moved = np.abs(model.predict(changed, verbose=0) - model.predict(codes, verbose=0))[0, 3, 3].max()
        assert (moved > 1e-6) == sees_itself, moved


def test_the_learners_nll_and_sampling_loop_give_the_packages_figures():
    *_, prior = fit_prior(mask_fn=pasted("causal_mask"))
    codes = np.random.default_rng(2).integers(0, K, size=(20, 7, 7)).astype("int32")
    logits = prior.predict(codes, verbose=0)
    bits = pasted("nll_bits_per_image")(logits, codes)
    assert bits == pytest.approx(metrics.evaluate_prior(prior, codes)["test_nll_bits_per_image"], rel=1e-4)
    in_nats = next(fn for fn, why in lesson5._NLL_BITS_MISTAKES if why.startswith("that is the answer in nats"))
    assert in_nats(logits, codes) == pytest.approx(bits * np.log(2), rel=1e-4)

    drawn = sampling.sample_with(pasted("sample_codes"), prior, 6, seed=3)
    np.testing.assert_array_equal(drawn, sampling.sample_with(lesson5.sample_codes, prior, 6, seed=3))
    assert drawn.shape == (6, 7, 7) and drawn.dtype == np.int32

    columns_first = lesson5._sampler(columns_first=True)  # a planted mistake: the positions visited down the columns
    assert not np.array_equal(sampling.sample_with(columns_first, prior, 6, seed=3), drawn)


def test_the_loop_at_a_tiny_temperature_draws_the_packages_most_likely_codes():
    *_, prior = fit_prior()
    drawn = sampling.sample_with(pasted("sample_codes"), prior, 8, temperature=1e-6, seed=0)
    np.testing.assert_array_equal(drawn, sampling.sample(prior, 8, temperature=0, seed=0))


def _float_codes(logits_fn, shape, rng):
    """The reference loop on a float map of codes: it passes the check (whose logits_fn takes any numbers) but a
    prior refuses codes that are not integers."""
    n, h, w = shape
    codes = np.zeros(shape)  # floats
    for i in range(h):
        for j in range(w):
            probs = lesson5._softmax(np.asarray(logits_fn(codes), "float64")[:, i, j])
            codes[:, i, j] = [rng.choice(len(p), p=p) for p in probs]
    return codes.astype(int)


def test_use_runs_the_learners_pieces_and_the_trials_send_what_cannot_run_the_prior_back(capsys):
    for name in ("causal_mask", "nll_bits_per_image", "sample_codes"):
        fn = pasted(name)
        assert exercises.use(name, fn) is fn
        assert "Using yours" in capsys.readouterr().out
    assert exercises.check("sample_codes", _float_codes) is True
    assert exercises.use("sample_codes", _float_codes) is lesson5.sample_codes
    out = capsys.readouterr().out
    assert "cannot run inside the model" in out and "integer codes" in out, out

    def mask_as_a_tensor(kernel_size, mask_type):  # keras.ops: a backend tensor, which the prior converts
        from keras import ops

        return ops.convert_to_tensor(pasted("causal_mask")(kernel_size, mask_type))

    assert exercises.use("causal_mask", mask_as_a_tensor) is mask_as_a_tensor
    assert exercises.use("causal_mask", None) is lesson5.causal_mask


@pytest.mark.parametrize(("pieces", "error", "message"), [
    ({"mask_fn": "A"}, TypeError, "mask_fn must be a function"),
    ({"architecture": "gated", "mask_fn": lesson5.causal_mask}, ValueError, "vertical stacks"),
    ({"mask_fn": lambda k, t: np.ones((k, k + 1))}, ValueError, r"must return a \(7, 7\) array of 0 and 1"),
    ({"mask_fn": lambda k, t: 2 * lesson5.causal_mask(k, t)}, ValueError, "array of 0 and 1"),
])
def test_bad_mask_functions_are_clear_errors(pieces, error, message):
    settings = {"architecture": "keras-example", "num_codes": K, "channels": 8, "num_layers": 1} | pieces
    with pytest.raises(error, match=message):
        pixelcnn.PixelCNN(**settings)


def test_sample_with_refuses_what_is_not_a_sampling_loop():
    *_, prior = fit_prior()
    with pytest.raises(TypeError, match="sample_codes must be a function"):
        sampling.sample_with("loop", prior, 2)
    with pytest.raises(ValueError, match="not the codes"):
        sampling.sample_with(lambda logits_fn, shape, rng: np.zeros((2, 49), "int32"), prior, 2)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        sampling.sample_with(lesson5.sample_codes, prior, 2, temperature=0)


def fit_gated(**pieces):
    """:func:`fit_prior` of a small gated PixelCNN (8 channels, 2 blocks)."""
    return fit_prior("gated", channels=8, num_layers=2, **pieces)


def test_a_gated_prior_built_with_the_learners_gate_trains_as_the_packages_and_samples_the_same():
    package_losses, package_weights, package_prior = fit_gated()
    losses, weights, prior = fit_gated(gate_fn=pasted("gate"))
    np.testing.assert_allclose(losses, package_losses, rtol=1e-5)  # same seeds, the same gate: round-off only
    np.testing.assert_allclose(weights, package_weights, atol=1e-5)
    assert all(block.gate is not pixelcnn._gate for block in prior.stages[:-1])  # the learner's gate runs
    assert all(block.gate is pixelcnn._gate for block in package_prior.stages[:-1])
    codes = np.random.default_rng(2).integers(0, K, size=(3, 7, 7)).astype("int32")
    np.testing.assert_allclose(prior.predict(codes, verbose=0), package_prior.predict(codes, verbose=0), atol=1e-4)
    np.testing.assert_array_equal(sampling.sample(prior, 4, seed=0), sampling.sample(package_prior, 4, seed=0))

    def halves_swapped(x):  # a planted mistake: the sigmoid on the first half
        a, b = keras.ops.split(x, 2, axis=-1)
        return keras.ops.sigmoid(a) * keras.ops.tanh(b)

    _, mistaken, _ = fit_gated(gate_fn=halves_swapped)
    assert not np.allclose(mistaken, package_weights, atol=1e-3)


def test_train_prior_hands_the_gate_to_the_prior():
    from vqvae_lessons import pretrained, train

    calls = []

    def counting_gate(x):
        calls.append(tuple(x.shape))
        return pasted("gate")(x)

    data = type("Data", (), {})()  # the smallest data train_prior reads: 8 training images, no validation
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    data.split = lambda validation: (images, np.zeros(8, "int64"), images[:0], np.zeros(0, "int64"))
    prior, _ = train.train_prior(pretrained.load("vqvae-k128-d16"), "gated", channels=8, num_layers=2, epochs=1,
                                 batch_size=8, data=data, validate=False, verbose=0,
                                 prior_options={"gate_fn": counting_gate})
    assert calls and all(block.gate is counting_gate for block in prior.stages[:-1])


@pytest.mark.parametrize(("pieces", "error", "message"), [
    ({"gate_fn": "tanh"}, TypeError, "gate_fn must be a function"),
    ({"architecture": "keras-example", "gate_fn": lesson5.gate}, ValueError, "has no gate"),
    ({"gate_fn": lambda x: keras.ops.tanh(x)}, ValueError, r"must map \(\.\.\., 2C\) to \(\.\.\., C\)"),
])
def test_bad_gate_functions_are_clear_errors(pieces, error, message):
    settings = {"architecture": "gated", "num_codes": K, "channels": 8, "num_layers": 1} | pieces
    with pytest.raises(error, match=message):
        pixelcnn.PixelCNN(**settings)


def test_use_runs_the_learners_gate_and_sends_a_numpy_gate_back(capsys):
    fn = pasted("gate")
    assert exercises.use("gate", fn) is fn
    assert "Using yours" in capsys.readouterr().out

    def numpy_gate(x):  # right, and passes the check, but cannot run on the prior's symbolic tensors
        c = x.shape[-1] // 2
        return np.tanh(x[..., :c]) * (0.5 + 0.5 * np.tanh(0.5 * x[..., c:]))

    assert exercises.check("gate", numpy_gate) is True
    assert exercises.use("gate", numpy_gate) is lesson5.gate
    out = capsys.readouterr().out
    assert "cannot run inside the model" in out and "keras.ops" in out, out


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("05_pixelcnn_prior")
