"""Lesson 8's exercises (causal_attention, attention_dot_products, cached_attention_step, maskgit_training_loss,
maskgit_keep): the references pass, every known mistake is rejected with its own hint, equivalent answers pass,
the edge cases the course meets are checked (a batch of one, one token, an empty cache, large scores and saturated
logits, a step that fixes no code, ties, each map's own count and random numbers), and the references agree with
the package's attention, MaskGIT's training game and its own decoding steps; lesson 8's diagram and figures draw."""

import re

import keras
import numpy as np
import pytest
from checking import (
    assert_every_mistake_named,
    assert_incorrect,
    assert_reference_stub_and_crash,
    assert_titled_figure,
    pasted,
)
from keras import ops

from vqvae_lessons import exercises, plotting
from vqvae_lessons.diagrams import attention as diagrams
from vqvae_lessons.exercises import check, lesson8
from vqvae_lessons.priors import attention, decoding
from vqvae_lessons.priors.build import build_prior

NAMES = ["causal_attention", "attention_dot_products", "cached_attention_step", "maskgit_training_loss",
         "maskgit_keep"]
TABLES = {"causal_attention": lesson8._ATTENTION_MISTAKES, "attention_dot_products": lesson8._DOT_PRODUCTS_MISTAKES,
          "cached_attention_step": lesson8._CACHE_MISTAKES, "maskgit_training_loss": lesson8._LOSS_MISTAKES,
          "maskgit_keep": lesson8._KEEP_MISTAKES}


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_passes_a_stub_is_not_attempted_and_errors_are_incorrect(name, capsys):
    assert_reference_stub_and_crash(capsys, name, getattr(lesson8, name))


@pytest.mark.parametrize("name", NAMES)
def test_each_known_mistake_is_rejected_with_its_own_hint(name, capsys):
    assert_every_mistake_named(capsys, name, TABLES[name])


def test_equivalent_attention_answers_pass():
    def in_numpy(q, k, v):  # the lesson's formula, with -inf above the diagonal
        scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        t = q.shape[-2]
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (weights / weights.sum(axis=-1, keepdims=True)) @ v

    def with_keras_ops(q, k, v):  # backend tensors out
        scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
        t = q.shape[-2]
        scores = scores + np.triu(np.full((t, t), -1e9, "float32"), 1)
        return ops.matmul(ops.softmax(scores, axis=-1), v)

    def masked_after_softmax_and_renormalised(q, k, v):  # the same weights, by another road
        scores = np.einsum("...td,...sd->...ts", q, k) / np.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True)) * np.tril(np.ones(scores.shape[-2:]))
        return np.einsum("...ts,...sv->...tv", weights / weights.sum(axis=-1, keepdims=True), v)

    for answer in (in_numpy, with_keras_ops, masked_after_softmax_and_renormalised):
        assert check("causal_attention", answer) is True, answer.__name__


def test_equivalent_keep_answers_pass():
    def with_a_loop(confidence, fixed, count):
        keep = fixed.copy()
        for b in range(len(confidence)):
            free = np.flatnonzero(~fixed[b])
            surest = free[np.argsort(-confidence[b, free])]
            keep[b, surest[:count[b] - fixed[b].sum()]] = True
        return keep.astype("int32")  # 0 and 1 are fine too

    def with_top_k(confidence, fixed, count):  # as the package's decoder chooses: keras.ops.top_k
        scores = ops.where(fixed, -1e9, confidence)
        _, chosen = ops.top_k(scores, confidence.shape[1])  # every position, surest first
        rank = ops.argsort(chosen, axis=1)  # the rank of each position
        new = count - np.sum(fixed, axis=1)
        return ops.logical_or(fixed, rank < new[:, None])

    assert check("maskgit_keep", with_a_loop) is True
    assert check("maskgit_keep", with_top_k) is True


def test_a_float_mask_of_confidences_is_named(capsys):
    assert_incorrect(capsys, "maskgit_keep", lambda c, f, n: np.where(lesson8.maskgit_keep(c, f, n), c, 0.0),
                     "return a boolean mask")


def test_causal_attention_is_the_package_s_attention_and_is_causal():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 6, 4)).astype("float32") for _ in range(3))
    ours = ops.convert_to_numpy(lesson8.causal_attention(q, k, v))
    heads = ops.convert_to_numpy(attention.attend(q[:, None], k[:, None], v[:, None],
                                                  attention.causal_attention_mask(6)))[:, 0]
    np.testing.assert_allclose(ours, heads, atol=1e-6)
    k2, v2 = k.copy(), v.copy()
    k2[:, 4:], v2[:, 4:] = 9.0, -9.0  # change the last two tokens: the first four outputs stay
    changed = ops.convert_to_numpy(lesson8.causal_attention(q, k2, v2))
    np.testing.assert_allclose(changed[:, :4], ours[:, :4], atol=1e-6)
    assert not np.allclose(changed[:, 4:], ours[:, 4:])
    np.testing.assert_allclose(ops.convert_to_numpy(lesson8.causal_attention(q[0], k[0], v[0])), ours[0], atol=1e-6)


def test_maskgit_keep_is_the_choice_the_package_s_decoder_makes_at_every_step():
    keras.utils.set_random_seed(0)
    prior = build_prior("maskgit", 12, channels=16, num_layers=2, heads=2)
    rng = np.random.default_rng(1)
    prior.head.kernel.assign(rng.normal(0, 1.0, prior.head.kernel.shape).astype("float32"))  # logits far from ties
    n, steps = 4, 8
    given = np.full((n, 7, 7), -1, "int32")
    given[2:, :2] = rng.integers(0, 12, (2, 2, 7))  # two maps with their top rows given
    uniform, noise = (rng.random((n, steps, 49), dtype="float32") for _ in range(2))
    inputs = {key: ops.convert_to_tensor(value) for key, value in {
        "given": given.reshape(n, -1), "uniform": uniform, "noise": noise,
        "temperature": np.ones(n, "float32"), "choice_temperature": np.full(n, 4.5, "float32")}.items()}
    decoder, codes = decoding._ParallelDecoder(prior, steps), inputs["given"]
    to_fill = (given < 0).reshape(n, -1).sum(axis=1)
    schedule = decoding.maskgit_schedule(steps)
    for s in range(steps):
        before = ops.convert_to_numpy(codes)
        logits = ops.reshape(prior(ops.reshape(codes, (n, 7, 7))), (n, 49, 12))
        top = ops.max(logits, axis=-1) - ops.logsumexp(logits, axis=-1)
        fade = 4.5 * (1.0 - (s + 1) / steps)
        confidence = ops.convert_to_numpy(top - fade * ops.log(-ops.log(ops.clip(noise[:, s], 1e-12, 1 - 1e-7))))
        count = 49 - np.floor(to_fill * schedule[s]).astype(int)
        codes = decoder.decode_step(s, codes, inputs)
        np.testing.assert_array_equal(ops.convert_to_numpy(codes) >= 0, lesson8.maskgit_keep(confidence, before >= 0,
                                                                                              count))
    assert (ops.convert_to_numpy(codes) >= 0).all()


def test_the_exercises_are_registered_for_lesson_8_with_a_collapsed_solution():
    for name in NAMES:
        assert exercises._EXERCISES[name].lesson == 8
        assert "def " + name in exercises.solution_markdown(name)
        first = exercises.hint(name, 1)
        assert not re.search(r"\b(np|ops)\.\w|\w\(|=", first), first  # a nudge: no calls, no assignments


# -- the diagram and the figures --------------------------------------------------------------------
def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_the_transformer_priors_diagram_has_a_title_and_its_parts():
    fig = diagrams.transformer_priors()
    assert fig.axes[0].get_title()
    drawn = " ".join(texts(fig))
    for label in ("causal transformer blocks", "bidirectional transformer blocks", "[MASK]", "start",
                  "$p(c_1)$", "autoregressive", "MaskGIT", "+ position 0"):
        assert label in drawn, label


rng = np.random.default_rng(0)
WEIGHTS = np.tril(rng.random((4, 4)))
WEIGHTS /= WEIGHTS.sum(axis=1, keepdims=True)
FIXED = np.cumsum(rng.random((2, 4, 7, 7)) < 0.3, axis=1) > 0


@pytest.mark.parametrize("make", [
    lambda: plotting.attention_weights({"causal": WEIGHTS, "bidirectional": np.full((4, 4), 0.25)}, tokens="abcd"),
    lambda: plotting.masking_schedules({4: np.array([45, 34, 18, 0]), 8: np.array([48, 45, 40, 34, 27, 18, 9, 0])}),
    lambda: plotting.maskgit_steps(rng.random((2, 4, 28, 28)), FIXED,
                                   FIXED & ~np.concatenate([np.zeros((2, 1, 7, 7), bool), FIXED[:, :-1]], axis=1)),
    lambda: plotting.attention_on_map({"head 1": rng.random((7, 7)), "head 2": rng.random((7, 7))}, (3, 3)),
    lambda: plotting.quality_vs_speed([{"label": "gated PixelCNN", "seconds": 1.2, "frechet_distance": 3.0},
                                       {"label": "MaskGIT, 8 steps", "seconds": 0.5, "frechet_distance": 6.0}],
                                      reference=1.0),
    lambda: plotting.cross_entropy_by_context({"MaskGIT": np.linspace(2, 5, 49)}, {"AR": np.linspace(5, 2, 49)}),
])
def test_every_figure_has_a_title_and_draws(make, tmp_path):
    assert_titled_figure(make(), tmp_path)


def test_maskgit_steps_titles_count_the_fixed_positions():
    fixed = np.stack([np.eye(7, dtype=bool), np.ones((7, 7), bool)])[None]
    fig = plotting.maskgit_steps(rng.random((1, 2, 28, 28)), fixed, np.zeros((1, 2, 7, 7), bool))
    assert [ax.get_title() for ax in fig.axes] == ["step 1\n7 of 49 fixed", "step 2\n49 of 49 fixed"]


# -- the edge cases the course meets (#28, part 4) -------------------------------------------------
def test_the_exercises_are_in_the_lessons_order_with_their_kinds():
    assert [name for name in exercises.names() if exercises._EXERCISES[name].lesson == 8] == NAMES
    kinds = exercises.kinds()
    assert kinds["attention_dot_products"] == (8, "derive")  # the lesson's non-transcription exercise
    assert {kinds[name][1] for name in NAMES if name != "attention_dot_products"} == {"transcribe"}


def naive_softmax_attention(q, k, v):  # the formula as printed, without subtracting the maximum (float64)
    q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    t = scores.shape[-1]
    e = np.exp(np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf))
    return e / e.sum(axis=-1, keepdims=True) @ v


def test_causal_attention_names_an_unstable_softmax(capsys):
    for answer in (naive_softmax_attention, lesson8._attention_variant(stable=False)):
        out = assert_incorrect(capsys, "causal_attention", answer, "large scores", "maximum")
        assert "scaled by 40" in out


def test_causal_attention_checks_a_batch_of_one_and_a_single_token(capsys):
    def squeezes(q, k, v):  # drops every axis of length 1: a batch of one loses its batch axis
        return lesson8._attention_variant()(np.squeeze(q), np.squeeze(k), np.squeeze(v))

    assert_incorrect(capsys, "causal_attention", squeezes, "(1, 5, 3)", "expected shape")

    def no_self_for_the_first(q, k, v):  # hides the diagonal except for the first token, which sees itself
        q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
        t = q.shape[-2]
        visible = np.tril(np.ones((t, t), bool), -1)
        visible[0, 0] = True
        scores = np.where(visible, q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), -np.inf)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return weights / weights.sum(axis=-1, keepdims=True) @ v

    assert_incorrect(capsys, "causal_attention", no_self_for_the_first, "the values differ")
    ones = np.ones((1, 1, 1), "float32")  # a single token sees itself only: its output is its value
    np.testing.assert_allclose(ops.convert_to_numpy(lesson8.causal_attention(ones, ones, 3 * ones)), 3 * ones)
    assert ((1, 1, 1), 1, 1.5) in lesson8._ATTENTION_CASES and ((1, 5, 3), 2, 1.5) in lesson8._ATTENTION_CASES


def test_maskgit_keep_checks_a_step_that_fixes_no_code(capsys):
    at_least_one = lesson8._KEEP_MISTAKES[9][0]  # the official code's clamp, which the package's schedule lacks
    out = assert_incorrect(capsys, "maskgit_keep", at_least_one, "a step may fix no new code")
    assert "fixes no new code in map 0" in out
    confidence, fixed = np.array([[-1.0, -2.0, -3.0]]), np.array([[False, True, False]])
    np.testing.assert_array_equal(lesson8.maskgit_keep(confidence, fixed, np.array([1])), fixed)  # nothing new


def test_maskgit_keep_checks_one_map_of_one_position(capsys):
    def loops_from_the_second_map(confidence, fixed, count):  # an off-by-one over the batch: map 0 is skipped
        keep = np.asarray(fixed, bool).copy()
        for b in range(1, len(confidence)):
            free = np.flatnonzero(~keep[b])
            keep[b, free[np.argsort(-confidence[b, free])][:count[b] - fixed[b].sum()]] = True
        return keep

    assert_incorrect(capsys, "maskgit_keep", loops_from_the_second_map)
    one = (np.array([[-0.5]], "float32"), np.zeros((1, 1), bool), np.array([1]))
    assert lesson8.maskgit_keep(*one).tolist() == [[True]]


def test_maskgit_keep_accepts_any_tie_break_and_names_a_threshold(capsys):
    def last_of_the_tied(confidence, fixed, count):  # ranks ties the other way round: as right as the reference
        reversed_scores = np.where(fixed, -np.inf, confidence)[:, ::-1]
        ranks = np.argsort(np.argsort(-reversed_scores, axis=1, kind="stable"), axis=1)[:, ::-1]
        return fixed | (ranks < (count - fixed.sum(axis=1))[:, None])

    assert check("maskgit_keep", last_of_the_tied) is True
    capsys.readouterr()
    assert_incorrect(capsys, "maskgit_keep", lesson8._KEEP_MISTAKES[-1][0], "with ties", "threshold")


@pytest.mark.parametrize("index, phrase", [(10, "argsort of the argsort"), (11, "first map's count"),
                                           (12, "confidence of 0")])
def test_maskgit_keep_names_the_rank_the_count_and_the_fill_mistakes(capsys, index, phrase):
    assert phrase in lesson8._KEEP_MISTAKES[index][1]
    assert_incorrect(capsys, "maskgit_keep", lesson8._KEEP_MISTAKES[index][0], phrase)


# -- attention_dot_products (derive) ----------------------------------------------------------------
def test_attention_dot_products_reference_counts():
    assert lesson8.attention_dot_products(1) == (1, 1)
    assert lesson8.attention_dot_products(49) == (49**3, 49 * 50 // 2)
    assert all(isinstance(n, int) for n in lesson8.attention_dot_products(7))


def test_equivalent_dot_product_answers_pass():
    assert check("attention_dot_products", lambda T: (T**3, T * (T + 1) // 2)) is True
    assert check("attention_dot_products", lambda T: [float(T * T * T), sum(range(1, T + 1))]) is True
    assert check("attention_dot_products", lambda T: np.array([T**3, T * (T + 1) / 2])) is True


def test_attention_dot_products_checks_one_token_and_whole_numbers(capsys):
    out = assert_incorrect(capsys, "attention_dot_products", lesson8._DOT_PRODUCTS_MISTAKES[0][0], "its own")
    assert out.startswith("Incorrect: With T = 1:")  # one token: 0 dot products with the cache is wrong at once
    assert_incorrect(capsys, "attention_dot_products", lambda T: (T**3, T * (T + 1) / 2 + 0.5), "whole number")
    assert_incorrect(capsys, "attention_dot_products", lambda T: (T**3,), "expected shape")


# -- cached_attention_step ----------------------------------------------------------------------------
def test_the_cache_step_gives_the_causal_attention_of_the_full_pass():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    cache_k, cache_v, outputs = np.zeros((2, 0, 4)), np.zeros((2, 0, 3)), []
    for t in range(5):
        out, cache_k, cache_v = lesson8.cached_attention_step(q[:, t], k[:, t], v[:, t], cache_k, cache_v)
        outputs.append(out)
    np.testing.assert_allclose(np.stack(outputs, axis=1), ops.convert_to_numpy(lesson8.causal_attention(q, k, v)),
                               atol=1e-5)
    np.testing.assert_allclose(cache_k, k)
    np.testing.assert_allclose(cache_v, v)


def test_equivalent_cache_steps_pass():
    def with_keras_ops(q, k, v, cache_k, cache_v):  # backend tensors out, a list instead of a tuple
        keys = ops.concatenate([cache_k, ops.expand_dims(k, 1)], axis=1)
        values = ops.concatenate([cache_v, ops.expand_dims(v, 1)], axis=1)
        scores = ops.einsum("bd,btd->bt", q, keys) / np.sqrt(q.shape[-1])
        return [ops.einsum("bt,btv->bv", ops.softmax(scores, axis=-1), values), keys, values]

    def with_matmul_in_float32(q, k, v, cache_k, cache_v):
        keys = np.concatenate([cache_k, k[:, None, :]], axis=1)
        values = np.concatenate([cache_v, v[:, None, :]], axis=1)
        scores = (keys @ q[:, :, None])[:, :, 0] / np.float32(np.sqrt(q.shape[1]))
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (weights[:, None, :] @ values)[:, 0] / weights.sum(axis=1, keepdims=True), keys, values

    for answer in (with_keras_ops, with_matmul_in_float32):
        assert check("cached_attention_step", answer) is True, answer.__name__


def test_the_cache_step_checks_the_first_step_large_scores_and_the_output_order(capsys):
    attends_then_appends = lesson8._CACHE_MISTAKES[0][0]
    out = assert_incorrect(capsys, "cached_attention_step", attends_then_appends, "append first")
    assert "t = 4 cached" in out  # named at a typical step, before the empty cache could make it NaN

    def scores_the_cache_and_itself_apart(q, k, v, cache_k, cache_v):  # right, but the max of no scores raises
        old = np.einsum("bd,btd->bt", q, cache_k) / np.sqrt(q.shape[1])
        own = np.sum(q * k, axis=1, keepdims=True) / np.sqrt(q.shape[1])
        top = np.maximum(old.max(axis=1, keepdims=True), own)  # a ValueError on an empty cache (the first step)
        weights = np.exp(np.concatenate([old, own], axis=1) - top)
        keys, values = np.concatenate([cache_k, k[:, None]], axis=1), np.concatenate([cache_v, v[:, None]], axis=1)
        return np.einsum("bt,btv->bv", weights / weights.sum(axis=1, keepdims=True), values), keys, values

    assert_incorrect(capsys, "cached_attention_step", scores_the_cache_and_itself_apart, "empty cache", "ValueError")
    unstable = lesson8._CACHE_MISTAKES[-1][0]
    assert_incorrect(capsys, "cached_attention_step", unstable, "large scores", "maximum")
    assert_incorrect(capsys, "cached_attention_step", lambda *args: lesson8._cache_variant()(*args)[:2],
                     "return three arrays")
    assert_incorrect(capsys, "cached_attention_step", lesson8._CACHE_MISTAKES[6][0], "output first")


# -- maskgit_training_loss --------------------------------------------------------------------------
def test_the_training_loss_plays_the_package_s_training_game():
    """The reference's count, positions and loss are the package's: MaskGITPrior.random_mask hides
    ceil(T cos(pi r / 2)) positions (at least one) by rank of a uniform draw, and cross_entropy_at averages over
    the hidden positions of the batch."""
    from vqvae_lessons.priors.transformer import cross_entropy_at

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 6, (4, 49)).astype("int32")
    r, noise = rng.random(4), rng.random((4, 49))
    logits = rng.normal(size=(4, 49, 6)).astype("float32")
    seen = []

    def predict(visible):
        seen.append(np.asarray(visible))
        return logits

    loss = lesson8.maskgit_training_loss(codes, r, noise, predict)
    hidden = seen[0] < 0
    assert (hidden.sum(axis=1) == np.clip(np.ceil(49 * np.cos(np.pi * r / 2)), 1, 49)).all()
    assert (np.where(hidden, codes, seen[0]) == codes).all()  # only the hidden positions changed
    package = ops.convert_to_numpy(cross_entropy_at(codes.reshape(4, 7, 7), logits.reshape(4, 7, 7, 6),
                                                    hidden.reshape(4, 7, 7)))
    np.testing.assert_allclose(loss, package, rtol=1e-5)


def test_equivalent_training_losses_pass():
    def with_keras(codes, r, noise, predict):  # keras's cross-entropy and a loop over the maps
        T = codes.shape[1]
        hidden = np.zeros(codes.shape, bool)
        for b in range(len(codes)):
            count = max(1, int(np.ceil(T * np.cos(np.pi * r[b] / 2))))
            hidden[b, np.argsort(noise[b])[:count]] = True
        logits = predict(np.where(hidden, -1, codes))
        losses = keras.losses.sparse_categorical_crossentropy(codes, logits, from_logits=True)
        return ops.sum(ops.where(hidden, losses, 0.0)) / hidden.sum()

    assert check("maskgit_training_loss", with_keras) is True


def test_the_training_loss_checks_each_maps_own_r_and_one_map(capsys):
    out = assert_incorrect(capsys, "maskgit_training_loss", lesson8._LOSS_MISTAKES[7][0], "its own r")
    assert "(B, T) = (4, 12)" in out
    assert_incorrect(capsys, "maskgit_training_loss", lesson8._LOSS_MISTAKES[8][0], "its own random positions")

    learners = pasted("maskgit_training_loss")

    def squeezes(codes, r, noise, predict):  # np.squeeze: a batch of one map loses its batch axis
        return learners(np.squeeze(codes), r, np.squeeze(noise), predict)

    assert_incorrect(capsys, "maskgit_training_loss", squeezes, "(B, T) = (1, 9)", "IndexError")


def test_the_training_loss_checks_saturated_logits_and_the_mask_token(capsys):
    out = assert_incorrect(capsys, "maskgit_training_loss", lesson8._LOSS_MISTAKES[-1][0], "large logits")
    assert "saturated logits" in out

    def naive_in_float64(codes, r, noise, predict):  # a different overflow: log of a softmax that is 0
        T = codes.shape[1]
        count = np.clip(np.ceil(T * np.cos(np.pi * r / 2)), 1, T)
        hidden = np.argsort(np.argsort(noise, axis=1), axis=1) < count[:, None]
        p = np.exp(np.asarray(predict(np.where(hidden, -1, codes)), "float64"))
        p = p / p.sum(axis=-1, keepdims=True)
        return float(-np.log(np.take_along_axis(p, codes[..., None], axis=-1)[..., 0])[hidden].mean())

    assert_incorrect(capsys, "maskgit_training_loss", naive_in_float64, "large logits")
    assert_incorrect(capsys, "maskgit_training_loss", lesson8._LOSS_MISTAKES[2][0], "-1", "real code")

    learners = pasted("maskgit_training_loss")

    def masks_with_k(codes, r, noise, predict):  # the [MASK] written as a number past the codes
        return learners(codes, r, noise, lambda visible: predict(
            np.where(visible < 0, codes.max() + 100, visible)))

    assert_incorrect(capsys, "maskgit_training_loss", masks_with_k, "predict reads codes in", "-1 where")
