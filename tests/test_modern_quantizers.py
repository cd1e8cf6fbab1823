"""FSQ, LFQ, residual VQ, the rotation trick and SimVQ behind the quantizers' one interface."""

import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops

from vqvae_lessons.gradients import gradients
from vqvae_lessons.metrics import bits_per_image
from vqvae_lessons.quantizers import (
    FiniteScalarQuantizer,
    LookupFreeQuantizer,
    ResidualVectorQuantizer,
    VectorQuantizer,
    VectorQuantizerEMA,
    entropy_terms,
    pairwise_sq_distances,
    rotate_to,
    round_ste,
    straight_through,
)
from vqvae_lessons.vqvae import VQVAE

KEYS = {"quantized", "indices", "loss", "codebook_loss", "commitment_loss", "perplexity", "usage"}
LEVELS = [(5, 3), (4, 2), (8, 5, 5, 5), (3, 4, 2)]  # odd, even and mixed


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def normal(*shape, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def check_interface(layer, x):
    """The result dict every quantizer returns, and code_indices / lookup agreeing with it."""
    out = layer(x)
    assert KEYS <= set(out)
    assert tuple(out["quantized"].shape) == x.shape
    for key in KEYS - {"quantized", "indices"}:
        assert tuple(out[key].shape) == ()
    np.testing.assert_array_equal(numpy(layer.code_indices(x)), numpy(out["indices"]))
    np.testing.assert_allclose(numpy(layer.lookup(out["indices"])), numpy(out["quantized"]), atol=1e-6)
    return out


# -- FSQ ------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", LEVELS)
def test_fsq_every_code_round_trips_through_its_index(levels):
    layer = FiniteScalarQuantizer(levels)
    assert layer.num_embeddings == math.prod(levels) and layer.embedding_dim == len(levels)
    codes = numpy(layer.codebook)
    assert codes.shape == (math.prod(levels), len(levels))
    assert len(np.unique(codes, axis=0)) == math.prod(levels)  # prod(levels) distinct codes
    np.testing.assert_array_equal(numpy(layer.codes_to_indices(codes)), np.arange(math.prod(levels)))
    np.testing.assert_array_equal(numpy(layer.lookup(np.arange(math.prod(levels)))), codes)
    # the codes are the grid: each channel takes exactly L values in [-1, 1], (j - L // 2) / (L // 2)
    for channel, level in enumerate(levels):
        expected = (np.arange(level) - level // 2) / (level // 2)
        np.testing.assert_allclose(np.unique(codes[:, channel]), expected)
    # and the grid is the whole product: every combination of channel values appears once
    assert {tuple(c) for c in codes} == set(itertools.product(*[np.unique(codes[:, i]) for i in range(len(levels))]))


@pytest.mark.parametrize("levels", LEVELS)
def test_fsq_quantizes_onto_the_grid_with_no_losses(levels):
    layer = FiniteScalarQuantizer(levels)
    x = normal(4, 5, len(levels), seed=1, scale=3.0)
    out = check_interface(layer, x)
    quantized = numpy(out["quantized"])
    codes = numpy(layer.codebook)
    np.testing.assert_allclose(quantized.reshape(-1, len(levels)), codes[numpy(out["indices"]).ravel()], atol=1e-6)
    # the nearest grid value of the bounded input, per channel
    half_width = np.array(levels) // 2
    np.testing.assert_allclose(quantized, np.round(numpy(layer.bound(x))) / half_width, atol=1e-6)
    assert float(out["loss"]) == float(out["codebook_loss"]) == float(out["commitment_loss"]) == 0.0
    assert numpy(out["indices"]).dtype == np.int32


def test_fsq_large_inputs_reach_the_outermost_levels():
    layer = FiniteScalarQuantizer((4, 5))
    extremes = numpy(layer(np.array([[50.0, 50.0], [-50.0, -50.0]], "float32"))["quantized"])
    np.testing.assert_allclose(extremes, [[0.5, 1.0], [-1.0, -1.0]])  # even levels: {-1, -0.5, 0, 0.5}


def test_round_ste_has_the_identity_gradient():
    z = normal(6, 3, seed=2, scale=2.0)
    w = normal(6, 3, seed=3)
    (gradient,) = gradients(lambda z: ops.sum(round_ste(z) * w), [z])
    np.testing.assert_allclose(gradient, w, atol=1e-6)
    np.testing.assert_array_equal(numpy(round_ste(z)), np.round(z))


@pytest.mark.parametrize("levels", [(5, 3), (4, 2)])
def test_fsq_gradient_is_the_bounds_times_the_identity(levels):
    layer = FiniteScalarQuantizer(levels)
    half_width = (np.array(levels) // 2).astype("float32")
    w = normal(6, len(levels), seed=4)
    # The rounding step alone: from the bounded values, the identity (over L // 2, the normalisation).
    bounded = numpy(layer.bound(normal(6, len(levels), seed=5, scale=2.0)))
    (gradient,) = gradients(lambda b: ops.sum(layer.quantize_bounded(b) * w), [bounded])
    np.testing.assert_allclose(gradient, w / half_width, rtol=1e-6)
    # The whole layer: that times the derivative of the bound, h * (1 - tanh(z + shift)**2).
    z = normal(6, len(levels), seed=6)
    (gradient,) = gradients(lambda z: ops.sum(layer(z)["quantized"] * w), [z])
    half_level = (np.array(levels) - 1) * (1 - layer.eps) / 2
    shift = np.tan(np.where(np.array(levels) % 2, 0.0, 0.5) / half_level)
    np.testing.assert_allclose(gradient, w / half_width * half_level * (1 - np.tanh(z + shift) ** 2), rtol=1e-4)


@pytest.mark.parametrize("levels, message", [((1, 4), "at least 2 levels"), ((), "at least 2 levels"),
                                             ((2**16, 2**16), "under 2\\*\\*31")])
def test_fsq_impossible_levels(levels, message):
    with pytest.raises(ValueError, match=message):
        FiniteScalarQuantizer(levels)


# -- LFQ ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 3, 6])
def test_lfq_every_code_round_trips_and_is_plus_or_minus_one(bits):
    layer = LookupFreeQuantizer(bits)
    assert layer.num_embeddings == 2**bits and layer.embedding_dim == bits
    codes = numpy(layer.codebook)
    assert codes.shape == (2**bits, bits) and set(np.unique(codes)) == {-1.0, 1.0}
    assert len(np.unique(codes, axis=0)) == 2**bits
    np.testing.assert_array_equal(numpy(layer.code_indices(codes)), np.arange(2**bits))
    # the index is the binary number of the signs, channel 0 the least significant bit
    np.testing.assert_array_equal(numpy(layer.code_indices(codes)), ((codes > 0) * 2 ** np.arange(bits)).sum(1))


def test_lfq_quantizes_to_signs_with_straight_through():
    layer = LookupFreeQuantizer(4)
    x = normal(3, 5, 4, seed=7)
    out = check_interface(layer, x)
    np.testing.assert_array_equal(numpy(out["quantized"]), np.where(x > 0, 1.0, -1.0))
    w = normal(3, 5, 4, seed=8)
    (gradient,) = gradients(lambda x: ops.sum(layer(x)["quantized"] * w), [x])
    np.testing.assert_allclose(gradient, w, atol=1e-6)
    assert float(out["commitment_loss"]) == pytest.approx(0.25 * np.mean((x - np.sign(x)) ** 2), rel=1e-5)
    expected = float(out["codebook_loss"]) + float(out["commitment_loss"])
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-5)


def test_lfq_entropy_penalty_prefers_confident_evenly_spread_codes():
    bits = 3
    layer = LookupFreeQuantizer(bits, entropy_weight=1.0)
    corners = numpy(layer.codebook)

    def penalty(x):
        out = layer(x.astype("float32"))
        return float(out["codebook_loss"]), float(out["per_sample_entropy"]), float(out["codebook_entropy"])

    confident_spread = penalty(np.tile(corners, (4, 1)))  # every corner, each confidently
    uncertain = penalty(normal(32, bits, seed=9, scale=1e-3))  # every vector near 0: no corner preferred
    collapsed = penalty(np.tile(corners[5], (32, 1)))  # every vector on the same corner
    ln_k = bits * math.log(2)
    assert confident_spread == pytest.approx((-ln_k, 0.0, ln_k), abs=1e-3)  # the penalty's minimum
    assert uncertain[1] > 0.9 * ln_k and collapsed[2] == pytest.approx(0.0, abs=1e-3)
    assert confident_spread[0] < uncertain[0] - 1.0 and confident_spread[0] < collapsed[0] - 1.0


def test_entropy_terms_by_hand():
    logits = np.log(np.array([[0.5, 0.5, 1e-9], [1.0, 1e-9, 1e-9]], "float32"))
    per_sample, codebook = (float(v) for v in entropy_terms(logits))
    assert per_sample == pytest.approx(math.log(2) / 2, abs=1e-5)
    average = np.array([0.75, 0.25])
    assert codebook == pytest.approx(-(average * np.log(average)).sum(), abs=1e-5)


@pytest.mark.parametrize("kwargs, message", [(dict(bits=0), "bits=0 must lie"), (dict(bits=13), "bits=13 must lie"),
                                             (dict(bits=3, temperature=0.0), "temperature=0.0 > 0")])
def test_lfq_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LookupFreeQuantizer(**kwargs)


def test_lfq_takes_the_learners_entropy_terms_as_a_piece_and_refuses_others():
    """The ``pieces=`` seam (lesson 7): the layer weights and reports what the piece returns; the shipped path
    (no pieces) calls :func:`entropy_terms` as before; an unknown or non-callable piece is refused."""
    x = np.random.default_rng(3).normal(size=(20, 3)).astype("float32") * 0.2
    calls = []

    def constant_terms(logits):
        calls.append(tuple(logits.shape))
        return ops.convert_to_tensor(0.5), ops.convert_to_tensor(2.0)

    layer = LookupFreeQuantizer(3, entropy_weight=0.1, pieces={"entropy_terms": constant_terms})
    out = layer(x)
    assert calls == [(20, 8)]
    assert float(out["per_sample_entropy"]) == 0.5 and float(out["codebook_entropy"]) == 2.0
    assert float(out["codebook_loss"]) == pytest.approx(0.1 * (0.5 - 2.0))
    assert "pieces" not in layer.get_config()
    plain = LookupFreeQuantizer(3)(x)
    want = entropy_terms(-pairwise_sq_distances(x, LookupFreeQuantizer(3).codebook) / 0.01)
    assert float(plain["per_sample_entropy"]) == pytest.approx(float(want[0]), rel=1e-6)
    with pytest.raises(ValueError, match=r"'residual_stage' is not a piece of LFQ; it knows \['entropy_terms'\]"):
        LookupFreeQuantizer(3, pieces={"residual_stage": constant_terms})
    with pytest.raises(TypeError, match=r"pieces\['entropy_terms'\] must be a function"):
        LookupFreeQuantizer(3, pieces={"entropy_terms": 0.5})


# -- residual VQ ----------------------------------------------------------------------------
def clustered(n=1200, seed=10):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 2)) * 4
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 2))).astype("float32")


def test_residual_norm_falls_with_each_stage():
    layer = ResidualVectorQuantizer(3, 8, 2)
    vectors = clustered()
    errors = layer.initialize_kmeans(vectors, seed=0)
    out = check_interface(layer, vectors)
    indices = numpy(out["indices"])
    assert indices.shape == (len(vectors), 3)
    measured = [float(np.mean(np.sum((vectors - numpy(layer.lookup(indices[:, :s]))) ** 2, 1))) for s in (1, 2, 3)]
    np.testing.assert_allclose(measured, errors, rtol=1e-4)
    start = float(np.mean(np.sum((vectors - vectors.mean(0)) ** 2, 1)))
    assert start > measured[0] > measured[1] > measured[2]


def test_residual_stages_quantize_what_the_previous_left():
    layer = ResidualVectorQuantizer(2, 8, 2)
    vectors = clustered(400)
    layer.initialize_kmeans(vectors, seed=1)
    first, second = layer.stages
    indices = numpy(layer(vectors)["indices"])
    np.testing.assert_array_equal(indices[:, 0], numpy(first.code_indices(vectors)))
    residual = vectors - numpy(first.lookup(indices[:, 0]))
    np.testing.assert_array_equal(indices[:, 1], numpy(second.code_indices(residual)))


@pytest.mark.parametrize("stages, codes", [(1, 8), (3, 16), (4, 256)])
def test_residual_bits_are_stages_times_log2_k(stages, codes):
    layer = ResidualVectorQuantizer(stages, codes, 4)
    assert layer.bits_per_position == stages * math.log2(codes)
    assert bits_per_image(codes**stages) == pytest.approx(49 * layer.bits_per_position)


def test_residual_gradient_is_the_identity_and_losses_add_up():
    layer = ResidualVectorQuantizer(2, 8, 3)
    x, w = normal(5, 3, seed=11), normal(5, 3, seed=12)
    (gradient,) = gradients(lambda x: ops.sum(layer(x)["quantized"] * w), [x])
    np.testing.assert_allclose(gradient, w, atol=1e-6)
    out, residual, total = layer(x), x, 0.0
    for stage in layer.stages:
        stage_out = stage(residual)
        total += float(stage_out["loss"])
        residual = residual - numpy(stage_out["quantized"])
    assert float(out["loss"]) == pytest.approx(total, rel=1e-5)


def test_quantizer_dropout_acts_only_while_training():
    layer = ResidualVectorQuantizer(4, 8, 2, quantizer_dropout=1.0, seed=3)
    x = clustered(64)
    layer.initialize_kmeans(x, seed=2)
    full = numpy(layer(x)["quantized"])
    for _ in range(3):  # training=False: every stage, always
        out = layer(x, training=False)
        assert np.all(numpy(out["indices"]) >= 0)
        np.testing.assert_array_equal(numpy(out["quantized"]), full)
    used = set()
    for _ in range(12):
        out = layer(x, training=True)
        indices = numpy(out["indices"])
        n = int(np.sum(indices[0] >= 0))
        assert np.all(indices[:, :n] >= 0) and np.all(indices[:, n:] == -1)  # a prefix of stages, for the batch
        np.testing.assert_allclose(numpy(out["quantized"]), numpy(layer.lookup(indices)), atol=1e-5)
        used.add(n)
    assert len(used) > 1 and used <= {1, 2, 3, 4}
    no_dropout = ResidualVectorQuantizer(4, 8, 2, quantizer_dropout=0.0)
    assert np.all(numpy(no_dropout(x, training=True)["indices"]) >= 0)


def test_residual_ema_stages_train():
    layer = ResidualVectorQuantizer(2, 4, 2, stage="ema", decay=0.5)
    layer(clustered(200), training=True)
    assert all(float(stage.ema_steps) == 1.0 for stage in layer.stages)
    assert layer.trainable_weights == []


# -- the rotation trick -----------------------------------------------------------------------
def rotation_matrix(e, q):
    """R = I - 2 r r^T + 2 q^ e^T, built as a matrix."""
    e_hat, q_hat = e / np.linalg.norm(e), q / np.linalg.norm(q)
    r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
    return np.eye(len(e)) - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)


def test_rotation_matrix_is_a_rotation_onto_the_code():
    e, q = normal(5, seed=13).astype("float64"), normal(5, seed=14).astype("float64")
    rotation = rotation_matrix(e, q)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(5), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.norm(q) / np.linalg.norm(e) * rotation @ e, q, atol=1e-12)


def test_rotate_to_value_and_gradient_match_the_matrix():
    e, q, w = normal(6, 4, seed=15), normal(6, 4, seed=16), normal(6, 4, seed=17)
    np.testing.assert_allclose(numpy(rotate_to(e, q)), q, atol=1e-5)
    gradient_e, gradient_q = gradients(lambda e, q: ops.sum(w * rotate_to(e, q)), [e, q])
    expected = [np.linalg.norm(qi) / np.linalg.norm(ei) * rotation_matrix(ei, qi).T @ wi
                for ei, qi, wi in zip(e.astype("float64"), q.astype("float64"), w.astype("float64"), strict=True)]
    np.testing.assert_allclose(gradient_e, np.stack(expected), rtol=1e-4, atol=1e-5)
    assert np.all(gradient_q == 0)  # no gradient reaches the code


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_rotation_gradient_option_of_the_quantizers(cls):
    plain, rotated = cls(8, 3), cls(8, 3, gradient="rotation")
    codebook = normal(8, 3, seed=18)
    for layer in (plain, rotated):
        layer.build((None, 3))
        layer.embeddings.assign(codebook)
    x, w = normal(7, 3, seed=19), normal(7, 3, seed=20)
    out = rotated(x)
    q = codebook[numpy(out["indices"])]
    np.testing.assert_allclose(numpy(out["quantized"]), q, atol=1e-6)  # the value is the code
    np.testing.assert_array_equal(numpy(out["indices"]), numpy(plain(x)["indices"]))
    assert float(out["loss"]) == pytest.approx(float(plain(x)["loss"]))
    (gradient,) = gradients(lambda x: ops.sum(rotated(x)["quantized"] * w), [x])
    expected = np.stack([np.linalg.norm(qi) / np.linalg.norm(xi) * rotation_matrix(xi, qi).T @ wi
                         for xi, qi, wi in zip(x, q, w, strict=True)])
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-5)
    (straight,) = gradients(lambda x: ops.sum(plain(x)["quantized"] * w), [x])
    np.testing.assert_allclose(straight, w, atol=1e-6)  # the default is unchanged: straight-through
    assert not np.allclose(gradient, straight, atol=1e-2)


def test_default_gradient_is_exactly_straight_through():
    layer = VectorQuantizer(8, 3)
    layer.build((None, 3))
    x = normal(9, 3, seed=21)
    out = layer(x)
    expected = straight_through(ops.convert_to_tensor(x), layer.lookup(out["indices"]))
    np.testing.assert_array_equal(numpy(out["quantized"]), numpy(expected))  # bit for bit
    assert layer.gradient == "straight_through" and layer.codebook is layer.embeddings


def test_unknown_gradient_is_refused():
    with pytest.raises(ValueError, match="gradient='exact' is not known"):
        VectorQuantizer(8, 3, gradient="exact")


# -- SimVQ ------------------------------------------------------------------------------------
def test_simvq_trains_the_transform_and_not_the_frozen_codebook():
    layer = VectorQuantizer(8, 3, codebook_transform=True)
    layer.build((None, 3))
    assert layer.trainable_weights == [layer.transform]
    assert not layer.embeddings.trainable
    np.testing.assert_array_equal(numpy(layer.transform), np.eye(3))  # W starts at the identity
    frozen, transform = numpy(layer.embeddings).copy(), numpy(layer.transform).copy()
    x = normal(40, 3, seed=22)
    out = check_interface(layer, x)
    assert set(out) == set(VectorQuantizer(8, 3)(x))
    codes = frozen @ transform
    np.testing.assert_allclose(numpy(out["quantized"]), codes[numpy(out["indices"])], atol=1e-6)
    grads = gradients(lambda: layer(x)["loss"], [], layer.trainable_weights)
    assert np.abs(grads[0]).max() > 0
    keras.optimizers.SGD(0.5).apply_gradients(zip([ops.convert_to_tensor(g, "float32") for g in grads],
                                                  layer.trainable_weights, strict=True))
    np.testing.assert_array_equal(numpy(layer.embeddings), frozen)  # C never moves
    assert not np.allclose(numpy(layer.transform), transform)  # W does
    np.testing.assert_allclose(numpy(layer.codebook), frozen @ numpy(layer.transform), atol=1e-6)


def test_simvq_maintenance_sets_the_codes_through_the_transform():
    layer = VectorQuantizer(4, 2, codebook_transform=True)
    layer.build((None, 2))
    layer.transform.assign(np.array([[2.0, 1.0], [0.0, 1.0]], "float32"))
    centres = np.array([[5, 5], [-5, 5], [5, -5], [-5, -5]], "float32")
    vectors = (centres[np.random.default_rng(23).integers(0, 4, 400)] + 0.2 * normal(400, 2, seed=24))
    assert layer.initialize_kmeans(vectors, seed=0) < 0.2
    codes = numpy(layer.codebook)
    assert all(np.min(np.linalg.norm(codes - c, axis=1)) < 0.1 for c in centres)


# -- one interface --------------------------------------------------------------------------
CONFIGURED = [
    lambda: FiniteScalarQuantizer((8, 5, 3), eps=1e-2, name="q"),
    lambda: LookupFreeQuantizer(5, entropy_weight=0.2, commitment_weight=0.5, temperature=0.1, name="q"),
    lambda: ResidualVectorQuantizer(3, 16, 4, quantizer_dropout=0.5, beta=0.3, stage="ema", decay=0.9, seed=7),
    lambda: VectorQuantizer(16, 4, beta=0.5, gradient="rotation", codebook_transform=True, name="q"),
    lambda: VectorQuantizerEMA(16, 4, gradient="rotation", name="q"),
]


@pytest.mark.parametrize("make", CONFIGURED)
def test_config_round_trip(make):
    layer = make()
    cls = type(layer)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object(f"vqvae_lessons>{cls.__name__}") is cls
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is cls and revived.get_config() == layer.get_config()


def test_residual_weights_survive_a_round_trip():
    layer = ResidualVectorQuantizer(2, 8, 2)
    x = clustered(100)
    layer.initialize_kmeans(x, seed=4)
    clone = ResidualVectorQuantizer.from_config(layer.get_config())
    clone.build((None, 2))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(numpy(clone(x)["indices"]), numpy(layer(x)["indices"]))


DROP_INS = {
    "fsq": lambda **kw: FiniteScalarQuantizer((4, 4, 4, 2), **kw),
    "lfq": lambda **kw: LookupFreeQuantizer(7, **kw),
    "residual": lambda **kw: ResidualVectorQuantizer(2, 16, 4, quantizer_dropout=0.5, seed=0, **kw),
    "rotation": lambda **kw: VectorQuantizer(16, 4, gradient="rotation", **kw),
    "simvq": lambda **kw: VectorQuantizer(16, 4, codebook_transform=True, **kw),
}


# The same quantizers as VQVAE builds them (vqvae.py): its settings for each of DROP_INS.
IN_A_VQVAE = {
    "fsq": dict(quantizer="fsq", levels=(4, 4, 4, 2)),
    "lfq": dict(quantizer="lfq", bits=7),
    "residual": dict(quantizer="rvq", num_quantizers=2, num_embeddings=16, embedding_dim=4, quantizer_dropout=0.5),
    "rotation": dict(quantizer="loss", num_embeddings=16, embedding_dim=4, gradient="rotation"),
    "simvq": dict(quantizer="loss", num_embeddings=16, embedding_dim=4, codebook_transform=True),
}


@pytest.mark.parametrize("kind", sorted(DROP_INS))
def test_each_is_a_drop_in_inside_a_vqvae(kind, tiny_mnist):
    probe = DROP_INS[kind]()
    model = VQVAE("keras-example", **IN_A_VQVAE[kind])
    assert type(model.quantizer) is type(probe)
    assert (model.num_embeddings, model.embedding_dim) == (probe.num_embeddings, probe.embedding_dim)
    images = tiny_mnist.x_test[:32]
    if kind == "fsq":  # a fresh encoder's outputs of order 1 (fsq.py's note; VQVAE scales its last layer up):
        assert len(np.unique(model.encode(images))) > 1  # not every position rounds to the zero code
    kernel = numpy(model.encoder.trainable_weights[0]).copy()
    model.compile(keras.optimizers.Adam(1e-3))
    history = model.fit(images, epochs=1, batch_size=16, verbose=0).history  # the compiled training step
    assert np.isfinite(history["loss"][-1])
    assert not np.allclose(numpy(model.encoder.trainable_weights[0]), kernel)  # the decoder's gradient got through
    out = model(images[:6])
    assert tuple(out["reconstruction"].shape) == (6, 28, 28, 1)
    if kind == "residual":  # a trailing stage axis, which VQVAE.decode takes too
        assert tuple(out["indices"].shape) == (6, 7, 7, 2)
        assert model.decode(model.encode(images[:6])).shape == (6, 28, 28, 1)
        return
    indices = model.encode(images[:6])
    np.testing.assert_array_equal(indices, numpy(out["indices"]))
    assert indices.shape == (6, 7, 7) and model.decode(indices).shape == (6, 28, 28, 1)


@pytest.mark.parametrize("make", [lambda: FiniteScalarQuantizer((5, 3)), lambda: LookupFreeQuantizer(3),
                                  lambda: ResidualVectorQuantizer(2, 8, 4)])
def test_wrong_vector_size_says_what_to_change(make):
    with pytest.raises(ValueError, match="in the last axis"):
        make()(np.zeros((2, 5), "float32"))
