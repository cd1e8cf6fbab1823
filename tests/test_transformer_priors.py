"""The transformer priors: causality (proven by gradients, with test_pixelcnn's ``dependence``), the
key/value-cached sampler against an uncached loop, MaskGIT's decoding step by step, seeds, clear
errors, saving, training."""

import functools

import keras
import numpy as np
import pytest
from keras import ops
from test_pixelcnn import dependence, random_codes

from vqvae_lessons import metrics, pretrained
from vqvae_lessons.priors import ARCHITECTURES, decoding, sampling
from vqvae_lessons.priors.attention import TransformerBlock, attend, causal_attention_mask
from vqvae_lessons.priors.build import build_prior, fix_label
from vqvae_lessons.priors.pixelcnn import PixelCNN
from vqvae_lessons.priors.transformer import ARTransformerPrior, MaskGITPrior, cross_entropy_at

K = 12  # the codebook size of test_pixelcnn's helpers too
SLOW = pytest.mark.slow
KINDS = [("transformer", None), ("transformer", 10), ("maskgit", None), ("maskgit", 10)]


def new_prior(architecture, num_classes=None, **kwargs):
    keras.utils.set_random_seed(0)
    return build_prior(architecture, K, num_classes, **{"channels": 16, "num_layers": 2, "heads": 2, **kwargs})


@functools.cache
def spread_prior(architecture, num_classes=None):
    """A small prior whose logits are far from ties (a large random head), shared by the tests (its
    sampler compiles once)."""
    prior = new_prior(architecture, num_classes)
    rng = np.random.default_rng(1)
    prior.head.kernel.assign(rng.normal(0, 3 / np.sqrt(prior.channels), prior.head.kernel.shape).astype("float32"))
    prior.head.bias.assign(rng.normal(0, 0.3, prior.head.bias.shape).astype("float32"))
    tokens = prior.start_embedding if architecture == "transformer" else prior.class_embedding
    if num_classes:  # labels that matter: class tokens as large as the code tokens
        tokens.embeddings.assign(rng.normal(0, 1, tokens.embeddings.shape).astype("float32"))
    return prior


def labels_for(num_classes, n):
    return None if num_classes is None else (np.arange(n) * 7 % num_classes).astype("int32")


def logits_of(prior, codes, labels=None):
    return ops.convert_to_numpy(prior(codes if labels is None else (codes, labels))).astype("float64")


# -- the blocks -----------------------------------------------------------------------------------
def test_the_causal_mask_lets_each_token_see_itself_and_the_tokens_before_it():
    np.testing.assert_array_equal(ops.convert_to_numpy(causal_attention_mask(3)),
                                  [[True, False, False], [True, True, False], [True, True, True]])


def test_a_block_s_cached_step_computes_what_its_causal_pass_computes():
    block = TransformerBlock(16, heads=4)
    x = np.random.default_rng(0).normal(size=(3, 6, 16)).astype("float32")
    full = ops.convert_to_numpy(block(x, attention_mask=causal_attention_mask(6)))
    keys = values = ops.zeros((3, 4, 6, 4))
    for t in range(6):
        y, keys, values = block.step(ops.convert_to_tensor(x[:, t]), keys, values, ops.convert_to_tensor(t))
        np.testing.assert_allclose(ops.convert_to_numpy(y), full[:, t], atol=1e-5)


# -- causality, proven by gradients -----------------------------------------------------------------
@pytest.mark.parametrize("num_classes", [None, 10])
def test_the_autoregressive_logits_depend_on_every_earlier_code_and_no_other(num_classes):
    prior = spread_prior("transformer", num_classes)
    depends = dependence(prior, labels=3 if num_classes else None)
    assert np.all(np.triu(depends) == 0)  # position p (row) on codes q >= p (column): never
    assert np.all(np.tril(depends, -1)[np.tril_indices(49, -1)] > 0)  # but on every earlier one: no blind spot


def test_dropout_acts_only_while_training_and_keeps_the_transformer_causal():
    prior = new_prior("transformer", dropout=0.5)
    codes = random_codes(4)
    np.testing.assert_array_equal(logits_of(prior, codes), logits_of(prior, codes))
    assert not np.allclose(ops.convert_to_numpy(prior(codes, training=True)), logits_of(prior, codes))
    assert np.all(np.triu(dependence(prior, training=True)) == 0)


def test_maskgit_sees_the_whole_map_but_not_the_codes_it_hides():
    prior = spread_prior("maskgit")
    codes = random_codes(1)
    changed = codes.copy()
    changed[0, 6, 6] = (codes[0, 6, 6] + 1) % K
    assert not np.allclose(logits_of(prior, codes)[0, 0, 0], logits_of(prior, changed)[0, 0, 0])  # bidirectional
    hidden, hidden_changed = codes.copy(), changed.copy()
    hidden[0, 6, 6] = hidden_changed[0, 6, 6] = -1
    np.testing.assert_allclose(logits_of(prior, hidden), logits_of(prior, hidden_changed))


# -- likelihoods and MaskGIT's loss ---------------------------------------------------------------------
def test_log_probs_are_nats_per_code_comparable_with_a_pixelcnn_s():
    prior = spread_prior("transformer", 10)
    codes, labels = random_codes(5), np.arange(5, dtype="int32")
    logits = logits_of(prior, codes, labels)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = np.take_along_axis(log_softmax, codes[..., None], -1)[..., 0]
    np.testing.assert_allclose(prior.log_probs(codes, labels, batch_size=2), want, atol=1e-5)
    results = metrics.evaluate_prior(prior, codes, labels, train_codes=random_codes(20, seed=1))
    assert results["test_nll_nats_per_code"] == pytest.approx(-want.mean(), rel=1e-5)
    assert results["uniform_bits_per_code"] == pytest.approx(np.log2(K)) and "unigram_bits_per_code" in results


def test_maskgit_reports_its_masked_cross_entropy_not_a_likelihood():
    prior = spread_prior("maskgit")
    codes = random_codes(30)
    results = metrics.evaluate_prior(prior, codes, train_codes=codes)
    assert "test_nll_nats_per_code" not in results and not hasattr(prior, "log_probs")
    assert results["test_masked_nats_per_code"] == pytest.approx(prior.masked_cross_entropy(codes))  # seeded
    assert results["test_masked_bits_per_code"] == pytest.approx(results["test_masked_nats_per_code"] / np.log(2))
    assert prior.masked_cross_entropy(codes, seed=1) != pytest.approx(results["test_masked_nats_per_code"])


def test_maskgit_hides_a_cosine_scheduled_share_of_each_map():
    prior = spread_prior("maskgit")
    hidden = ops.convert_to_numpy(prior.random_mask(4000, seed=keras.random.SeedGenerator(0)))
    counts = hidden.reshape(4000, -1).sum(axis=1)
    assert hidden.shape == (4000, 7, 7) and counts.min() >= 1 and counts.max() <= 49
    # ceil(49 cos(pi r / 2)) for r uniform in [0, 1): its mean is about 49 * 2 / pi + 1/2
    assert counts.mean() == pytest.approx(49 * 2 / np.pi + 0.5, abs=0.6)
    assert np.abs(hidden.mean(axis=0) - hidden.mean()).max() < 0.05  # every position alike


def test_maskgit_can_hide_uniform_counts_and_smooth_its_labels():
    prior = new_prior("maskgit", mask_counts="uniform", label_smoothing=0.1)
    hidden = ops.convert_to_numpy(prior.random_mask(4900, seed=keras.random.SeedGenerator(0)))
    counts = hidden.reshape(4900, -1).sum(axis=1)
    assert counts.min() == 1 and counts.max() == 49 and counts.mean() == pytest.approx(25, abs=0.6)
    assert np.bincount(counts, minlength=50)[1:].min() > 50  # every count, about 100 times each
    assert MaskGITPrior.from_config(prior.get_config()).get_config()["label_smoothing"] == 0.1
    rng = np.random.default_rng(0)
    codes, logits = random_codes(3), rng.normal(size=(3, 7, 7, K)).astype("float32")
    hidden = rng.random((3, 7, 7)) < 0.4
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.full((3, 7, 7, K), 0.1 / K) + 0.9 * np.eye(K)[codes]
    want = -(targets * log_p).sum(-1)[hidden].mean()
    got = float(ops.convert_to_numpy(cross_entropy_at(codes, logits, hidden, label_smoothing=0.1)))
    assert got == pytest.approx(want, rel=1e-5)
    assert got != pytest.approx(float(ops.convert_to_numpy(cross_entropy_at(codes, logits, hidden))), rel=1e-3)
    for options, message in (({"mask_counts": "linear"}, "mask_counts is how many codes"),
                             ({"label_smoothing": 1.0}, "label_smoothing is a fraction in")):
        with pytest.raises(ValueError, match=message):
            new_prior("maskgit", **options)


def test_the_loss_counts_the_hidden_positions_only():
    rng = np.random.default_rng(0)
    codes, logits = random_codes(3), rng.normal(size=(3, 7, 7, K)).astype("float32")
    hidden = rng.random((3, 7, 7)) < 0.4
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    losses = -np.take_along_axis(log_softmax, codes[..., None], -1)[..., 0]
    got = float(ops.convert_to_numpy(cross_entropy_at(codes, logits, hidden)))
    assert got == pytest.approx(losses[hidden].mean(), rel=1e-5)


@pytest.mark.parametrize("architecture, num_classes", KINDS)
@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss(architecture, num_classes):
    prior = new_prior(architecture, num_classes)
    codes = np.tile(random_codes(4), (16, 1, 1))  # 4 maps, seen again and again: easy to learn
    inputs = codes if num_classes is None else (codes, np.arange(64, dtype="int32") % 10)
    prior.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = prior.fit(inputs, codes, epochs=4, batch_size=32, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# -- sampling: the cached autoregressive sampler --------------------------------------------------------
def uncached_argmax(prior, n, labels=None, given=None):
    """The most likely codes, position by position, each from a full forward pass over the whole map."""
    codes = np.full((n, *prior.grid), -1, "int32") if given is None else given.copy()
    for i in range(prior.grid[0]):
        for j in range(prior.grid[1]):
            free = codes[:, i, j] < 0
            codes[free, i, j] = logits_of(prior, np.maximum(codes, 0), labels)[free, i, j].argmax(-1)
    return codes


@pytest.mark.parametrize("num_classes", [None, 10])
@pytest.mark.parametrize("temperature", [0.0, pytest.param(1e-4, marks=SLOW)])
def test_the_cached_sampler_draws_what_an_uncached_loop_draws(num_classes, temperature):
    prior, labels = spread_prior("transformer", num_classes), labels_for(num_classes, 6)
    start = np.full((6, 7, 7), -1, "int32")
    start[1:, 0, 0] = np.arange(5)  # the first map from nothing, the others from a first code
    want = uncached_argmax(prior, 6, labels, start)
    assert len(np.unique(want.reshape(6, -1), axis=0)) > 3
    np.testing.assert_array_equal(sampling.sample(prior, 6, labels=labels, given=start, temperature=temperature,
                                                  seed=3), want)


@pytest.mark.slow
def test_partly_given_maps_are_completed_as_the_uncached_loop_completes_them():
    prior = spread_prior("transformer")
    given = random_codes(4, seed=4)
    given[:2, 3:] = -1
    given[2:, :, :4] = -1
    completed = sampling.sample(prior, given=given, temperature=0)
    np.testing.assert_array_equal(completed[given >= 0], given[given >= 0])
    np.testing.assert_array_equal(completed, uncached_argmax(prior, 4, given=given))


@pytest.mark.slow
def test_autoregressive_samples_follow_the_prior_s_distribution():
    prior = spread_prior("transformer")
    codes = sampling.sample(prior, 3000, seed=0)
    first = logits_of(prior, np.zeros((1, 7, 7), "int32"))[0, 0, 0]  # the first position sees no codes
    want = np.exp(first - first.max()) / np.exp(first - first.max()).sum()
    np.testing.assert_allclose(np.bincount(codes[:, 0, 0], minlength=K) / len(codes), want, atol=0.03)


# -- sampling: MaskGIT's parallel decoding -------------------------------------------------------------
def decode_by_hand(prior, steps, seed, given, labels=None, temperature=1.0, choice_temperature=4.5):
    """MaskGIT's decoding one step at a time (the compiled loop's own step, called eagerly), with the
    random numbers ``sample`` draws for the same seed: the codes ``(N, T)`` after each step."""
    n = len(given)
    rng = np.random.default_rng(seed)
    uniform, noise = (rng.random((n, steps, *prior.grid), dtype="float32").reshape(n, steps, -1) for _ in range(2))
    inputs = {"given": given.reshape(n, -1), "uniform": uniform, "noise": noise,
              "temperature": np.full(n, temperature, "float32"),
              "choice_temperature": np.full(n, choice_temperature, "float32")}
    if labels is not None:
        inputs["labels"] = labels
    inputs = {key: ops.convert_to_tensor(value) for key, value in inputs.items()}
    decoder, codes, after = decoding._ParallelDecoder(prior, steps), inputs["given"], []
    for step in range(steps):
        codes = decoder.decode_step(step, codes, inputs)
        after.append(ops.convert_to_numpy(codes))
    return after


@pytest.mark.parametrize("steps, num_classes", [(8, None), (4, 10), pytest.param(1, None, marks=SLOW),
                                                pytest.param(8, 10, marks=SLOW)])
def test_maskgit_fills_every_position_in_exactly_its_steps_and_never_changes_a_code(steps, num_classes):
    prior, labels = spread_prior("maskgit", num_classes), labels_for(num_classes, 5)
    given = np.full((5, 7, 7), -1, "int32")
    given[3:, :2] = random_codes(2, seed=5)[:, :2]  # two maps with their top rows given: 35 positions to fill
    after = decode_by_hand(prior, steps, 7, given, labels)
    to_fill = (given < 0).reshape(5, -1).sum(axis=1)
    before = given.reshape(5, -1)
    for step, codes in enumerate(after):
        still = (codes < 0).sum(axis=1)
        np.testing.assert_array_equal(still, np.floor(to_fill * decoding.maskgit_schedule(steps)[step]))
        if step < steps - 1:
            assert still.min() > 0  # not done before the last step
        fixed = before >= 0
        np.testing.assert_array_equal(codes[fixed], before[fixed])  # a code once fixed (or given) stays
        assert codes.max() < K
        before = codes
    assert (after[-1] >= 0).all()
    sampled = sampling.sample(prior, 5, labels=labels, given=given, steps=steps, seed=7)
    np.testing.assert_array_equal(sampled.reshape(5, -1), after[-1])  # the compiled loop does the same


def test_maskgit_ranks_by_the_drawn_code_when_asked_and_agrees_with_the_default_at_temperature_zero():
    prior = spread_prior("maskgit")
    given = np.full((4, 7, 7), -1, "int32")
    rng = np.random.default_rng(3)
    uniform, noise = (rng.random((4, 1, 49), dtype="float32") for _ in range(2))
    inputs = {key: ops.convert_to_tensor(value) for key, value in {
        "given": given.reshape(4, -1), "uniform": uniform, "noise": noise, "temperature": np.ones(4, "float32"),
        "choice_temperature": np.zeros(4, "float32")}.items()}
    codes = ops.convert_to_numpy(decoding._ParallelDecoder(prior, 1, "drawn").decode_step(0, inputs["given"], inputs))
    log_p = logits_of(prior, given).reshape(4, 49, K)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    cdf = np.cumsum(np.exp(log_p), axis=-1)
    drawn = np.minimum((cdf <= uniform[:, 0, :, None] * cdf[..., -1:]).sum(-1), K - 1)  # draw()'s inverse CDF
    np.testing.assert_array_equal(codes, drawn)  # one step fills every position with its own draw
    # two steps: the first keeps the positions whose drawn code is likeliest, not whose top code is
    two = {**inputs, "uniform": np.repeat(uniform, 2, axis=1), "noise": np.repeat(noise, 2, axis=1)}
    first = ops.convert_to_numpy(decoding._ParallelDecoder(prior, 2, "drawn").decode_step(0, inputs["given"], two))
    kept = first >= 0
    score = np.take_along_axis(log_p, drawn[..., None], -1)[..., 0]
    for m in range(4):
        assert score[m][kept[m]].min() >= score[m][~kept[m]].max()
        np.testing.assert_array_equal(first[m][kept[m]], drawn[m][kept[m]])
    cold = {"temperature": 0.0, "choice_temperature": 0.0, "steps": 8, "seed": 2}
    np.testing.assert_array_equal(sampling.sample(prior, 6, confidence="drawn", **cold),
                                  sampling.sample(prior, 6, confidence="top", **cold))
    assert (sampling.sample(prior, 6, confidence="drawn", seed=2) != sampling.sample(prior, 6, seed=2)).any()


def test_a_maskgit_training_step_runs_the_network_once_on_the_maps_it_hid():
    prior = new_prior("maskgit")
    codes = random_codes(8)
    logits, hidden = prior(codes, training=True)  # the training game: hide, then predict
    hidden = ops.convert_to_numpy(hidden)
    assert logits.shape == (8, 7, 7, K) and hidden.any() and not hidden.all()
    visible = np.where(hidden, -1, codes)
    np.testing.assert_allclose(ops.convert_to_numpy(logits), logits_of(prior, visible), atol=1e-5)  # no dropout
    want = cross_entropy_at(codes, logits_of(prior, visible), hidden)
    got = prior.compute_loss(codes, codes, (logits, hidden))
    assert float(ops.convert_to_numpy(got)) == pytest.approx(float(ops.convert_to_numpy(want)), rel=1e-5)
    calls = []
    features = prior.features
    prior.features = lambda *args, **kwargs: calls.append(kwargs.get("training")) or features(*args, **kwargs)
    prior.compile(optimizer="adam", run_eagerly=True)
    prior.fit(codes, epochs=1, batch_size=8, verbose=0)
    assert calls == [True]  # one forward pass a step, in training mode (no forward pass of the whole map)


def test_maskgit_in_a_fixed_order_is_a_normalised_likelihood():
    keras.utils.set_random_seed(0)
    prior = build_prior("maskgit", 3, channels=8, num_layers=1, heads=2, grid=(1, 3))
    rng = np.random.default_rng(0)
    prior.head.kernel.assign(rng.normal(0, 2.0, prior.head.kernel.shape).astype("float32"))
    every_map = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T.reshape(-1, 1, 3)
    raster = prior.order_bits(every_map.astype("int32"))
    assert raster.shape == (27,) and np.sum(2.0 ** -raster) == pytest.approx(1.0, abs=1e-5)
    # one random order (a one-map call draws its first row), the same for every map: normalised too
    shuffled = np.array([prior.order_bits(m[None].astype("int32"), order_seed=4)[0] for m in every_map])
    assert np.sum(2.0 ** -shuffled) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(shuffled - raster).max() > 1e-3  # another order, another (equally valid) likelihood
    by_hidden = prior.cross_entropy_by_hidden(every_map.astype("int32"))
    everything_hidden = logits_of(prior, np.full((27, 1, 3), -1, "int32"))
    log_p = everything_hidden - np.log(np.exp(everything_hidden).sum(-1, keepdims=True))
    want = -np.take_along_axis(log_p, every_map[..., None], -1).mean()
    assert by_hidden.shape == (3,) and by_hidden[-1] == pytest.approx(want, rel=1e-5)


def test_maskgit_s_schedule_and_its_bound_on_the_codes_a_step_fills():
    np.testing.assert_allclose(decoding.maskgit_schedule(4), np.cos(np.pi / 2 * np.array([1, 2, 3, 4]) / 4),
                               atol=1e-7)
    assert decoding.maskgit_schedule(8)[-1] == 0
    for steps in (1, 2, 8, 16, 49):
        hidden = np.floor(np.arange(1, 50)[:, None] * np.concatenate([[1.0], decoding.maskgit_schedule(steps)]))
        most = (hidden[:, :-1] - hidden[:, 1:]).max()
        assert most <= decoding.most_kept(49, steps) <= min(most + 1, 49)
    assert decoding.most_kept(49, 1) == 49 and decoding.most_kept(49, 8) == 10  # 9 at most, and one to spare


def test_maskgit_without_noise_at_temperature_zero_keeps_the_surest_most_likely_codes():
    prior = spread_prior("maskgit")
    given = np.full((3, 7, 7), -1, "int32")
    first = decode_by_hand(prior, 8, 0, given, temperature=0.0, choice_temperature=0.0)[0]
    logits = logits_of(prior, given)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    surest = log_p.max(-1).reshape(3, -1).argmax(-1)  # one position filled at the first step (49 -> 48)
    np.testing.assert_array_equal(np.flatnonzero(first[0] >= 0), [surest[0]])
    most_likely = logits.reshape(3, 49, K)[np.arange(3), surest].argmax(-1)
    np.testing.assert_array_equal(first[np.arange(3), surest], most_likely)


def test_maskgit_samples_from_one_step_follow_the_prior_s_distribution():
    prior = spread_prior("maskgit")
    codes = sampling.sample(prior, 3000, steps=1, seed=0)  # one step: every position drawn from the empty map
    logits = logits_of(prior, np.full((1, 7, 7), -1, "int32"))[0, 3, 4]
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(np.bincount(codes[:, 3, 4], minlength=K) / len(codes), want, atol=0.03)


# -- seeds, batches, decoding to images ----------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
def test_a_fixed_seed_reproduces_the_samples_in_any_batches(architecture):
    prior = spread_prior(architecture)
    first = sampling.sample(prior, 6, seed=3)
    np.testing.assert_array_equal(first, sampling.sample(prior, 6, seed=3))
    np.testing.assert_array_equal(first, sampling.sample(prior, 6, seed=3, batch_size=3))
    assert not np.array_equal(first, sampling.sample(prior, 6, seed=4))
    assert first.dtype == np.int32 and first.shape == (6, 7, 7) and first.min() >= 0 and first.max() < K
    assert sampling.sample(prior, 0).shape == (0, 7, 7)


@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
def test_class_labels_change_the_samples(architecture):
    prior = spread_prior(architecture, 10)
    twos, sevens = (sampling.sample(prior, 4, labels=d, temperature=0, seed=0) for d in (2, 7))
    assert not np.array_equal(twos, sevens)
    np.testing.assert_array_equal(sampling.sample(prior, 4, labels=np.full(4, 2), temperature=0, seed=0), twos)


def test_generate_decodes_transformer_samples():
    from vqvae_lessons.vqvae import VQVAE

    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    for architecture in ("transformer", "maskgit"):
        images = sampling.generate(spread_prior(architecture), vqvae, 2, seed=0)
        assert images.shape == (2, 28, 28, 1) and 0 <= images.min() and images.max() <= 1


# -- clear errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
@pytest.mark.parametrize("codes, message", [(np.full((2, 7, 7), K), r"Codes must lie in \[0, 12\)"),
                                            (np.zeros((2, 8, 8), "int32"), r"shape \(N, 7, 7\)"),
                                            (np.zeros((2, 7, 7), "float32"), "integer codes")])
def test_bad_codes_are_clear_errors(architecture, codes, message):
    prior = spread_prior(architecture)
    with pytest.raises(ValueError, match=message):
        prior.fit(codes, codes, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        metrics.evaluate_prior(prior, codes)
    if codes.dtype == np.int32 and codes.shape == (2, 7, 7):
        with pytest.raises(ValueError, match=message):
            prior(codes)


def test_maskgit_reads_minus_one_as_hidden_and_refuses_less():
    prior = spread_prior("maskgit")
    assert logits_of(prior, np.full((1, 7, 7), -1, "int32")).shape == (1, 7, 7, K)
    with pytest.raises(ValueError, match="-1 where a code is hidden, got values down to -2"):
        prior(np.full((1, 7, 7), -2, "int32"))
    with pytest.raises(ValueError, match=r"Codes must lie in \[0, 12\) .* from -1 to -1"):
        spread_prior("transformer")(np.full((1, 7, 7), -1, "int32"))


@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
@pytest.mark.parametrize("labels, message", [(None, "class-conditional: give labels"),
                                             (10, r"Labels must lie in \[0, 10\)"),
                                             (-1, r"Labels must lie in \[0, 10\)"),
                                             (np.array([1, 2, 3]), r"one label per map, shape \(2,\)")])
def test_labels_out_of_range_are_clear_errors(architecture, labels, message):
    with pytest.raises(ValueError, match=message):
        sampling.sample(spread_prior(architecture, 10), 2, labels=labels)


@pytest.mark.parametrize("architecture, kwargs, message", [
    ("transformer", {"steps": 8}, "steps, choice_temperature and confidence are the settings of MaskGIT"),
    ("transformer", {"labels": 3}, "not class-conditional: leave labels out"),
    ("maskgit", {"steps": 0}, "an int from 1 to 49"),
    ("maskgit", {"steps": 50}, "an int from 1 to 49"),
    ("maskgit", {"steps": 2.5}, "an int from 1 to 49"),
    ("maskgit", {"choice_temperature": -1.0}, "choice_temperature must be a number >= 0"),
    ("maskgit", {"confidence": "surest"}, "confidence is what ranks MaskGIT's hidden positions"),
    ("transformer", {"confidence": "top"}, "steps, choice_temperature and confidence are the settings of MaskGIT"),
    ("maskgit", {"temperature": -1.0}, "temperature must be a number >= 0"),
    ("maskgit", {"given": np.full((2, 7, 7), -2)}, "nothing below -1"),
])
def test_bad_sampling_requests_are_clear_errors(architecture, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sampling.sample(spread_prior(architecture), 2, **kwargs)


def test_steps_are_for_maskgit_only_on_pixelcnns_too():
    with pytest.raises(ValueError, match="this PixelCNN draws one position after another"):
        sampling.sample(PixelCNN("gated", K, channels=4, num_layers=1), 1, steps=4)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match=r"channels \(18\) must be a multiple of heads \(4\)"):
        ARTransformerPrior(K, channels=18, heads=4)
    with pytest.raises(ValueError, match="MaskGITPrior is the 'maskgit' architecture"):
        MaskGITPrior(K, architecture="transformer")
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        build_prior("transformer", K, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout is the fraction .* in \[0, 1\), got 1.0"):
        build_prior("maskgit", K, dropout=1.0)
    with pytest.raises(ValueError, match="num_classes is the number of class labels"):
        build_prior("transformer", K, num_classes=0)
    with pytest.raises(ValueError, match="is a transformer prior, not a PixelCNN"):
        PixelCNN("maskgit")
    with pytest.raises(ValueError, match="architecture='pixelsnail' is not known"):
        build_prior("pixelsnail")


# -- pieces: the learner's functions in place of the package's (lesson 8) --------------------------------
def test_each_prior_takes_only_the_pieces_it_knows():
    def keep(confidence, fixed, count):
        return fixed

    with pytest.raises(ValueError, match=r"'maskgit_keep' is not a piece of ARTransformerPrior; it knows "
                                         r"\['causal_attention'\]"):
        new_prior("transformer").with_pieces({"maskgit_keep": keep})
    with pytest.raises(ValueError, match="'causal_attention' is not a piece of MaskGITPrior.*'maskgit_keep'"):
        new_prior("maskgit", pieces={"causal_attention": lambda q, k, v: v})
    with pytest.raises(TypeError, match=r"pieces\['causal_attention'\] must be a function, got str"):
        new_prior("transformer", pieces={"causal_attention": "softmax"})
    with pytest.raises(TypeError, match=r"pieces must be a dict \{name: function\}, got list"):
        new_prior("maskgit").with_pieces([keep])


def test_a_copy_with_pieces_keeps_the_settings_and_weights_and_leaves_the_prior_alone():
    for architecture, piece in [("transformer", {"causal_attention": lambda q, k, v: v}),
                                ("maskgit", {"maskgit_keep": lambda confidence, fixed, count: fixed})]:
        prior = spread_prior(architecture, 10)
        copy = prior.with_pieces(piece)
        assert copy.pieces == piece and prior.pieces == {} and copy.get_config() == prior.get_config()
        assert all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), prior.get_weights(), strict=True))


def test_a_block_attending_with_a_function_refuses_a_mask_too_and_a_wrong_shape():
    block = TransformerBlock(8, heads=2)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    with pytest.raises(ValueError, match="attention applies its own mask"):
        block(x, attention_mask=causal_attention_mask(5), attention=lambda q, k, v: v)
    with pytest.raises(ValueError, match=r"\(N, heads, T, C / heads\) = \(2, 2, 5, 4\).*got \(2, 2, 5, 5\)"):
        block(x, attention=lambda q, k, v: ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))))
    # the package's attention passed as a function gives the masked block's outputs
    causal = ops.convert_to_numpy(block(x, attention_mask=causal_attention_mask(5)))
    as_function = ops.convert_to_numpy(block(x, attention=lambda q, k, v: attend(q, k, v, causal_attention_mask(5))))
    np.testing.assert_allclose(as_function, causal, atol=1e-6)


# -- saving and loading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture, num_classes", KINDS)
def test_a_saved_transformer_prior_loads_again(tmp_path, architecture, num_classes):
    prior = spread_prior(architecture, num_classes)
    codes, labels = random_codes(2), np.array([1, 8], "int32")
    want = logits_of(prior, codes, labels if num_classes else None)
    again = type(prior).from_config(prior.get_config())
    assert again.get_config() == prior.get_config() and again.architecture == architecture
    path = tmp_path / "prior.weights.h5"
    pretrained.save_compact(prior, path)
    rebuilt = pretrained.build_model("prior", {k: v for k, v in prior.get_config().items()
                                               if k not in pretrained.KERAS_SETTINGS})
    assert type(rebuilt) is type(prior)
    rebuilt.load_weights(path)
    np.testing.assert_allclose(logits_of(rebuilt, codes, labels if num_classes else None), want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
def test_a_saved_keras_file_loads_again(tmp_path, architecture):
    prior = spread_prior(architecture, 10)
    inputs = (random_codes(2), np.array([1, 8], "int32"))
    prior.save(tmp_path / "prior.keras")
    loaded = keras.saving.load_model(tmp_path / "prior.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(inputs)), ops.convert_to_numpy(prior(inputs)), atol=1e-5)


@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
def test_fixing_the_class_token_gives_the_unconditional_prior_of_one_label(architecture):
    prior = spread_prior(architecture, 10)
    codes = random_codes(3)
    if architecture == "maskgit":
        codes[:, 2:5] = -1  # MaskGIT reads hidden positions too
    fixed = fix_label(prior, 7)
    assert type(fixed) is type(prior) and not fixed.conditional
    assert fixed.count_params() < prior.count_params()
    np.testing.assert_allclose(logits_of(fixed, codes), logits_of(prior, codes, np.full(3, 7, "int32")), atol=1e-5)
    assert np.abs(logits_of(fixed, codes) - logits_of(prior, codes, np.full(3, 6, "int32"))).max() > 1e-2
    with pytest.raises(ValueError, match="needs a class-conditional transformer prior"):
        fix_label(spread_prior(architecture), 0)


# -- the plumbing: the builder, the recipes, train_prior -----------------------------------------------------
def test_the_architectures_and_their_defaults():
    assert {"transformer", "maskgit"} <= set(ARCHITECTURES)
    for architecture, cls in (("transformer", ARTransformerPrior), ("maskgit", MaskGITPrior)):
        prior = build_prior(architecture, K)
        assert type(prior) is cls and prior.architecture == architecture and not prior.conditional
        assert (prior.channels, prior.num_layers, prior.heads, prior.mlp_ratio) == tuple(
            ARCHITECTURES[architecture][size] for size in ("channels", "num_layers", "heads", "mlp_ratio"))
    with pytest.raises(ValueError, match="a 'gated' PixelCNN has neither"):
        build_prior("gated", K, heads=4)
        assert prior.grid == (7, 7) and prior.num_codes == K


def test_recipes_name_and_take_the_transformer_priors():
    from vqvae_lessons import recipes

    assert recipes.PriorRecipe(architecture="maskgit").default_name() == "maskgit-vqvae-k128-d16"
    assert recipes.PriorRecipe(architecture="transformer", conditional=True).default_name() == (
        "transformer-conditional-vqvae-k128-d16")
    card = {"model": "prior", "vqvae": "vqvae-k128-d16",
            "config": build_prior("transformer", 128).get_config(), "training": {"validation": "split"}}
    assert recipes.from_card(card) == recipes.PriorRecipe(architecture="transformer")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["transformer", "maskgit"])
def test_train_prior_trains_a_transformer_prior(tiny_mnist, architecture):
    from vqvae_lessons import recipes
    from vqvae_lessons.vqvae import VQVAE

    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    recipe = recipes.PriorRecipe(architecture=architecture, conditional=True, channels=16, num_layers=1,
                                 epochs=2, train_size=128, dropout=0.1, learning_rate=3e-3)
    prior, record = recipes.train(recipe, data=tiny_mnist, vqvae=vqvae, verbose=0)
    assert type(prior).architecture == architecture and prior.conditional and prior.num_codes == K
    assert record["train_size"] == 128 and np.all(np.isfinite(record["history"]["val_loss"]))
    assert sampling.sample(prior, 2, labels=3).shape == (2, 7, 7)


@pytest.mark.slow
def test_train_prior_tells_a_transformer_which_move_made_each_map(tiny_mnist):
    from vqvae_lessons.train import train_prior
    from vqvae_lessons.vqvae import VQVAE

    vqvae = VQVAE("keras-example", num_embeddings=K, embedding_dim=4)
    prior, record = train_prior(vqvae, "transformer", channels=16, num_layers=1, epochs=1, augment=0.5,
                                condition_on_moves=True, train_size=128, data=tiny_mnist, verbose=0)
    assert isinstance(prior, ARTransformerPrior) and not prior.conditional and record["condition_on_moves"]
    prior, record = train_prior(vqvae, "maskgit", channels=16, num_layers=1, heads=4, mlp_ratio=1, epochs=1,
                                augment=0.5, condition_on_moves=True, train_size=128, data=tiny_mnist, verbose=0)
    assert isinstance(prior, MaskGITPrior) and not prior.conditional and (prior.heads, prior.mlp_ratio) == (4, 1)
    assert record["condition_on_moves"] and np.isfinite(record["history"]["val_loss"]).all()
    with pytest.raises(ValueError, match="condition_on_moves tells an unconditional gated or transformer prior"):
        train_prior(vqvae, "keras-example", augment=0.5, condition_on_moves=True, data=tiny_mnist, verbose=0)
