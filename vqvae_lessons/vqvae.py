"""The VQ-VAE: encoder, vector quantizer, decoder, and how it trains.

Images are ``(N, 28, 28, 1)`` floats in [0, 1]; the model centres them to
[-0.5, 0.5] inside, as the Keras example does, and the encoder turns them into a
``7 x 7`` grid of ``D``-dimensional vectors, each replaced by its nearest of
``K`` codes. Two architectures give that grid:

* ``"keras-example"``: the published Keras example exactly (Conv 32 and 64 with
  stride 2, a 1x1 conv to D; the mirror image in transposed convolutions).
* ``"residual"``: the project's default, after the VQ-VAE paper and Sonnet:
  strided 4x4 convolutions to 128 channels, two residual blocks at 7x7, and a
  light decoder that spends its width at 7x7 rather than at 28x28.

:class:`VQVAE` trains with ``fit`` on images alone (no labels). Its loss is the
example's: mean squared error divided by the training data's variance, plus the
quantizer's loss; ``fit`` logs ``loss``, ``reconstruction_loss``, ``vq_loss``
and ``batch_perplexity``: the mean over the epoch's batches of each batch's perplexity, not
the perplexity of the whole dataset's codes (:func:`~vqvae_lessons.metrics.perplexity`, which
``metrics.evaluate_vqvae`` reports as ``test_perplexity``). Cards written before the metric was
renamed call it ``perplexity``; :func:`~vqvae_lessons.pretrained.card` gives it today's name.
``encode(images) -> indices`` ``(N, 7, 7)`` and ``decode(indices) -> images``
``(N, 28, 28, 1)`` work on NumPy arrays.

Images may be ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` everywhere (``fit``, calling the model,
``encode``); given as NumPy arrays, they are checked as ``encode`` checks them
(:func:`~vqvae_lessons.checks.check_images`: floats in [0, 1], no NaN).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from .checks import CODE_GRID, IMAGE_SHAPE, ImageInputs, check_images, check_indices, in_batches, model_images
from .quantizers import VectorQuantizer, VectorQuantizerEMA

ARCHITECTURES = ("keras-example", "residual")
QUANTIZERS = {"loss": VectorQuantizer, "ema": VectorQuantizerEMA}


def build_encoder(architecture, embedding_dim):
    """Encoder: images ``(N, 28, 28, 1)`` centred on 0 to vectors ``(N, 7, 7, D)``."""
    inputs = keras.Input(IMAGE_SHAPE)
    if architecture == "keras-example":
        x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    else:
        x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(128, 4, strides=2, padding="same", activation="relu")(x)
        x = layers.Conv2D(128, 3, padding="same")(x)
        x = _residual_stack(x, 128, 32)
    outputs = layers.Conv2D(embedding_dim, 1, padding="same")(x)
    return keras.Model(inputs, outputs, name="encoder")


def build_decoder(architecture, embedding_dim):
    """Decoder: code vectors ``(N, 7, 7, D)`` to images ``(N, 28, 28, 1)`` centred on 0."""
    inputs = keras.Input((*CODE_GRID, embedding_dim))
    if architecture == "keras-example":
        x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
        outputs = layers.Conv2DTranspose(1, 3, padding="same")(x)
    else:
        x = layers.Conv2D(128, 3, padding="same")(inputs)
        x = _residual_stack(x, 128, 32)
        x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu")(x)
        outputs = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(x)
    return keras.Model(inputs, outputs, name="decoder")


def _residual_stack(x, channels, hidden, blocks=2):
    """``blocks`` residual blocks (ReLU, 3x3 conv to ``hidden``, ReLU, 1x1 conv back), then ReLU."""
    for _ in range(blocks):
        h = layers.Activation("relu")(x)
        h = layers.Conv2D(hidden, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(channels, 1, padding="same")(h)
        x = layers.Add()([x, h])
    return layers.Activation("relu")(x)


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class VQVAE(ImageInputs, keras.Model):
    """A VQ-VAE for 28x28 grey images with a 7x7 grid of codes.

    Args:
        architecture: "keras-example" or "residual" (see the module docstring).
        num_embeddings: K, codebook size (the model card's is 128).
        embedding_dim: D, size of each code vector (the model card's is 16).
        quantizer: "loss" (codebook learned by gradient, as the example) or "ema".
        beta: weight of the commitment loss.
        decay: the EMA decay (``quantizer="ema"`` only).
        data_variance: the reconstruction loss is ``MSE / data_variance``
            (``load_mnist().variance``; 1.0 gives the plain MSE).

    Call: images ``(N, 28, 28[, 1])`` in [0, 1] to a dict with ``reconstruction``
    ``(N, 28, 28, 1)`` (not clipped), ``indices`` ``(N, 7, 7)``, ``vq_loss`` and
    ``perplexity`` (scalars, over the batch). ``fit`` logs the mean of the batches'
    perplexities as ``batch_perplexity`` (not the dataset's perplexity: see
    :func:`~vqvae_lessons.metrics.perplexity`).
    """

    def __init__(self, architecture="residual", num_embeddings=128, embedding_dim=16, quantizer="ema",
                 beta=0.25, decay=0.99, data_variance=1.0, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
        if quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer={quantizer!r} is not known: use one of {sorted(QUANTIZERS)}.")
        if not data_variance > 0:
            raise ValueError(f"data_variance={data_variance} must be > 0 (use load_mnist().variance).")
        self.architecture, self.quantizer_kind = architecture, quantizer
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.beta, self.decay, self.data_variance = float(beta), float(decay), float(data_variance)
        self.encoder = build_encoder(architecture, self.embedding_dim)
        self.decoder = build_decoder(architecture, self.embedding_dim)
        extra = {"decay": self.decay} if quantizer == "ema" else {}
        self.quantizer = QUANTIZERS[quantizer](self.num_embeddings, self.embedding_dim, beta=self.beta,
                                               name="quantizer", **extra)
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        # the mean of per-batch perplexities, not the dataset's (metrics.perplexity): hence its name
        self.perplexity_tracker = keras.metrics.Mean(name="batch_perplexity")
        self.build((None, *IMAGE_SHAPE))

    def build(self, input_shape):
        self.quantizer.build((None, *CODE_GRID, self.embedding_dim))
        self.built = True

    def call(self, images, training=False):
        images = model_images(images)
        vq = self.quantizer(self.encoder(images - 0.5, training=training), training=training)
        return {
            "reconstruction": self.decoder(vq["quantized"], training=training) + 0.5,
            "indices": vq["indices"],
            "vq_loss": vq["loss"],
            "perplexity": vq["perplexity"],
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if len(x.shape) == 3:  # (N, 28, 28): without its channel axis, x - reconstruction would broadcast
            x = ops.expand_dims(x, -1)
        reconstruction_loss = ops.mean(ops.square(x - y_pred["reconstruction"])) / self.data_variance
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.vq_loss_tracker.update_state(y_pred["vq_loss"])
        self.perplexity_tracker.update_state(y_pred["perplexity"])
        return reconstruction_loss + y_pred["vq_loss"]

    def predict_step(self, *args):
        """``predict`` gives the clipped reconstructions and the indices. Keras's step takes ``(data,)``, but
        ``(state, data)`` on JAX and returns the state too: the parent's step runs the model either way."""
        if keras.backend.backend() == "jax":
            outputs, state = super().predict_step(*args)
            return _predicted(outputs), state
        return _predicted(super().predict_step(*args))

    # -- NumPy in, NumPy out ---------------------------------------------------------------
    def encode(self, images, batch_size=1000):
        """Code indices ``(N, 7, 7)`` (int32) of images ``(N, 28, 28[, 1])`` in [0, 1]."""
        encode = lambda batch: self.quantizer.code_indices(self.encoder(batch - 0.5))  # noqa: E731
        return in_batches(encode, check_images(images), batch_size).astype("int32")

    def decode(self, indices, batch_size=1000):
        """Images ``(N, 28, 28, 1)`` in [0, 1] (clipped) from code indices ``(N, 7, 7)``."""
        decode = lambda batch: ops.clip(self.decoder(self.quantizer.lookup(batch)) + 0.5, 0.0, 1.0)  # noqa: E731
        return in_batches(decode, check_indices(indices, self.num_embeddings), batch_size)

    def reconstruct(self, images, batch_size=1000):
        """``decode(encode(images))``: what the model makes of images, in [0, 1]."""
        return self.decode(self.encode(images, batch_size), batch_size)

    def encoder_outputs(self, images, batch_size=1000):
        """The encoder's vectors ``(N, 7, 7, D)`` before quantization."""
        return in_batches(lambda batch: self.encoder(batch - 0.5), check_images(images), batch_size)

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture, "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "quantizer": self.quantizer_kind, "beta": self.beta,
                "decay": self.decay, "data_variance": self.data_variance}


def _predicted(outputs):
    """What ``VQVAE.predict`` returns of the model's outputs: reconstructions clipped to [0, 1] and indices."""
    return {"reconstruction": ops.clip(outputs["reconstruction"], 0.0, 1.0), "indices": outputs["indices"]}
