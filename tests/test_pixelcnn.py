"""The PixelCNN priors: masks, causality (proven by gradients), the blind spot, sampling."""

import functools

import keras
import numpy as np
import pytest
from keras import ops

from vqvae_lessons import data, metrics
from vqvae_lessons.gradients import gradients
from vqvae_lessons.priors import pixelcnn, sampling
from vqvae_lessons.priors.masked import MaskedConv2D, causal_mask
from vqvae_lessons.priors.pixelcnn import PixelCNN

K = 12  # a small codebook keeps the tests fast


@functools.cache
def small_prior(architecture="gated", num_classes=None):
    """One prior per kind, shared by the tests (sampling compiles once per prior)."""
    return new_prior(architecture, num_classes)


def new_prior(architecture="gated", num_classes=None, **kwargs):
    keras.utils.set_random_seed(0)
    defaults = {"channels": 8, "num_layers": 6 if architecture == "gated" else 2}
    return PixelCNN(architecture, num_codes=K, num_classes=num_classes, **{**defaults, **kwargs})


def random_codes(n, seed=0, num_codes=K):
    return np.random.default_rng(seed).integers(0, num_codes, (n, 7, 7)).astype("int32")


# -- masks ------------------------------------------------------------------------------------
def test_masks_of_type_a_and_b():
    a, b = causal_mask(3, "A"), causal_mask(3, "B")
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    assert causal_mask(7, "A").sum() == 24 and causal_mask(1, "A").sum() == 0 and causal_mask(1, "B").sum() == 1


def test_masks_of_the_vertical_and_horizontal_stacks():
    np.testing.assert_array_equal(causal_mask(3, "vertical-A"), [[1, 1, 1], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask(3, "vertical-B"), [[1, 1, 1], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(causal_mask((1, 5), "A"), [[1, 1, 0, 0, 0]])


@pytest.mark.parametrize("size, kind, message", [(4, "A", "odd sizes"), ((3, 2), "B", "odd sizes"),
                                                 (3, "C", "mask_type='C' is not known")])
def test_bad_masks(size, kind, message):
    with pytest.raises(ValueError, match=message):
        causal_mask(size, kind)


def test_a_masked_convolution_takes_its_mask_from_mask_fn_once():
    calls = []

    def mask_fn(kernel_size, mask_type):  # the package's masks, as a learner's function returns them
        calls.append((kernel_size, mask_type))
        return causal_mask(kernel_size, mask_type).astype(bool).tolist()

    for size, kind in [(7, "A"), ((1, 5), "B"), (3, "vertical-B")]:
        layer = MaskedConv2D(4, size, kind, mask_fn=mask_fn)
        assert layer.mask.dtype == np.float32
        np.testing.assert_array_equal(layer.mask, causal_mask(size, kind))
    assert calls == [(7, "A"), ((1, 5), "B"), (3, "vertical-B")]  # an int for a square kernel, else the pair
    assert "mask_fn" not in MaskedConv2D(4, 3, "B", mask_fn=mask_fn).get_config()
    with pytest.raises(TypeError, match="mask_fn must be a function"):
        MaskedConv2D(4, 3, "B", mask_fn=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"must return a \(3, 3\) array of 0 and 1, got shape \(2, 2\)"):
        MaskedConv2D(4, 3, "B", mask_fn=lambda k, t: np.ones((2, 2)))


# -- the masked convolution -------------------------------------------------------------------
def numpy_masked_conv(one_hot, kernel, mask, bias):
    """A plain 'same' cross-correlation of (N, H, W, C) with the masked kernel, in loops."""
    n, h, w, _ = one_hot.shape
    kh, kw = mask.shape
    padded = np.pad(one_hot, [(0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)])
    masked = kernel * mask[:, :, None, None]
    out = np.zeros((n, h, w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("nyxc,yxcf->nf", padded[:, i:i + kh, j:j + kw], masked)
    return out + bias


@pytest.mark.parametrize("kernel_size, mask_type", [(7, "A"), (3, "B"), ((1, 5), "A"), (5, "vertical-A")])
def test_looking_up_kernel_rows_equals_convolving_one_hot_codes(kernel_size, mask_type):
    layer = MaskedConv2D(6, kernel_size, mask_type, num_codes=K)
    codes = random_codes(3)
    from_codes = ops.convert_to_numpy(layer(codes))
    from_one_hot = ops.convert_to_numpy(layer(np.eye(K, dtype="float32")[codes]))
    layer.bias.assign(np.arange(6, dtype="float32"))
    reference = numpy_masked_conv(np.eye(K)[codes], ops.convert_to_numpy(layer.kernel), layer.mask,
                                  ops.convert_to_numpy(layer.bias))
    np.testing.assert_allclose(from_codes, from_one_hot, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(codes)), reference, atol=1e-5)


def test_the_mask_is_applied_in_the_forward_pass_not_stored_in_the_kernel():
    layer = MaskedConv2D(4, 3, "A")
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
    before = ops.convert_to_numpy(layer(x))
    kernel = ops.convert_to_numpy(layer.kernel)
    kernel[2] += 100.0  # the masked bottom row: changing it must change nothing
    kernel[1, 2] += 100.0
    layer.kernel.assign(kernel)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), before, atol=1e-5)
    assert np.abs(ops.convert_to_numpy(layer.kernel)[2]).max() > 50  # the weights themselves are untouched


@pytest.mark.parametrize("kernel_size, mask_type, columns", [((1, 3), "B", 2), ((1, 5), "A", 2), ((1, 5), "B", 3),
                                                          (3, "B", 3), (5, "vertical-B", 5)])
@pytest.mark.parametrize("pads", [{}, {"pad_left": 0, "pad_right": 0}, {"pad_left": 1, "pad_right": 0}])
def test_a_one_row_kernel_computes_only_the_columns_up_to_its_centre(kernel_size, mask_type, columns, pads):
    layer = MaskedConv2D(5, kernel_size, mask_type)
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 3)).astype("float32")
    out = ops.convert_to_numpy(layer(x, **pads))
    assert layer.columns == columns  # (1, k): the k // 2 + 1 columns up to the centre (type A: before it)
    kh, kw = layer.kernel_size
    left, right = pads.get("pad_left", kw // 2), pads.get("pad_right", kw // 2)
    padded = np.pad(x, [(0, 0), (kh // 2, 0), (left, right), (0, 0)])  # the full kernel's padding
    kernel = ops.convert_to_numpy(layer.kernel) * layer.mask[:, :, None, None]
    rows = kh // 2 + 1  # the rows below the centre are masked: the layer pads none below
    reference = np.zeros((2, 7, padded.shape[2] - kw + 1, 5))
    for j in range(reference.shape[2]):
        reference[:, :, j] = sum(np.einsum("nhc,cf->nhf", padded[:, dy:dy + 7, j + dx], kernel[dy, dx])
                                 for dy in range(rows) for dx in range(kw))
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, atol=1e-5)


# -- causality, proven by gradients -----------------------------------------------------------
def dependence(prior, labels=None, seed=0, training=False):
    """(49, 49) total |d logits at position p / d one-hot input at q| (row p, column q), in one
    backward pass: copy p of the same input only asks about the logits at p."""
    codes = np.repeat(random_codes(1, seed=seed), 49, axis=0)
    one_hot = np.eye(K, dtype="float32")[codes]
    weights = np.random.default_rng(seed).normal(size=(49, K)).astype("float32")

    def total(one_hot):
        logits = prior((one_hot, np.full(49, labels, "int32")) if labels is not None else one_hot, training=training)
        at_p = ops.sum(ops.reshape(logits, (49, 49, K)) * np.eye(49, dtype="float32")[:, :, None], axis=1)  # (49, K)
        return ops.sum(at_p * weights)

    (gradient,) = gradients(total, [one_hot])
    return np.abs(gradient).sum(axis=3).reshape(49, 49)


@pytest.mark.parametrize("architecture, num_classes", [("keras-example", None), ("gated", None), ("gated", 10)])
def test_logits_never_depend_on_the_code_at_or_after_their_position(architecture, num_classes):
    # Summed over a few random maps: a tiny random prior can have all its ReLUs off at a position for one map.
    depends = sum(dependence(small_prior(architecture, num_classes), labels=3 if num_classes else None, seed=seed)
                  for seed in range(3))
    assert np.all(np.triu(depends) == 0)  # position p (row) on codes q >= p (column): never
    left, above = np.arange(49)[np.arange(49) % 7 > 0], np.arange(7, 49)
    assert np.all(depends[left, left - 1] > 0) and np.all(depends[above, above - 7] > 0)  # but sees its neighbours


def test_dropout_acts_only_while_training_and_keeps_the_prior_causal():
    prior = new_prior("gated", 10, dropout=0.5)
    inputs = (random_codes(4), np.array([0, 3, 5, 9], "int32"))
    evaluated = ops.convert_to_numpy(prior(inputs))
    np.testing.assert_array_equal(ops.convert_to_numpy(prior(inputs)), evaluated)  # no dropout when evaluating
    assert not np.allclose(ops.convert_to_numpy(prior(inputs, training=True)), evaluated)
    assert np.all(np.triu(dependence(prior, labels=3, training=True)) == 0)  # dropping features never leaks
    assert PixelCNN.from_config(prior.get_config()).dropout == 0.5


def test_the_example_has_a_blind_spot_and_the_gated_prior_has_none():
    example, gated = dependence(small_prior("keras-example")), dependence(small_prior("gated"))
    unseen_example = np.tril(example == 0, -1)  # earlier positions q < p the logits at p ignore
    # (3, 0) never sees (2, 4), up and to the right, one row above: the blind spot of stacked masks.
    assert unseen_example[3 * 7 + 0, 2 * 7 + 4] and unseen_example.sum() > 50
    assert not np.tril(gated == 0, -1).any()


def test_log_probs_are_the_log_softmax_of_the_logits_at_each_code():
    prior = small_prior()
    codes = random_codes(5)
    logits = ops.convert_to_numpy(prior(codes)).astype("float64")
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = np.take_along_axis(log_softmax, codes[..., None], -1)[..., 0]
    np.testing.assert_allclose(prior.log_probs(codes, batch_size=2), want, atol=1e-5)
    results = metrics.evaluate_prior(prior, codes, train_codes=random_codes(20, seed=1))
    assert results["test_nll_nats_per_code"] == pytest.approx(-want.mean(), rel=1e-5)
    # bits per image: each map's own code length, -log2 p(map) = -sum of its 49 log2-probabilities, averaged
    code_lengths = -want.sum(axis=(1, 2)) / np.log(2)
    assert results["test_nll_bits_per_image"] == pytest.approx(code_lengths.mean(), rel=1e-5)
    assert results["uniform_bits_per_code"] == pytest.approx(np.log2(K))


@pytest.mark.parametrize("architecture", ["gated", "keras-example"])
def test_a_uniform_prior_spends_log2_of_the_number_of_maps_on_each(architecture):
    import itertools

    num_codes, grid = 3, (2, 3)
    prior = PixelCNN(architecture, num_codes, channels=4, num_layers=2, grid=grid)
    head = prior.stages[-1].logits  # equal logits everywhere: every map equally likely
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(np.zeros(head.bias.shape, "float32"))
    maps = np.array(list(itertools.product(range(num_codes), repeat=6)), "int32").reshape(-1, *grid)
    assert len({m.tobytes() for m in maps}) == 3 ** 6  # every map the grid can hold, once
    results = metrics.evaluate_prior(prior, maps)
    assert results["test_nll_bits_per_image"] == pytest.approx(np.log2(len(maps)), rel=1e-5)
    assert results["test_nll_bits_per_image"] == pytest.approx(metrics.bits_per_image(num_codes, grid), rel=1e-5)
    np.testing.assert_allclose(np.exp(prior.log_probs(maps).sum(axis=(1, 2))).sum(), 1.0, rtol=1e-4)  # sums to 1


# -- sampling ---------------------------------------------------------------------------------
def sequential_argmax(prior, given=None, labels=None):
    """The most likely map, position by position, recomputing the whole map each time."""
    codes = np.zeros((len(labels) if labels is not None else 3, 7, 7), "int32") if given is None else given.copy()
    for position in range(49):
        i, j = divmod(position, 7)
        scores = ops.convert_to_numpy(prior((np.maximum(codes, 0), labels) if labels is not None
                                            else np.maximum(codes, 0)))
        free = codes[:, i, j] < 0 if given is not None else np.ones(len(codes), bool)
        codes[free, i, j] = scores[free, i, j].argmax(-1)
    return codes


@pytest.mark.parametrize("architecture, num_classes", [("keras-example", None), ("gated", None), ("gated", 10)])
@pytest.mark.slow
def test_the_row_cached_sampler_computes_what_a_full_pass_computes(architecture, num_classes):
    prior = small_prior(architecture, num_classes)
    labels = np.array([0, 4, 9], dtype="int32") if num_classes else None
    np.testing.assert_array_equal(sampling.sample(prior, 3, labels=labels, temperature=0),
                                  sequential_argmax(prior, labels=labels))


@pytest.mark.slow
def test_temperature_near_zero_gives_the_most_likely_code():
    prior = new_prior()
    head = prior.stages[-1].logits  # an untrained prior's logits are (nearly) tied: spread them
    head.kernel.assign(head.kernel * 100.0)
    head.bias.assign(np.random.default_rng(0).normal(0, 10, head.bias.shape))
    greedy = sequential_argmax(prior)
    np.testing.assert_array_equal(sampling.sample(prior, 3, temperature=1e-4, seed=5), greedy)
    assert not np.array_equal(sampling.sample(prior, 3, temperature=1.0, seed=5), greedy)


@pytest.mark.slow
def test_a_fixed_seed_reproduces_the_samples():
    prior = small_prior("keras-example")
    first = sampling.sample(prior, 6, seed=3)
    np.testing.assert_array_equal(first, sampling.sample(prior, 6, seed=3))
    assert not np.array_equal(first, sampling.sample(prior, 6, seed=4))
    assert first.dtype == np.int32 and first.shape == (6, 7, 7) and first.min() >= 0 and first.max() < K


def test_samples_follow_the_prior_s_distribution():
    prior = small_prior()
    codes = sampling.sample(prior, 3000, seed=0, temperature=1.0, batch_size=1500)
    logits = ops.convert_to_numpy(prior(np.zeros((1, 7, 7), "int32")))[0, 0, 0].astype("float64")
    want = np.exp(logits - logits.max())
    want /= want.sum()  # the first position sees no codes: the same distribution for every map
    shares = np.bincount(codes[:, 0, 0], minlength=K) / len(codes)
    assert np.abs(shares - want).max() < 0.03


@pytest.mark.slow
def test_fixed_codes_stay_fixed_and_condition_the_rest():
    prior = small_prior()
    given = random_codes(3, seed=2)
    given[:, 4:] = -1  # keep the top four rows, complete the bottom three
    given[1, 2, 3] = -1
    completed = sampling.sample(prior, 3, given=given, temperature=0)
    kept = given >= 0
    np.testing.assert_array_equal(completed[kept], given[kept])
    np.testing.assert_array_equal(completed, sequential_argmax(prior, given=given))
    sampled = sampling.sample(prior, 3, given=given, seed=1)
    np.testing.assert_array_equal(sampled[kept], given[kept])


@pytest.mark.slow
def test_class_labels_change_the_samples():
    prior = new_prior(num_classes=10)
    prior.stages[1].class_bias.embeddings.assign(
        np.random.default_rng(0).normal(0, 3, prior.stages[1].class_bias.embeddings.shape))
    twos, sevens = (sampling.sample(prior, 4, labels=d, temperature=0) for d in (2, 7))
    assert not np.array_equal(twos, sevens)
    np.testing.assert_array_equal(sampling.sample(prior, 4, labels=np.full(4, 2), temperature=0), twos)


@pytest.mark.parametrize("kwargs, message", [
    ({"given": np.full((2, 7, 7), K)}, r"Codes must lie in \[0, 12\)"),
    ({"given": np.full((2, 7, 7), -2)}, "nothing below -1"),
    ({"given": np.full((2, 5, 5), -1)}, r"shape \(2, 7, 7\)"),
    ({"given": np.full((2, 7, 7), -1.0)}, "integer codes"),
    ({"temperature": -1.0}, "temperature must be a number >= 0"),
    ({"temperature": "1"}, "temperature must be a number >= 0 .* got '1'"),
    ({"batch_size": 2.5}, "batch_size is how many maps are drawn together, a positive integer, got 2.5"),
    ({"batch_size": 0}, "a positive integer, got 0"),
    ({"labels": 3}, "not class-conditional: leave labels out"),
])
def test_bad_sampling_requests_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sampling.sample(small_prior("keras-example"), 2, **kwargs)


@pytest.mark.parametrize("labels, message", [(None, "class-conditional: give labels"),
                                             (10, r"Labels must lie in \[0, 10\)"),
                                             (-1, r"Labels must lie in \[0, 10\)"),
                                             (np.array([1, 2, 3]), r"one label per map, shape \(2,\)"),
                                             (2.5, "integers")])
def test_labels_outside_0_to_9_are_clear_errors(labels, message):
    with pytest.raises(ValueError, match=message):
        sampling.sample(small_prior(num_classes=10), 2, labels=labels)


@pytest.mark.parametrize("codes, message", [(random_codes(2, num_codes=K + 5) + K, "Codes must lie in"),
                                            (np.zeros((2, 8, 8), "int32"), r"shape \(N, 7, 7\)"),
                                            (np.zeros((2, 7, 7), "float32"), "integer codes")])
def test_bad_codes_are_clear_errors(codes, message):
    with pytest.raises(ValueError, match=message):
        small_prior().log_probs(codes)


@pytest.mark.parametrize("codes, labels, message", [
    (np.full((2, 7, 7), K), [1, 2], r"Codes must lie in \[0, 12\) .* got values from 12 to 12"),  # the no-code row
    (np.full((2, 7, 7), -1), [1, 2], r"Codes must lie in \[0, 12\) .* got values from -1 to -1"),
    (random_codes(2), [1, 10], r"Labels must lie in \[0, 10\)"),
    (random_codes(2), [-1, 2], r"Labels must lie in \[0, 10\)"),
])
def test_codes_and_labels_out_of_range_are_clear_errors_in_call_and_fit(codes, labels, message):
    prior = new_prior("gated", 10, num_layers=2)
    labels = np.array(labels, "int32")
    with pytest.raises(ValueError, match=message):
        prior((codes, labels))
    prior.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match=message):
        prior.fit((codes, labels), np.clip(codes, 0, K - 1), epochs=1, verbose=0)
    good = (random_codes(2), np.array([1, 2], "int32"))
    with pytest.raises(ValueError, match=message):
        prior.fit(good, good[0], epochs=1, verbose=0, validation_data=((codes, labels), np.clip(codes, 0, K - 1)))
    assert prior.optimizer.iterations == 0  # refused before any training step
    if "Codes" in message:  # the targets are codes too
        with pytest.raises(ValueError, match=message):
            prior.fit(good, codes, epochs=1, verbose=0)
        with pytest.raises(ValueError, match=message):
            small_prior("keras-example")(codes)


def test_a_partial_last_batch_of_log_probs_gives_what_one_batch_gives():
    prior, codes, labels = small_prior(num_classes=10), random_codes(7), np.arange(7, dtype="int32")
    np.testing.assert_allclose(prior.log_probs(codes, labels, batch_size=3), prior.log_probs(codes, labels),
                               atol=1e-6)  # batches of 3 + 3 + 1
    np.testing.assert_allclose(small_prior().log_probs(codes, batch_size=4), small_prior().log_probs(codes),
                               atol=1e-6)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="architecture='pixelsnail' is not known"):
        PixelCNN("pixelsnail")
    with pytest.raises(ValueError, match="Only the gated PixelCNN can be class-conditional"):
        PixelCNN("keras-example", num_classes=10)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        PixelCNN("gated", channels=-3)
    with pytest.raises(ValueError, match=r"dropout is the fraction .* in \[0, 1\), got 1.0"):
        PixelCNN("gated", dropout=1.0)
    with pytest.raises(ValueError, match="Only the gated PixelCNN takes dropout"):
        PixelCNN("keras-example", dropout=0.1)
    for classes in (0, -3, 2.5):
        with pytest.raises(ValueError, match=f"num_classes is the number of class labels .* got {classes}"):
            PixelCNN("gated", num_classes=classes)


def test_generate_decodes_samples_and_checks_the_codebook_size():
    from vqvae_lessons.vqvae import VQVAE

    keras.utils.set_random_seed(0)  # its codes, and so which moved maps are new, do not hang on the tests before
    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    vqvae(np.zeros((1, 28, 28, 1), "float32"))
    images = sampling.generate(small_prior(), vqvae, 2, seed=0)
    assert images.shape == (2, 28, 28, 1) and 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match="The prior models 12 codes but the VQ-VAE has 16"):
        sampling.generate(small_prior(), VQVAE("keras-example", num_embeddings=16, embedding_dim=4), 2)


@pytest.mark.parametrize("architecture, num_classes", [("keras-example", None), ("gated", 10)])
@pytest.mark.slow
def test_a_saved_prior_loads_again(tmp_path, architecture, num_classes):
    prior = new_prior(architecture, num_classes)
    codes, labels = random_codes(2), np.array([1, 8], "int32")
    inputs = (codes, labels) if num_classes else codes
    prior.save(tmp_path / "prior.keras")
    loaded = keras.saving.load_model(tmp_path / "prior.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(inputs)), ops.convert_to_numpy(prior(inputs)), atol=1e-5)
    prior.save_weights(tmp_path / "prior.weights.h5")
    again = PixelCNN(**{k: v for k, v in prior.get_config().items() if k not in ("name", "trainable", "dtype")})
    again.load_weights(tmp_path / "prior.weights.h5")
    np.testing.assert_allclose(ops.convert_to_numpy(again(inputs)), ops.convert_to_numpy(prior(inputs)), atol=1e-5)


@pytest.mark.slow
def test_training_lowers_the_negative_log_likelihood(tiny_mnist):
    from vqvae_lessons.train import train_prior
    from vqvae_lessons.vqvae import VQVAE

    keras.utils.set_random_seed(0)  # its codes, and so which moved maps are new, do not hang on the tests before
    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    vqvae(np.zeros((1, 28, 28, 1), "float32"))
    prior, record = train_prior(vqvae, "gated", conditional=True, channels=8, num_layers=3, epochs=3,
                                learning_rate=3e-3, data=tiny_mnist, verbose=0)
    losses = record["history"]["loss"]
    assert losses[-1] < losses[0] and record["epochs"] == 3 and prior.conditional
    assert record["history"]["val_loss"][-1] < np.log(K)  # better than the uniform prior


def tiny_vqvae():
    from vqvae_lessons.vqvae import VQVAE

    keras.utils.set_random_seed(0)  # its codes, and so which moved maps are new, do not hang on the tests before
    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    vqvae(np.zeros((1, 28, 28, 1), "float32"))
    return vqvae


def test_augmented_epochs_hold_new_maps_in_a_new_order(tiny_mnist):
    from vqvae_lessons.train import epochs_of_codes

    vqvae, images = tiny_vqvae(), tiny_mnist.x_train  # 256 images: 4 batches of 64 an epoch
    codes, labels = vqvae.encode(images), tiny_mnist.y_train.astype("int32")
    def drawn_epochs(augment, batch_size=64):  # each epoch's (maps, labels, moves), laid end to end
        epochs = list(epochs_of_codes(vqvae, images, codes, labels, epochs=3, augment=augment, batch_size=batch_size))
        assert len(epochs) == 3
        return [np.concatenate(parts) for parts in zip(*epochs, strict=True)]

    drawn, drawn_labels, moves = drawn_epochs(0.5)
    assert drawn.shape == (3 * 256, 7, 7) and drawn_labels.shape == moves.shape == (3 * 256,)
    assert drawn_epochs(0.0, batch_size=100)[0].shape == (3 * 200, 7, 7)  # whole batches only: 56 of 256 left out
    plain, plain_labels, plain_moves = drawn_epochs(0.0)
    assert not plain_moves.any()  # nothing moved
    for epoch in range(3):  # without augmentation, each epoch is every map once, in its own order
        block = slice(epoch * 256, (epoch + 1) * 256)
        keys = lambda c, y: sorted(map(bytes, np.concatenate([c.reshape(256, -1), y[:, None]], 1)))  # noqa: E731
        assert keys(plain[block], plain_labels[block]) == keys(codes, labels)  # labels travel with their maps
    assert not np.array_equal(plain[:256], plain[256:512])
    again = drawn_epochs(0.5)
    np.testing.assert_array_equal(again[0], drawn)  # seeded
    known = {bytes(c) for c in codes.reshape(256, -1)}
    new = np.mean([bytes(c) not in known for c in drawn.reshape(len(drawn), -1)])
    assert 0.05 < new <= np.mean(moves > 0)  # moved copies make maps the training set does not hold, and only they
    assert 0.3 < np.mean(moves > 0) < 0.7 and set(np.unique(moves)) == set(range(9))  # 0: unmoved, 1-8: moves
    np.testing.assert_array_equal(again[2], moves)
    first = slice(0, 256)  # in an epoch, unmoved maps are training maps, moved ones the codes of a moved image
    assert all(bytes(c) in known for c in drawn[first][moves[first] == 0].reshape(-1, 49))
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)])
    for number, (dy, dx) in enumerate(data.shift_moves(), start=1):
        moved_codes = {bytes(c) for c in vqvae.encode(padded[:, 1 - dy:29 - dy, 1 - dx:29 - dx]).reshape(256, -1)}
        assert all(bytes(c) in moved_codes for c in drawn[first][moves[first] == number].reshape(-1, 49))


class _RowRecorder(keras.layers.Layer):
    """Passes its input on; while training, adds up the rows it sees (their first feature) and counts them."""

    def build(self, input_shape):
        self.total = self.add_weight(name="total", shape=(), initializer="zeros", trainable=False)
        self.count = self.add_weight(name="count", shape=(), initializer="zeros", trainable=False)

    def call(self, x, training=False):
        if training:
            self.total.assign_add(ops.sum(x[:, 0]))
            self.count.assign_add(ops.cast(ops.shape(x)[0], "float32"))
        return x


class _PerEpoch(keras.callbacks.Callback):
    def __init__(self, recorder):
        super().__init__()
        self.recorder, self.seen = recorder, []

    def on_epoch_end(self, epoch, logs=None):
        self.model  # noqa: B018 (on JAX, reading the model syncs the training state into it)
        self.seen.append((float(self.recorder.total), float(self.recorder.count)))


def test_augmented_epoch_k_trains_on_its_own_maps_drawn_as_it_starts(capsys):
    from vqvae_lessons import train

    # epochs_of_codes draws an epoch only when asked for it, steps_per_epoch whole batches (the rest left out) ...
    n, batch_size, epochs = 10, 4, 3
    codes, labels = np.arange(n).reshape(n, 1, 1).astype("int32"), np.arange(n).astype("int32")
    drawing = train.epochs_of_codes(None, None, codes, labels, epochs, 0.0, batch_size)
    for drawn, drawn_labels, moves in drawing:
        assert drawn.shape == (8, 1, 1) and not moves.any() and len(set(drawn[:, 0, 0])) == 8
        np.testing.assert_array_equal(drawn[:, 0, 0], drawn_labels)  # each map keeps its label
    with pytest.raises(ValueError, match="at least one batch"):
        train.epochs_of_codes(None, None, codes[:3], None, epochs, 0.5, batch_size)
    # ... and fit trains epoch k on the data its iterator gives as epoch k starts, in that order.
    per_epoch, steps = 8, 2
    asked = []

    def epoch_data():
        for k in range(epochs):
            asked.append(k)
            rows = np.arange(k * per_epoch, (k + 1) * per_epoch, dtype="float32")[:, None]  # rows hold their number
            yield rows, np.zeros((per_epoch, 1), "float32")

    keras.utils.set_random_seed(0)
    recorder = _RowRecorder()
    model = keras.Sequential([keras.Input((1,)), recorder, keras.layers.Dense(1)])
    spy = _PerEpoch(recorder)
    data = epoch_data()
    record = train.fit(model, None, epochs, batch_size, 1e-3, None, [spy], 2, loss="mse", lr_schedule="cosine",
                       epoch_data=data, steps_per_epoch=steps)
    assert asked == [0, 1, 2]
    totals = np.diff([0.0] + [total for total, _ in spy.seen])
    counts = np.diff([0.0] + [count for _, count in spy.seen])
    np.testing.assert_array_equal(counts, [per_epoch] * epochs)
    np.testing.assert_array_equal(totals, [sum(range(k * per_epoch, (k + 1) * per_epoch)) for k in range(epochs)])
    assert int(model.optimizer.iterations) == epochs * steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # the cosine spans the whole run
    assert len(record["seconds_per_epoch"]) == len(record["drawing_seconds_per_epoch"]) == epochs
    assert len(record["history"]["loss"]) == epochs
    printed = capsys.readouterr().out
    assert [f"Epoch {k}/3" in printed for k in (1, 2, 3)] == [True] * 3 and "Epoch 2/2" not in printed


@pytest.mark.slow
def test_training_on_augmented_codes(tiny_mnist):
    from vqvae_lessons.train import train_prior

    vqvae = tiny_vqvae()
    runs = [train_prior(vqvae, "gated", channels=8, num_layers=2, epochs=2, batch_size=64, augment=0.5,
                        lr_schedule="cosine", data=tiny_mnist, verbose=0) for _ in range(2)]
    (prior, record), (_, again) = runs
    fitted = tiny_mnist.fit_size  # the training images before the validation split
    assert record["augment"] == 0.5 and record["train_size"] == fitted
    assert int(prior.optimizer.iterations) == 2 * (fitted // 64)  # whole batches an epoch, each on its own maps
    assert record["history"] == again["history"]  # reproducible from the seed
    with pytest.raises(ValueError, match=r"augment is the fraction .* in \[0, 1\], got 1.5"):
        train_prior(vqvae, "gated", augment=1.5, data=tiny_mnist)


@pytest.mark.slow
def test_fix_label_folds_a_label_into_an_unconditional_prior():
    prior = PixelCNN("gated", K, num_classes=9, channels=8, num_layers=3)
    rng = np.random.default_rng(0)
    for weight in prior.weights:  # nonzero biases everywhere, so that a wrong fold shows
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    codes = rng.integers(K, size=(6, 7, 7)).astype("int32")
    for label in (0, 5):
        fixed = pixelcnn.fix_label(prior, label)
        assert not fixed.conditional and fixed.get_config()["channels"] == 8
        np.testing.assert_allclose(ops.convert_to_numpy(fixed(codes)),
                                   ops.convert_to_numpy(prior((codes, np.full(6, label, "int32")))), atol=1e-5)
    other = ops.convert_to_numpy(prior((codes, np.full(6, 5, "int32"))))
    assert np.abs(ops.convert_to_numpy(pixelcnn.fix_label(prior, 0)(codes)) - other).max() > 0.1
    np.testing.assert_array_equal(sampling.sample(fixed, 4, seed=1), sampling.sample(prior, 4, labels=5, seed=1))
    with pytest.raises(ValueError, match="needs a conditional prior"):
        pixelcnn.fix_label(fixed, 0)
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 9\)"):
        pixelcnn.fix_label(prior, 9)


@pytest.mark.slow
def test_training_told_which_move_made_each_map(tiny_mnist):
    from vqvae_lessons.train import train_prior

    vqvae = tiny_vqvae()
    prior, record = train_prior(vqvae, "gated", channels=8, num_layers=2, epochs=2, batch_size=64, augment=0.5,
                                condition_on_moves=True, data=tiny_mnist, verbose=0)
    assert not prior.conditional and record["condition_on_moves"] is True  # the prior of unmoved maps
    val_nll = -prior.log_probs(vqvae.encode(tiny_mnist.x_val)).mean()
    assert val_nll == pytest.approx(record["history"]["val_loss"][-1], rel=1e-4)  # validated as label 0
    wrongs = [dict(augment=0.0), dict(augment=0.5, conditional=True), dict(augment=0.5, architecture="keras-example")]
    for wrong in wrongs:
        settings = {"architecture": "gated", **wrong}
        with pytest.raises(ValueError, match="condition_on_moves .* needs augment > 0, conditional=False"):
            train_prior(vqvae, settings.pop("architecture"), condition_on_moves=True, data=tiny_mnist, **settings)
