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
    assert {"loss", "reconstruction_loss", "vq_loss", "batch_perplexity", "val_batch_perplexity", "val_loss"} <= \
        set(history)
    assert "perplexity" not in history  # the mean of per-batch perplexities is named so: not the dataset's
    assert all(1 <= p <= 16 for p in history["batch_perplexity"])
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


def _fit_with(images, callbacks, epochs=2):
    """A keras-example VQ-VAE (K=64) fitted on ``images`` from seed 0: the same model, batches and steps
    whatever the ``callbacks``."""
    keras.utils.set_random_seed(0)
    model = VQVAE("keras-example", 64, 4, "loss")
    model.compile(optimizer="adam")
    model.fit(images, batch_size=32, epochs=epochs, verbose=0, callbacks=callbacks)
    return model


@pytest.mark.slow
def test_codebook_maintenance_keeps_codes_in_use(tiny_mnist):
    images = tiny_mnist.x_train
    maintenance = CodebookMaintenance(images, every=2, sample_size=128, kmeans_init=False, seed=0)
    model = _fit_with(images, [maintenance])
    assert len(maintenance.history) == 8 and maintenance.history[0][1] > 0  # restarts happened
    plain = _fit_with(images, [])  # the same model, trained the same way, without maintenance
    used_with = metrics.codes_used(model.encode(images), 64)
    used_without = metrics.codes_used(plain.encode(images), 64)
    assert used_with > used_without + 8, (used_with, used_without)


class _CodebookSpy(keras.callbacks.Callback):
    """Records the EMA quantizer's codebook and state at the end of the training batches ``at``."""

    def __init__(self, at, images):
        super().__init__()
        self.at, self.images, self.step, self.seen = set(at), images, 0, {}

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step in self.at:
            model = self.model  # (on JAX, this syncs the training state into the model first)
            q = model.quantizer
            self.seen[self.step] = {
                "codebook": keras.ops.convert_to_numpy(q.embeddings).copy(),
                "sizes": keras.ops.convert_to_numpy(q.ema_cluster_size).copy(),
                "sums": keras.ops.convert_to_numpy(q.ema_embedding_sum).copy(),
                "outputs": model.encoder_outputs(self.images).reshape(-1, model.embedding_dim),
            }


def test_dead_codes_restarted_during_fit_move_onto_encoder_outputs_and_the_ema_follows(tiny_mnist):
    images = tiny_mnist.x_train
    keras.utils.set_random_seed(0)
    model = VQVAE("keras-example", 32, 4, "ema", decay=0.9)
    maintenance = CodebookMaintenance(images, every=200, sample_size=len(images), kmeans_init=False, seed=0)
    before, after = _CodebookSpy([200], images), _CodebookSpy([200, 201], images)  # around the restart, a step on
    model.compile(optimizer="adam")
    model.fit(images, batch_size=2, epochs=2, verbose=0, callbacks=[before, maintenance, after])  # 256 steps
    assert maintenance.history[0][0] == 200 and maintenance.history[0][1] > 0
    old, new, later = before.seen[200], after.seen[200], after.seen[201]
    restarted = np.flatnonzero(np.any(old["codebook"] != new["codebook"], axis=1))
    assert len(restarted) == maintenance.history[0][1]  # the restart changed the dead codes and no others
    live = np.setdiff1d(np.arange(32), restarted)
    dead = np.setdiff1d(np.arange(32), _nearest(old["outputs"], old["codebook"]))  # no training image picks them
    np.testing.assert_array_equal(restarted, dead)
    for code in restarted:  # each moved onto an encoder output of a training image
        assert np.min(np.abs(new["outputs"] - new["codebook"][code]).max(axis=1)) < 1e-5
    # The EMA state follows: its average m_k / N_k is the new code, with the codebook's mean weight...
    np.testing.assert_allclose(new["sums"][restarted] / new["sizes"][restarted, None], new["codebook"][restarted],
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new["sizes"][restarted], old["sizes"].mean(), rtol=1e-4)
    np.testing.assert_array_equal(new["sums"][live], old["sums"][live])
    # ...so the next EMA step moves a restarted code a little, never back to where it was.
    moved = np.linalg.norm(later["codebook"][restarted] - new["codebook"][restarted], axis=1)
    jumped = np.linalg.norm(new["codebook"][restarted] - old["codebook"][restarted], axis=1)
    assert np.all(moved < 0.2 * jumped), (moved, jumped)


def _nearest(vectors, codebook):
    return np.argmin(((vectors[:, None] - codebook[None]) ** 2).sum(-1), axis=1)


@pytest.mark.parametrize("architecture, quantizer", VQVAE_SETTINGS)
@pytest.mark.slow
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
@pytest.mark.slow
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


BAD_IMAGES = [
    (np.zeros((2, 28, 28), "uint8"), "divide uint8 pixels by 255.0"),
    (np.zeros((2, 32, 32, 1), "float32"), r"got \(2, 32, 32, 1\)"),
    (np.full((2, 28, 28, 1), -0.5, "float32"), "need 0.5 added"),
    (np.full((2, 28, 28), 1.5, "float32"), r"pixels in \[0, 1\], got values from 1.5"),
    (np.where(np.eye(28)[None, :, :, None] > 0, np.nan, 0.5).astype("float32"), "28 pixels are NaN"),
]


@pytest.mark.parametrize("images, message", [*BAD_IMAGES, (np.zeros((0, 28, 28, 1), "float32"), "empty array")])
def test_bad_images_say_how_to_fix_them(images, message):
    model = VQVAE("keras-example", 16, 4, "loss")
    with pytest.raises(ValueError, match=message):
        model.encode(images)
    with pytest.raises(ValueError, match=message):
        VAE(2).reconstruct(images)


@pytest.mark.parametrize("images, message", BAD_IMAGES)
@pytest.mark.parametrize("make", [lambda: VQVAE("keras-example", 16, 4, "loss"), lambda: VAE(2)],
                         ids=["vqvae", "vae"])
def test_calling_or_fitting_on_bad_images_is_the_same_clear_error(make, images, message):
    model = make()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model(images)
    with pytest.raises(ValueError, match=message):
        model.fit(images, epochs=1, verbose=0)
    good = np.full((2, 28, 28, 1), 0.5, "float32")
    with pytest.raises(ValueError, match=message):
        model.fit(good, epochs=1, verbose=0, validation_data=(images,))
    assert model.optimizer.iterations == 0  # refused before any training step


@pytest.mark.parametrize("architecture, quantizer", VQVAE_SETTINGS)
@pytest.mark.slow
def test_images_without_their_channel_axis_work_everywhere_alike(architecture, quantizer, tiny_mnist):
    flat, images = tiny_mnist.x_train[:64, ..., 0], tiny_mnist.x_train[:64]
    model = VQVAE(architecture, 16, 4, quantizer)
    out, out_flat = model(images), model(flat)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out_flat["indices"]), model.encode(flat))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out_flat["reconstruction"]),
                               keras.ops.convert_to_numpy(out["reconstruction"]))
    histories = []
    for x in (images, flat):  # the same training from (N, 28, 28) as from (N, 28, 28, 1): the same loss
        keras.utils.set_random_seed(0)
        fresh = VQVAE(architecture, 16, 4, quantizer)
        fresh.compile(optimizer="adam")
        histories.append(fresh.fit(x, batch_size=32, epochs=1, verbose=0, validation_data=(x[:16],)).history)
    assert set(histories[0]) == set(histories[1])
    for key, values in histories[0].items():
        assert histories[1][key] == pytest.approx(values, rel=1e-5), key
    keras.utils.set_random_seed(0)
    vae = VAE(2, seed=0)
    vae.compile(optimizer="adam")
    assert keras.ops.convert_to_numpy(vae(flat)["mean"]) == pytest.approx(vae.encode(images)[0], abs=1e-5)
    vae.fit(flat, batch_size=32, epochs=1, verbose=0)


def test_a_partial_last_batch_gives_what_one_batch_gives(tiny_mnist):
    model, vae = VQVAE("keras-example", 16, 4, "loss"), VAE(2)
    images = tiny_mnist.x_test[:7]  # batches of 3: 3 + 3 + 1
    codes = model.encode(images, batch_size=1000)
    np.testing.assert_array_equal(model.encode(images, batch_size=3), codes)
    np.testing.assert_allclose(model.decode(codes, batch_size=3), model.decode(codes), atol=1e-6)
    np.testing.assert_allclose(model.encoder_outputs(images, batch_size=3), model.encoder_outputs(images), atol=1e-6)
    for part, whole in zip(vae.encode(images, batch_size=3), vae.encode(images), strict=True):
        np.testing.assert_allclose(part, whole, atol=1e-6)


@pytest.mark.parametrize("train_size", [0, -5, 2.5])
def test_train_size_must_be_a_positive_number_of_images(train_size, tiny_mnist):
    from vqvae_lessons import recipes
    from vqvae_lessons.judge import train_judge
    from vqvae_lessons.train import train_prior

    for train in (lambda: train_vqvae(train_size=train_size, data=tiny_mnist, verbose=0),
                  lambda: train_vae(train_size=train_size, data=tiny_mnist, verbose=0),
                  lambda: train_prior(VQVAE("keras-example", 16, 4), train_size=train_size, data=tiny_mnist),
                  lambda: train_judge(train_size=train_size, data=tiny_mnist, verbose=0)):
        with pytest.raises(ValueError, match=r"train_size is the number of training images .* int >= 1"):
            train()
    for kind in recipes.KINDS.values():
        with pytest.raises(ValueError, match=f"{kind.__name__}: train_size must be a positive integer"):
            kind(train_size=train_size)


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
