"""Lesson 3's exercise (the VQ-VAE): ``codebook_perplexity``.

The reference is the package's own :func:`vqvae_lessons.metrics.perplexity`.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from . import core
from .core import _check_number, _indices_case


def codebook_perplexity(indices, num_codes):
    """exp(entropy) of the empirical distribution of the codes in ``indices`` (any shape);
    unused codes contribute 0. Equals num_codes when all codes are used equally, 1 for one code."""
    return metrics.perplexity(indices, num_codes)


def _entropy_nats(indices, num_codes, divide_by=None):
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    probs = counts / (counts.sum() if divide_by is None else divide_by)
    probs = probs[probs > 0]
    return -np.sum(probs * np.log(probs))


def _per_row_perplexity(indices, num_codes):
    rows = np.reshape(indices, (len(indices), -1)) if np.ndim(indices) > 1 else [indices]
    return np.mean([metrics.perplexity(row, num_codes) for row in rows])


def _perplexity_with_zeros(indices, num_codes):
    probs = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
    return np.exp(-np.sum(probs * np.log(probs)))


_CODEBOOK_PERPLEXITY_MISTAKES = [
    (lambda i, k: _entropy_nats(i, k),
     "you returned the entropy: the perplexity is its exponential, exp(entropy)."),
    (lambda i, k: _entropy_nats(i, k) / np.log(2),
     "you returned the entropy in bits: the perplexity is exp(entropy in nats), or 2 ** (entropy in bits)."),
    (lambda i, k: 2 ** _entropy_nats(i, k),
     "you took 2 ** entropy with the entropy in nats (natural log): use exp(entropy); log2 goes with 2 **, ln with "
     "exp."),
    (lambda i, k: np.exp(_entropy_nats(i, k) / np.log(2)),
     "you took exp of an entropy in bits (log2): use the natural log with exp (log2 goes with 2 **)."),
    (lambda i, k: np.exp(-_entropy_nats(i, k)),
     "you got 1 / perplexity: the entropy is -sum(p * log(p)), with a minus sign."),
    (lambda i, k: float(k),
     "you returned num_codes: the perplexity weights codes by how often they are used (it equals num_codes only "
     "when all codes are used equally)."),
    (lambda i, k: float(len(np.unique(i))),
     "you returned the number of distinct codes used: the perplexity weights codes by their frequency (the two "
     "agree only when the used codes are equally frequent)."),
    (lambda i, k: np.exp(_entropy_nats(i, k, divide_by=k)),
     "you divided the counts by num_codes: the probabilities are counts / the number of indices (they sum to 1)."),
    (_per_row_perplexity,
     "you averaged one perplexity per row: compute one distribution over all the indices (flatten them first)."),
    (_perplexity_with_zeros,
     "your result is NaN: unused codes have p = 0 and 0 * log(0) is NaN in floating point; leave them out "
     "(p = p[p > 0]): they contribute 0 to the entropy."),
]


def _codebook_perplexity_cases():
    rng = np.random.default_rng(70)
    yield rng.choice(6, size=(4, 6), p=[0.4, 0.3, 0.2, 0.1, 0.0, 0.0]), 9
    yield rng.choice(5, size=50, p=[0.5, 0.25, 0.15, 0.1, 0.0]), 5
    yield rng.integers(0, 3, size=(2, 3, 5)), 8
    yield np.full((3, 3), 2), 4  # a single code: perplexity 1


def _check_codebook_perplexity(fn):
    _check_number(fn, _codebook_perplexity_cases(), codebook_perplexity, _CODEBOOK_PERPLEXITY_MISTAKES,
                  _indices_case)


core.register(
    "codebook_perplexity", reference=codebook_perplexity, checker=_check_codebook_perplexity, lesson=3,
    shows=(metrics.perplexity, metrics.code_counts),
    hints="""
        Turn the indices into a probability distribution over the num_codes codes (how often each occurs, as a
        share of all the indices), take its entropy, and undo the logarithm: the perplexity is the effective
        number of codes in use. Think about what a code that never occurs should contribute.

        Count each code with np.bincount of the flattened indices (minlength=num_codes) and divide by the number
        of indices to get p. The entropy in nats uses the natural log (np.log) and leaves out the codes with
        p = 0 (0 * log 0 counts as 0); the perplexity is np.exp of the entropy, one number.
        """,
    error_hint="indices is an integer NumPy array of any shape: flatten it (np.ravel) first; return one number.",
    mistakes=_CODEBOOK_PERPLEXITY_MISTAKES)
