"""The sampler against a plain loop of full forward passes, and the distribution it draws from.

The sampler computes each position once (gated priors) or one row per position (the Keras
example's prior), from caches; a plain loop recomputes the whole map for each of the 49
positions. At temperature 0 (and near it) both must give the same maps; at temperature 1
the codes must follow ``softmax(logits / T)``.
"""

import functools

import keras
import numpy as np
import pytest
from keras import ops

from vqvae_lessons.priors import sampling
from vqvae_lessons.priors.pixelcnn import PixelCNN

K = 12
SLOW = pytest.mark.slow  # the Keras example's prior: many compiled steps, one call per position
KINDS = [("gated", None), ("gated", 10), pytest.param("keras-example", None, marks=SLOW)]


@functools.cache
def spread_prior(architecture="gated", num_classes=None, num_codes=K, num_layers=None):
    """A small prior with random weights large enough that its logits are far from ties."""
    keras.utils.set_random_seed(0)
    prior = PixelCNN(architecture, num_codes=num_codes, num_classes=num_classes, channels=8,
                     num_layers=num_layers or (6 if architecture == "gated" else 2))
    rng = np.random.default_rng(1)
    for weight in prior.weights:
        shape = tuple(weight.shape)
        lookup = len(shape) == 4 and shape[2] == num_codes  # kernel rows looked up by code: one per tap
        std = 0.3 if len(shape) == 1 else 3 / np.sqrt(np.prod(shape[:2] if lookup else shape[:-1]))
        weight.assign(rng.normal(0, std, shape).astype("float32"))
    return prior


def full_pass_logits(prior, codes, labels):
    codes = np.maximum(codes, 0)
    return ops.convert_to_numpy(prior(codes if labels is None else (codes, labels))).astype("float64")


def reference_argmax(prior, n, labels=None, given=None):
    """The most likely codes, position by position, each from a full forward pass over the whole map."""
    codes = np.full((n, *prior.grid), -1, "int32") if given is None else given.copy()
    for i in range(prior.grid[0]):
        for j in range(prior.grid[1]):
            free = codes[:, i, j] < 0
            codes[free, i, j] = full_pass_logits(prior, codes, labels)[free, i, j].argmax(-1)
    return codes


def labels_for(num_classes, n):
    return None if num_classes is None else (np.arange(n) * 7 % num_classes).astype("int32")


@pytest.mark.parametrize("architecture, num_classes", KINDS)
@pytest.mark.parametrize("temperature", [0.0, 1e-4])
@pytest.mark.slow
def test_the_sampler_draws_what_full_forward_passes_draw(architecture, num_classes, temperature):
    prior, labels = spread_prior(architecture, num_classes), labels_for(num_classes, 9)
    start = np.full((9, 7, 7), -1, "int32")
    start[1:, 0, 0] = np.arange(8)  # the first map from nothing, the others from a first code: all differ
    want = reference_argmax(prior, 9, labels, start)
    assert len(np.unique(want.reshape(9, -1), axis=0)) > 4
    np.testing.assert_array_equal(sampling.sample(prior, 9, labels=labels, given=start, temperature=temperature,
                                                  seed=3), want)


@pytest.mark.parametrize("architecture, num_classes", KINDS)
@pytest.mark.slow
def test_partly_given_maps_are_completed_as_full_forward_passes_complete_them(architecture, num_classes):
    prior, labels = spread_prior(architecture, num_classes), labels_for(num_classes, 6)
    given = np.random.default_rng(4).integers(0, K, (6, 7, 7)).astype("int32")
    given[:3, 3:] = -1  # the bottom rows of three maps
    given[3:, :, :4] = -1  # the left columns of the others
    given[0, 0, 0] = given[5, 6, 6] = -1  # and two single positions
    completed = sampling.sample(prior, labels=labels, given=given, temperature=0)
    np.testing.assert_array_equal(completed[given >= 0], given[given >= 0])
    np.testing.assert_array_equal(completed, reference_argmax(prior, 6, labels, given))
    sampled = sampling.sample(prior, labels=labels, given=given, seed=2)
    np.testing.assert_array_equal(sampled[given >= 0], given[given >= 0])


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.slow
def test_gated_priors_of_one_or_two_blocks(num_layers):
    prior = spread_prior("gated", 10, num_layers=num_layers)  # no vertical stack to cache, or one
    labels = labels_for(10, 4)
    np.testing.assert_array_equal(sampling.sample(prior, 4, labels=labels, temperature=0),
                                  reference_argmax(prior, 4, labels))


@pytest.mark.slow
def test_batches_and_seeds():
    prior = spread_prior()
    first = sampling.sample(prior, 7, seed=3)
    np.testing.assert_array_equal(first, sampling.sample(prior, 7, seed=3))
    np.testing.assert_array_equal(first, sampling.sample(prior, 7, seed=3, batch_size=3))  # one draw per map
    assert not np.array_equal(first, sampling.sample(prior, 7, seed=4))
    assert first.dtype == np.int32 and first.shape == (7, 7, 7) and 0 <= first.min() and first.max() < K
    assert sampling.sample(prior, 0).shape == (0, 7, 7)


def test_a_gated_prior_has_one_compiled_step_whatever_is_asked():
    prior = spread_prior("gated", 10)
    sampling.sample(prior, 2, labels=3, temperature=0)
    given = np.full((2, 7, 7), -1, "int32")
    given[:, :2] = 1
    sampling.sample(prior, labels=[1, 2], given=given, temperature=0.5, seed=1)
    assert [key[0] for key in prior._sampling_steps] == [sampling._GatedRow]


CONTROLLED_LOGITS = np.array([2.0, 0.0, -1.0, 1.0, -3.0, 0.5])


@functools.cache
def controlled_prior(architecture):
    """A prior whose logits are ``CONTROLLED_LOGITS`` ``(K,)`` at every position, whatever the codes."""
    prior = PixelCNN(architecture, num_codes=len(CONTROLLED_LOGITS), channels=8, num_layers=2)
    head = prior.stages[-1].logits
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(CONTROLLED_LOGITS.astype("float32"))
    return prior


def softmax(logits):
    p = np.exp(logits - np.max(logits, axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("architecture", ["gated", pytest.param("keras-example", marks=SLOW)])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.slow
def test_codes_follow_softmax_of_the_logits_over_the_temperature(architecture, temperature):
    codes = sampling.sample(controlled_prior(architecture), 1500, temperature=temperature, seed=0)
    shares = np.bincount(codes.ravel(), minlength=len(CONTROLLED_LOGITS)) / codes.size  # 73,500 draws
    np.testing.assert_allclose(shares, softmax(CONTROLLED_LOGITS / temperature), atol=0.01)


@pytest.mark.parametrize("architecture, num_classes", KINDS)
@pytest.mark.slow
def test_each_code_follows_its_conditional_given_the_codes_before_it(architecture, num_classes):
    prior, n = spread_prior(architecture, num_classes, num_codes=4), 3000
    labels = None if num_classes is None else np.full(n, 6, "int32")
    codes = sampling.sample(prior, n, labels=labels, seed=0)
    first = full_pass_logits(prior, np.zeros((1, 7, 7), "int32"), None if labels is None else labels[:1])[0, 0, 0]
    np.testing.assert_allclose(np.bincount(codes[:, 0, 0], minlength=4) / n, softmax(first), atol=0.03)
    for code in range(4):  # the second position, given each first code
        maps = np.zeros((1, 7, 7), "int32")
        maps[0, 0, 0] = code
        want = softmax(full_pass_logits(prior, maps, None if labels is None else labels[:1])[0, 0, 1])
        seen = codes[codes[:, 0, 0] == code, 0, 1]
        if len(seen) >= 300:
            np.testing.assert_allclose(np.bincount(seen, minlength=4) / len(seen), want, atol=0.08)


def test_sample_with_runs_a_plain_loop_on_the_prior_and_draws_what_the_sampler_draws_near_temperature_0():
    from vqvae_lessons.exercises import lesson5

    prior = spread_prior("gated", 10)
    labels = np.arange(4) % 10
    drawn = sampling.sample_with(lesson5.sample_codes, prior, 4, labels=labels, temperature=1e-6, seed=0)
    assert drawn.dtype == np.int32 and drawn.shape == (4, 7, 7)
    np.testing.assert_array_equal(drawn, sampling.sample(prior, 4, labels=labels, temperature=0, seed=0))
    seen = []

    def loop(logits_fn, shape, rng):  # what the loop is given: a per-step function, the shape, a seeded rng
        logits = logits_fn(np.zeros(shape, "int64"))
        seen.append((logits.shape, logits.dtype, rng.random()))
        return np.zeros(shape, "int64")

    sampling.sample_with(loop, prior, 3, labels=1, temperature=2.0, seed=5)
    assert seen == [((3, 7, 7, K), np.float32, np.random.default_rng(5).random())]
    with pytest.raises(ValueError, match="class-conditional"):
        sampling.sample_with(lesson5.sample_codes, prior, 2)



def test_the_fast_sampler_runs_the_gated_priors_own_gate():
    """A gated prior built with ``gate_fn`` (lesson 5's exercise) samples with that gate: the package's gate written
    out again gives the package's maps, and a planted change of the gate (its halves swapped) changes them."""

    def written_out(x):
        half = x.shape[-1] // 2
        return ops.tanh(x[..., :half]) * ops.sigmoid(x[..., half:])

    def swapped(x):
        half = x.shape[-1] // 2
        return ops.tanh(x[..., half:]) * ops.sigmoid(x[..., :half])

    def sampled_with(gate, weights=None):
        prior = PixelCNN("gated", num_codes=8, channels=8, num_layers=2, gate_fn=gate)
        prior(np.zeros((1, 7, 7), "int32"))
        if weights is not None:
            prior.set_weights(weights)
        return prior, sampling.sample(prior, 4, seed=3, temperature=0.0)

    package, package_maps = sampled_with(None)
    np.testing.assert_array_equal(sampled_with(written_out, package.get_weights())[1], package_maps)
    assert not np.array_equal(sampled_with(swapped, package.get_weights())[1], package_maps)
