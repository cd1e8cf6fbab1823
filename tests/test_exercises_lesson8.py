"""Lesson 8's exercises (causal_attention, maskgit_keep): the references pass, every known mistake is rejected
with its own hint, equivalent answers pass, and the references agree with the package's attention and with
MaskGIT's own decoding steps; lesson 8's diagram and figures draw."""

import re

import keras
import numpy as np
import pytest
from checking import assert_every_mistake_named, assert_incorrect, assert_reference_stub_and_crash, assert_titled_figure
from keras import ops

from vqvae_lessons import exercises, plotting
from vqvae_lessons.diagrams import attention as diagrams
from vqvae_lessons.exercises import check, lesson8
from vqvae_lessons.priors import attention, decoding
from vqvae_lessons.priors.build import build_prior

NAMES = ["causal_attention", "maskgit_keep"]
TABLES = {"causal_attention": lesson8._ATTENTION_MISTAKES, "maskgit_keep": lesson8._KEEP_MISTAKES}


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
