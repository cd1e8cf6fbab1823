import keras
import numpy as np
import pytest

from vqvae_lessons import metrics
from vqvae_lessons.quantizers import CodebookMaintenance
from vqvae_lessons.train import train_vae, train_vqvae
from vqvae_lessons.vae import VAE, gaussian_kl, reparameterize
from vqvae_lessons.vqvae import VQVAE

VQVAE_SETTINGS = [("keras-example", "loss"), ("residual", "ema")]


@pytest.mark.parametrize("architecture, quantizer", VQVAE_SETTINGS)
def test_vqvae_shapes(architecture, quantizer, tiny_mnist):
    model = VQVAE(architecture, num_embeddings=32, embedding_dim=8, quantizer=quantizer)
    out = model(tiny_mnist.x_test[:5])
    assert tuple(out["reconstruction"].shape) == (5, 28, 28, 1)
    assert tuple(out["indices"].shape) == (5, 7, 7)
    codes = model.encode(tiny_mnist.x_test[:5, ..., 0])  # (N, 28, 28) is accepted too
    assert codes.shape == (5, 7, 7) and codes.dtype == np.int32 and 0 <= codes.min() and codes.max() < 32
    images = model.decode(codes)
    assert images.shape == (5, 28, 28, 1) and images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(model.reconstruct(tiny_mnist.x_test[:5]), images)


def test_vqvae_fit_logs_its_losses_and_learns(tiny_mnist):
    model, record = train_vqvae("keras-example", 16, 4, "loss", epochs=3, batch_size=32, train_size=128,
                                data=tiny_mnist, kmeans_init=False, restart_dead_codes=False, verbose=0)
    history = record["history"]
    assert {"loss", "reconstruction_loss", "vq_loss", "perplexity", "val_loss"} <= set(history)
    assert history["loss"][-1] < history["loss"][0]
    for epoch in range(3):
        total = history["reconstruction_loss"][epoch] + history["vq_loss"][epoch]
        assert history["loss"][epoch] == pytest.approx(total, rel=1e-4)
    assert len(record["seconds_per_epoch"]) == 3


def test_reconstruction_loss_is_mse_over_variance(tiny_mnist):
    model = VQVAE("keras-example", 16, 4, "loss", data_variance=0.05)
    model.compile(optimizer="adam")
    logs = model.evaluate(tiny_mnist.x_test, batch_size=64, return_dict=True, verbose=0)
    out = model(tiny_mnist.x_test)
    mse = np.mean((tiny_mnist.x_test - keras.ops.convert_to_numpy(out["reconstruction"])) ** 2)
    assert logs["reconstruction_loss"] == pytest.approx(mse / 0.05, rel=1e-4)


def test_ema_codebook_moves_when_training_only(tiny_mnist):
    model = VQVAE("keras-example", 16, 4, "ema")
    before = keras.ops.convert_to_numpy(model.quantizer.embeddings).copy()
    model(tiny_mnist.x_test, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.quantizer.embeddings), before)
    model.compile(optimizer="adam")
    model.fit(tiny_mnist.x_train[:64], batch_size=32, epochs=1, verbose=0)
    assert float(model.quantizer.ema_steps) == 2.0
    assert not np.allclose(keras.ops.convert_to_numpy(model.quantizer.embeddings), before)


def test_codebook_maintenance_keeps_codes_in_use(tiny_mnist):
    model = VQVAE("keras-example", 64, 4, "loss")
    maintenance = CodebookMaintenance(tiny_mnist.x_train, every=2, sample_size=128, seed=0)
    model.compile(optimizer="adam")
    model.fit(tiny_mnist.x_train, batch_size=32, epochs=1, verbose=0, callbacks=[maintenance])
    assert len(maintenance.history) == 4 and maintenance.history[0][1] > 0  # restarts happened
    plain = VQVAE("keras-example", 64, 4, "loss")
    used_with = metrics.codes_used(model.encode(tiny_mnist.x_train), 64)
    used_without = metrics.codes_used(plain.encode(tiny_mnist.x_train), 64)
    assert used_with > used_without


@pytest.mark.parametrize("architecture, quantizer", VQVAE_SETTINGS)
def test_vqvae_saves_and_loads(architecture, quantizer, tiny_mnist, tmp_path):
    model, _ = train_vqvae(architecture, 16, 4, quantizer, epochs=1, batch_size=64, train_size=64,
                           data=tiny_mnist, validate=False, verbose=0)
    expected = model.predict(tiny_mnist.x_test, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, VQVAE) and loaded.get_config() == model.get_config()
    got = loaded.predict(tiny_mnist.x_test, verbose=0)
    np.testing.assert_array_equal(got["indices"], expected["indices"])
    np.testing.assert_allclose(got["reconstruction"], expected["reconstruction"], atol=1e-6)
    model.save_weights(tmp_path / "model.weights.h5")
    fresh = VQVAE.from_config(model.get_config())
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(fresh.encode(tiny_mnist.x_test), model.encode(tiny_mnist.x_test))


def test_vae_saves_and_loads(tiny_mnist, tmp_path):
    model, _ = train_vae(2, epochs=1, batch_size=64, train_size=64, data=tiny_mnist, validate=False, verbose=0)
    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    np.testing.assert_allclose(loaded.reconstruct(tiny_mnist.x_test), model.reconstruct(tiny_mnist.x_test),
                               atol=1e-6)


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.mark.parametrize("architecture, quantizer", VQVAE_SETTINGS)
def test_fixed_seed_gives_identical_training(architecture, quantizer, tiny_mnist):
    runs = [train_vqvae(architecture, 16, 4, quantizer, epochs=1, batch_size=32, train_size=128, seed=3,
                        data=tiny_mnist, validate=False, verbose=0)[0] for _ in range(2)]
    for a, b in zip(_weights(runs[0]), _weights(runs[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    other = train_vqvae(architecture, 16, 4, quantizer, epochs=1, batch_size=32, train_size=128, seed=4,
                        data=tiny_mnist, validate=False, verbose=0)[0]
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(runs[0]), _weights(other), strict=True))


def test_vae_fit_logs_the_elbo_and_its_parts(tiny_mnist):
    model, record = train_vae(2, epochs=2, batch_size=32, train_size=128, data=tiny_mnist, verbose=0)
    history = record["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert history["loss"][0] == pytest.approx(history["reconstruction_loss"][0] + history["kl_loss"][0], rel=1e-4)
    samples = model.sample(6, seed=1)
    assert samples.shape == (6, 28, 28, 1) and 0.0 <= samples.min() and samples.max() <= 1.0
    np.testing.assert_array_equal(samples, model.sample(6, seed=1))


def test_reparameterize_and_kl_match_numpy():
    rng = np.random.default_rng(0)
    mean, log_var, eps = (rng.normal(size=(4, 3)).astype("float32") for _ in range(3))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reparameterize(mean, log_var, eps)),
                               mean + np.exp(log_var / 2) * eps, rtol=1e-5)
    expected = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1 - log_var, axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gaussian_kl(mean, log_var)), expected, rtol=1e-5)
    assert np.allclose(keras.ops.convert_to_numpy(gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)))), 0.0)


@pytest.mark.parametrize("images, message", [
    (np.zeros((2, 28, 28), "uint8"), "divide uint8 pixels by 255.0"),
    (np.zeros((2, 32, 32, 1), "float32"), r"got \(2, 32, 32, 1\)"),
    (np.full((2, 28, 28, 1), -0.5, "float32"), "need 0.5 added"),
    (np.where(np.eye(28)[None, :, :, None] > 0, np.nan, 0.5).astype("float32"), "28 pixels are NaN"),
    (np.zeros((0, 28, 28, 1), "float32"), "empty array"),
])
def test_bad_images_say_how_to_fix_them(images, message):
    model = VQVAE("keras-example", 16, 4, "loss")
    with pytest.raises(ValueError, match=message):
        model.encode(images)
    with pytest.raises(ValueError, match=message):
        VAE(2).reconstruct(images)


@pytest.mark.parametrize("indices, message", [
    (np.zeros((2, 8, 8), "int32"), r"shape \(N, 7, 7\), got \(2, 8, 8\)"),
    (np.zeros((2, 7, 7), "float32"), "astype"),
    (np.full((2, 7, 7), 16), r"must lie in \[0, 16\)"),
    (np.full((2, 7, 7), -1), r"must lie in \[0, 16\)"),
    (np.zeros((0, 7, 7), "int32"), "empty array"),
])
def test_bad_indices_say_what_is_wrong(indices, message):
    with pytest.raises(ValueError, match=message):
        VQVAE("keras-example", 16, 4, "loss").decode(indices)


@pytest.mark.parametrize("kwargs, message", [
    (dict(architecture="resnet"), "architecture='resnet' is not known"),
    (dict(quantizer="kmeans"), "quantizer='kmeans' is not known"),
    (dict(data_variance=0.0), "data_variance=0.0 must be > 0"),
    (dict(num_embeddings=1), "num_embeddings >= 2"),
])
def test_impossible_model_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VQVAE(**kwargs)


def test_impossible_training_settings(tiny_mnist):
    with pytest.raises(ValueError, match="learning_rate > 0"):
        train_vae(2, epochs=1, learning_rate=0.0, data=tiny_mnist, verbose=0)
