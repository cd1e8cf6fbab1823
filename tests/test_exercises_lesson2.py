"""Lesson 2's new checkers and diagram: ``vq_losses``'s added mistakes, ``ema_update`` (its
mistakes, and its reference against ``VectorQuantizerEMA``'s own update), and the checks the
notebook used to make by hand that the package agrees with NumPy."""

import numpy as np
import pytest
from checking import assert_incorrect, assert_reference_stub_and_crash, pasted  # tests/checking.py
from keras import ops

from vqvae_lessons import metrics, quantizers
from vqvae_lessons.diagrams import straight_through as straight_through_diagram
from vqvae_lessons.exercises import check, check_answer, lesson2
from vqvae_lessons.gradients import gradients

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


# -- #28 part 4: the edge cases the course meets ---------------------------------------------------
def test_pairwise_sq_distances_cases_hold_sizes_of_one_and_a_square_matrix(capsys):
    shapes = [(len(x), len(c), x.shape[1]) for x, c in lesson2._distance_cases(30)]
    assert shapes[0][0] == shapes[0][1]  # N == K first: a norm added along the wrong axis still runs there
    assert {1} <= {n for n, _, _ in shapes} and {1} <= {k for _, k, _ in shapes} and {1} <= {d for *_, d in shapes}
    assert check("pairwise_sq_distances", pasted("pairwise_sq_distances")) is True
    capsys.readouterr()
    assert_incorrect(capsys, "pairwise_sq_distances", lambda x, c: ops.sum(x**2, 1) + ops.sum(c**2, 1) - 2 * x @ c.T,
                     "added as a row", "keepdims=True")
    assert_incorrect(capsys, "pairwise_sq_distances",
                     lambda x, c: np.sum(x**2, 1, keepdims=True) + np.sum(c**2) - 2 * x @ c.T, "all the codes together")
    assert_incorrect(capsys, "pairwise_sq_distances",
                     lambda x, c: np.sum(x**2) + np.sum(c**2, 1) - 2 * x @ c.T, "all the vectors together")


def test_nearest_code_codes_above_255_ties_and_a_single_code(capsys):
    cases = list(lesson2._nearest_code_cases())
    assert max(len(c) for _, c in cases) > 256 and min(len(c) for _, c in cases) == 1
    assert any(len(np.unique(c, axis=0)) < len(c) for _, c in cases)  # a tie: two copies of one code

    def distances(x, c):
        return ((x[:, None] - c[None]) ** 2).sum(-1)

    def last_of_ties(x, c):  # breaks ties towards the last code: as right as argmin's first
        d = distances(x, c)
        return len(c) - 1 - np.argmin(d[:, ::-1], axis=1)

    for right in (pasted("nearest_code"), last_of_ties, lambda x, c: np.argmin(distances(x, c), 1).astype("int32")):
        assert check("nearest_code", right) is True
    capsys.readouterr()
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c), 1).astype(np.uint8),
                     "wrap around above 255", "uint8")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c), 1).astype(np.int8),
                     "wrap around above 127")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c)), "without an axis")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c), 1).astype("float64"),
                     "integer indices")


def test_straight_through_on_a_single_element_a_vector_that_is_its_code_and_zeros(capsys):
    assert check("straight_through", pasted("straight_through")) is True
    capsys.readouterr()
    assert_incorrect(capsys, "straight_through", lambda x, q: x * sg(q / x), "stop_gradient(q / x)", "q / x, not 1")


def test_vq_losses_sizes_of_one_and_other_distances(capsys):
    assert check("vq_losses", pasted("vq_losses")) is True
    capsys.readouterr()
    assert_incorrect(capsys, "vq_losses",
                     lambda x, q, b: (ops.mean(ops.abs(q - sg(x))), b * ops.mean(ops.abs(x - sg(q)))),
                     "absolute differences")
    assert_incorrect(capsys, "vq_losses", lambda x, q, b: (ops.sqrt(ops.sum(ops.square(q - sg(x)))),
                                                           b * ops.sqrt(ops.sum(ops.square(x - sg(q))))), "the norm")


def test_ema_update_repeated_indices_and_a_batch_of_one(capsys):
    assert any(len(z) == 1 for _, _, z, *_ in lesson2._ema_cases())
    assert all(len(np.unique(i)) < len(i) for _, _, z, i, *_ in lesson2._ema_cases() if len(z) > 1)

    def with_add_at(size, sums, z, idx, decay, lam):
        k = len(size)
        counts, vector_sums = np.zeros(k), np.zeros_like(sums, dtype="float64")
        np.add.at(counts, idx, 1)
        np.add.at(vector_sums, idx, z)
        new_size, new_sums = decay * size + (1 - decay) * counts, decay * sums + (1 - decay) * vector_sums
        n = new_size.sum()
        return new_size, new_sums, new_sums / ((new_size + lam) / (n + k * lam) * n)[:, None]

    def fancy_indexing(size, sums, z, idx, decay, lam):  # counts[idx] += 1 counts a repeated index once
        k = len(size)
        counts, vector_sums = np.zeros(k), np.zeros_like(sums, dtype="float64")
        counts[idx] += 1
        vector_sums[idx] += z
        new_size, new_sums = decay * size + (1 - decay) * counts, decay * sums + (1 - decay) * vector_sums
        n = new_size.sum()
        return new_size, new_sums, new_sums / ((new_size + lam) / (n + k * lam) * n)[:, None]

    def batch_total(size, sums, z, idx, decay, lam):  # n = the batch's size, not the running total
        new_size, new_sums, _ = with_add_at(size, sums, z, idx, decay, lam)
        k, n = len(size), len(z)
        return new_size, new_sums, new_sums / ((new_size + lam) / (n + k * lam) * n)[:, None]

    assert check("ema_update", with_add_at) is True
    capsys.readouterr()
    assert_incorrect(capsys, "ema_update", fancy_indexing, "counted only one of them", "np.add.at")
    assert_incorrect(capsys, "ema_update", batch_total, "the batch's number of vectors")


# -- encoder_gradient: derive the gradient the encoder receives --------------------------------------
def test_encoder_gradient_is_a_derive_exercise_with_three_hint_levels(capsys):
    from vqvae_lessons import exercises

    assert exercises.kinds()["encoder_gradient"] == (2, "derive")
    assert len(exercises._EXERCISES["encoder_gradient"].hints) >= 3
    assert_reference_stub_and_crash(capsys, "encoder_gradient", lesson2.encoder_gradient)


def test_encoder_gradient_is_what_automatic_differentiation_finds():
    """On every case of the checker (sizes of one, a vector that is its own code), the hand-derived gradient is the
    backend's gradient of the decoder's term through straight_through plus both vq_losses."""
    for grad_q, z_e, z_q, beta in lesson2._encoder_gradient_cases():
        def loss(x, q, g=grad_q, beta=beta):
            codebook_loss, commitment_loss = quantizers.vq_losses(x, q, beta)
            return [ops.sum(ops.multiply(g, quantizers.straight_through(x, q))) + codebook_loss + commitment_loss]

        [(to_z_e, _)] = gradients(loss, [z_e, z_q])
        np.testing.assert_allclose(lesson2.encoder_gradient(grad_q, z_e, z_q, beta), to_z_e, rtol=1e-5, atol=1e-7)


def test_encoder_gradient_cases_hold_sizes_of_one():
    shapes = {z_e.shape for _, z_e, _, _ in lesson2._encoder_gradient_cases()}
    assert {(1, 1), (6, 1), (1, 4)} <= shapes


@pytest.mark.parametrize("index", range(len(lesson2._ENCODER_GRADIENT_MISTAKES)))
def test_encoder_gradient_names_each_mistake(capsys, index):
    mistake, mistake_hint = lesson2._ENCODER_GRADIENT_MISTAKES[index]
    assert_incorrect(capsys, "encoder_gradient", lambda *args: np.asarray(mistake(*args)) * 1.0, mistake_hint)


def test_encoder_gradient_mistakes_are_told_apart():
    """On the checker's first case no two mistakes (nor a mistake and the reference) give the same gradient, so each
    gets its own hint."""
    from vqvae_lessons.exercises.authoring import close

    case = next(lesson2._encoder_gradient_cases())
    values = [mistake(*case) for mistake, _ in lesson2._ENCODER_GRADIENT_MISTAKES] + [lesson2.encoder_gradient(*case)]
    assert not [(i, j) for i in range(len(values)) for j in range(i) if close(values[i], values[j])]


# -- unpicked_codes: the prediction of section 2's unpicked codes ------------------------------------
UNPICKED = {"unpicked": 1, "codes": 16, "blobs": 8}  # what the lesson counts (its seeded codebook)


@pytest.mark.parametrize("answer", [1, 0, 3, 2.0])
def test_unpicked_codes_accepts_a_count_within_its_band(capsys, answer):
    assert check_answer("unpicked_codes", answer, measured=UNPICKED) is True
    out = capsys.readouterr().out
    assert out.startswith("Correct") and "1 of the 16 random codes" in out and "Voronoi cell" in out


@pytest.mark.parametrize("answer, phrase", [(4, "too many"), (9, "too many"), (17, "between 0 and 16"),
                                            (-1, "between 0 and 16"), ("six", "write your answer as a number")])
def test_unpicked_codes_explains_a_wrong_count(capsys, answer, phrase):
    assert check_answer("unpicked_codes", answer, measured=UNPICKED) is False
    out = capsys.readouterr().out
    assert out.startswith("Incorrect") and phrase in out, out


def test_unpicked_codes_says_too_few_against_another_count(capsys):
    assert check_answer("unpicked_codes", 1, measured=UNPICKED | {"unpicked": 6}) is False
    assert "too few" in capsys.readouterr().out


def test_unpicked_codes_is_a_prediction_of_lesson_2():
    from vqvae_lessons import exercises

    assert exercises.kinds()["unpicked_codes"] == (2, "predict")
    assert len(exercises._QUESTIONS["unpicked_codes"].hints) >= 3
