"""Lesson 4's exercises (the number and size of the codes): ``rate_distortion_knee`` and ``dead_codes``.

``rate_distortion_knee`` reads the sweep's K line: where its rate-distortion curve bends, the smallest
rate from which on every further doubling of K gains less than a given number of decibels.
``dead_codes`` finds the codes no image of a whole dataset uses, from code maps that arrive in batches;
it adds up :func:`vqvae_lessons.metrics.code_counts` over the batches (a dataset-wide dead-code count
that could live in :mod:`vqvae_lessons.metrics`). One question: ``codebook_budget``, a decision (the sweep's
point with the best test PSNR within a budget of K * D numbers) judged against the sweep's measured results.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from . import core
from .core import Incorrect, call, compare, to_array


def rate_distortion_knee(rates, psnrs, min_gain_db, bits_per_doubling=49):
    """The rate at which a K line's rate-distortion curve bends: ``rates`` (bits per image) and ``psnrs``
    (dB) of its models, in any order; between neighbouring rates the gain per doubling of K is the PSNR
    difference scaled to ``bits_per_doubling`` bits (49 for a 7x7 grid). Returns the smallest rate from
    which on every step to a larger rate gains less than ``min_gain_db`` per doubling (the largest rate
    when even the last step gains that much)."""
    order = np.argsort(rates)
    rates, psnrs = np.asarray(rates, "float64")[order], np.asarray(psnrs, "float64")[order]
    gains = np.diff(psnrs) / np.diff(rates) * bits_per_doubling  # dB per doubling of K, one per step
    knee = len(rates) - 1
    while knee > 0 and gains[knee - 1] < min_gain_db:
        knee -= 1
    return float(rates[knee])


def dead_codes(index_batches, num_codes):
    """The codes that no image of a dataset uses: ``index_batches`` is an iterable (a generator, say) of
    integer code maps ``(n, 7, 7)``, one batch of images each; returns the dead codes' indices ``(n_dead,)``
    in increasing order, among ``0 ... num_codes - 1``."""
    counts = np.zeros(num_codes, dtype="int64")
    for batch in index_batches:  # one pass: a generator can be read only once
        counts += metrics.code_counts(batch, num_codes)
    return np.flatnonzero(counts == 0)


# ---------------------------------------------------------------------------------------------
# rate_distortion_knee
# ---------------------------------------------------------------------------------------------
def _knee_index(gains, min_gain_db):
    knee = len(gains)
    while knee > 0 and gains[knee - 1] < min_gain_db:
        knee -= 1
    return knee


def _sorted(rates, psnrs):
    order = np.argsort(rates)
    return np.asarray(rates, "float64")[order], np.asarray(psnrs, "float64")[order]


def _gains(rates, psnrs, per=49):
    return np.diff(psnrs) / np.diff(rates) * per


def _knee_unsorted(rates, psnrs, x):
    rates, psnrs = np.asarray(rates, "float64"), np.asarray(psnrs, "float64")
    return rates[_knee_index(_gains(rates, psnrs), x)]


def _knee_first_small(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    small = np.flatnonzero(_gains(rates, psnrs) < x)
    return rates[small[0]] if small.size else rates[-1]


def _knee_largest_gain(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return rates[np.argmax(_gains(rates, psnrs))]


def _knee_shifted(rates, psnrs, x, shift):
    rates, psnrs = _sorted(rates, psnrs)
    return rates[int(np.clip(_knee_index(_gains(rates, psnrs), x) + shift, 0, len(rates) - 1))]


def _knee_raw_differences(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return rates[_knee_index(np.diff(psnrs), x)]


def _knee_per_bit(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return rates[_knee_index(_gains(rates, psnrs, per=1), x)]


def _knee_psnr(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return psnrs[_knee_index(_gains(rates, psnrs), x)]


def _knee_position(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return float(_knee_index(_gains(rates, psnrs), x))


def _knee_each_sorted(rates, psnrs, x):
    rates, psnrs = np.sort(np.asarray(rates, "float64")), np.sort(np.asarray(psnrs, "float64"))
    return rates[_knee_index(_gains(rates, psnrs), x)]


def _knee_by_psnr(rates, psnrs, x):
    order = np.argsort(psnrs)
    rates, psnrs = np.asarray(rates, "float64")[order], np.asarray(psnrs, "float64")[order]
    return rates[_knee_index(_gains(rates, psnrs), x)]


def _knee_absolute(rates, psnrs, x):
    rates, psnrs = _sorted(rates, psnrs)
    return rates[_knee_index(np.abs(_gains(rates, psnrs)), x)]


def _or_nan(mistake):
    """A mistake that gives NaN where it cannot run (the argmax of no steps, on a sweep of one point)."""
    def mistaken(*args):
        try:
            return mistake(*args)
        except (ValueError, IndexError):
            return np.nan

    return mistaken


_KNEE_MISTAKES = [(_or_nan(mistake), mistake_hint) for mistake, mistake_hint in [  # each before the one it may match
    (_knee_each_sorted,
     "you sorted the rates and the PSNRs each on its own: that pairs a rate with another model's PSNR as soon as "
     "the curve is not monotone (a noisy step can lose PSNR). Sort both arrays by the same order, np.argsort(rates)."),
    (_knee_by_psnr,
     "you put the points in order of PSNR: on a noisy curve a larger rate can have a lower PSNR, so order the points "
     "by rate (np.argsort(rates)) and apply that order to both arrays."),
    (_knee_unsorted,
     "you took the differences in the order the points came: sort the points by rate first (np.argsort(rates)), "
     "so that each difference is one step to the next larger rate."),
    (_knee_first_small,
     "you returned the start of the first small step: a noisy curve can gain little once and a lot again later; "
     "the knee is where the small gains begin for good, so every step after it must be small (walk back from the "
     "largest rate)."),
    (_knee_largest_gain,
     "you returned where the largest gain starts: the knee is where the gains become small, not where one is "
     "largest."),
    (_knee_raw_differences,
     "you compared raw PSNR differences: where two neighbouring rates are more than one doubling apart, divide the "
     "difference by the number of doublings between them, (rate_b - rate_a) / bits_per_doubling."),
    (_knee_per_bit,
     "you compared a gain per bit with a threshold per doubling of K: multiply the dB per bit by "
     "bits_per_doubling (49)."),
    (lambda r, p, x: _knee_shifted(r, p, x, 1),
     "you returned the rate at the end of the first small step of the tail: the knee is where that step starts."),
    (lambda r, p, x: _knee_shifted(r, p, x, -1),
     "you returned where the last large step starts: the knee is where it ends, the rate after which every step "
     "is small."),
    (_knee_psnr,
     "you returned the PSNR at the knee: return its rate, in bits per image."),
    (_knee_position,
     "you returned the position of the knee among the sorted points: return its rate (rates sorted, at that "
     "position)."),
    (_knee_absolute,
     "you took the size of each gain (abs): a step that loses PSNR gains less than min_gain_db, it is small, not "
     "large; compare the signed gain."),
]]


def _rates(ks):
    return 49 * np.log2(np.asarray(ks, "float64"))


def _knee_cases():
    # (rates, psnrs, min_gain_db): a K line from 4 to 512, shuffled, with a noisy curve (a small gain early on)
    ks, gains = [4, 8, 16, 32, 64, 128, 256, 512], [1.0, 0.9, 1.3, 1.0, 0.75, 0.8, 0.45]
    psnrs = 16.0 + np.concatenate([[0.0], np.cumsum(gains)])
    order = [2, 7, 0, 5, 3, 1, 6, 4]
    yield _rates(ks)[order], psnrs[order], 0.95
    # a sweep that skipped K = 64: the step from 32 to 128 is two doublings
    ks, psnrs = [8, 16, 32, 128, 256], np.array([18.0, 19.0, 19.9, 21.5, 22.0])
    yield _rates(ks), psnrs, 0.85
    # a curve that never bends within the sweep: the largest rate
    yield _rates([16, 32, 64, 128]), np.array([18.0, 19.5, 21.0, 22.2]), 1.0
    # the curve bends right away: the smallest rate
    yield _rates([32, 64, 128, 256, 512])[::-1], np.array([23.0, 22.8, 22.5, 22.1, 21.6]), 0.6
    # a noisy curve that is not monotone: one step loses PSNR (a short training's noise), later steps gain a lot,
    # then the curve flattens; shuffled
    ks, psnrs = [8, 16, 32, 64, 128, 256], np.array([18.0, 19.2, 18.7, 20.0, 20.2, 19.4])
    order = [3, 0, 5, 2, 4, 1]
    yield _rates(ks)[order], psnrs[order], 0.5
    # a sweep of one point, and of two: sizes of 1
    yield _rates([128]), np.array([21.9]), 0.5
    yield _rates([256, 64]), np.array([22.6, 21.2]), 0.5


def _check_rate_distortion_knee(fn):
    for rates, psnrs, min_gain_db in _knee_cases():
        points = [(round(float(r)), round(float(p), 2)) for r, p in zip(rates, psnrs, strict=True)]
        where = f"With the points (rate, PSNR) {points} and min_gain_db = {min_gain_db}: "
        try:
            got = to_array(call(fn, rates.copy(), psnrs.copy(), min_gain_db))
        except Incorrect as verdict:  # say on which points it failed (a sweep of one point has no step)
            raise type(verdict)(where + str(verdict)) from None
        got = got.reshape(()) if got.size == 1 else got
        compare(got, np.asarray(rate_distortion_knee(rates, psnrs, min_gain_db)), (rates, psnrs, min_gain_db),
                 _KNEE_MISTAKES, where=where, symbols="()", kind="number")


core.register(
    "rate_distortion_knee", reference=rate_distortion_knee, checker=_check_rate_distortion_knee, lesson=4,
    hints="""
        Put the points in order of rate, then look at each step from one rate to the next: how many decibels it
        gains for each doubling of K it spans. The knee is not the first step that gains little (noise can make
        one step small), but the point after which every remaining step does: start from the largest rate and
        walk back while the step before you is small.

        One np.argsort of the rates, applied to both arrays, puts the points in order. np.diff of each sorted
        array gives the steps (n - 1 of them); the gain per doubling of a step is its PSNR step divided by its rate
        step, times bits_per_doubling. Then an index that starts at the last point moves down by one while the
        gain of the step that ends at it is below min_gain_db (and it is above 0); the sorted rate at that index,
        one number, is the knee.
        """,
    error_hint="rates and psnrs are 1-D NumPy arrays of the same length (not sorted) and min_gain_db a number; "
               "return one rate, a number.",
    mistakes=_KNEE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# dead_codes
# ---------------------------------------------------------------------------------------------
def _all_counts(batches, k):
    return sum(np.bincount(np.ravel(b), minlength=k) for b in batches)


def _dead_in(batch, k):
    return np.flatnonzero(np.bincount(np.ravel(batch), minlength=k) == 0)


def _dead_in_any_batch(batches, k):
    return np.unique(np.concatenate([_dead_in(b, k) for b in batches]))


def _dead_without_minlength(batches, k):
    return np.flatnonzero(sum(np.bincount(np.ravel(b), minlength=int(max(np.max(b) for b in batches)) + 1)
                              for b in batches) == 0)


def _dead_as_uint8(batches, k):
    return np.flatnonzero(sum(np.bincount(np.ravel(b).astype("uint8"), minlength=k) for b in batches)[:k] == 0)


def _dead_first_maps(batches, k):
    return np.flatnonzero(sum(np.bincount(np.ravel(b[0]), minlength=k) for b in batches) == 0)


def _listed(mistake):
    """A mistake that also takes the batches as a generator (as the learner's function does)."""
    return lambda batches, k: mistake(list(batches), k)


_DEAD_CODES_MISTAKES = [(_listed(mistake), mistake_hint) for mistake, mistake_hint in [
    (lambda b, k: np.arange(k),
     "every code came out dead: did you read index_batches twice? A generator runs out after one pass (a first "
     "loop, list(...) or len(...) uses it up), so a second loop sees no batches. Loop over it once."),
    (lambda b, k: _dead_in(b[-1], k),
     "you kept the dead codes of the last batch only: add up the counts over all batches before you look for "
     "zeros (a code one batch misses may be used in another)."),
    (lambda b, k: _dead_in(b[0], k),
     "you looked at the first batch only (a return inside the loop?): add up the counts over all batches first."),
    (_dead_in_any_batch,
     "you called a code dead when some batch did not use it: a code is dead only if no batch of the whole "
     "dataset uses it, so add up the counts over all batches first."),
    (lambda b, k: np.flatnonzero(_all_counts(b, k) <= 1),
     "you counted codes used once as dead: a dead code is used zero times (count == 0)."),
    (lambda b, k: np.flatnonzero(_all_counts(b, k) > 0),
     "you returned the codes that are used: return the ones that are not (count == 0)."),
    (lambda b, k: np.flatnonzero(_all_counts(b, k)[:-1] == 0),
     "code num_codes - 1 is missing: the codes run from 0 to num_codes - 1 inclusive (range(num_codes))."),
    (lambda b, k: np.flatnonzero(_all_counts(b, k)[1:] == 0) + 1,
     "code 0 is missing: the codes run from 0 to num_codes - 1 (range(num_codes), not range(1, num_codes))."),
    (_dead_without_minlength,
     "the codes above the largest one used are missing: np.bincount stops at the largest value it sees; give it "
     "minlength=num_codes (or count over range(num_codes))."),
    (lambda b, k: float(np.count_nonzero(_all_counts(b, k) == 0)),
     "you returned how many codes are dead: return their indices, in increasing order."),
    (lambda b, k: _all_counts(b, k) == 0,
     "you returned a mask of K booleans: return the indices of the dead codes (np.flatnonzero of the mask)."),
    (_dead_as_uint8,
     "codes above 255 are counted as other codes: a cast to uint8 (one byte) wraps code 290 round to 34. Keep the "
     "code maps' integer type (int32 or int64): large codebooks have more than 256 codes."),
    (_dead_first_maps,
     "you counted the first code map of each batch only: a batch holds n maps (n, 7, 7), and a rare code may occur "
     "in any of them; count every map (flatten the whole batch)."),
]]


def _dead_codes_cases():
    rng = np.random.default_rng(44)

    def batch(n, codes):
        return rng.choice(codes, size=(n, 7, 7))

    # K = 12: code 5 used once, codes 9, 10 and 11 dead; each batch misses codes another one uses
    batches = [batch(2, [1, 2, 3]), batch(2, [1, 2, 4, 6]), batch(1, [0, 1, 7, 8])]
    batches[0][0, 0, 0] = 5
    yield batches, 12
    # K = 8: code 0 and code 3 dead, code 7 used; the last batch is smaller
    yield [batch(4, [1, 2, 7]), batch(4, [4, 5, 6]), batch(3, [2, 6])], 8
    # K = 6: no code dead
    yield [batch(3, [0, 1, 2]), batch(3, [3, 4, 5])], 6
    # K = 300 (codes above 255, which one byte cannot hold): code 7 used only once, in the last map of the middle
    # batch
    batches = [batch(2, [0, 1, 2, 3, 4, 5, 6, 256, 257, 290]), batch(3, np.arange(8, 263)),
               batch(2, np.arange(264, 300))]
    batches[1][-1, 3, 4] = 7
    yield batches, 300
    # sizes of 1: batches of one image, and a codebook of one code (used: no dead code)
    yield [batch(1, [0, 2]), batch(1, [3])], 5
    yield [batch(1, [0])], 1


def _as_indices(value):
    if isinstance(value, (set, frozenset)):  # a set has no order to get wrong
        value = sorted(value)
    array = to_array(value)
    if array.size == 0:  # an empty list has no dtype to get wrong
        return array.astype("int64").reshape(array.shape)
    return array  # the order is as stated: increasing


def _check_dead_codes(fn):
    for batches, num_codes in _dead_codes_cases():
        where = (f"With {len(batches)} batches of shapes {[b.shape for b in batches]} (a generator) and "
                 f"num_codes = {num_codes}: ")
        try:
            got = _as_indices(call(fn, (b.copy() for b in batches), num_codes))  # a generator, as a pipeline gives
        except Incorrect as verdict:
            raise type(verdict)(where + str(verdict)) from None
        if got.ndim > 1:
            raise Incorrect(f"{where}expected a 1-D array of code indices, got shape {got.shape}.")
        want = dead_codes(iter(batches), num_codes)
        if got.dtype.kind not in "iu" and got.shape == want.shape and np.array_equal(got, want):
            raise Incorrect(f"{where}these are the dead codes, but as dtype {got.dtype}: code indices are integers "
                             "(np.flatnonzero gives them as int64).")
        if got.shape == want.shape and got.dtype.kind in "iu" and not np.array_equal(got, want) and np.array_equal(
                np.sort(got), want):
            raise Incorrect(f"{where}these are the dead codes, but not in increasing order: return them sorted "
                             "(np.flatnonzero of the test count == 0 gives them in order).")
        compare(got, want, (batches, num_codes), _DEAD_CODES_MISTAKES,
                 where=where, symbols="(n_dead,)", kind="index")


core.register(
    "dead_codes", reference=dead_codes, checker=_check_dead_codes, lesson=4, shows=(metrics.code_counts,),
    hints="""
        A code is dead when no image of the whole dataset uses it, so one batch cannot tell you: keep one count
        per code, add each batch's counts to it, and look for the codes still at zero at the end. The batches
        may come from a generator, which you can read only once; and the codes run from 0 to num_codes - 1.

        Keep one array of num_codes integer counts, zeros at first. In one loop over the batches, add each
        batch's counts: np.bincount of the flattened batch with minlength num_codes (or metrics.code_counts).
        After the loop, np.flatnonzero of the test "count is 0" gives the dead codes in increasing order.
        """,
    error_hint="index_batches is an iterable (a generator) of integer NumPy arrays (n, 7, 7): loop over it once "
               "(it has no len()); return a 1-D array of code indices.",
    mistakes=_DEAD_CODES_MISTAKES)


# ---------------------------------------------------------------------------------------------
# codebook_budget: a decision, judged against the sweep's measured test PSNRs
# ---------------------------------------------------------------------------------------------
_BUDGET_TOLERANCE_DB = 0.25  # a pick within this of the best admissible point is right (one seed moved a point 0.15 dB)


def _budget_pick(answer):
    """The learner's (K, D): a pair of whole numbers, or a sweep point's name such as "k128-d8"."""
    if isinstance(answer, str):
        parts = answer.lower().removeprefix("k").split("-d")
        answer = tuple(parts) if len(parts) == 2 else answer
    try:
        k, d = (int(str(v)) if isinstance(v, str) else v for v in answer)
    except (TypeError, ValueError):
        raise core.Wrong(f"write your choice as a pair (K, D), e.g. (64, 16), not {answer!r}") from None
    if any(isinstance(v, bool) or not float(v).is_integer() for v in (k, d)):
        raise core.Wrong(f"K and D are whole numbers: write your choice as (K, D), e.g. (64, 16), not {answer!r}")
    return int(k), int(d)


def _judge_codebook_budget(answer, measured):
    """``measured``: ``{"budget": the most numbers K * D the codebook may hold, "rows": the sweep's rows
    (``sweep.table``), dicts with ``group``, ``K``, ``D``, ``rate_bits`` and
    ``test_psnr_db``}``; the grid's points are the choices."""
    k, d = _budget_pick(answer)
    budget = int(measured["budget"])
    points = {(r["K"], r["D"]): r for r in measured["rows"] if r["group"] == "grid"}
    admissible = {pair: r for pair, r in points.items() if pair[0] * pair[1] <= budget}
    best_pair = max(admissible, key=lambda pair: admissible[pair]["test_psnr_db"])
    best = admissible[best_pair]
    listed = ", ".join(f"K = {pk}, D = {pd}: {r['test_psnr_db']:.2f} dB at {r['rate_bits']:.0f} bits"
                       for (pk, pd), r in sorted(admissible.items(), key=lambda item: -item[1]["test_psnr_db"]))
    lesson = ("spends the budget on the number of codes: K sets the rate, 49 log2 K bits per digit, while a longer "
              "code (larger D) adds no bit to what reaches the decoder" if best_pair[1] < 16 else
              "keeps the longer code: in this sweep a shorter code lost more than the extra bits of K = 128 gained")
    why = f"Within {budget:,} numbers the sweep measured {listed}. The best, K = {best_pair[0]}, " \
          f"D = {best_pair[1]}, {lesson}."
    if (k, d) not in points:
        raise core.Wrong(f"K = {k}, D = {d} is not a point of the sweep: pick one of the K line (K = 8 to 512 at "
                         f"D = 16) or of the D line (D = 2 to 64 at K = 128). {why}")
    if k * d > budget:
        raise core.Wrong(f"K = {k}, D = {d} needs {k * d:,} numbers, over the budget of {budget:,}. {why}")
    psnr = points[(k, d)]["test_psnr_db"]
    if psnr < best["test_psnr_db"] - _BUDGET_TOLERANCE_DB:
        raise core.Wrong(f"K = {k}, D = {d} fits ({k * d:,} numbers) but reaches {psnr:.2f} dB, "
                         f"{best['test_psnr_db'] - psnr:.2f} dB below the best choice. {why}")
    return (f"K = {k}, D = {d} fits ({k * d:,} numbers) and reaches {psnr:.2f} dB, within "
            f"{_BUDGET_TOLERANCE_DB} dB of the best choice (about what another seed moves a point). {why}")


core.register_question(
    "codebook_budget", kind="decide", lesson=4, judge=_judge_codebook_budget,
    example={"budget": 1024, "rows": [
        {"group": "grid", "K": k, "D": d, "rate_bits": 49 * np.log2(k), "test_psnr_db": psnr}
        for k, d, psnr in [(8, 16, 18.0), (16, 16, 19.15), (32, 16, 20.29), (64, 16, 21.23), (128, 16, 21.87),
                           (256, 16, 22.59), (512, 16, 23.33), (128, 2, 21.04), (128, 4, 21.69), (128, 8, 21.88),
                           (128, 32, 21.55), (128, 64, 20.36)]]},
    hints="""
        The budget limits the product K x D, so you trade one against the other: more codes, or longer codes.
        Ask which of the two changes what reaches the decoder: the rate of section 1 depends on one of them only.

        List the sweep's points that fit: the K line's points at D = 16 up to K x 16 = 1,024, and the D line's
        points at K = 128 up to 128 x D = 1,024. Compare the best of each: the largest K that fits at D = 16, with
        its rate, against K = 128 with a short code, with its rate. Which rate is higher, and how much does a
        shorter code cost, if lesson 2's 2-D codebooks could already cover their points well?
        """)
