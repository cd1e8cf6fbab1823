import keras
import numpy as np
import pytest
from keras import ops

from vqvae_lessons.gradients import gradients
from vqvae_lessons.quantizers import (
    FiniteScalarQuantizer,
    LookupFreeQuantizer,
    ResidualVectorQuantizer,
    VectorQuantizer,
    VectorQuantizerEMA,
    batch_perplexity,
    nearest_code,
    pairwise_sq_distances,
)

QUANTIZERS = [VectorQuantizer, VectorQuantizerEMA]


def brute_force_nearest(x, codebook):
    return np.array([np.argmin([np.sum((v - e) ** 2) for e in codebook]) for v in x])


def built(cls, num_embeddings=8, embedding_dim=3, seed=0, **kwargs):
    layer = cls(num_embeddings, embedding_dim, **kwargs)
    layer.build((None, embedding_dim))
    codebook = np.random.default_rng(seed).normal(size=(num_embeddings, embedding_dim)).astype("float32")
    layer.embeddings.assign(codebook)
    return layer, codebook


def test_distances_and_nearest_code_match_brute_force():
    rng = np.random.default_rng(1)
    x, codebook = rng.normal(size=(50, 4)).astype("float32"), rng.normal(size=(12, 4)).astype("float32")
    expected = ((x[:, None, :] - codebook[None]) ** 2).sum(-1)
    np.testing.assert_allclose(ops.convert_to_numpy(pairwise_sq_distances(x, codebook)), expected, atol=1e-4)
    np.testing.assert_array_equal(ops.convert_to_numpy(nearest_code(x, codebook)), brute_force_nearest(x, codebook))


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_indices_and_quantized_values_match_brute_force(cls):
    layer, codebook = built(cls)
    x = np.random.default_rng(2).normal(size=(5, 6, 3)).astype("float32")
    out = layer(x)
    expected = brute_force_nearest(x.reshape(-1, 3), codebook).reshape(5, 6)
    np.testing.assert_array_equal(ops.convert_to_numpy(out["indices"]), expected)
    np.testing.assert_allclose(ops.convert_to_numpy(out["quantized"]), codebook[expected], atol=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.code_indices(x)), expected)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.lookup(expected)), codebook[expected])


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_straight_through_gradient_is_the_identity(cls):
    layer, _ = built(cls)
    x = np.random.default_rng(3).normal(size=(7, 3)).astype("float32")
    weights = np.random.default_rng(4).normal(size=(7, 3)).astype("float32")
    (gradient,) = gradients(lambda x: ops.sum(layer(x)["quantized"] * weights), [x])
    np.testing.assert_allclose(gradient, weights, atol=1e-6)


def test_losses_equal_hand_computed_values():
    layer, codebook = built(VectorQuantizer, beta=0.3)
    x = np.random.default_rng(5).normal(size=(10, 3)).astype("float32")
    out = layer(x)
    q = codebook[brute_force_nearest(x, codebook)]
    squared_error = np.mean((x - q) ** 2)
    assert float(out["codebook_loss"]) == pytest.approx(squared_error, rel=1e-5)
    assert float(out["commitment_loss"]) == pytest.approx(0.3 * squared_error, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(1.3 * squared_error, rel=1e-5)


def test_codebook_loss_moves_codes_and_commitment_loss_moves_the_encoder():
    layer, codebook = built(VectorQuantizer, beta=0.25)
    x = np.random.default_rng(6).normal(size=(10, 3)).astype("float32")

    def losses(x):
        out = layer(x)
        return [out["codebook_loss"], out["commitment_loss"]]

    (codebook_dx, codebook_de), (commitment_dx, commitment_de) = gradients(losses, [x], [layer.embeddings])
    q = codebook[brute_force_nearest(x, codebook)]
    # The codebook loss has no gradient for x, the commitment loss none for the codebook.
    assert np.all(codebook_dx == 0) and np.all(commitment_de == 0)
    codes_used = np.unique(brute_force_nearest(x, codebook))
    expected_de = np.zeros_like(codebook)
    np.add.at(expected_de, brute_force_nearest(x, codebook), 2 * (q - x) / x.size)
    np.testing.assert_allclose(codebook_de, expected_de, atol=1e-6)  # only the codes used move
    assert np.all(codebook_de[np.setdiff1d(np.arange(len(codebook)), codes_used)] == 0)
    expected = 0.25 * 2 * (x - q) / x.size
    np.testing.assert_allclose(commitment_dx, expected, atol=1e-6)


def test_ema_losses_have_no_codebook_term():
    layer, codebook = built(VectorQuantizerEMA, beta=0.25)
    x = np.random.default_rng(7).normal(size=(10, 3)).astype("float32")
    out = layer(x)
    q = codebook[brute_force_nearest(x, codebook)]
    assert float(out["codebook_loss"]) == 0.0
    assert float(out["loss"]) == pytest.approx(0.25 * np.mean((x - q) ** 2), rel=1e-5)
    assert layer.trainable_weights == []


def ema_closed_form(state, x, codebook, decay, epsilon):
    """One EMA step in NumPy, as VectorQuantizerEMA's docstring states it."""
    size_h, sum_h, steps = state
    k = len(codebook)
    one_hot = np.eye(k)[brute_force_nearest(x, codebook)]
    size_h = decay * size_h + (1 - decay) * one_hot.sum(0)
    sum_h = decay * sum_h + (1 - decay) * one_hot.T @ x
    steps += 1
    size, total = size_h / (1 - decay**steps), sum_h / (1 - decay**steps)
    n = size.sum()
    smoothed = (size + epsilon) / (n + k * epsilon) * n
    return (size_h, sum_h, steps), total / smoothed[:, None]


def test_two_ema_steps_equal_their_closed_form():
    layer, codebook = built(VectorQuantizerEMA, num_embeddings=6, embedding_dim=2, decay=0.9, epsilon=1e-3)
    rng = np.random.default_rng(8)
    state = (np.zeros(6), np.zeros((6, 2)), 0)
    for _ in range(2):
        x = rng.normal(size=(40, 2)).astype("float32")
        state, codebook = ema_closed_form(state, x, codebook, 0.9, 1e-3)
        layer(x, training=True)
        np.testing.assert_allclose(ops.convert_to_numpy(layer.embeddings), codebook, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_cluster_size), state[0], rtol=1e-5)
    assert float(layer.ema_steps) == 2.0


def test_ema_does_not_move_outside_training():
    layer, codebook = built(VectorQuantizerEMA)
    layer(np.ones((4, 3), "float32"), training=False)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.embeddings), codebook)
    assert float(layer.ema_steps) == 0.0


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_dead_code_restart_revives_unused_codes(cls):
    layer, _ = built(cls, num_embeddings=8, embedding_dim=2)
    codebook = np.concatenate([np.zeros((2, 2)), np.full((6, 2), 100.0)]).astype("float32")
    codebook[1] = [1.0, 1.0]
    layer.set_codes(np.arange(8), codebook)
    vectors = np.random.default_rng(9).normal(size=(500, 2)).astype("float32")
    assert len(np.unique(ops.convert_to_numpy(layer.code_indices(vectors)))) == 2
    restarted = layer.restart_dead_codes(vectors, seed=0)
    np.testing.assert_array_equal(restarted, np.arange(2, 8))
    table = ops.convert_to_numpy(layer.embeddings)
    assert all(any(np.allclose(code, v) for v in vectors) for code in table[2:])  # moved onto encoder outputs
    assert len(np.unique(ops.convert_to_numpy(layer.code_indices(vectors)))) == 8  # and now all are used
    np.testing.assert_array_equal(table[:2], codebook[:2])  # live codes untouched


def test_restarted_ema_code_stays_where_it_was_put():
    layer, _ = built(VectorQuantizerEMA, num_embeddings=4, embedding_dim=2, decay=0.9)
    rng = np.random.default_rng(10)
    layer(rng.normal(size=(64, 2)).astype("float32"), training=True)
    before, weights = ops.convert_to_numpy(layer.embeddings).copy(), ops.convert_to_numpy(layer.ema_cluster_size)
    layer.set_codes([3], [[5.0, 5.0]])
    size = ops.convert_to_numpy(layer.ema_cluster_size).copy()
    assert size[3] == pytest.approx(weights.mean())  # the restarted code gets the codebook's mean EMA weight
    # An EMA step (training=True) in which code 3 gets exactly the vector it was put on: its moving
    # averages m_3 / N_3 stay at (5, 5), so the code stays there (up to the Laplace smoothing).
    layer(np.full((1, 2), 5.0, "float32"), training=True)
    assert float(layer.ema_steps) == 2.0  # the update ran
    new_size = ops.convert_to_numpy(layer.ema_cluster_size)
    assert new_size[3] == pytest.approx(0.9 * size[3] + 0.1, rel=1e-6)  # and counted the vector for code 3
    np.testing.assert_allclose(new_size[:3], 0.9 * size[:3], rtol=1e-6)  # and none for the others
    table, total = ops.convert_to_numpy(layer.embeddings), ops.convert_to_numpy(layer.ema_embedding_sum)
    np.testing.assert_allclose(total[3] / new_size[3], [5.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(table[3], [5.0, 5.0], rtol=1e-3)
    np.testing.assert_allclose(table[:3], before[:3], rtol=1e-3, atol=1e-4)  # the others keep their averages
    # Without the EMA state following the code (the codebook overwritten alone), the step pulls it back:
    plain, _ = built(VectorQuantizerEMA, num_embeddings=4, embedding_dim=2, decay=0.9)
    plain(rng.normal(size=(64, 2)).astype("float32"), training=True)
    table = ops.convert_to_numpy(plain.embeddings).copy()
    table[3] = [5.0, 5.0]
    plain.embeddings.assign(table)
    plain(np.full((1, 2), 5.0, "float32"), training=True)
    assert np.abs(ops.convert_to_numpy(plain.embeddings)[3] - 5.0).max() > 1.0


def test_ema_kmeans_start_survives_the_first_update():
    """After initialize_kmeans, one training call on a batch that picks only some codes leaves the
    others where k-means put them (from zero EMA sums, that first update sent them to the origin)."""
    layer, _ = built(VectorQuantizerEMA, num_embeddings=4, embedding_dim=2, decay=0.99)
    rng = np.random.default_rng(12)
    centres = np.array([[5, 5], [-5, 5], [5, -5], [-5, -5]], "float32")
    vectors = (centres[rng.integers(0, 4, 800)] + 0.3 * rng.normal(size=(800, 2))).astype("float32")
    layer.initialize_kmeans(vectors, seed=0)
    start = ops.convert_to_numpy(layer.embeddings).copy()
    counts = np.bincount(ops.convert_to_numpy(layer.code_indices(vectors)), minlength=4)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.ema_cluster_size) / (1 - 0.99), counts, rtol=1e-4)
    near_first = int(np.argmin(np.linalg.norm(start - centres[0], axis=1)))
    batch = (centres[0] + 0.3 * rng.normal(size=(64, 2))).astype("float32")  # picks one code only
    layer(batch, training=True)
    after = ops.convert_to_numpy(layer.embeddings)
    unused = [k for k in range(4) if k != near_first]
    np.testing.assert_allclose(after[unused], start[unused], rtol=1e-3, atol=1e-3)
    assert np.all(np.linalg.norm(after[unused], axis=1) > 6.0)  # nowhere near the origin
    assert np.linalg.norm(after[near_first] - centres[0]) < 0.2  # the used code follows its batch


def test_kmeans_initialisation_beats_a_random_codebook():
    layer, _ = built(VectorQuantizer, num_embeddings=4, embedding_dim=2)
    rng = np.random.default_rng(11)
    centres = np.array([[5, 5], [-5, 5], [5, -5], [-5, -5]], "float32")
    vectors = (centres[rng.integers(0, 4, 800)] + 0.3 * rng.normal(size=(800, 2))).astype("float32")
    error = layer.initialize_kmeans(vectors, seed=0)
    assert error < 0.3
    found = ops.convert_to_numpy(layer.embeddings)
    assert all(np.min(np.linalg.norm(found - c, axis=1)) < 0.2 for c in centres)


def test_batch_perplexity():
    perplexity, usage = batch_perplexity(np.array([0, 1, 2, 3] * 5), 8)
    assert float(perplexity) == pytest.approx(4.0, rel=1e-4) and float(usage) == 0.5
    perplexity, _ = batch_perplexity(np.zeros(10, "int32"), 8)
    assert float(perplexity) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_wrong_vector_size_says_what_to_change(cls):
    with pytest.raises(ValueError, match=r"embedding_dim=3 in the last axis, got input shape \(2, 5\)"):
        cls(8, 3)(np.zeros((2, 5), "float32"))


@pytest.mark.parametrize(("layer", "good", "bad", "message"), [
    (FiniteScalarQuantizer([5, 5, 5]), 3, 4, r"len\(levels\)=3 in the last axis, got input shape \(2, 4\)"),
    (LookupFreeQuantizer(4), 4, 5, r"bits=4 in the last axis, got input shape \(2, 5\)"),
    (ResidualVectorQuantizer(2, 8, 3), 3, 4, r"embedding_dim=3 in the last axis, got input shape \(2, 4\)"),
], ids=["fsq", "lfq", "rvq"])
def test_every_built_quantizer_checks_its_input_where_it_arrives(layer, good, bad, message):
    layer(np.zeros((2, good), "float32"))
    with pytest.raises(ValueError, match=message):
        layer(np.zeros((2, bad), "float32"))
    with pytest.raises(ValueError, match="got dtype int32"):
        layer(np.zeros((2, good), "int32"))


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_a_built_quantizer_checks_its_input_where_it_arrives(cls):
    """Sizes and dtype are checked in call, not only in build: a built layer given the wrong input says what is wrong
    instead of failing inside the backend (eagerly, and while Keras traces a model)."""
    layer = cls(8, 3)
    layer(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"embedding_dim=3 in the last axis, got input shape \(4, 5\)"):
        layer(np.zeros((4, 5), "float32"))
    with pytest.raises(ValueError, match="quantizes floating-point vectors .* got dtype int32"):
        layer(np.zeros((2, 3), "int32"))
    with pytest.raises(ValueError, match="embedding_dim=3 in the last axis"):
        keras.Model(*(lambda x: (x, layer(x)["quantized"]))(keras.Input((7, 7, 4))))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_embeddings=1, embedding_dim=3), "num_embeddings >= 2"),
    (dict(num_embeddings=8, embedding_dim=0), "embedding_dim >= 1"),
    (dict(num_embeddings=8, embedding_dim=3, beta=-1.0), "beta=-1.0 must be >= 0"),
])
def test_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**kwargs)


def test_ema_decay_must_be_below_one():
    with pytest.raises(ValueError, match=r"decay=1.0 must lie in \[0, 1\)"):
        VectorQuantizerEMA(8, 3, decay=1.0)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_config_round_trip(cls):
    layer = cls(16, 4, beta=0.5, name="q")
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object(f"vqvae_lessons>{cls.__name__}") is cls


# -- pieces: the learner's functions for the layer's steps (lesson 2, #28) ------------------------------
def counted(fn, calls, name):
    """``fn``, counting its calls in ``calls[name]``."""
    def wrapped(*args):
        calls[name] = calls.get(name, 0) + 1
        return fn(*args)
    return wrapped


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_pieces_stand_in_for_the_layers_steps_and_give_its_results(cls):
    from vqvae_lessons.quantizers import straight_through, vq_losses

    x = np.random.default_rng(5).normal(size=(4, 6, 3)).astype("float32")
    package, _ = built(cls)
    calls = {}
    pieces = {"nearest_code": counted(nearest_code, calls, "nearest_code"),
              "straight_through": counted(straight_through, calls, "straight_through"),
              "vq_losses": counted(vq_losses, calls, "vq_losses")}
    learners, _ = built(cls, pieces=pieces)
    expected, got = package(x, training=True), learners(x, training=True)
    assert calls == {"nearest_code": 1, "straight_through": 1, "vq_losses": 1}
    for key in expected:
        np.testing.assert_allclose(ops.convert_to_numpy(got[key]), ops.convert_to_numpy(expected[key]), atol=1e-6)
    np.testing.assert_array_equal(ops.convert_to_numpy(learners.code_indices(x)),
                                  ops.convert_to_numpy(package.code_indices(x)))
    assert calls["nearest_code"] == 2  # code_indices too
    assert "pieces" not in learners.get_config()


def test_the_packages_nearest_code_runs_on_the_learners_distances():
    calls = {}
    distances = counted(pairwise_sq_distances, calls, "distances")
    layer, codebook = built(VectorQuantizer, pieces={"pairwise_sq_distances": distances, "nearest_code": nearest_code})
    x = np.random.default_rng(6).normal(size=(9, 3)).astype("float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)["indices"]), brute_force_nearest(x, codebook))
    assert calls == {"distances": 1}

    def farthest(x, codebook):  # a planted mistake: the distances negated, so argmin picks the farthest code
        return -pairwise_sq_distances(x, codebook)

    wrong, _ = built(VectorQuantizer, pieces={"pairwise_sq_distances": farthest})
    assert not np.array_equal(ops.convert_to_numpy(wrong(x)["indices"]), brute_force_nearest(x, codebook))


def test_a_learners_straight_through_and_losses_carry_the_gradients():
    def through(x, q):  # the estimator, written as a learner might
        return q + (x - ops.stop_gradient(x))

    layer, _ = built(VectorQuantizer, pieces={"straight_through": through}, gradient="rotation")
    x = np.random.default_rng(7).normal(size=(7, 3)).astype("float32")
    weights = np.random.default_rng(8).normal(size=(7, 3)).astype("float32")
    (gradient,) = gradients(lambda x: ops.sum(layer(x)["quantized"] * weights), [x])
    assert np.abs(gradient).max() > 0 and not np.allclose(gradient, weights)  # the rotation's, through the piece

    def doubled(x, q, beta):  # a planted mistake: both losses twice as large
        sg = ops.stop_gradient
        return 2 * ops.mean(ops.square(q - sg(x))), 2 * beta * ops.mean(ops.square(x - sg(q)))

    package, _ = built(VectorQuantizerEMA)
    wrong, _ = built(VectorQuantizerEMA, pieces={"vq_losses": doubled})
    assert float(wrong(x)["loss"]) == pytest.approx(2 * float(package(x)["loss"]), rel=1e-5)
    assert float(wrong(x)["codebook_loss"]) == 0.0  # the EMA layer keeps only the commitment loss


@pytest.mark.parametrize("pieces, error, message", [
    ({"ema_update": nearest_code}, ValueError, r"'ema_update' is not a piece of VectorQuantizer\w*; it knows \['pair"),
    ({"nearest_code": "argmin"}, TypeError, r"pieces\['nearest_code'\] must be a function, got str"),
    ([nearest_code], TypeError, r"pieces must be a dict \{name: function\}, got list"),
])
@pytest.mark.parametrize("cls", QUANTIZERS)
def test_pieces_are_checked_where_they_arrive(cls, pieces, error, message):
    with pytest.raises(error, match=message):
        cls(8, 3, pieces=pieces)


def test_a_vqvae_passes_its_pieces_to_the_codebook_quantizers():
    from vqvae_lessons.vqvae import VQVAE

    calls = {}
    model = VQVAE(architecture="keras-example", num_embeddings=8, embedding_dim=4, quantizer="loss",
                  pieces={"nearest_code": counted(nearest_code, calls, "nearest_code")})
    model.encode(np.zeros((2, 28, 28, 1), "float32"))
    assert calls == {"nearest_code": 1}
