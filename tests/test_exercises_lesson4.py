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


# -- the edge cases the course meets (#28, part 4) ---------------------------------------------------
def test_rate_distortion_knee_on_a_curve_that_is_not_monotone(capsys):
    """A noisy K line whose PSNR falls at a step: the points must stay paired and be ordered by rate, and a step
    that loses PSNR is small."""
    name = "rate_distortion_knee"
    rates, psnrs, x = list(l4._knee_cases())[4]
    order = np.argsort(rates)
    assert (np.diff(psnrs[order]) < 0).any()  # the case is not monotone
    assert_incorrect(capsys, name, lambda r, p, x: l4._knee_index and np.sort(r)[
        l4._knee_index(np.diff(np.sort(p)) / np.diff(np.sort(r)) * 49, x)], "each on its own")
    assert_incorrect(capsys, name, l4._knee_by_psnr, "in order of PSNR")
    assert_incorrect(capsys, name, l4._knee_absolute, "abs")
    assert l4.rate_distortion_knee(rates, psnrs, x) == 49 * 6  # K = 64, after the last large step


def test_rate_distortion_knee_on_sweeps_of_one_and_two_points(capsys):
    assert l4.rate_distortion_knee(np.array([343.0]), np.array([21.9]), 0.5) == 343.0
    assert l4.rate_distortion_knee(np.array([392.0, 294.0]), np.array([22.6, 21.2]), 0.5) == 392.0

    def last_gain(rates, psnrs, min_gain_db, bits_per_doubling=49):  # fails on one point: no step at all
        order = np.argsort(rates)
        r, p = np.asarray(rates)[order], np.asarray(psnrs)[order]
        gains = np.diff(p) / np.diff(r) * bits_per_doubling
        knee = len(r) - 1
        while gains[knee - 1] < min_gain_db and knee > 0:
            knee -= 1
        return r[knee]

    assert_incorrect(capsys, "rate_distortion_knee", last_gain, "raised IndexError", "[(343, 21.9)]")
    assert check("rate_distortion_knee", pasted("rate_distortion_knee")) is True


def test_rate_distortion_knee_does_not_mutate_the_callers_arrays(capsys):
    def sorts_in_place(rates, psnrs, min_gain_db, bits_per_doubling=49):
        order = np.argsort(rates)
        psnrs[:] = psnrs[order]
        rates.sort()
        return pasted("rate_distortion_knee")(rates, psnrs, min_gain_db, bits_per_doubling)

    assert check("rate_distortion_knee", sorts_in_place) is True  # the checker hands over copies


def test_dead_codes_edge_cases(capsys):
    name = "dead_codes"

    def one_byte(index_batches, num_codes):
        counts = np.zeros(num_codes, int)
        for batch in index_batches:
            counts += np.bincount(batch.ravel().astype(np.uint8), minlength=num_codes)[:num_codes]
        return np.flatnonzero(counts == 0)

    assert_incorrect(capsys, name, one_byte, "codes above 255", "uint8")

    def first_map(index_batches, num_codes):
        counts = np.zeros(num_codes, int)
        for batch in index_batches:
            counts += np.bincount(batch[0].ravel(), minlength=num_codes)
        return np.flatnonzero(counts == 0)

    assert_incorrect(capsys, name, first_map, "first code map of each batch")
    # order as stated: increasing; a set (no order) is fine, a reversed or shuffled array is not
    assert_incorrect(capsys, name, lambda b, k: pasted("dead_codes")(b, k)[::-1], "not in increasing order")
    assert_incorrect(capsys, name, lambda b, k: np.roll(pasted("dead_codes")(b, k), 1), "not in increasing order")
    # dtype as stated: integer indices
    assert_incorrect(capsys, name, lambda b, k: pasted("dead_codes")(b, k).astype(float), "code indices are integers")
    # sizes of 1: batches of one map, a codebook of one code
    cases = list(l4._dead_codes_cases())
    assert any(all(len(b) == 1 for b in batches) and k == 1 for batches, k in cases)
    assert any(k > 256 and max(b.max() for b in batches) > 255 for batches, k in cases)
    assert l4.dead_codes(iter([np.zeros((1, 7, 7), int)]), 1).tolist() == []
    assert check(name, pasted(name)) is True


def test_the_dead_code_cases_tell_every_mistake_apart(capsys):
    for mistake, mistake_hint in l4._DEAD_CODES_MISTAKES:
        assert_incorrect(capsys, "dead_codes", mistake, mistake_hint)


# -- codebook_budget: a decision -------------------------------------------------------------------
def test_codebook_budget_is_judged_against_the_sweep(capsys):
    from vqvae_lessons import sweep

    rows = sweep.table(sweep.load_sweep())
    measured = {"budget": 1024, "rows": rows}  # as lesson 4 asks it
    assert exercises._QUESTIONS["codebook_budget"].kind == "decide"
    points = {(r["K"], r["D"]): r["test_psnr_db"] for r in rows if r["group"] == "grid"}
    fits = {pair: psnr for pair, psnr in points.items() if pair[0] * pair[1] <= 1024}
    best = max(fits, key=fits.get)
    for answer in (best, list(best), f"k{best[0]}-d{best[1]}"):
        assert exercises.check_answer("codebook_budget", answer, measured) is True
        out = capsys.readouterr().out
        assert out.startswith("Correct") and f"{fits[best]:.2f} dB" in out, out
    far = min(fits, key=fits.get)
    for answer, phrase in [(far, "below the best choice"), ((128, 16), "over the budget"),
                           ((100, 8), "not a point of the sweep"), ((True, 8), "whole numbers"),
                           ("a word", "pair (K, D)")]:
        assert exercises.check_answer("codebook_budget", answer, measured) is False
        out = capsys.readouterr().out
        assert out.startswith("Incorrect") and phrase in out, out
    # a larger budget admits the model card's point
    assert exercises.check_answer("codebook_budget", (128, 16), {"budget": 2048, "rows": rows}) is True
    assert "Within 2,048 numbers" in capsys.readouterr().out
    # the example (the shipped figures) agrees with the shipped sweep
    example = exercises._QUESTIONS["codebook_budget"].example
    assert example["budget"] == 1024 and {(r["K"], r["D"]) for r in example["rows"]} == set(points)
    for r in example["rows"]:
        assert abs(r["test_psnr_db"] - points[(r["K"], r["D"])]) < 0.01
