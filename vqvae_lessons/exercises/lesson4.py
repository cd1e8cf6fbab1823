"""Lesson 4's exercises (the number and size of the codes): ``rate_bits_per_image`` and
``codebook_usage``.

Both references are one-line adapters of the package's own :mod:`vqvae_lessons.metrics`:
:func:`~vqvae_lessons.metrics.bits_per_image` and :func:`~vqvae_lessons.metrics.codes_used`.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from . import core
from .core import _check_number, _indices_case


def rate_bits_per_image(grid_shape, num_codes):
    """The rate of a grid of codes: each of the ``prod(grid_shape)`` cells holds one of ``num_codes``
    codes, ``log2(num_codes)`` bits, so an image costs ``prod(grid_shape) * log2(num_codes)`` bits
    (343 for a 7x7 grid of K = 128 codes)."""
    return metrics.bits_per_image(num_codes, grid_shape)


def codebook_usage(indices, num_codes):
    """The fraction of the ``num_codes`` codes that occur at least once in ``indices`` (any shape):
    1.0 when every code is used, ``1 / num_codes`` when one code is."""
    return metrics.codes_used(indices, num_codes) / num_codes


# ---------------------------------------------------------------------------------------------
# rate_bits_per_image
# ---------------------------------------------------------------------------------------------
def _cells(grid_shape):
    return float(np.prod(grid_shape))


_RATE_BITS_MISTAKES = [
    (lambda g, k: _cells(g) * np.log(k),
     "you used the natural log, which counts nats: bits need log2 (np.log2), and 1 nat = 1 / ln 2 bits."),
    (lambda g, k: _cells(g) * np.log10(k),
     "you used log10, which counts decimal digits: bits need log2 (np.log2)."),
    (lambda g, k: float(np.log2(k)),
     "that is the rate of one code: an image has one code per cell of the grid, so multiply by the number of "
     "cells, prod(grid_shape)."),
    (lambda g, k: float(np.sum(g) * np.log2(k)),
     "you added the grid's sides (7 + 7): the number of cells is their product, 7 * 7 = 49 (np.prod)."),
    (lambda g, k: float(g[0] * np.log2(k)),
     "you counted one row of the grid: the number of cells is the product of all its sides (np.prod(grid_shape))."),
    (lambda g, k: _cells(g) * k,
     "you multiplied by the number of codes: one code among K is worth log2(K) bits, not K."),
    (lambda g, k: _cells(g) * np.ceil(np.log2(k)),
     "you rounded log2(K) up: that is the length of a fixed-length binary code for one index, but the rate here "
     "is the information, log2(K) bits exactly (the two agree when K is a power of 2)."),
    (lambda g, k: float(np.log2(_cells(g) * k)),
     "you took log2 of cells * K: the bits of the cells add up, log2(K ** cells) = cells * log2(K)."),
    (lambda g, k: _cells(g) * np.log2(k - 1),
     "you used log2(K - 1), from the largest index: there are K possible codes, so each holds log2(K) bits."),
]


def _rate_bits_cases():
    yield (7, 7), 128
    yield (7, 7), 100
    yield (4, 6), 10
    yield (8, 8), 2
    yield (7, 7), 512
    yield (3, 5), 1  # a codebook of one code tells nothing: 0 bits


def _check_rate_bits_per_image(fn):
    _check_number(fn, _rate_bits_cases(), rate_bits_per_image, _RATE_BITS_MISTAKES,
                  lambda grid_shape, num_codes: f"With grid_shape = {grid_shape} and num_codes = {num_codes}: ")


core.register(
    "rate_bits_per_image", reference=rate_bits_per_image, checker=_check_rate_bits_per_image, lesson=4,
    shows=(metrics.bits_per_image,),
    hints="""
        Count how many codes make up one image, and how much information one code carries when it can be any of
        num_codes codes: a choice among K equally likely options is worth a number of bits that grows like the
        logarithm of K. The image's rate is the total over its codes.

        The grid has np.prod(grid_shape) cells, one code in each; one code among num_codes is worth
        log2(num_codes) bits, a base-2 logarithm (np.log2 or math.log2, not np.log, which counts nats). Return
        one number.
        """,
    error_hint="grid_shape is a tuple of ints such as (7, 7) and num_codes an int; return one number (np.prod and "
               "np.log2 help).",
    mistakes=_RATE_BITS_MISTAKES)


# ---------------------------------------------------------------------------------------------
# codebook_usage
# ---------------------------------------------------------------------------------------------
def _rows_usage(indices, num_codes):
    rows = np.reshape(indices, (len(indices), -1)) if np.ndim(indices) > 1 else [indices]
    return float(np.mean([codebook_usage(row, num_codes) for row in rows]))


_CODEBOOK_USAGE_MISTAKES = [
    (lambda i, k: float(len(np.unique(i))),
     "you returned the number of codes used: the usage is that number divided by num_codes, a fraction."),
    (lambda i, k: len(np.unique(i)) / np.size(i),
     "you divided by the number of indices: the usage is the share of the codebook, codes used / num_codes."),
    (lambda i, k: 1.0 - len(np.unique(i)) / k,
     "you returned the share of unused (dead) codes: the usage is the share of codes used at least once."),
    (lambda i, k: (np.max(i) + 1) / k,
     "you assumed the codes used are 0 to max(indices): codes in between can be unused; count the distinct "
     "values (np.unique, or the nonzero counts of np.bincount)."),
    (_rows_usage,
     "you averaged a usage per row: a code counts as used if it occurs anywhere, so take all indices together "
     "(flatten them first)."),
    (lambda i, k: metrics.perplexity(i, k) / k,
     "you divided the perplexity by num_codes: the perplexity weights codes by how often they occur, while the "
     "usage counts every code that occurs at least once, however rarely."),
]


def _codebook_usage_cases():
    rng = np.random.default_rng(40)
    yield rng.choice([0, 2, 3, 5, 9], size=(3, 7, 7), p=[0.5, 0.2, 0.15, 0.1, 0.05]), 16
    yield rng.choice([1, 4, 6], size=20, p=[0.8, 0.15, 0.05]), 8
    yield rng.integers(0, 12, size=(2, 4, 4)), 12
    yield np.full((2, 3), 3), 4  # a single code: 1 / num_codes


def _check_codebook_usage(fn):
    _check_number(fn, _codebook_usage_cases(), codebook_usage, _CODEBOOK_USAGE_MISTAKES, _indices_case)


core.register(
    "codebook_usage", reference=codebook_usage, checker=_check_codebook_usage, lesson=4,
    shows=(metrics.codes_used, metrics.code_counts),
    hints="""
        The usage asks which codes occur at all, not how often: count the distinct codes among all the indices,
        and express that count as a share of the whole codebook.

        np.unique of the flattened indices lists the codes that occur (so do the nonzero entries of np.bincount
        with minlength=num_codes); their number, divided by num_codes, is the usage: a fraction between
        1 / num_codes and 1.
        """,
    error_hint="indices is an integer NumPy array of any shape: flatten it (np.ravel) first; return one number.",
    mistakes=_CODEBOOK_USAGE_MISTAKES)
