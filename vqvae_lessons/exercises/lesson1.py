"""Lesson 1's exercises (autoencoders and the VAE): ``reparameterize``, ``kl_divergence`` and
``vae_loss``.

The first reference is the package's own :func:`vqvae_lessons.vae.reparameterize`;
``kl_divergence`` computes what :func:`vqvae_lessons.vae.gaussian_kl` does, written out, and
``vae_loss`` is the negative ELBO that :meth:`vqvae_lessons.vae.VAE.compute_loss` computes inline
(``keras.ops``, so they return backend tensors). The learner's three pieces build the VAE the
lesson trains (``VAE(reparameterize=..., kl_divergence=..., loss=...)``): each exercise's trial
runs one compiled training step of a small VAE built with the learner's function.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .. import vae
from . import core
from .core import Incorrect, as_numpy, call, check_number, close, compare, to_array

reparameterize = vae.reparameterize


def _in_a_training_step(piece):
    """A trial (see :func:`core.use`): one compiled training step of a small VAE whose ``piece`` is the
    learner's function; raises if it cannot run on the backend's symbolic tensors or gives a loss that is
    not finite."""
    def trial(fn):
        images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
        core.trains_one_step(vae.VAE(latent_dim=2, seed=0, **{piece: fn}), images)
    return trial



def kl_divergence(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last axis: ``(N, L)`` to ``(N,)``
    (what the package's ``vae.gaussian_kl`` computes)."""
    variance = ops.exp(log_var)
    return 0.5 * ops.sum(ops.square(mean) + variance - 1.0 - log_var, axis=-1)


def vae_loss(images, logits, mean, log_var):
    """The negative ELBO in nats per image, as ``VAE.compute_loss`` computes it: binary
    cross-entropy of ``images`` ``(N, H, W, C)`` against the decoder's ``logits`` (same shape),
    summed over the pixels, plus the KL of ``(mean, log_var)`` ``(N, L)``, both averaged over
    the batch. Returns a scalar."""
    per_pixel = ops.binary_crossentropy(images, logits, from_logits=True)
    reconstruction = ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))
    kl = ops.mean(vae.gaussian_kl(mean, log_var))
    return reconstruction + kl


# ---------------------------------------------------------------------------------------------
# reparameterize
# ---------------------------------------------------------------------------------------------
_REPARAMETERIZE_MISTAKES = [
    (lambda mean, log_var, eps: mean + np.exp(log_var) * eps,
     "you used the variance exp(log_var) where the standard deviation belongs: scale eps by exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.exp(log_var) / 2 * eps,
     "exp(log_var) / 2 is half the variance, not the standard deviation: the halving goes inside the "
     "exponential, exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.sqrt(log_var) * eps,
     "sqrt(log_var) is not the standard deviation: log_var is the log of the variance, so the standard deviation "
     "is exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + log_var * eps,
     "you used the log-variance log_var itself as the standard deviation: exponentiate, exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + log_var / 2 * eps,
     "log_var / 2 is the log of the standard deviation: the standard deviation is exp(log_var / 2)."),
    (lambda mean, log_var, eps: mean + np.exp(-log_var / 2) * eps,
     "exp(-log_var / 2) is one over the standard deviation: drop the minus sign."),
    (lambda mean, log_var, eps: mean - np.exp(log_var / 2) * eps,
     "you subtracted the noise term: z = mean + exp(log_var / 2) * eps, with a plus."),
    (lambda mean, log_var, eps: mean + np.exp(log_var / 2),
     "you forgot eps: the noise exp(log_var / 2) * eps is what makes z a random sample."),
    (lambda mean, log_var, eps: mean + eps,
     "you forgot to scale eps by the standard deviation exp(log_var / 2)."),
    (lambda mean, log_var, eps: np.exp(log_var / 2) * eps,
     "you forgot to add the mean: z = mean + exp(log_var / 2) * eps."),
    (lambda mean, log_var, eps: mean + np.exp(log_var / 2) * eps[:1],
     "every example got the noise of the first row, eps[0]: each image needs its own independent draw, so use "
     "eps itself, row n for example n (a batch whose samples share their noise moves together)."),
    (lambda mean, log_var, eps: mean + np.exp(log_var / 2) * eps[:, :1],
     "every latent dimension of an example got the same noise, eps[:, 0]: the L dimensions are independent, so "
     "use eps itself, one value per example and dimension."),
]


def _reparameterize_cases():
    rng = np.random.default_rng(10)
    for shape in [(5, 3), (2, 7), (1, 2), (1, 1), (3, 1)]:  # sizes of 1: one image, one latent dimension
        yield tuple(rng.normal(size=shape).astype("float32") for _ in range(3))


def _check_reparameterize(fn):
    for mean, log_var, eps in _reparameterize_cases():
        where = f"With mean, log_var and eps of shape {mean.shape}: "
        got, want = to_array(call(fn, mean, log_var, eps)), as_numpy(reparameterize(mean, log_var, eps))
        if got.shape == want.shape and not close(got, want):
            if not close(to_array(call(fn, mean, log_var, eps)), got, equal_nan=True):
                raise Incorrect(where + "your function gives a different result each time it is called: use the "
                                 "eps you are given instead of drawing new noise.")
        compare(got, want, (mean, log_var, eps), _REPARAMETERIZE_MISTAKES, where=where, symbols="(N, L)")


core.register(
    "reparameterize", reference=reparameterize, checker=_check_reparameterize, lesson=1,
    trial=_in_a_training_step("reparameterize"),
    hints="""
        z must be a sample of a normal distribution with the given mean and variance, made from the standard
        normal noise eps you are given: shift the noise by the mean and scale it by the standard deviation.
        log_var is the logarithm of the variance, so first work out how to get a standard deviation from it.

        The variance is exp(log_var) and the standard deviation is its square root; since
        sqrt(exp(a)) = exp(a / 2), np.exp (or keras.ops.exp) of half the log-variance gives it. Everything is
        elementwise on (N, L) arrays: no sums, and no new random numbers (use eps).
        """,
    error_hint="mean, log_var and eps are NumPy arrays of shape (N, L); the result is elementwise.",
    mistakes=_REPARAMETERIZE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# kl_divergence
# ---------------------------------------------------------------------------------------------
def _kl_terms(mean, log_var):
    return 1 + log_var - mean**2 - np.exp(log_var)


_KL_DIVERGENCE_MISTAKES = [
    (lambda mean, log_var: 0.5 * np.sum(_kl_terms(mean, log_var), axis=-1),
     "wrong sign: a KL divergence is never negative; it is -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.mean(_kl_terms(mean, log_var), axis=-1),
     "you averaged over the latent dimensions: the KL of independent dimensions is their sum (sum over axis=-1)."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var), axis=0),
     "you summed over axis 0, the batch, and got one value per latent dimension (L,): sum over the last axis "
     "for one value per example (N,)."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var)),
     "you summed over all axes and got a single number: sum over the last axis only (axis=-1), for one value "
     "per example (N,)."),
    (lambda mean, log_var: np.mean(-0.5 * np.sum(_kl_terms(mean, log_var), axis=-1)),
     "you returned the batch mean: return one value per example, shape (N,) (the loss averages them later)."),
    (lambda mean, log_var: -np.sum(_kl_terms(mean, log_var), axis=-1),
     "your values are twice the KL: you are missing the factor 0.5."),
    (lambda mean, log_var: -0.5 * np.sum(1 - mean**2, axis=-1),
     "your log_var and exp(log_var) terms cancel: you used the variance where the log-variance belongs (or the "
     "reverse). The formula has both: log_var, the log-variance, and exp(log_var), the variance."),
    (lambda mean, log_var: -0.5 * np.sum(1 + np.log(log_var) - mean**2 - log_var, axis=-1),
     "you treated log_var as the variance (log(log_var), and log_var where exp(log_var) belongs): it is already "
     "the log-variance; the variance is exp(log_var)."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var / 2), axis=-1),
     "exp(log_var / 2) is the standard deviation: the formula needs the variance exp(log_var)."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean**2 - np.exp(log_var) ** 2, axis=-1),
     "you squared the variance: exp(log_var) already is sigma**2."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var - mean - np.exp(log_var), axis=-1),
     "the mean must be squared: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.sum(1 + log_var + mean**2 - np.exp(log_var), axis=-1),
     "the sign of mean**2 is wrong: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.sum(log_var - mean**2 - np.exp(log_var), axis=-1),
     "you forgot the 1 inside the sum: -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var), axis=-1, keepdims=True),
     "you kept the summed axis (keepdims=True) and returned shape (N, 1): return one value per example, shape "
     "(N,), so that the loss can average it with the reconstruction term's (N,) values."),
    (lambda mean, log_var: -0.5 * np.sum(_kl_terms(mean, log_var)[:, :1], axis=-1),
     "you kept only the first latent dimension: the KL is a sum over all L dimensions (axis=-1)."),
]


def _kl_divergence_cases():
    rng = np.random.default_rng(20)
    for shape in [(5, 3), (4, 7), (1, 2), (1, 1), (3, 1)]:  # sizes of 1: one image, one latent dimension
        yield rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")
    # a posterior far from the prior, as a trained encoder gives a confident dimension: small variances, large means
    yield (rng.normal(0.0, 3.0, size=(4, 2)).astype("float32"), rng.uniform(-9.0, -6.0, size=(4, 2)).astype("float32"))


def _check_kl_divergence(fn):
    for mean, log_var in _kl_divergence_cases():
        where = f"With mean and log_var of shape (N, L) = {mean.shape}: "
        compare(to_array(call(fn, mean, log_var)), as_numpy(kl_divergence(mean, log_var)), (mean, log_var),
                 _KL_DIVERGENCE_MISTAKES, where=where, symbols="(N,)")


core.register(
    "kl_divergence", reference=kl_divergence, checker=_check_kl_divergence, lesson=1,
    trial=_in_a_training_step("kl_divergence"),
    hints="""
        The KL divergence between two Gaussians has a closed form. Because the latent dimensions are
        independent, it is a sum of one term per dimension, and each term needs only that dimension's mean,
        log-variance and variance. Work out which axis holds the dimensions: you want one number per example.

        Per dimension, KL(N(mu, sigma^2) || N(0, 1)) = -0.5 * (1 + log(sigma^2) - mu^2 - sigma^2). Here
        log(sigma^2) is log_var itself and sigma^2 is np.exp(log_var). Add the terms up with np.sum over the
        last axis, so that the result has shape (N,).
        """,
    error_hint="mean and log_var are NumPy arrays of shape (N, L); return one value per row: sum over axis=-1.",
    mistakes=_KL_DIVERGENCE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# vae_loss
# ---------------------------------------------------------------------------------------------
def _sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-logits))


def _bce(images, logits):
    """Binary cross-entropy from logits, per pixel: -x log p - (1 - x) log(1 - p), p = sigmoid(logits)."""
    return np.logaddexp(0.0, logits) - images * logits


def _bce_of_probabilities(images, p):
    # what keras.ops.binary_crossentropy(from_logits=False) does: clip to [1e-7, 1 - 1e-7] in float32
    p = np.clip(np.asarray(p, "float32"), np.float32(1e-7), np.float32(1 - 1e-7))
    return -images * np.log(p) - (1 - images) * np.log(np.float32(1) - p)


def _per_image_kl(mean, log_var):
    return -0.5 * np.sum(_kl_terms(mean, log_var), axis=-1)


def _loss(per_pixel=_bce, over_pixels=np.sum, over_batch=np.mean, kl=_per_image_kl, kl_over_batch=np.mean, sign=1):
    """A (possibly mistaken) negative ELBO: each argument names one step of the reference."""
    def loss(images, logits, mean, log_var):
        per_image = over_pixels(per_pixel(images, logits).reshape(len(images), -1), axis=1)
        return over_batch(per_image) + sign * kl_over_batch(kl(mean, log_var))
    return loss


def _nothing(values):
    return 0.0


def _bce_of_sigmoid_float32(images, logits):
    """The cross-entropy written from the sigmoid's probabilities in float32, -x log p - (1 - x) log(1 - p): exact
    for moderate logits, but p rounds to 1 (or 0) once a logit passes about 17 (or -104), and log(0) is -inf."""
    p = (1 / (1 + np.exp(-np.asarray(logits, "float32")))).astype("float32")
    return -images * np.log(p) - (1 - images) * np.log(np.float32(1) - p)


_SATURATED = ("your loss is not finite on saturated logits (a decoder sure of a pixel gives logits beyond +-17): "
              "the sigmoid rounds to exactly 1 or 0 in float32 and its log is -inf. Compute the cross-entropy from "
              "the logits, keras.ops.binary_crossentropy(images, logits, from_logits=True) (or log(1 + exp(l)) - x l "
              "with np.logaddexp), which never takes the log of a rounded probability.")


_VAE_LOSS_MISTAKES = [
    (_loss(sign=-1),
     "you subtracted the KL: the loss is the negative ELBO, reconstruction + KL, and the KL is never negative."),
    (_loss(over_pixels=np.mean),
     "you averaged the cross-entropy over the pixels: sum it over the pixels (axis=(1, 2, 3)) and average only "
     "over the batch. A per-pixel mean is 784 times too small on MNIST and lets the KL drown the reconstruction."),
    (_loss(kl_over_batch=_nothing),
     "you forgot the KL term: the negative ELBO is the reconstruction term plus the KL of each posterior from "
     "the prior, averaged over the batch."),
    (_loss(over_batch=_nothing),
     "you forgot the reconstruction term: add the binary cross-entropy summed over the pixels."),
    (_loss(per_pixel=lambda images, logits: _bce(images, _sigmoid(logits))),
     "you applied the sigmoid and then a cross-entropy that expects logits (from_logits=True), so the sigmoid "
     "was applied twice: pass the logits themselves with from_logits=True, or the sigmoid's probabilities with "
     "from_logits=False."),
    (_loss(per_pixel=lambda images, logits: _bce_of_probabilities(images, _sigmoid(logits))),
     "with saturated logits (a decoder sure of a pixel) your loss is too small: a cross-entropy of probabilities "
     "(from_logits=False) clips them to [1e-7, 1 - 1e-7], so a pixel the decoder gets confidently wrong costs at most "
     "16.1 nats instead of its logit's size, and gets no gradient. Pass the logits with from_logits=True."),
    (_loss(per_pixel=_bce_of_probabilities),
     "you passed the logits to a cross-entropy that expects probabilities (from_logits=False): the decoder "
     "outputs logits, so use from_logits=True (or apply the sigmoid first)."),
    (_loss(kl_over_batch=np.sum),
     "you summed the KL over the batch: average it over the images, like the reconstruction term, so that both "
     "are nats per image."),
    (_loss(over_batch=np.sum, kl_over_batch=np.sum),
     "you summed over the batch: the loss is an average over the images (nats per image), so take the mean "
     "over axis 0 of each image's reconstruction + KL."),
    (_loss(over_batch=np.sum),
     "you summed the reconstruction term over the batch: average it over the images, like the KL."),
    (_loss(kl=lambda mean, log_var: _per_image_kl(mean, 2 * log_var)),
     "you treated log_var as the log of the standard deviation: it is the log of the variance, so the "
     "variance is exp(log_var) (not exp(2 * log_var)) and the standard deviation exp(log_var / 2)."),
    (_loss(kl=lambda mean, log_var: 2 * _per_image_kl(mean, log_var)),
     "your KL is twice too large: you are missing the factor 1/2 of "
     "-0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (_loss(kl=lambda mean, log_var: _per_image_kl(mean, log_var) / 2),
     "your KL is half what it should be: the 1/2 appears once, -0.5 * sum(1 + log_var - mean**2 - exp(log_var))."),
    (_loss(over_pixels=lambda per_pixel, axis: 784 * np.mean(per_pixel, axis=axis)),
     "you multiplied a per-pixel mean by 784, MNIST's 28 x 28: that is right only for 28 x 28 images; sum over the "
     "pixel axes (1, 2, 3) instead, whatever their size."),
]


def _vae_loss_cases(saturated=True):
    """Grey images with moderate logits (a batch of one among them), then, with ``saturated``, binary pixels with
    the saturated logits of a confident decoder (|logit| up to about 100, some of them confidently wrong)."""
    rng = np.random.default_rng(30)
    for n, side, latent in [(4, 5, 3), (3, 28, 2), (5, 6, 4), (1, 4, 1)]:
        images = rng.uniform(size=(n, side, side, 1)).astype("float32")  # grey values, as in MNIST
        logits = rng.normal(0.0, 2.0, size=(n, side, side, 1)).astype("float32")
        mean = rng.normal(size=(n, latent)).astype("float32")
        log_var = rng.normal(-0.5, 0.7, size=(n, latent)).astype("float32")
        yield images, logits, mean, log_var
    if saturated:
        images = (rng.uniform(size=(3, 7, 7, 1)) < 0.3).astype("float32")
        sure = np.where(images > 0, 1.0, -1.0) * rng.uniform(20.0, 100.0, size=images.shape)  # right, and sure
        wrong = rng.uniform(size=images.shape) < 0.1                                      # a few sure and wrong
        logits = np.where(wrong, -sure, sure).astype("float32")
        yield images, logits, rng.normal(size=(3, 2)).astype("float32"), rng.normal(-1.0, 0.5, (3, 2)).astype("float32")


def _vae_loss_case(images, logits, mean, log_var):
    saturated = " (saturated logits, up to |logit| = 100)" if np.abs(logits).max() > 20 else ""
    return f"With images and logits of shape {images.shape}{saturated} and mean, log_var of shape {mean.shape}: "


def _check_vae_loss(fn):
    for args in _vae_loss_cases():
        got = to_array(call(fn, *args))
        if got.size == 1 and not np.all(np.isfinite(got.astype("float64"))):
            raise Incorrect(_vae_loss_case(*args) + _SATURATED)
        check_number(fn, [args], vae_loss, _VAE_LOSS_MISTAKES, _vae_loss_case)


core.register(
    "vae_loss", reference=vae_loss, checker=_check_vae_loss, lesson=1, shows=(vae.gaussian_kl,),
    trial=_in_a_training_step("loss"),
    hints="""
        The loss is the negative ELBO of one batch: a reconstruction term (how unlikely the images are under
        the decoder's Bernoulli pixels) plus the rate (how far each posterior is from the prior). Both are
        computed per image first, then averaged over the images. Think about which axes you sum over and which
        you average over, and whether the decoder gives you probabilities or logits.

        Per pixel, keras.ops.binary_crossentropy(images, logits, from_logits=True) is the cross-entropy; sum it
        over the pixel axes (1, 2, 3) to get one number per image. The KL per image is the kl_divergence you
        wrote (or vae.gaussian_kl), shape (N,). Return the batch mean of the first plus the batch mean of the
        second: one number.
        """,
    error_hint="images and logits are NumPy arrays of shape (N, H, W, 1), mean and log_var of shape (N, L); "
               "return one number.",
    mistakes=_VAE_LOSS_MISTAKES)


# ---------------------------------------------------------------------------------------------
# vae_kl_nats: a prediction, judged against the test set's KL of the shipped vae-z2
# ---------------------------------------------------------------------------------------------
_KL_FACTOR = 1.5  # a prediction within this factor of the measured KL is right


def _judge_vae_kl(answer, measured):
    """``measured``: ``{"shipped": vae-z2's KL in nats per test image, "demo": the demonstration fit's}``."""
    nats = core.as_number(answer, "5")
    shipped, demo = float(measured["shipped"]), float(measured["demo"])
    narrower = float(np.exp(shipped / 2))
    why = (f"vae-z2 spends {shipped:.2f} nats ({shipped / np.log(2):.1f} bits) per test image on its code, the "
           f"two-epoch demonstration fit {demo:.2f}. Training longer buys reconstruction with information: the "
           f"encoder narrows each posterior to pin its digit down. With the means spread about like the prior's, a "
           f"dimension costs about ln(1 / sigma) nats, so {shipped / 2:.1f} nats per dimension means posteriors about "
           f"{narrower:.0f} times narrower than the prior: some {narrower:.0f} distinguishable places along each axis, "
           f"a few hundred digits' worth of room on the plane, no more.")
    if nats <= 0:
        raise core.Wrong(f"a KL divergence is never negative, and an encoder that carries anything about the image "
                         f"pays more than 0. {why}")
    if nats < demo:
        raise core.Wrong(f"{nats:g} is below the demonstration fit's KL: longer training raises the KL, since the "
                         f"reconstruction term it buys falls by more than the KL costs. {why}")
    if nats > shipped * _KL_FACTOR:
        raise core.Wrong(f"{nats:g} is too high: two dimensions hold little, and every extra nat must pay for itself "
                         f"in reconstruction. {why}")
    if nats < shipped / _KL_FACTOR:
        raise core.Wrong(f"{nats:g} is too low: the KL keeps rising over the whole run. {why}")
    return f"{nats:g} is within a factor {_KL_FACTOR} of the measurement. {why}"


core.register_question(
    "vae_kl_nats", kind="predict", lesson=1, judge=_judge_vae_kl,
    example={"shipped": 6.62, "demo": 2.6},
    hints="""
        The KL term is the price of the code: it grows as the encoder makes each posterior narrower than the
        prior, to say more precisely where its digit sits. Start from the demonstration fit's KL in the figure
        above: does training longer raise it or lower it, and by a lot or a little?

        Per latent dimension, when the means spread about as the prior does, the KL is close to ln(1 / sigma)
        nats, sigma the posterior's standard deviation measured in prior units: a posterior 10 times narrower
        than the prior costs about 2.3 nats. vae-z2 has two dimensions; guess how narrow its posteriors are.

        Think of how many digits could be told apart along one axis: about 1 / sigma. Tens along each axis are
        plausible for a plane that sorts ten classes and their styles; thousands are not, since the decoder
        could not use them. Turn your 1 / sigma into nats (ln) and add the two dimensions.
        """)
