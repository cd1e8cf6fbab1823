"""Lesson 7's exercises (fsq_quantize, entropy_terms, rotate_to, residual_stage): the references pass, every known
mistake is rejected with its own hint, equivalent answers pass, and the references agree with the package's layers."""

import keras
import numpy as np
import pytest
from checking import assert_every_mistake_named, assert_incorrect, assert_reference_stub_and_crash, pasted
from keras import ops

from vqvae_lessons import exercises, quantizers
from vqvae_lessons.exercises import check, lesson7
from vqvae_lessons.gradients import gradients

NAMES = ["fsq_quantize", "entropy_terms", "rotate_to", "residual_stage"]
TABLES = {"fsq_quantize": lesson7._FSQ_MISTAKES, "entropy_terms": lesson7._ENTROPY_MISTAKES,
          "rotate_to": lesson7._ROTATION_MISTAKES, "residual_stage": lesson7._RESIDUAL_MISTAKES}


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_passes_a_stub_is_not_attempted_and_errors_are_incorrect(name, capsys):
    assert_reference_stub_and_crash(capsys, name, getattr(lesson7, name))


@pytest.mark.parametrize("name", NAMES)
def test_each_known_mistake_is_rejected_with_its_own_hint(name, capsys):
    assert_every_mistake_named(capsys, name, TABLES[name])


def test_equivalent_answers_pass():
    def fsq_by_hand(z, levels):  # the formulas of the lesson, written out
        levels = np.asarray(levels, "float32")
        h = (levels - 1) * (1 - 1e-3) / 2
        offset = np.where(levels % 2 == 1, 0.0, 0.5).astype("float32")
        bounded = ops.tanh(z + np.tan(offset / h)) * h - offset
        return (bounded + ops.stop_gradient(ops.round(bounded) - bounded)) / (levels // 2)

    def rotation_with_a_matrix(e, q):  # R built explicitly, one vector at a time; another guard against 0 / 0
        e_flat, q_flat = ops.reshape(e, (-1, e.shape[-1])), ops.reshape(q, (-1, q.shape[-1]))
        e_hat = ops.stop_gradient(e_flat / ops.norm(e_flat, axis=-1, keepdims=True))
        q_hat = ops.stop_gradient(q_flat / ops.norm(q_flat, axis=-1, keepdims=True))
        halfway = e_hat + q_hat  # zero, up to rounding, for antiparallel vectors: then r = 0 (R = I + 2 q e^T)
        size = ops.norm(halfway, axis=-1, keepdims=True)
        r = ops.stop_gradient(ops.where(size > 1e-4, halfway / ops.maximum(size, 1e-12), 0.0))
        eye = ops.eye(e.shape[-1])
        rotation = eye - 2 * r[:, :, None] * r[:, None, :] + 2 * q_hat[:, :, None] * e_hat[:, None, :]
        lam = ops.stop_gradient(ops.norm(q_flat, axis=-1, keepdims=True) / ops.norm(e_flat, axis=-1, keepdims=True))
        return ops.reshape(lam * ops.einsum("nij,nj->ni", rotation, e_flat), ops.shape(e))

    def stage_in_numpy(residual, codebook):
        residual, codebook = np.asarray(residual), np.asarray(codebook)
        code = codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
        return code, residual - code

    def entropies_by_the_maximum(logits):  # stable by subtracting each row's maximum; xlogy-style guard
        shifted = logits - ops.max(logits, axis=-1, keepdims=True)
        log_p = shifted - ops.log(ops.sum(ops.exp(shifted), axis=-1, keepdims=True))
        p = ops.exp(log_p)
        average = ops.sum(p, axis=0) / ops.cast(ops.shape(p)[0], p.dtype)
        return -ops.sum(p * log_p) / ops.cast(ops.shape(p)[0], p.dtype), -ops.sum(average * ops.log(average + 1e-12))

    assert check("entropy_terms", entropies_by_the_maximum) is True
    assert check("fsq_quantize", fsq_by_hand) is True
    assert check("rotate_to", rotation_with_a_matrix) is True
    assert check("residual_stage", stage_in_numpy) is True


def test_fsq_quantize_is_the_layer_s_quantized_output():
    z = np.random.default_rng(0).normal(size=(40, 3)).astype("float32") * 2
    layer = quantizers.FiniteScalarQuantizer((8, 4, 4))
    np.testing.assert_allclose(ops.convert_to_numpy(lesson7.fsq_quantize(z, (8, 4, 4))),
                               ops.convert_to_numpy(layer(z)["quantized"]), atol=1e-6)
    codes = ops.convert_to_numpy(lesson7.fsq_quantize(z, (8, 4, 4)))
    for channel, level in enumerate((8, 4, 4)):  # on the grid: L values, multiples of 1 / (L // 2)
        digits = set(np.round(codes[:, channel] * (level // 2)).astype(int))
        assert digits <= set(range(-(level // 2), level - level // 2))


def test_rotate_to_agrees_with_an_explicit_rotation_matrix_in_numpy():
    rng = np.random.default_rng(1)
    e, q, g = (rng.normal(size=(1, 4)).astype("float32") for _ in range(3))
    e_hat, q_hat = e[0] / np.linalg.norm(e), q[0] / np.linalg.norm(q)
    r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
    rotation = np.eye(4) - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(4), atol=1e-5)  # a rotation
    np.testing.assert_allclose(rotation @ e_hat, q_hat, atol=1e-5)  # taking e_hat to q_hat
    grad_e, grad_q = gradients(lambda a, b: ops.sum(lesson7.rotate_to(a, b) * g), [e, q])
    lam = np.linalg.norm(q) / np.linalg.norm(e)
    np.testing.assert_allclose(grad_e[0], lam * rotation.T @ g[0], rtol=1e-4, atol=1e-5)
    assert not np.any(grad_q)


def test_residual_stages_in_a_row_are_the_package_s_residual_quantizer():
    keras.utils.set_random_seed(0)
    layer = quantizers.ResidualVectorQuantizer(3, 8, 2)
    x = np.random.default_rng(2).normal(size=(30, 2)).astype("float32")
    layer.initialize_kmeans(x, seed=0)
    residual, total = x, 0.0
    for stage in layer.stages:
        code, residual = (ops.convert_to_numpy(t) for t in lesson7.residual_stage(residual, stage.codebook))
        total = total + code
    np.testing.assert_allclose(total, ops.convert_to_numpy(layer(x)["quantized"]), atol=1e-5)
    np.testing.assert_allclose(residual, x - total, atol=1e-6)


def test_the_exercises_are_registered_for_lesson_7_with_a_collapsed_solution():
    for name in NAMES:
        assert exercises._EXERCISES[name].lesson == 7
        assert "def " + name in exercises.solution_markdown(name)
        first = exercises.hint(name, 1)
        assert "ops." not in first and "np." not in first and "stop_gradient(" not in first  # a nudge, no code


# -- the edge cases the course meets (#28, part 4): each mistake below passed the typical inputs -------------------
def test_fsq_levels_mixing_even_and_odd_are_checked(capsys):
    """(8, 4, 4), (5, 3) and (7, 5, 5, 5, 5) all start with the parity of their other channels: one offset from
    the first level passed them all."""
    one_offset = lesson7._fsq_variant(offset_from="first")
    assert_incorrect(capsys, "fsq_quantize", one_offset, "even and odd mixed", "the offset and shift belong to "
                     "each channel")
    assert check("fsq_quantize", pasted("fsq_quantize")) is True


@pytest.mark.parametrize(("variant", "phrase"), [
    ({"scale": "half_levels"}, "you divided by L / 2"), ({"shift_by": "artanh"}, "you shifted by artanh"),
    ({"rounding": "straight_through_from_z"}, "the gradient passes straight from z"),
    ({"bound": "plus_offset"}, "the offset is subtracted")])
def test_fsq_mistakes_found_by_the_new_cases_have_their_own_hints(capsys, variant, phrase):
    assert_incorrect(capsys, "fsq_quantize", lesson7._fsq_variant(**variant), phrase)


def test_fsq_is_checked_at_the_bounds_with_one_row_and_one_channel_of_two_levels(capsys):
    def clipped_not_squashed(z, levels):  # right inside the bound, wrong beyond it: only |z| = 20 shows it
        correct = pasted("fsq_quantize")(z, levels)
        return ops.where(ops.abs(z) > 10, ops.zeros_like(correct), correct)

    assert_incorrect(capsys, "fsq_quantize", clipped_not_squashed, "With z at the bounds")

    def first_row_only(z, levels):  # a batch of one hides it
        return pasted("fsq_quantize")(z, levels)[:1] if z.shape[0] > 1 else pasted("fsq_quantize")(z, levels)

    assert "shape" in assert_incorrect(capsys, "fsq_quantize", first_row_only)
    out = assert_incorrect(capsys, "fsq_quantize", lambda z, levels: pasted("fsq_quantize")(z, levels)
                           if len(levels) > 1 else ops.zeros_like(z))
    assert "levels = (2,)" in out
    for L in (2, 3, 4, 5, 8):  # the reference's values, at the bounds: the outermost levels exactly
        codes = ops.convert_to_numpy(lesson7.fsq_quantize(np.array([[-20.0], [20.0]], "float32"), (L,)))
        assert codes.dtype == np.float32
        np.testing.assert_allclose(codes[:, 0], [-(L // 2) / (L // 2), (L - 1 - L // 2) / (L // 2)])


def test_rotate_to_is_checked_on_parallel_and_antiparallel_vectors(capsys):
    assert_incorrect(capsys, "rotate_to", lesson7._rotation_variant(eps=None), "antiparallel",
                     "e_hat + q_hat is 0")
    e = np.array([[3.0, -4.0, 0.0], [2.0, 0.0, 0.0]], "float32")
    q = np.array([[-1.5, 2.0, 0.0], [-4.0, 0.0, 0.0]], "float32")
    np.testing.assert_allclose(ops.convert_to_numpy(lesson7.rotate_to(e, q)), q, atol=1e-6)  # the value is q
    [grad_e] = gradients(lambda a: ops.sum(lesson7.rotate_to(a, q) * np.ones_like(q)), [e])
    assert np.isfinite(grad_e).all()
    assert check("rotate_to", pasted("rotate_to")) is True


def test_rotate_to_mistakes_with_one_row_or_an_inverted_scale_are_named(capsys):
    assert_incorrect(capsys, "rotate_to", lesson7._rotation_variant(inverse_scale=True), "the scale is upside down")

    def norms_over_everything(e, q):  # one norm for the whole batch: a batch of one row hides it
        lam = ops.stop_gradient(ops.norm(q) / ops.norm(e))
        return pasted("rotate_to")(e, q) if e.shape[0] == 1 else lam * e

    assert_incorrect(capsys, "rotate_to", norms_over_everything)


@pytest.mark.parametrize("index", [6, 7, 8])
def test_residual_stage_mistakes_of_the_new_cases_are_named(capsys, index):
    mistake, mistake_hint = lesson7._RESIDUAL_MISTAKES[index]
    assert_incorrect(capsys, "residual_stage", mistake, "(N, D) = (6, 2) and codebook (K, D) = (6, 2)", mistake_hint)


def test_residual_stage_is_checked_with_one_code_one_row_and_one_dimension(capsys):
    def squeezed(residual, codebook):  # np.squeeze drops the axis of size 1: K = 1 gives (N,) indices of ()
        distances = np.squeeze(((np.asarray(residual)[:, None] - np.asarray(codebook)[None]) ** 2).sum(-1))
        code = np.asarray(codebook)[np.argmin(distances, axis=-1)]
        return code, np.asarray(residual) - code

    out = assert_incorrect(capsys, "residual_stage", squeezed)
    assert "(1, 5)" in out or "(4, 1)" in out or "(1, 3)" in out, out

    def the_argmin_of_an_axis_argument(residual, codebook):  # argmin over the last axis of a (N, K) from N==1
        residual, codebook = np.asarray(residual), np.asarray(codebook)
        code = codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
        return (code, residual - code) if codebook.shape[1] > 1 else (code, code - residual)

    assert "D) = (5, 1)" in assert_incorrect(capsys, "residual_stage", the_argmin_of_an_axis_argument)
    code, left = lesson7.residual_stage(np.array([[1.0, 2.0]], "float32"), np.array([[0.5, 0.5]], "float32"))
    assert ops.convert_to_numpy(code).dtype == np.float32
    np.testing.assert_allclose(ops.convert_to_numpy(left), [[0.5, 1.5]])


def test_entropy_terms_is_checked_on_saturated_logits_a_batch_of_one_and_one_bit(capsys):
    for index, case in [(4, "With saturated logits (LFQ's temperature 0.01"), (5, "With saturated logits"),
                        (6, "all near one corner"), (7, "With saturated logits")]:
        mistake, mistake_hint = lesson7._ENTROPY_MISTAKES[index]
        assert_incorrect(capsys, "entropy_terms", mistake, case, mistake_hint)

    def per_sample_of_the_first_row(logits):  # right for a batch of one only
        per_sample, codebook = pasted("entropy_terms")(logits)
        return (per_sample, codebook) if logits.shape[0] > 1 else (per_sample, codebook * 0.5)

    assert "a batch of one vector" in assert_incorrect(capsys, "entropy_terms", per_sample_of_the_first_row)
    assert "shape (1, 4)" in assert_incorrect(capsys, "entropy_terms",
                                              lambda x: pasted("entropy_terms")(x) if x.shape[0] > 1 else (0.0, 0.0))
    assert "(7, 2)" in assert_incorrect(capsys, "entropy_terms",
                                        lambda x: pasted("entropy_terms")(x) if x.shape[1] > 2 else (0.0, 0.0))
    assert "the penalty itself" in assert_incorrect(capsys, "entropy_terms",
                                                    lambda x: ops.subtract(*pasted("entropy_terms")(x)))
    per_sample, codebook = lesson7.entropy_terms(np.array([[0.0, 0.0], [0.0, 0.0]], "float32"))
    np.testing.assert_allclose([float(per_sample), float(codebook)], [np.log(2), np.log(2)], rtol=1e-6)  # nats


def test_entropy_terms_is_the_package_s_lfq_penalty():
    logits = lesson7._lfq_logits(32, 4, 0.6, np.random.default_rng(5))
    for mine, package in zip(lesson7.entropy_terms(logits), quantizers.entropy_terms(logits), strict=True):
        np.testing.assert_allclose(float(mine), float(package), rtol=1e-4, atol=1e-6)  # log_softmax, round-off
