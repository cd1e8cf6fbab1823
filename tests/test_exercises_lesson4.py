"""Lesson 4's checkers: ``rate_distortion_knee`` and ``dead_codes`` accept right answers written other ways
and name each realistic mistake."""

import numpy as np
import pytest
from checking import assert_incorrect, pasted  # tests/checking.py

from vqvae_lessons import exercises, metrics
from vqvae_lessons.exercises import check
from vqvae_lessons.exercises import lesson4 as l4


# -- rate_distortion_knee --------------------------------------------------------------------------
def knee_vectorised(rates, psnrs, min_gain_db, bits_per_doubling=49):
    order = np.argsort(rates)
    r, p = np.asarray(rates)[order], np.asarray(psnrs)[order]
    small = np.diff(p) * bits_per_doubling / np.diff(r) < min_gain_db
    tail = np.flatnonzero(~small)  # the last large step ends at the knee
    return r[tail[-1] + 1] if tail.size else r[0]


def knee_as_list(rates, psnrs, min_gain_db):
    points = sorted(zip(rates.tolist(), psnrs.tolist(), strict=True))
    knee = len(points) - 1
    while knee > 0:
        (r0, p0), (r1, p1) = points[knee - 1], points[knee]
        if (p1 - p0) / ((r1 - r0) / 49) >= min_gain_db:
            break
        knee -= 1
    return points[knee][0]


def test_rate_distortion_knee_alternatives(capsys):
    assert check("rate_distortion_knee", knee_vectorised) is True
    assert check("rate_distortion_knee", knee_as_list) is True
    knee = pasted("rate_distortion_knee")
    assert check("rate_distortion_knee", lambda r, p, x: np.array([knee(r, p, x)])) is True


def test_rate_distortion_knee_mistakes(capsys):
    name = "rate_distortion_knee"
    assert_incorrect(capsys, name, l4._knee_unsorted, "sort the points by rate")
    assert_incorrect(capsys, name, l4._knee_first_small, "first small step", "for good")
    assert_incorrect(capsys, name, l4._knee_largest_gain, "largest gain")
    assert_incorrect(capsys, name, l4._knee_raw_differences, "raw PSNR differences")
    assert_incorrect(capsys, name, l4._knee_per_bit, "gain per bit")
    assert_incorrect(capsys, name, l4._knee_psnr, "the PSNR at the knee")
    assert_incorrect(capsys, name, l4._knee_position, "position of the knee")
    # an unknown mistake still says what was expected, on which points
    out = assert_incorrect(capsys, name, lambda r, p, x: pasted("rate_distortion_knee")(r, p, x) + 1,
                           "expected 294, got 295")
    assert "min_gain_db = 0.95" in out


def test_the_knee_cases_tell_every_mistake_apart(capsys):
    # each mistake meets its own hint first, not an earlier mistake's
    for mistake, mistake_hint in l4._KNEE_MISTAKES:
        assert_incorrect(capsys, "rate_distortion_knee", mistake, mistake_hint)


# -- dead_codes ------------------------------------------------------------------------------------
def dead_by_sets(index_batches, num_codes):
    used = set()
    for batch in index_batches:
        used |= set(np.unique(batch).tolist())
    return sorted(set(range(num_codes)) - used)


def dead_by_concatenation(index_batches, num_codes):
    codes = np.concatenate([np.ravel(b) for b in index_batches])
    return np.setdiff1d(np.arange(num_codes), codes)


def dead_as_set(index_batches, num_codes):
    return set(dead_by_sets(index_batches, num_codes))  # a set: order does not matter


def test_dead_codes_alternatives(capsys):
    for fn in (dead_by_sets, dead_by_concatenation, dead_as_set, pasted("dead_codes")):
        assert check("dead_codes", fn) is True


def test_dead_codes_reference_counts_over_the_whole_dataset():
    batches = [np.array([[0, 1], [1, 3]]), np.array([[5, 5]])]
    assert l4.dead_codes(iter(batches), 7).tolist() == [2, 4, 6]
    assert l4.dead_codes(iter([]), 3).tolist() == [0, 1, 2]
    assert 7 - len(l4.dead_codes(iter(batches), 7)) == metrics.codes_used(np.concatenate([b.ravel() for b in batches]),
                                                                          7)


def test_dead_codes_mistakes(capsys):
    name = "dead_codes"

    def twice(index_batches, num_codes):
        n = sum(1 for _ in index_batches)  # uses the generator up
        counts = np.zeros(num_codes, int)
        for batch in index_batches:
            counts += np.bincount(batch.ravel(), minlength=num_codes)
        return np.flatnonzero(counts == 0) if n else np.flatnonzero(counts == 0)

    assert_incorrect(capsys, name, twice, "read index_batches twice")

    def last_batch(index_batches, num_codes):
        for batch in index_batches:
            counts = np.bincount(batch.ravel(), minlength=num_codes)
        return np.flatnonzero(counts == 0)

    assert_incorrect(capsys, name, last_batch, "last batch only")

    def returns_in_loop(index_batches, num_codes):
        for batch in index_batches:
            return np.flatnonzero(np.bincount(batch.ravel(), minlength=num_codes) == 0)

    assert_incorrect(capsys, name, returns_in_loop, "first batch only")

    def any_batch(index_batches, num_codes):
        dead = set()
        for batch in index_batches:
            dead |= set(range(num_codes)) - set(np.unique(batch).tolist())
        return sorted(dead)

    assert_incorrect(capsys, name, any_batch, "some batch did not use it")

    def counts_of(index_batches, num_codes):
        return sum(np.bincount(b.ravel(), minlength=num_codes) for b in index_batches)

    assert_incorrect(capsys, name, lambda b, k: np.flatnonzero(counts_of(b, k) < 2), "used once as dead")
    assert_incorrect(capsys, name, lambda b, k: np.flatnonzero(counts_of(b, k)), "codes that are used")
    def dead_in(codes):
        return lambda b, k: [c for counts in [counts_of(b, k)] for c in codes(k) if counts[c] == 0]

    assert_incorrect(capsys, name, dead_in(lambda k: range(k - 1)), "num_codes - 1 is missing")
    assert_incorrect(capsys, name, dead_in(lambda k: range(1, k)), "code 0 is missing")

    def no_minlength(index_batches, num_codes):
        codes = np.concatenate([b.ravel() for b in index_batches])
        return np.flatnonzero(np.bincount(codes) == 0)

    assert_incorrect(capsys, name, no_minlength, "minlength=num_codes")
    assert_incorrect(capsys, name, lambda b, k: int(np.sum(counts_of(b, k) == 0)), "how many codes are dead")
    assert_incorrect(capsys, name, lambda b, k: counts_of(b, k) == 0, "mask of K booleans")
    assert_incorrect(capsys, name, lambda b, k: len(b), "raised TypeError", "it has no len()")


@pytest.mark.parametrize("name", ["rate_distortion_knee", "dead_codes"])
def test_lesson4_exercises_belong_to_lesson_4(name):
    assert exercises._EXERCISES[name].lesson == 4
    assert name in exercises.names()
