"""What tests/test_distribution.py measures: training on two devices against one, on the same global batches.

Imported by the test on JAX (when the process already sees two devices); run as a script on TensorFlow, in
a fresh process that splits the CPU into two logical devices before TensorFlow starts, and prints the
results as one line of JSON: ``python tests/distribution_checks.py MNIST.npz`` (any KERAS_BACKEND; on JAX
the script sets ``XLA_FLAGS`` itself).
"""

import contextlib
import json
import os
import sys

if __name__ == "__main__":  # before Keras imports a backend: two CPU devices
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vqvae_lessons import distribute  # noqa: E402
from vqvae_lessons.quantizers import VectorQuantizerEMA  # noqa: E402

K, D, BATCH, DECAY, EPSILON = 8, 4, 16, 0.9, 1e-5


def quantizer_batches(seed=0):
    """Two global batches of 16 vectors ``(32, 4)`` and the codebook ``(8, 4)`` they start from. In each
    batch the first half (the first device's shard) lies near codes 0-3 and the second half near codes
    4-5: each shard alone sees other codes than the whole batch, and codes 6-7 are dead."""
    rng = np.random.default_rng(seed)
    codebook = rng.normal(size=(K, D)).astype("float32")
    batches = [np.concatenate([codebook[rng.integers(0, 4, BATCH // 2)], codebook[rng.integers(4, 6, BATCH // 2)]])
               for _ in range(2)]
    vectors = np.concatenate(batches) + 0.05 * rng.normal(size=(2 * BATCH, D)).astype("float32")
    return vectors.astype("float32"), codebook


class QuantizerOnly(keras.Model):
    """The EMA quantizer alone, trained by Keras's own step (a shift of its inputs is the one trainable weight,
    held at 0 by a learning rate of 0): what a VQ-VAE's quantizer sees, with nothing else that could differ."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = VectorQuantizerEMA(K, D, decay=DECAY, epsilon=EPSILON)
        self.shift = self.add_weight(name="shift", shape=(D,), initializer="zeros")
        self.perplexity = keras.metrics.Mean(name="perplexity")
        self.usage = keras.metrics.Mean(name="usage")

    def call(self, x, training=False):
        return self.quantizer(x + self.shift, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        self.perplexity.update_state(y_pred["perplexity"])
        self.usage.update_state(y_pred["usage"])
        return distribute.scale_loss(y_pred["loss"])


def codebook_update(devices):
    """Two EMA steps on :func:`quantizer_batches` on ``devices``, then a dead-code restart: the quantizer's
    state (``embeddings``, ``ema_cluster_size``, ``ema_embedding_sum``, ``ema_steps``), the logged
    perplexity and usage (each the mean over the two steps) and the restarted codes, as NumPy."""
    vectors, codebook = quantizer_batches()
    keras.utils.set_random_seed(0)
    with distribute.scope(devices, BATCH):
        model = QuantizerOnly()
        model(vectors[:2])
        model.quantizer.set_codes(np.arange(K), codebook)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        history = model.fit(vectors, batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history
        state = {name: np.asarray(keras.ops.convert_to_numpy(getattr(model.quantizer, name)))
                 for name in ("embeddings", "ema_cluster_size", "ema_embedding_sum", "ema_steps")}
        restarted = model.quantizer.restart_dead_codes(vectors[BATCH:], seed=0)
        state["restarted_embeddings"] = keras.ops.convert_to_numpy(model.quantizer.embeddings)
    return {**state, "perplexity": np.float32(history["perplexity"][0]), "usage": np.float32(history["usage"][0]),
            "dead": np.asarray(restarted, "int64")}


def ema_reference(vectors, codebook, batches):
    """The same EMA steps in NumPy, over each whole batch (the quantizer's docstring's formulas), and the mean
    perplexity and usage of each batch, and of each shard of it: ``(state, batch_stats, shard_stats)``."""
    size, total, embeddings = np.zeros(K), np.zeros((K, D)), codebook.astype("float64")
    batch_stats, shard_stats = [], []
    for step, batch in enumerate(np.split(vectors.astype("float64"), batches), start=1):
        nearest = np.argmin(((batch[:, None] - embeddings[None]) ** 2).sum(-1), axis=1)
        one_hot = np.eye(K)[nearest]
        size = DECAY * size + (1 - DECAY) * one_hot.sum(0)
        total = DECAY * total + (1 - DECAY) * one_hot.T @ batch
        corrected, sums = size / (1 - DECAY**step), total / (1 - DECAY**step)
        n = corrected.sum()
        embeddings = sums / ((corrected + EPSILON) / (n + K * EPSILON) * n)[:, None]
        batch_stats.append(_perplexity_usage(one_hot))
        shard_stats.append([_perplexity_usage(shard) for shard in np.split(one_hot, 2)])
    state = {"embeddings": embeddings, "ema_cluster_size": size, "ema_embedding_sum": total, "ema_steps": 2.0}
    return state, np.mean(batch_stats, axis=0), np.mean(shard_stats, axis=0)


def _perplexity_usage(one_hot):
    probs = one_hot.mean(0)
    return np.exp(-np.sum(probs * np.log(probs + 1e-10))), np.mean(probs > 0)


def quick_runs(data, devices):
    """Two steps of :func:`~vqvae_lessons.train.train_vqvae` (an EMA VQ-VAE with its k-means start), then two of
    :func:`~vqvae_lessons.train.train_prior` (a small gated PixelCNN) on its codes, on ``devices``: their weights
    and records' ``devices``."""
    from vqvae_lessons.train import train_prior, train_vqvae

    vqvae, record = train_vqvae("keras-example", 16, 4, "ema", epochs=1, batch_size=16, train_size=32, data=data,
                                validate=False, verbose=0, devices=devices)
    prior, prior_record = train_prior(vqvae, "gated", channels=8, num_layers=2, epochs=1, batch_size=16,
                                      train_size=32, data=data, validate=False, verbose=0, devices=devices)
    return {"vqvae": vqvae.get_weights(), "prior": prior.get_weights(),
            "devices": [record.get("devices", 1), prior_record.get("devices", 1)],
            "loss": [record["history"]["loss"][0], prior_record["history"]["loss"][0]]}


def errors(data):
    """The messages of settings that cannot work: an odd global batch on two devices, more devices than exist."""
    from vqvae_lessons.train import train_vqvae

    messages = {}
    for name, settings in {"batch": {"devices": 2, "batch_size": 15}, "count": {"devices": 3},
                           "zero": {"devices": 0}, "object": {"devices": "gpu"}}.items():
        try:
            train_vqvae("keras-example", 16, 4, epochs=1, train_size=32, data=data, verbose=0,
                        **{"batch_size": 16, **settings})
            messages[name] = None
        except ValueError as error:
            messages[name] = str(error)
    return messages


def differences(data):
    """Everything the test checks, as plain numbers and strings: the largest absolute difference between one
    and two devices of each quantity, the NumPy reference's, and the error messages."""
    one, two = codebook_update(None), codebook_update(2)
    vectors, codebook = quantizer_batches()
    reference, batch_stats, shard_stats = ema_reference(vectors, codebook, 2)
    runs = {devices: quick_runs(data, devices) for devices in (1, 2)}
    return {
        "backend": keras.backend.backend(),
        "codebook": {name: float(np.max(np.abs(one[name] - two[name]))) for name in one},
        "reference": {name: float(np.max(np.abs(one[name] - value))) for name, value in reference.items()},
        "perplexity": [float(one["perplexity"]), float(two["perplexity"]), float(batch_stats[0]),
                       *map(float, shard_stats[:, 0])],
        "usage": [float(one["usage"]), float(two["usage"]), float(batch_stats[1]), *map(float, shard_stats[:, 1])],
        "dead": [one["dead"].tolist(), two["dead"].tolist()],
        "weights": {kind: max(float(np.max(np.abs(a - b))) for a, b in zip(runs[1][kind], runs[2][kind], strict=True))
                    for kind in ("vqvae", "prior")},
        "loss": [runs[1]["loss"], runs[2]["loss"]],
        "devices": [runs[1]["devices"], runs[2]["devices"]],
        "errors": errors(data),
    }


if __name__ == "__main__":
    from vqvae_lessons import quiet
    from vqvae_lessons.data import load_mnist

    quiet()
    mnist = load_mnist(path=sys.argv[1])
    with contextlib.redirect_stdout(sys.stderr):  # stdout: the JSON line alone
        result = differences(mnist)
    print(json.dumps(result))
