"""Numbers that say how well a model does, over a whole dataset (never per batch).

* Reconstruction: :func:`mse` and :func:`psnr_db` on the [0, 1] pixel scale.
* Codebooks: :func:`code_counts`, :func:`perplexity` (exp of the entropy of the
  codes' empirical distribution: K when all K codes are used equally, 1 when one
  code is used) and :func:`codes_used`.
* Information: :func:`nats_to_bits`, :func:`bits_to_nats`, :func:`bits_per_image`.
* One call per model: :func:`evaluate_vqvae` and :func:`evaluate_vae`.
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def mse(images, reconstructions):
    """Mean squared error over all pixels of two arrays of the same shape, in [0, 1]."""
    images, reconstructions = np.asarray(images, "float64"), np.asarray(reconstructions, "float64")
    if images.shape != reconstructions.shape:
        raise ValueError(f"Shapes differ: images {images.shape}, reconstructions {reconstructions.shape}.")
    return float(np.mean((images - reconstructions) ** 2))


def psnr_db(mean_squared_error, peak=1.0):
    """Peak signal-to-noise ratio in decibels, ``10 log10(peak^2 / MSE)``, of a dataset's MSE."""
    return float(10.0 * math.log10(peak**2 / mean_squared_error)) if mean_squared_error > 0 else math.inf


def code_counts(indices, num_codes):
    """How often each of ``num_codes`` codes occurs in ``indices`` (any shape): ``(num_codes,)``."""
    indices = np.asarray(indices).ravel()
    if indices.size and (indices.min() < 0 or indices.max() >= num_codes):
        raise ValueError(f"Code indices must lie in [0, {num_codes}), got {indices.min()} to {indices.max()}.")
    return np.bincount(indices, minlength=num_codes)


def perplexity(indices, num_codes):
    """exp(entropy) of the empirical code distribution over all of ``indices``."""
    probs = code_counts(indices, num_codes) / max(np.asarray(indices).size, 1)
    probs = probs[probs > 0]
    return float(np.exp(-np.sum(probs * np.log(probs))))


def codes_used(indices, num_codes):
    """Number of distinct codes that occur in ``indices``."""
    return int(np.count_nonzero(code_counts(indices, num_codes)))


def nats_to_bits(nats):
    """Nats to bits (divide by ln 2)."""
    return nats / LN2


def bits_to_nats(bits):
    """Bits to nats (multiply by ln 2)."""
    return bits * LN2


def bits_per_image(num_codes, grid=(7, 7)):
    """Bits a grid of codes holds: ``cells * log2(num_codes)`` (343 for 7x7 codes of K=128)."""
    return float(np.prod(grid) * math.log2(num_codes))


def evaluate_vqvae(model, images, batch_size=1000):
    """Test-set figures of a :class:`~vqvae_lessons.vqvae.VQVAE` on images ``(N, 28, 28[, 1])`` in [0, 1].

    Returns a dict: ``test_mse`` and ``test_psnr_db`` of the clipped reconstructions,
    ``test_perplexity``, ``codes_used`` and ``codebook_usage`` (fraction of K) of
    the codes of all images, and ``bits_per_image``. Residual VQ's indices ``(N, 7, 7, S)``
    count each stage's K codes as codes of their own (S K in all) and hold S times the bits.
    """
    indices = model.encode(images, batch_size)
    error = mse(np.asarray(images).reshape(-1, 28, 28, 1), model.decode(indices, batch_size))
    stages = indices.shape[-1] if indices.ndim == 4 else 1
    codes = indices + model.num_embeddings * np.arange(stages) if stages > 1 else indices
    used = codes_used(codes, model.num_embeddings * stages)
    return {
        "test_mse": error,
        "test_psnr_db": psnr_db(error),
        "test_perplexity": perplexity(codes, model.num_embeddings * stages),
        "codes_used": used,
        "codebook_usage": used / (model.num_embeddings * stages),
        "bits_per_image": stages * bits_per_image(model.num_embeddings),
    }


def evaluate_vae(model, images, batch_size=1000, seed=0):
    """Test-set figures of a :class:`~vqvae_lessons.vae.VAE` on images in [0, 1].

    Returns a dict: ``test_mse`` and ``test_psnr_db`` of the reconstructions from
    the posterior means, and the negative ELBO (one seeded sample of z per image)
    in nats per image with its two parts, ``test_reconstruction_nats`` and
    ``test_kl_nats``.
    """
    from .vae import gaussian_kl

    images = np.asarray(images, "float32").reshape(-1, 28, 28, 1)
    mean, log_var = model.encode(images, batch_size)
    eps = np.random.default_rng(seed).standard_normal(mean.shape).astype("float32")
    logits = model.decode_logits(mean + np.exp(0.5 * log_var) * eps, batch_size).astype("float64")
    # binary cross-entropy with logits, summed over pixels: max(l, 0) - l x + log(1 + exp(-|l|))
    bce = np.maximum(logits, 0) - logits * images + np.log1p(np.exp(-np.abs(logits)))
    reconstruction = float(np.mean(np.sum(bce, axis=(1, 2, 3))))
    kl = float(np.mean(np.asarray(gaussian_kl(mean.astype("float64"), log_var.astype("float64")))))
    error = mse(images, model.decode(mean, batch_size))
    return {
        "test_mse": error,
        "test_psnr_db": psnr_db(error),
        "test_neg_elbo_nats": reconstruction + kl,
        "test_reconstruction_nats": reconstruction,
        "test_kl_nats": kl,
    }


def evaluate_prior(prior, codes, labels=None, train_codes=None, batch_size=1000):
    """Test-set negative log-likelihood of a prior (a :class:`~vqvae_lessons.priors.pixelcnn.PixelCNN` or an
    autoregressive transformer) on maps of codes ``(N, H, W)`` (with their class labels for a conditional prior).

    Returns a dict: ``test_nll_nats_per_code``, ``test_nll_bits_per_code`` and
    ``test_nll_bits_per_image`` (the bits an ideal coder would spend per map), and two
    baselines in bits per code: ``uniform_bits_per_code`` (log2 K, every code equally
    likely) and, given ``train_codes``, ``unigram_bits_per_code`` (each code as often as
    in the training maps, add-one smoothed, ignoring its neighbours). A MaskGIT prior has no
    likelihood of a whole map: for it ``test_masked_nats_per_code`` and ``test_masked_bits_per_code``
    (the cross-entropy at randomly hidden positions, which it trains on) stand in the NLL's place.
    """
    if not hasattr(prior, "log_probs"):  # MaskGIT: no exact likelihood to report
        return _masked_prior_results(prior, codes, labels, train_codes, batch_size)
    log_probs = prior.log_probs(codes, labels, batch_size)
    nats = float(-np.mean(log_probs))
    cells = int(np.prod(log_probs.shape[1:]))
    results = {
        "test_nll_nats_per_code": nats,
        "test_nll_bits_per_code": nats_to_bits(nats),
        "test_nll_bits_per_image": nats_to_bits(nats) * cells,
    }
    return results | _baselines(prior, codes, train_codes)


def _baselines(prior, codes, train_codes):
    """The uniform baseline, and the unigram one of ``train_codes`` when given, in bits per code."""
    results = {"uniform_bits_per_code": math.log2(prior.num_codes)}
    if train_codes is not None:
        frequencies = code_counts(train_codes, prior.num_codes) + 1.0
        log2_probs = np.log2(frequencies / frequencies.sum())
        results["unigram_bits_per_code"] = float(-np.mean(log2_probs[np.asarray(codes)]))
    return results


def _masked_prior_results(prior, codes, labels, train_codes, batch_size):
    """What :func:`evaluate_prior` reports of a MaskGIT prior, which gives no likelihood of a whole map:
    ``test_masked_nats_per_code``, the cross-entropy at randomly hidden positions it trains on
    (:meth:`~vqvae_lessons.priors.transformer.MaskGITPrior.masked_cross_entropy`, seeded; not an NLL, and
    not comparable with one), and the baselines."""
    nats = prior.masked_cross_entropy(codes, labels, seed=0, batch_size=batch_size)
    return {"test_masked_nats_per_code": nats, "test_masked_bits_per_code": nats_to_bits(nats),
            **_baselines(prior, codes, train_codes)}
