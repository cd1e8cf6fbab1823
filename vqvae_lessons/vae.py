"""The variational autoencoder that lesson 1 builds, as a Keras 3 model.

The encoder maps images ``(N, 28, 28, 1)`` in [0, 1] to the mean and
log-variance ``(N, latent_dim)`` of a Gaussian posterior; :class:`Sampling` draws
``z = mean + exp(log_var / 2) * eps`` (the reparameterization trick); the decoder
maps ``z`` to Bernoulli logits ``(N, 28, 28, 1)``. :class:`VAE` trains with
``fit`` on images alone and logs ``reconstruction_loss`` (binary cross-entropy
summed over pixels), ``kl_loss`` (the closed-form KL to N(0, I)) and ``loss``,
their sum: the negative ELBO in nats per image.

References: Kingma and Welling (2013), *Auto-Encoding Variational Bayes*, arXiv:1312.6114.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .checks import IMAGE_SHAPE, ImageInputs, check_images, in_batches, model_images

__all__ = ["VAE", "Sampling", "reparameterize", "gaussian_kl"]


def reparameterize(mean, log_var, eps):
    """``z = mean + exp(log_var / 2) * eps``: a sample of N(mean, exp(log_var)) that is
    differentiable in ``mean`` and ``log_var`` (all ``(N, latent_dim)``)."""
    return mean + ops.exp(0.5 * log_var) * eps


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last axis: ``(N, L)`` to ``(N,)``."""
    return -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class Sampling(keras.layers.Layer):
    """Draws ``z ~ N(mean, exp(log_var))`` by the reparameterization trick, from a seeded generator.
    ``reparameterize(mean, log_var, eps)``: the trick itself (None: the package's; lesson 1 passes
    the learner's)."""

    def __init__(self, seed=None, reparameterize=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trick = reparameterize

    def call(self, inputs):
        mean, log_var = inputs
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return (self.trick or reparameterize)(mean, log_var, eps)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def build_vae_encoder(latent_dim):
    """Images ``(N, 28, 28, 1)`` to ``[mean, log_var]``, each ``(N, latent_dim)``."""
    inputs = keras.Input(IMAGE_SHAPE)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Dense(64, activation="relu")(layers.Flatten()(x))
    mean = layers.Dense(latent_dim, name="mean")(x)
    log_var = layers.Dense(latent_dim, name="log_var")(x)
    return keras.Model(inputs, [mean, log_var], name="vae_encoder")


def build_vae_decoder(latent_dim):
    """Latents ``(N, latent_dim)`` to Bernoulli logits ``(N, 28, 28, 1)``."""
    inputs = keras.Input((latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(inputs)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    logits = layers.Conv2DTranspose(1, 3, padding="same")(x)
    return keras.Model(inputs, logits, name="vae_decoder")


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class VAE(ImageInputs, keras.Model):
    """A convolutional VAE for 28x28 grey images.

    Args:
        latent_dim: size of z (2 gives the latent map of lesson 1).
        seed: seed of the sampling noise.
        reparameterize, kl_divergence, loss: the pieces lesson 1's exercises write, to build the
            model from the learner's own (None: the package's). ``reparameterize(mean, log_var,
            eps)`` gives ``z``; ``kl_divergence(mean, log_var)`` the KL of each image ``(N,)``
            (logged as ``kl_loss``); ``loss(images, logits, mean, log_var)`` the negative ELBO of a
            batch, which training minimises (``reconstruction_loss`` logs it minus the KL). They
            are written with ``keras.ops``; they are not saved with the model.

    Call: images ``(N, 28, 28[, 1])`` in [0, 1] (NumPy images are checked, in ``fit`` too, as
    :meth:`encode` checks them) to a dict with ``reconstruction``
    (Bernoulli means, ``(N, 28, 28, 1)``), ``logits``, ``mean``, ``log_var`` and ``z``.
    """

    def __init__(self, latent_dim=2, seed=None, reparameterize=None, kl_divergence=None, loss=None, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim={latent_dim} must be at least 1.")
        for name, piece in (("reparameterize", reparameterize), ("kl_divergence", kl_divergence), ("loss", loss)):
            if piece is not None and not callable(piece):
                raise TypeError(f"{name} must be a function (or None for the package's), got {type(piece).__name__}.")
        self.latent_dim, self.seed = int(latent_dim), seed
        self.kl_divergence, self.loss_function = kl_divergence or gaussian_kl, loss
        self.encoder = build_vae_encoder(self.latent_dim)
        self.decoder = build_vae_decoder(self.latent_dim)
        self.sampling = Sampling(seed=seed, reparameterize=reparameterize, name="sampling")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.build((None, *IMAGE_SHAPE))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=False):
        mean, log_var = self.encoder(model_images(images), training=training)
        z = self.sampling([mean, log_var])
        logits = self.decoder(z, training=training)
        return {"reconstruction": ops.sigmoid(logits), "logits": logits, "mean": mean, "log_var": log_var, "z": z}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if len(x.shape) == 3:  # (N, 28, 28): as the model's call, the channel axis is added
            x = ops.expand_dims(x, -1)
        kl_loss = ops.mean(self.kl_divergence(y_pred["mean"], y_pred["log_var"]))
        if self.loss_function is None:
            per_pixel = ops.binary_crossentropy(x, y_pred["logits"], from_logits=True)
            reconstruction_loss = ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))
            loss = reconstruction_loss + kl_loss
        else:
            loss = ops.convert_to_tensor(self.loss_function(x, y_pred["logits"], y_pred["mean"], y_pred["log_var"]))
            reconstruction_loss = loss - kl_loss
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return loss

    # -- NumPy in, NumPy out ---------------------------------------------------------------
    def encode(self, images, batch_size=1000):
        """``(mean, log_var)``, each ``(N, latent_dim)``, of images ``(N, 28, 28[, 1])`` in [0, 1]."""
        return in_batches(self.encoder, check_images(images), batch_size)

    def decode_logits(self, z, batch_size=1000):
        """Bernoulli logits ``(N, 28, 28, 1)`` of latents ``z`` ``(N, latent_dim)``."""
        z = np.asarray(z, dtype="float32")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Expected latents of shape (N, {self.latent_dim}), got {z.shape}.")
        return in_batches(self.decoder, z, batch_size)

    def decode(self, z, batch_size=1000):
        """Images ``(N, 28, 28, 1)`` in [0, 1] (Bernoulli means) of latents ``(N, latent_dim)``."""
        return 1.0 / (1.0 + np.exp(-self.decode_logits(z, batch_size)))

    def reconstruct(self, images, batch_size=1000):
        """Decode the posterior mean of each image: ``(N, 28, 28, 1)`` in [0, 1]."""
        return self.decode(self.encode(images, batch_size)[0], batch_size)

    def sample(self, n, seed=0):
        """``n`` images ``(n, 28, 28, 1)`` decoded from z ~ N(0, I)."""
        z = np.random.default_rng(seed).standard_normal((int(n), self.latent_dim)).astype("float32")
        return self.decode(z)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "seed": self.seed}
