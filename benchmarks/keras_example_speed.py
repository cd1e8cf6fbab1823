"""Training speed: the published Keras VQ-VAE example against this package, side by side.

What it measures
    The wall-clock seconds per training epoch of two implementations of the same
    model, trained in one process on the same MNIST images:

    * ``plain``: a self-contained Keras 3 port of the Keras example
      ``examples/generative/vq_vae.py`` (Sayak Paul, keras.io), written below as
      close to the original as Keras 3 allows: a ``VectorQuantizer`` layer that
      finds the nearest code by one-hot encoding and a matrix product and adds its
      loss with ``add_loss``, and a ``VQVAETrainer`` whose ``train_step`` uses
      ``tf.GradientTape``. It is the reference.
    * ``package``: ``vqvae_lessons.train.train_vqvae(architecture="keras-example",
      quantizer="loss", kmeans_init=False, restart_dead_codes=False, ...)``, the same
      network and losses trained through the package (``keras.ops``, ``fit`` with
      ``compute_loss``, plus its perplexity metric), timed by the package itself.
    * ``default`` (with ``--with-default``): the project's default model with the
      settings of the shipped ``vqvae-k128-d16`` (residual architecture, EMA
      codebook, k-means initialisation, dead-code restarts), to check its epoch
      time against the plain example's.

    Both use K=128 codes of D=16, beta=0.25, Adam at 1e-3, batch size 128, seed 0
    and the first ``--train-size`` training images, fed as float32 (the example
    feeds float64; Keras 3 casts it anyway, so the port casts once up front).

    Fairness: the two alternate (plain, package, plain, package, ...) for
    ``--repeats`` rounds, so background load hits both; each run builds a fresh
    model after ``keras.backend.clear_session()``; the first epoch of every run
    (tracing the train step) is reported apart and left out of the medians.

How to run it (from the repository root; minutes per repeat on a laptop CPU)
    VQVAE_LESSONS_MNIST=../shared/data/mnist.npz python benchmarks/keras_example_speed.py

    Flags: ``--train-size`` (default 60000), ``--epochs`` per run (default 3, at
    least 2), ``--repeats`` (default 2). A quick check:
    ``... keras_example_speed.py --train-size 512 --epochs 2 --repeats 1``.
    Progress and TensorFlow's messages go to standard error; standard output
    gets one JSON object.

How to read the result
    ``implementations.<name>.median_seconds_per_epoch_60k`` is the median over all
    timed epochs of all repeats, scaled to a full 60,000-image epoch (equal to
    ``median_seconds_per_epoch`` when ``--train-size`` is 60000; small train sizes
    give rough figures). ``ratio_package_over_plain`` divides the package's median
    by the plain port's: below 1.0 the package trains faster, above 1.0 slower.
    Compare the spread of ``timed_epoch_seconds`` with the gap between the medians
    before trusting a small difference; ``final_loss`` only checks that both
    trained the same thing (the values should be of the same size, not equal).
    The package records its epoch times rounded to 0.01 s.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

# vqvae_lessons first: its quiet() imports TensorFlow with its start-up messages silenced.
# isort: off
import vqvae_lessons  # noqa: E402

vqvae_lessons.quiet()
from vqvae_lessons.data import MNIST_ENV, load_mnist  # noqa: E402
from vqvae_lessons.train import EpochTimer, train_vqvae  # noqa: E402  (the package's own timer, for both)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402
# isort: on

FULL_EPOCH = 60000
NUM_EMBEDDINGS, EMBEDDING_DIM, BETA = 128, 16, 0.25
BATCH_SIZE, LEARNING_RATE, SEED = 128, 1e-3, 0


# -- (a) the Keras example, ported to Keras 3 --------------------------------------------------
class VectorQuantizer(layers.Layer):
    def __init__(self, num_embeddings, embedding_dim, beta=0.25, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.num_embeddings = num_embeddings
        self.beta = beta
        # Keras 3 trains only variables made by add_weight (a bare tf.Variable is not tracked);
        # tf.random_uniform_initializer() in the example draws from [-0.05, 0.05], as here.
        self.embeddings = self.add_weight(
            shape=(self.embedding_dim, self.num_embeddings),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
            trainable=True,
            name="embeddings_vqvae",
        )

    def call(self, x):
        input_shape = tf.shape(x)
        flattened = tf.reshape(x, [-1, self.embedding_dim])

        encoding_indices = self.get_code_indices(flattened)
        encodings = tf.one_hot(encoding_indices, self.num_embeddings)
        quantized = tf.matmul(encodings, self.embeddings, transpose_b=True)
        quantized = tf.reshape(quantized, input_shape)

        commitment_loss = self.beta * tf.reduce_mean((tf.stop_gradient(quantized) - x) ** 2)
        codebook_loss = tf.reduce_mean((quantized - tf.stop_gradient(x)) ** 2)
        self.add_loss(commitment_loss + codebook_loss)

        # Straight-through estimator.
        return x + tf.stop_gradient(quantized - x)

    def get_code_indices(self, flattened_inputs):
        similarity = tf.matmul(flattened_inputs, self.embeddings)
        distances = (
            tf.reduce_sum(flattened_inputs**2, axis=1, keepdims=True)
            + tf.reduce_sum(self.embeddings**2, axis=0)
            - 2 * similarity
        )
        return tf.argmin(distances, axis=1)


def get_encoder(latent_dim=16):
    encoder_inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    encoder_outputs = layers.Conv2D(latent_dim, 1, padding="same")(x)
    return keras.Model(encoder_inputs, encoder_outputs, name="encoder")


def get_decoder(latent_dim=16):
    latent_inputs = keras.Input(shape=get_encoder(latent_dim).output.shape[1:])
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(latent_inputs)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    decoder_outputs = layers.Conv2DTranspose(1, 3, padding="same")(x)
    return keras.Model(latent_inputs, decoder_outputs, name="decoder")


def get_vqvae(latent_dim=16, num_embeddings=64):
    vq_layer = VectorQuantizer(num_embeddings, latent_dim, name="vector_quantizer")
    encoder = get_encoder(latent_dim)
    decoder = get_decoder(latent_dim)
    inputs = keras.Input(shape=(28, 28, 1))
    encoder_outputs = encoder(inputs)
    quantized_latents = vq_layer(encoder_outputs)
    reconstructions = decoder(quantized_latents)
    return keras.Model(inputs, reconstructions, name="vq_vae")


class VQVAETrainer(keras.models.Model):
    def __init__(self, train_variance, latent_dim=32, num_embeddings=128, **kwargs):
        super().__init__(**kwargs)
        self.train_variance = train_variance
        self.latent_dim = latent_dim
        self.num_embeddings = num_embeddings

        self.vqvae = get_vqvae(self.latent_dim, self.num_embeddings)

        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.vq_loss_tracker]

    def train_step(self, x):
        with tf.GradientTape() as tape:
            reconstructions = self.vqvae(x)
            reconstruction_loss = tf.reduce_mean((x - reconstructions) ** 2) / self.train_variance
            total_loss = reconstruction_loss + sum(self.vqvae.losses)

        grads = tape.gradient(total_loss, self.vqvae.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.vqvae.trainable_variables, strict=False))

        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.vq_loss_tracker.update_state(sum(self.vqvae.losses))
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "vqvae_loss": self.vq_loss_tracker.result(),
        }


def load_example_data():
    """MNIST as the example prepares it: ``x / 255 - 0.5`` and the variance of ``x / 255``."""
    path = os.environ.get(MNIST_ENV)
    if path:
        with np.load(path) as npz:
            x_train = npz["x_train"]
    else:
        (x_train, _), _ = keras.datasets.mnist.load_data()
    x_train = np.expand_dims(x_train, -1)
    x_train_scaled = (x_train / 255.0) - 0.5
    data_variance = np.var(x_train / 255.0)
    return x_train_scaled.astype("float32"), float(data_variance)


def run_plain(x_train_scaled, data_variance, train_size, epochs):
    keras.utils.set_random_seed(SEED)
    trainer = VQVAETrainer(data_variance, latent_dim=EMBEDDING_DIM, num_embeddings=NUM_EMBEDDINGS)
    trainer.compile(optimizer=keras.optimizers.Adam())  # the example's default learning rate, 1e-3
    timer = EpochTimer()
    with contextlib.redirect_stdout(sys.stderr):
        history = trainer.fit(x_train_scaled[:train_size], epochs=epochs, batch_size=BATCH_SIZE, verbose=0,
                              callbacks=[timer])
    return timer.seconds, float(history.history["loss"][-1])


# -- (b) the package ---------------------------------------------------------------------------
def run_package(data, train_size, epochs, architecture="keras-example", quantizer="loss", maintenance=False):
    _, record = train_vqvae(architecture=architecture, num_embeddings=NUM_EMBEDDINGS,
                            embedding_dim=EMBEDDING_DIM, quantizer=quantizer, beta=BETA, epochs=epochs,
                            batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, seed=SEED, kmeans_init=maintenance,
                            restart_dead_codes=maintenance, train_size=train_size, data=data, validate=False,
                            verbose=0)
    return [float(s) for s in record["seconds_per_epoch"]], float(record["history"]["loss"][-1])


# -- the comparison ----------------------------------------------------------------------------
def _summary(runs, train_size):
    timed = [s for run in runs for s in run["seconds"][1:]]
    median = statistics.median(timed)
    return {
        "timed_epoch_seconds": [round(s, 4) for s in timed],
        "warmup_epoch_seconds": [round(run["seconds"][0], 4) for run in runs],
        "median_seconds_per_epoch": round(median, 4),
        "median_seconds_per_epoch_60k": round(median * FULL_EPOCH / train_size, 3),
        "final_loss": [round(run["final_loss"], 5) for run in runs],
    }, median


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--train-size", type=int, default=FULL_EPOCH,
                        help=f"train on the first N training images (1 to {FULL_EPOCH})")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run, at least 2: the first is warm-up and not timed")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (plain, package[, default])")
    parser.add_argument("--with-default", action="store_true",
                        help="also time the project's default model (vqvae-k128-d16's settings: residual "
                             "architecture, EMA codebook, k-means initialisation, dead-code restarts)")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not 1 <= args.train_size <= FULL_EPOCH:
        parser.error(f"--train-size must lie in [1, {FULL_EPOCH}], got {args.train_size}")
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first epoch is warm-up), got {args.epochs}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if keras.backend.backend() != "tensorflow":
        parser.error(f"the Keras example port needs the TensorFlow backend; KERAS_BACKEND is "
                     f"{keras.backend.backend()!r}")

    data = load_mnist()
    x_train_scaled, data_variance = load_example_data()
    runners = {
        "plain": lambda: run_plain(x_train_scaled, data_variance, args.train_size, args.epochs),
        "package": lambda: run_package(data, args.train_size, args.epochs),
    }
    if args.with_default:
        runners["default"] = lambda: run_package(data, args.train_size, args.epochs, "residual", "ema", True)
    runs = {name: [] for name in runners}
    order = []
    for repeat in range(args.repeats):
        for name, runner in runners.items():
            keras.backend.clear_session()
            gc.collect()
            seconds, final_loss = runner()
            runs[name].append({"seconds": seconds, "final_loss": final_loss})
            order.append(name)
            print(f"[repeat {repeat + 1}/{args.repeats}] {name}: epoch seconds "
                  f"{', '.join(f'{s:.3f}' for s in seconds)}", file=sys.stderr, flush=True)

    implementations, medians = {}, {}
    for name in runners:
        implementations[name], medians[name] = _summary(runs[name], args.train_size)
    result = {
        "benchmark": "keras_example_speed",
        "settings": {
            "train_size": args.train_size,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "timed_epochs_per_run": args.epochs - 1,
            "order": order,
            "batch_size": BATCH_SIZE,
            "learning_rate": LEARNING_RATE,
            "seed": SEED,
            "num_embeddings": NUM_EMBEDDINGS,
            "embedding_dim": EMBEDDING_DIM,
            "beta": BETA,
            "extrapolated_to": FULL_EPOCH,
            "mnist": data.source,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "versions": {
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "vqvae_lessons": vqvae_lessons.__version__,
        },
        "implementations": implementations,
        "ratio_package_over_plain": round(medians["package"] / medians["plain"], 3),
    }
    if "default" in medians:
        result["ratio_default_over_plain"] = round(medians["default"] / medians["plain"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
