"""Lesson 7's exercises (fsq_quantize, rotate_to, residual_stage): the references pass, every known mistake is
rejected with its own hint, equivalent answers pass, and the references agree with the package's layers."""

import keras
import numpy as np
import pytest
from checking import assert_every_mistake_named, assert_reference_stub_and_crash
from keras import ops

from vqvae_lessons import exercises, quantizers
from vqvae_lessons.exercises import check, lesson7
from vqvae_lessons.gradients import gradients

NAMES = ["fsq_quantize", "rotate_to", "residual_stage"]
TABLES = {"fsq_quantize": lesson7._FSQ_MISTAKES, "rotate_to": lesson7._ROTATION_MISTAKES,
          "residual_stage": lesson7._RESIDUAL_MISTAKES}


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

    def rotation_with_a_matrix(e, q):  # R built explicitly, one vector at a time
        e_flat, q_flat = ops.reshape(e, (-1, e.shape[-1])), ops.reshape(q, (-1, q.shape[-1]))
        e_hat = ops.stop_gradient(e_flat / ops.norm(e_flat, axis=-1, keepdims=True))
        q_hat = ops.stop_gradient(q_flat / ops.norm(q_flat, axis=-1, keepdims=True))
        r = ops.stop_gradient((e_hat + q_hat) / ops.norm(e_hat + q_hat, axis=-1, keepdims=True))
        eye = ops.eye(e.shape[-1])
        rotation = eye - 2 * r[:, :, None] * r[:, None, :] + 2 * q_hat[:, :, None] * e_hat[:, None, :]
        lam = ops.stop_gradient(ops.norm(q_flat, axis=-1, keepdims=True) / ops.norm(e_flat, axis=-1, keepdims=True))
        return ops.reshape(lam * ops.einsum("nij,nj->ni", rotation, e_flat), ops.shape(e))

    def stage_in_numpy(residual, codebook):
        residual, codebook = np.asarray(residual), np.asarray(codebook)
        code = codebook[np.argmin(((residual[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
        return code, residual - code

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
