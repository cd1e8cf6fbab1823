"""What the learner writes is what runs (#28), lesson 8: the transformer priors take the exercises' pieces. An
autoregressive transformer whose blocks attend with the pasted ``causal_attention`` gives the package's
log-probabilities, trains and samples as the package's (same seeds); MaskGIT's decoder choosing with the pasted
``maskgit_keep`` draws the package decoder's maps; a planted mistake changes them; and the trials (what ``use``
runs) accept NumPy answers, which run outside compiled code there, and refuse one that breaks inside the model.
The NumPy pieces the lesson runs in its own cells: the pasted ``maskgit_training_loss`` with a MaskGIT prior as
``predict`` gives the package's training loss on the same hidden positions, and the pasted
``cached_attention_step``, fed one token at a time, gives the causal attention of the full pass.
Tolerances: log-probabilities and training losses within 1e-5 (the pasted solution is the package's computation,
so they agree exactly on this machine), maps of codes exactly."""

import random

import keras
import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from test_lessons import assert_learners_path  # tests/test_lessons.py

from vqvae_lessons import exercises
from vqvae_lessons.exercises import lesson8
from vqvae_lessons.priors import sampling
from vqvae_lessons.priors.transformer import ARTransformerPrior, MaskGITPrior

K = 12


def tiny(cls, **kwargs):
    keras.utils.set_random_seed(0)
    return cls(K, channels=16, num_layers=2, heads=2, mlp_ratio=2, **kwargs)


def maps(n=16, seed=1):
    return np.random.default_rng(seed).integers(0, K, (n, 7, 7)).astype("int32")


def numpy_attention(q, k, v):
    """A learner's answer in NumPy (float64), as the exercise's hints write it."""
    q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    t = scores.shape[-1]
    scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def test_a_transformer_attending_with_the_learners_function_gives_the_packages_log_probabilities():
    prior, codes = tiny(ARTransformerPrior), maps()
    want = prior.log_probs(codes)
    learners = prior.with_pieces({"causal_attention": pasted("causal_attention")})
    np.testing.assert_allclose(learners.log_probs(codes), want, atol=1e-5)
    np.testing.assert_allclose(prior.with_pieces({"causal_attention": numpy_attention}).log_probs(codes), want,
                               atol=1e-5)
    unscaled = lesson8._ATTENTION_MISTAKES[0][0]  # a planted mistake: the scores not divided by sqrt(d)
    assert np.abs(prior.with_pieces({"causal_attention": unscaled}).log_probs(codes) - want).max() > 1e-3
    assert "pieces" not in prior.get_config() and not prior.pieces  # the copy has them, the prior not


def test_a_transformer_built_with_the_learners_attention_trains_as_the_packages():
    def fit(**pieces):
        prior = tiny(ARTransformerPrior, **pieces)
        prior.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        codes = maps(64, seed=2)
        history = prior.fit(codes, codes, epochs=2, batch_size=16, shuffle=False, verbose=0).history
        return history["loss"], np.concatenate([w.ravel() for w in prior.get_weights()])

    package_loss, package_weights = fit()
    loss, weights = fit(pieces={"causal_attention": pasted("causal_attention")})
    np.testing.assert_allclose(loss, package_loss, rtol=1e-5)
    np.testing.assert_allclose(weights, package_weights, atol=1e-5)


def test_sampling_with_the_learners_attention_draws_the_packages_maps():
    prior = tiny(ARTransformerPrior)
    given = np.full((6, 7, 7), -1, "int32")
    given[:, 0] = maps(6)[:, 0]
    want = sampling.sample(prior, given=given, seed=3)  # the key/value cache
    got = sampling.sample(prior.with_pieces({"causal_attention": numpy_attention}), given=given, seed=3)  # full passes
    np.testing.assert_array_equal(got, want)
    blind = lesson8._ATTENTION_MISTAKES[4][0]  # no mask: a token sees codes not drawn yet
    other = sampling.sample(prior.with_pieces({"causal_attention": blind}), given=given, seed=3)
    assert np.mean(other != want) > 0.1


@pytest.mark.parametrize("confidence", ["top", "drawn"])
def test_maskgits_decoder_choosing_with_the_learners_keep_draws_the_packages_maps(confidence):
    prior = tiny(MaskGITPrior)
    given = np.full((20, 7, 7), -1, "int32")
    given[:10, 2:4] = maps(10)[:, 2:4]  # half the maps partly given
    learners = prior.with_pieces({"maskgit_keep": pasted("maskgit_keep")})
    for steps, seed in [(8, 0), (5, 1)]:
        want = sampling.sample(prior, given=given, steps=steps, seed=seed, confidence=confidence)
        got = sampling.sample(learners, given=given, steps=steps, seed=seed, confidence=confidence)
        np.testing.assert_array_equal(got, want)
    least_sure = lesson8._KEEP_MISTAKES[4][0]  # a planted mistake: the least confident positions kept
    other = sampling.sample(prior.with_pieces({"maskgit_keep": least_sure}), given=given, steps=8, seed=0,
                            confidence=confidence)
    assert (other >= 0).all() and np.mean(other != want) > 0.3


def test_a_keep_that_leaves_positions_hidden_is_a_clear_error():
    prior = tiny(MaskGITPrior).with_pieces({"maskgit_keep": lambda confidence, fixed, count: fixed})
    with pytest.raises(ValueError, match="left 98 positions without a code"):
        sampling.sample(prior, 2, steps=4)


def test_use_runs_numpy_answers_here_and_refuses_one_that_breaks_inside_the_model(capsys):
    assert exercises.use("causal_attention", numpy_attention) is numpy_attention
    keep = pasted("maskgit_keep")  # NumPy, as the exercise asks
    assert exercises.use("maskgit_keep", keep) is keep
    assert capsys.readouterr().out.count("Using yours") == 2

    def two_and_three_axes_only(q, k, v):  # k.T is right for (T, d) only: the heads' 4 axes break it
        q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
        keys = np.transpose(k, (0, 2, 1)) if k.ndim == 3 else k.T
        scores = q @ keys / np.sqrt(q.shape[-1])
        t = scores.shape[-1]
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (weights / weights.sum(axis=-1, keepdims=True)) @ v

    assert exercises.check("causal_attention", two_and_three_axes_only) is True
    assert exercises.use("causal_attention", two_and_three_axes_only) is lesson8.causal_attention
    out = capsys.readouterr().out
    assert "Using the package's" in out and "cannot run inside the model" in out


def test_the_trials_leave_the_global_random_numbers_as_they_were(capsys):
    keras.utils.set_random_seed(5)
    before = np.random.random(), random.random()
    keras.utils.set_random_seed(5)
    exercises.use("causal_attention", pasted("causal_attention"))  # use runs the trials with the state kept
    exercises.use("maskgit_keep", pasted("maskgit_keep"))
    assert (np.random.random(), random.random()) == before
    assert capsys.readouterr().out.count("Using yours") == 2


def test_the_keep_trial_refuses_a_planted_mistake():
    with pytest.raises(ValueError, match="other than the package's decoder"):
        lesson8._in_maskgits_decoder(lesson8._KEEP_MISTAKES[4][0])


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("08_transformer_priors")


def test_the_learners_training_step_with_a_maskgit_prior_gives_the_packages_loss():
    from vqvae_lessons.priors.transformer import cross_entropy_at

    prior, codes = tiny(MaskGITPrior), maps(8).reshape(8, -1)
    rng = np.random.default_rng(4)
    r, noise, seen = rng.random(8), rng.random((8, 49)), []

    def predict(visible):  # as the lesson's cell wraps the shipped MaskGIT
        seen.append(np.asarray(visible))
        return keras.ops.convert_to_numpy(prior(seen[-1].reshape(-1, 7, 7))).reshape(8, 49, K)

    loss = pasted("maskgit_training_loss")(codes, r, noise, predict)
    hidden = seen[-1] < 0
    logits = prior(np.where(hidden, -1, codes).reshape(-1, 7, 7))
    package = keras.ops.convert_to_numpy(cross_entropy_at(codes.reshape(-1, 7, 7), logits, hidden.reshape(-1, 7, 7)))
    np.testing.assert_allclose(loss, package, rtol=1e-5)
    assert loss == lesson8.maskgit_training_loss(codes, r, noise, predict)


def test_the_learners_cache_step_one_token_at_a_time_is_the_causal_attention():
    rng = np.random.default_rng(6)
    q, k, v = (rng.normal(size=(3, 7, 4)).astype("float32") for _ in range(3))
    step, cache_k, cache_v, outputs = pasted("cached_attention_step"), np.zeros((3, 0, 4)), np.zeros((3, 0, 4)), []
    for t in range(7):
        out, cache_k, cache_v = step(q[:, t], k[:, t], v[:, t], cache_k, cache_v)
        outputs.append(out)
    np.testing.assert_allclose(np.stack(outputs, axis=1), numpy_attention(q, k, v), atol=1e-5)
