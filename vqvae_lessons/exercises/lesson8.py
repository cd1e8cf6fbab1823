"""Lesson 8's exercises (transformer priors): ``causal_attention`` and ``maskgit_keep``.

``causal_attention`` is scaled dot-product attention with a causal mask; its reference calls the
package's own :func:`~vqvae_lessons.priors.attention.attend` with
:func:`~vqvae_lessons.priors.attention.causal_attention_mask`, the two functions every transformer
block of the course runs. ``maskgit_keep`` is the choice one step of MaskGIT's parallel decoding
makes: which positions hold a code after the step. The package's decoder
(:class:`~vqvae_lessons.priors.decoding._ParallelDecoder`) makes it inside one compiled step with
``top_k``; the reference writes the same choice in a few lines of NumPy (the tests check that the two
agree on a prior's real decoding steps).

The learner's two functions become the model's pieces (:func:`core.use`): ``causal_attention`` the
attention of every block of an autoregressive transformer prior (``ARTransformerPrior(pieces=...)``, or
``prior.with_pieces(...)`` for the shipped one), ``causal_attention(queries, keys, values)`` with the heads
in the leading axes; ``maskgit_keep`` the choice of MaskGIT's decoder at every step
(``MaskGITPrior.with_pieces({"maskgit_keep": fn})``, then ``sampling.sample``). Each exercise's trial runs
the learner's function that way in a tiny prior and compares what comes out with the package's: the same
log-probabilities, the same maps. Both pieces run outside compiled code there, so an answer in NumPy works.
"""

from __future__ import annotations

import random

import numpy as np
from keras import ops

from ..priors import attention
from . import core
from .core import _call, _compare, _Incorrect, _to_array

# ---------------------------------------------------------------------------------------------
# the trials: each piece run as the lesson runs it, in a tiny prior
# ---------------------------------------------------------------------------------------------
_TINY = {}  # architecture: a tiny prior, and what the package's pieces give with it


def _tiny(architecture):
    """A tiny untrained prior of ``architecture`` over 8 codes (the same weights every time), with its maps."""
    if architecture not in _TINY:
        from ..priors.transformer import ARTransformerPrior, MaskGITPrior

        random.seed(8)
        cls = ARTransformerPrior if architecture == "transformer" else MaskGITPrior
        prior = cls(8, channels=8, num_layers=1, heads=2, mlp_ratio=1)
        _TINY[architecture] = prior, np.random.default_rng(8).integers(0, 8, (3, 7, 7)).astype("int32")
    return _TINY[architecture]


def _in_a_transformer(fn):
    """``causal_attention``'s trial: the log-probabilities of a tiny autoregressive transformer prior whose
    blocks attend with ``fn`` (queries, keys and values ``(N, heads, T, d)``), as the package's."""
    prior, maps = _tiny("transformer")  # core.use runs a trial with the notebook's random state kept
    got = prior.with_pieces({"causal_attention": fn}).log_probs(maps)
    want = prior.log_probs(maps)
    if not np.allclose(got, want, atol=1e-4):
        by = np.nanmax(np.abs(got - want)) if np.isfinite(got).any() else np.nan
        raise ValueError("in a transformer prior, whose heads come as (N, heads, T, d) arrays, it gives other "
                         f"log-probabilities than the package's attention (by up to {by:.3g}): "
                         "make it work for any number of leading axes (np.swapaxes(k, -1, -2), the mask over the "
                         "last two axes)")


def _in_maskgits_decoder(fn):
    """``maskgit_keep``'s trial: four maps drawn by a tiny MaskGIT's decoder in 4 steps, choosing with ``fn``,
    as the package's decoder draws them from the same seed."""
    from ..priors import sampling

    prior, _ = _tiny("maskgit")  # core.use runs a trial with the notebook's random state kept
    got = sampling.sample(prior.with_pieces({"maskgit_keep": fn}), 4, steps=4, seed=0)
    want = sampling.sample(prior, 4, steps=4, seed=0)
    if not np.array_equal(got, want):
        raise ValueError(f"in MaskGIT's decoder the maps come out other than the package's decoder draws them (at "
                         f"{np.mean(got != want):.0%} of the positions)")


# ---------------------------------------------------------------------------------------------
# causal_attention: softmax(q k^T / sqrt(d) + causal mask) v
# ---------------------------------------------------------------------------------------------
def causal_attention(q, k, v):
    """Scaled dot-product attention with a causal mask: queries ``q`` and keys ``k`` ``(..., T, d)``,
    values ``v`` ``(..., T, d_v)`` -> ``(..., T, d_v)``; token ``t`` attends to tokens ``0..t`` only."""
    q, k, v = (ops.convert_to_tensor(x, "float32") for x in (q, k, v))
    lead, (length, d_v) = tuple(q.shape[:-2]), tuple(v.shape[-2:])
    heads = [ops.reshape(x, (-1, 1, length, x.shape[-1])) for x in (q, k, v)]  # (sequences, 1 head, T, channels)
    out = attention.attend(*heads, attention.causal_attention_mask(length))
    return ops.reshape(out, (*lead, length, d_v))


def _softmax(x, axis=-1):
    x = x - np.max(np.where(np.isfinite(x), x, -np.inf), axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _attention_variant(scale="sqrt_d", mask="causal", fill=-1e9, axis=-1, after=False, swap=False,
                       weights_only=False):
    """A mistaken attention: another scale, mask, softmax axis or order, in NumPy."""
    def attend(q, k, v):
        q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
        t, d = q.shape[-2], q.shape[-1]
        scores = (k @ np.swapaxes(q, -1, -2)) if swap else (q @ np.swapaxes(k, -1, -2))
        scores = scores / {"sqrt_d": np.sqrt(d), "none": 1.0, "d": d, "sqrt_t": np.sqrt(t),
                           "sqrt_dv": np.sqrt(v.shape[-1])}[scale]
        visible = {"causal": np.tril(np.ones((t, t), bool)), "inverted": np.triu(np.ones((t, t), bool)),
                   "strict": np.tril(np.ones((t, t), bool), -1), "none": np.ones((t, t), bool)}[mask]
        if after:  # the mask applied to the weights, not to the scores
            weights = _softmax(scores, axis) * visible
        else:
            weights = _softmax(np.where(visible, scores, fill), axis)
        return weights if weights_only else weights @ v
    return attend


_ATTENTION_MISTAKES = list(zip([
    _attention_variant(scale="none"), _attention_variant(scale="d"), _attention_variant(scale="sqrt_t"),
    _attention_variant(scale="sqrt_dv"), _attention_variant(mask="none"), _attention_variant(mask="inverted"),
    _attention_variant(mask="strict"), _attention_variant(mask="strict", fill=-np.inf),
    _attention_variant(fill=0.0), _attention_variant(after=True), _attention_variant(axis=-2),
    _attention_variant(swap=True), _attention_variant(weights_only=True)], [
    "the scores are not scaled: divide q k^T by sqrt(d), d the queries' and keys' channels, so that the softmax "
    "does not saturate as d grows.",
    "you divided by d: divide the scores by sqrt(d), the square root of the queries' channels.",
    "you divided by sqrt(T), the number of tokens: divide by sqrt(d), d the channels of q and k (the last axis).",
    "you divided by the square root of the values' channels: divide by sqrt(d), d the channels of q and k.",
    "there is no mask: every token sees every other, the future included. Hide the keys after each query (the "
    "upper triangle of the scores) before the softmax.",
    "the mask is the wrong way round: token t must see tokens 0..t (the lower triangle, diagonal included), not "
    "the tokens after it.",
    "the mask hides the diagonal: token t may see itself, tokens 0..t (np.tril with k=0, not k=-1); the first "
    "token then has nothing to attend to.",
    "the mask hides the diagonal: token t may see itself, tokens 0..t (np.tril with k=0, not k=-1); the first "
    "token then has nothing to attend to (a row of -inf gives NaN).",
    "the hidden scores are set to 0, and exp(0) = 1 still gives them weight: set them to -inf (or a large "
    "negative number such as -1e9) before the softmax.",
    "the mask is applied after the softmax: the weights of each query no longer sum to 1. Mask the scores "
    "(-inf where hidden) and then take the softmax.",
    "the softmax runs over the queries (axis -2): each query's weights over the keys must sum to 1, so take the "
    "softmax over the last axis, the keys.",
    "the scores are k q^T, keys against queries: row t of the scores must hold query t's dot products with "
    "every key, q k^T.",
    "you returned the attention weights (..., T, T): multiply them by the values, weights @ v.",
], strict=True))


def _check_causal_attention(fn):
    rng = np.random.default_rng(80)
    for shape, d_v in [((5, 3), 4), ((2, 6, 4), 2), ((7, 8), 5)]:
        *lead, t, d = shape
        q, k = (rng.normal(size=shape).astype("float32") * 1.5 for _ in range(2))
        v = rng.normal(size=(*lead, t, d_v)).astype("float32")
        where = f"With q and k of shape {shape} and v of shape {v.shape}: "
        got = _to_array(_call(fn, q, k, v))
        want = np.asarray(ops.convert_to_numpy(causal_attention(q, k, v)))
        symbols = "(B, T, d_v)" if lead else "(T, d_v)"
        _compare(got, want, (q, k, v), _ATTENTION_MISTAKES, where=where, symbols=symbols)


core.register(
    "causal_attention", reference=causal_attention, checker=_check_causal_attention, lesson=8,
    trial=_in_a_transformer, trial_advice="; the prior's blocks call it on (N, heads, T, d) arrays: transpose only "
                                          "the last two axes of k, and keep any leading axes",
    shows=(attention.attend, attention.causal_attention_mask),
    hints="""
        Every query is compared with every key by a dot product, scaled so that the numbers stay moderate
        however many channels there are. Then each query turns its scores into weights that sum to 1, after
        the keys it may not see (the later tokens) have been made impossible to choose, and takes the
        weighted average of the values.

        The scores are one matrix product of the queries with the keys transposed on their last two axes,
        divided by the square root of d: shape (..., T, T), row t for query t. The visible keys form the lower
        triangle, diagonal included (np.tril of a T by T block of ones); np.where puts minus infinity elsewhere.
        A softmax over the last axis (minus each row's maximum before the exponential, for stability) gives the
        weights, and one more matrix product with the values gives (..., T, d_v).
        """,
    error_hint="q and k are NumPy arrays (T, d) or (B, T, d) and v (T, d_v) or (B, T, d_v): transpose the last two "
               "axes of k with np.swapaxes(k, -1, -2) (k.T would reverse every axis of a batch).",
    mistakes=_ATTENTION_MISTAKES)


# ---------------------------------------------------------------------------------------------
# maskgit_keep: one step of MaskGIT's decoding, which positions hold a code after it
# ---------------------------------------------------------------------------------------------
def maskgit_keep(confidence, fixed, count):
    """Which positions hold a code after one step of MaskGIT's decoding, ``(B, T)`` booleans: those
    already ``fixed`` ``(B, T)`` (given, or kept at an earlier step), and the most confident of the others,
    as many as it takes for map ``b`` to have ``count[b]`` fixed positions (``count`` ``(B,)`` ints).
    ``confidence`` ``(B, T)``: the score of each position's prediction (only the free positions' are read)."""
    confidence, fixed = np.asarray(confidence, "float64"), np.asarray(fixed, bool)
    free_first = np.where(fixed, -np.inf, confidence)  # a fixed position is never chosen again
    ranks = np.argsort(np.argsort(-free_first, axis=1, kind="stable"), axis=1)  # 0: the surest free position
    new = np.asarray(count).reshape(-1, 1) - fixed.sum(axis=1, keepdims=True)  # how many to fix now
    return fixed | (ranks < new)


def _top(scores, n):
    """``(B, T)`` booleans: the ``n[b]`` highest ``scores[b]`` of each row (none where ``n[b] <= 0``)."""
    ranks = np.argsort(np.argsort(-np.asarray(scores, "float64"), axis=1, kind="stable"), axis=1)
    return ranks < np.asarray(n).reshape(-1, 1)


def _free_scores(confidence, fixed):
    return np.where(fixed, -np.inf, confidence)


def _new(fixed, count):
    return np.asarray(count) - np.asarray(fixed, bool).sum(axis=1)


_KEEP_MISTAKES = [
    (lambda c, f, n: f | _top(_free_scores(c, f), n),
     "you kept count new positions: count is how many positions hold a code after the step, the fixed ones "
     "included, so keep count - (fixed positions of the map) new ones."),
    (lambda c, f, n: f | _top(c, _new(f, n)),
     "the fixed positions took part in the choice: a fixed position already holds its code, so choose the new "
     "ones among the free positions only (give the fixed ones a confidence of -inf)."),
    (lambda c, f, n: _top(c, n),
     "you chose count positions over the whole map and dropped some fixed ones: a position once fixed stays "
     "fixed, and the new ones are chosen among the free positions."),
    (lambda c, f, n: _top(_free_scores(c, f), _new(f, n)),
     "you returned only the positions kept at this step: return every position that holds a code after it, "
     "the fixed ones too (fixed | new)."),
    (lambda c, f, n: f | _top(np.where(f, -np.inf, -np.asarray(c)), _new(f, n)),
     "you kept the least confident positions: MaskGIT keeps the predictions it is surest of, the highest "
     "confidence."),
    (lambda c, f, n: f | _top(_free_scores(c, f), _new(f, n) + 1),
     "one position too many: ranks count from 0, so the k surest are those of rank 0 to k - 1 (rank < k)."),
    (lambda c, f, n: f | _top(_free_scores(c, f), _new(f, n) - 1),
     "one position too few: keep exactly count - (fixed positions) new ones, ranks 0 to k - 1."),
    (lambda c, f, n: f | _top(_free_scores(c, f), np.asarray(n) - np.asarray(f, bool).sum()),
     "you counted the fixed positions of the whole batch: count each map's own, fixed.sum(axis=1)."),
    (lambda c, f, n: np.asarray(f, bool),
     "nothing new is kept: after the step each map b must hold count[b] codes, the fixed ones and the "
     "surest free ones."),
]


def _keep_cases(rng):
    """``(where, (confidence, fixed, count))``: maps with different numbers of fixed positions, each fixed
    position among its map's most confident ones (so that a choice among all positions shows)."""
    cases = []
    for t, fixed_counts, new in [(12, [1, 2, 3], [4, 3, 5]), (49, [0, 7, 20, 41], [5, 1, 9, 8]), (6, [0], [6])]:
        confidence = rng.normal(size=(len(new), t)).astype("float32")
        fixed = np.zeros(confidence.shape, bool)
        for row, how_many in enumerate(fixed_counts):
            surest = np.argsort(-confidence[row])[:min(2 * how_many, t)]
            fixed[row, rng.choice(surest, size=how_many, replace=False)] = True
        count = np.asarray(fixed_counts) + np.asarray(new)
        cases.append((f"With confidence of shape (B, T) = {confidence.shape}, {fixed_counts} positions fixed and "
                      f"count = {count.tolist()}: ", (confidence, fixed, count)))
    return cases


def _check_maskgit_keep(fn):
    for where, args in _keep_cases(np.random.default_rng(81)):
        got = _to_array(_call(fn, *args))
        want = maskgit_keep(*args)
        if got.shape == want.shape and got.dtype.kind == "f" and not np.isin(got, (0.0, 1.0)).all():
            raise _Incorrect(f"{where}expected True (or 1) where a position holds a code and False (or 0) "
                             "elsewhere, got other numbers: return a boolean mask, not the confidences.")
        _compare(got, want, args, _KEEP_MISTAKES, where=where, symbols="(B, T)", kind="mask")


core.register(
    "maskgit_keep", reference=maskgit_keep, checker=_check_maskgit_keep, lesson=8, trial=_in_maskgits_decoder,
    trial_advice="; the decoder calls it on (B, 49) confidences and fixed positions and a (B,) count",
    hints="""
        Two kinds of positions: those already holding a code, which keep it whatever their confidence, and
        the free ones, among which you choose. Work out for each map how many free positions to add so that
        it ends the step with count of them, and take the free positions with the highest confidence.

        Per map, the number of positions to add is count minus the fixed positions it has (a sum over axis 1).
        Give the fixed positions a confidence of minus infinity (np.where) so that no choice falls on them, then
        rank each row from the surest down: an argsort of the negated scores, and an argsort of that, gives each
        position its rank (0 for the surest). The result is a boolean (B, T): the fixed positions, or those whose
        rank is below their map's number to add.
        """,
    error_hint="confidence is a float array (B, T), fixed a boolean array (B, T) and count an int array (B,): "
               "return a boolean array (B, T).",
    mistakes=_KEEP_MISTAKES)
