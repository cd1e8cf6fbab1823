"""Lesson 2's new checkers and diagram: ``vq_losses``'s added mistakes, ``ema_update`` (its
mistakes, and its reference against ``VectorQuantizerEMA``'s own update), and the checks the
notebook used to make by hand that the package agrees with NumPy."""

import numpy as np
import pytest
from checking import assert_incorrect, pasted  # tests/checking.py
from keras import ops

from vqvae_lessons import metrics, quantizers
from vqvae_lessons.diagrams import straight_through as straight_through_diagram
from vqvae_lessons.exercises import check, lesson2

sg = ops.stop_gradient


def mse(a, b):
    return ops.mean(ops.square(a - b))


# -- vq_losses: each mistake the brief names gets its own hint ----------------------------------
@pytest.mark.parametrize("mistake, phrase", [
    (lambda x, q, b: (b * mse(x, sg(q)), mse(q, sg(x))), "swapped"),
    (lambda x, q, b: (b * mse(q, sg(x)), mse(x, sg(q))), "beta is on the wrong loss"),
    (lambda x, q, b: (mse(sg(q), x), b * mse(sg(x), q)), "stop_gradients are on the wrong tensors"),
    (lambda x, q, b: (mse(quantizers.straight_through(x, q), sg(x)), b * mse(x, sg(q))), "straight-through output"),
    (lambda x, q, b: (mse(st := quantizers.straight_through(x, q), sg(x)), b * mse(x, sg(st))),
     "straight-through output"),
    (lambda x, q, b: (mse(sg(q), sg(x)), b * mse(x, sg(q))), "codebook gets no gradient at all"),
    (lambda x, q, b: (mse(x + sg(q - x), x), b * mse(x, sg(q))), "codebook gets no gradient at all"),
])
def test_vq_losses_named_mistakes(capsys, mistake, phrase):
    assert_incorrect(capsys, "vq_losses", mistake, phrase)


# -- ema_update ----------------------------------------------------------------------------------
def ema_with_bincount(cluster_size, embedding_sum, z_e, indices, decay, lam):
    k = len(cluster_size)
    counts = np.bincount(indices, minlength=k)
    sums = np.zeros_like(embedding_sum, dtype="float64")
    np.add.at(sums, indices, z_e)
    size = decay * cluster_size + (1 - decay) * counts
    total = decay * embedding_sum + (1 - decay) * sums
    smoothed = (size + lam) / (size.sum() + k * lam) * size.sum()
    return size, total, total / smoothed[:, None]


def test_ema_update_accepts_the_reference_and_an_equivalent(capsys):
    assert check("ema_update", pasted("ema_update")) is True
    assert check("ema_update", ema_with_bincount) is True
    assert check("ema_update", lambda *a: list(ema_with_bincount(*a))) is True


def _replace(**changes):
    def mistaken(cluster_size, embedding_sum, z_e, indices, decay, lam):
        k = len(cluster_size)
        one_hot = np.eye(k)[indices]
        counts, sums = one_hot.sum(0), one_hot.T @ z_e
        if changes.get("unweighted"):
            sums = np.tile(z_e.mean(0), (k, 1))
        if changes.get("swap_decay"):
            size, total = decay * counts + (1 - decay) * cluster_size, decay * sums + (1 - decay) * embedding_sum
        else:
            size, total = decay * cluster_size + (1 - decay) * counts, decay * embedding_sum + (1 - decay) * sums
        smoothed = (size + lam) / (size.sum() + k * lam) * size.sum()
        if changes.get("denominator") == "raw":
            smoothed = size
        elif changes.get("denominator") == "not renormalised":
            smoothed = size + lam
        numerator = embedding_sum if changes.get("old_sums") else total
        return size, total, numerator / smoothed[:, None]
    return mistaken


@pytest.mark.parametrize("mistake, phrase", [
    (_replace(swap_decay=True), "decay is on the wrong term"),
    (_replace(denominator="raw"), "no Laplace smoothing"),
    (_replace(denominator="not renormalised"), "does not renormalise to the total count"),
    (_replace(unweighted=True), "not weighted by the assignment"),
    (_replace(old_sums=True), "from the old sums"),
    (lambda s, m, z, i, d, lam: lesson2._ema_with(s, m, z, i, d, lam, divide=lambda ns, nm, os, om, c, v, lam:
                                                  nm / lesson2._smooth(c, lam)[:, None]), "this batch's counts"),
    (lambda s, m, z, i, d, lam: lesson2._ema_with(s, m, z, i, d, lam, mix=lambda old, new, d: d * old + new),
     "(1 - decay)"),
])
def test_ema_update_mistakes(capsys, mistake, phrase):
    assert_incorrect(capsys, "ema_update", mistake, phrase)


def test_ema_update_other_wrong_answers(capsys):
    assert_incorrect(capsys, "ema_update", lambda *a: pasted("ema_update")(*a)[:2], "expected a tuple")
    assert_incorrect(capsys, "ema_update", lambda *a: tuple(np.transpose(np.atleast_2d(r)) for r in
                                                            lesson2.ema_update(*a)), "new_cluster_size")
    assert_incorrect(capsys, "ema_update", lambda *a: (*lesson2.ema_update(*a)[:2], lesson2.ema_update(*a)[2] + 1),
                     "new_codebook", "values differ")


@pytest.mark.parametrize("fresh", [True, False])
def test_ema_update_reference_is_the_layers_update_without_bias_correction(fresh):
    """VectorQuantizerEMA with ema_steps so large that 1 - decay**t is 1 in float32 makes the same step."""
    rng = np.random.default_rng(3)
    k, d, decay, lam = 6, 3, 0.9, 1e-2
    layer = quantizers.VectorQuantizerEMA(num_embeddings=k, embedding_dim=d, decay=decay, epsilon=lam)
    layer.build((None, d))
    codebook = rng.normal(size=(k, d)).astype("float32")
    layer.set_codes(np.arange(k), codebook)
    size = np.zeros(k, "float32") if fresh else rng.uniform(0.5, 3.0, size=k).astype("float32")
    sums = (size[:, None] * codebook).astype("float32")
    layer.ema_cluster_size.assign(size)
    layer.ema_embedding_sum.assign(sums)
    layer.ema_steps.assign(10_000.0)
    z_e = rng.normal(size=(20, d)).astype("float32")
    indices = ops.convert_to_numpy(quantizers.nearest_code(z_e, codebook))
    new_size, new_sum, new_codebook = lesson2.ema_update(size, sums, z_e, indices, decay, lam)
    layer(z_e, training=True)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_cluster_size), new_size, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_embedding_sum), new_sum, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.embeddings), new_codebook, rtol=1e-4, atol=1e-5)


def test_the_layers_first_step_is_the_reference_on_bias_corrected_averages():
    """After one step from zero, the layer divides N_k and m_k by 1 - decay before smoothing."""
    rng = np.random.default_rng(4)
    k, d, decay, lam = 5, 2, 0.9, 1e-5
    layer = quantizers.VectorQuantizerEMA(num_embeddings=k, embedding_dim=d, decay=decay, epsilon=lam)
    layer.build((None, d))
    start = rng.uniform(-3, 3, size=(k, d)).astype("float32")
    layer.set_codes(np.arange(k), start)
    z_e = rng.normal(size=(40, d)).astype("float32")
    indices = ops.convert_to_numpy(quantizers.nearest_code(z_e, start))
    size, total, _ = lesson2.ema_update(np.zeros(k), np.zeros((k, d)), z_e, indices, decay, lam)
    layer(z_e, training=True)
    correction = 1 - decay
    smoothed = (size / correction + lam) / (size.sum() / correction + k * lam) * size.sum() / correction
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_cluster_size), size, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.embeddings), total / correction / smoothed[:, None],
                               rtol=1e-4, atol=1e-5)
    unused = np.setdiff1d(np.arange(k), indices)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.embeddings)[unused], 0.0)  # unused codes: the origin


# -- the NumPy-against-package checks moved out of the notebook -----------------------------------
def toy(seed=0, n=300):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 2)).astype("float32")
    codebook = rng.uniform(-2, 2, size=(8, 2)).astype("float32")
    return points, codebook


def test_vq_losses_and_the_layer_agree_with_numpy():
    points, codebook = toy(1)
    q = codebook[np.argmin(((points[:, None] - codebook[None]) ** 2).sum(-1), axis=1)]
    by_hand = (np.mean((q - points) ** 2), 0.25 * np.mean((points - q) ** 2))
    np.testing.assert_allclose([float(v) for v in quantizers.vq_losses(points, q, 0.25)], by_hand, rtol=1e-5)
    layer = quantizers.VectorQuantizer(num_embeddings=8, embedding_dim=2)
    layer.build((None, 2))
    layer.set_codes(np.arange(8), codebook)
    result = layer(points)
    np.testing.assert_allclose([float(result["codebook_loss"]), float(result["commitment_loss"])], by_hand, rtol=1e-5)


def test_nearest_code_and_perplexity_agree_with_numpy():
    points, codebook = toy(2)
    indices = np.argmin(((points[:, None] - codebook[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(quantizers.nearest_code(points, codebook)), indices)
    p = np.bincount(indices, minlength=8) / len(indices)
    p = p[p > 0]
    by_hand = float(np.exp(-np.sum(p * np.log(p))))
    assert np.isclose(metrics.perplexity(indices, 8), by_hand)
    assert np.isclose(float(quantizers.batch_perplexity(indices, 8)[0]), by_hand, rtol=1e-4)


def test_initialize_kmeans_returns_the_quantization_error_of_its_codebook():
    points, _ = toy(3)
    layer = quantizers.VectorQuantizer(num_embeddings=8, embedding_dim=2)
    layer.build((None, 2))
    error = layer.initialize_kmeans(points, iterations=5, seed=0)
    codes = ops.convert_to_numpy(layer.embeddings)
    nearest = np.min(((points[:, None] - codes[None]) ** 2).sum(-1), axis=1)
    assert np.isclose(error, nearest.mean(), rtol=1e-4)


# -- the diagram ---------------------------------------------------------------------------------
def test_straight_through_diagram_has_a_title_and_its_labels():
    fig = straight_through_diagram.straight_through()
    ax = fig.axes[0]
    assert "straight-through" in ax.get_title()
    texts = " ".join(t.get_text() for t in ax.texts)
    for label in ("$z_e$", "nearest code", "$z_q = e_k$", "decoder", "no gradient through the argmin",
                  "copied unchanged to $z_e$", "\\mathrm{sg}[z_q - z_e]"):
        assert label in texts, label
    dashed = [p for p in ax.patches if p.get_linestyle() in ("--", "dashed")]
    assert len(dashed) >= 2  # the backward pass


def test_the_quantizers_steps_have_a_trial_and_ema_update_none():
    """The four pieces a VQ-VAE runs are tried in a compiled training step before the lesson uses them; the
    NumPy ema_update runs as NumPy, with no trial."""
    from vqvae_lessons import exercises

    for name in ("pairwise_sq_distances", "nearest_code", "straight_through", "vq_losses"):
        assert exercises._EXERCISES[name].trial is not None, name
    assert exercises._EXERCISES["ema_update"].trial is None
