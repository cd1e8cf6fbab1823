"""Lesson 8's exercises (transformer priors): ``causal_attention``, ``attention_dot_products`` (derive: what the
key/value cache saves), ``cached_attention_step`` (one step of sampling with the cache), ``maskgit_training_loss``
(MaskGIT's training step: hide, predict, the loss on the hidden positions) and ``maskgit_keep``.

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
The lesson runs the other three in NumPy cells: ``attention_dot_products(49)`` beside the measured seconds of the
cached sampler, ``cached_attention_step`` over the tiny example's four tokens (the causal weights again, one token
at a time), and ``maskgit_training_loss`` with the shipped MaskGIT as ``predict`` on test maps.

The checkers test the edges the course meets: a batch of one, a single token or position, an empty cache (the first
step), large scores and saturated logits (a softmax that does not subtract the maximum overflows), a decoding step
that fixes no code (the schedule's floor gives such steps), ties among the confidences (any tied position is right),
maps of one batch with their own counts and their own random numbers.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
from keras import ops

from ..priors import attention
from . import core
from .core import Incorrect, call, compare, to_array

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


def _call_in(where, fn, *args):
    """Call the learner's function; if it raises, say in which case (an empty cache, a batch of one ...)."""
    try:
        return call(fn, *args)
    except core.LearnerError as error:
        raise core.LearnerError(where + str(error)) from None


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
                       weights_only=False, stable=True):
    """A mistaken attention: another scale, mask, softmax axis or order, or (``stable=False``) a softmax that
    does not subtract the maximum first (in float32, as a learner's NumPy code on float32 inputs runs), in NumPy."""
    def attend(q, k, v):
        if not stable:
            q, k, v = (np.asarray(x, "float32") for x in (q, k, v))
            t = q.shape[-2]
            scores = q @ np.swapaxes(k, -1, -2) / np.float32(np.sqrt(q.shape[-1]))
            e = np.exp(np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf))
            return e / e.sum(axis=-1, keepdims=True) @ v
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


_UNSTABLE = ("with large scores (q and k of a trained model can give scores in the hundreds or thousands) your "
             "result holds inf or NaN: the exponential overflows. Subtract each row's maximum score before the "
             "exponential (softmax(x) = softmax(x - max x)), as a stable softmax does.")

_ATTENTION_MISTAKES = list(zip([
    _attention_variant(scale="none"), _attention_variant(scale="d"), _attention_variant(scale="sqrt_t"),
    _attention_variant(scale="sqrt_dv"), _attention_variant(mask="none"), _attention_variant(mask="inverted"),
    _attention_variant(mask="strict"), _attention_variant(mask="strict", fill=-np.inf),
    _attention_variant(fill=0.0), _attention_variant(after=True), _attention_variant(axis=-2),
    _attention_variant(swap=True), _attention_variant(weights_only=True), _attention_variant(stable=False)], [
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
    _UNSTABLE,
], strict=True))


# The cases: typical ones, then the edges the course meets: a batch of one sequence, a single token of a single
# channel (the first position of a map: it sees only itself, so its output is its own value), and large scores
# (a trained model's queries and keys, which overflow a softmax that does not subtract the maximum).
_ATTENTION_CASES = [((5, 3), 4, 1.5), ((2, 6, 4), 2, 1.5), ((7, 8), 5, 1.5), ((1, 5, 3), 2, 1.5),
                    ((1, 1, 1), 1, 1.5), ((2, 6, 4), 3, 40.0)]


def _check_causal_attention(fn):
    rng = np.random.default_rng(80)
    for shape, d_v, spread in _ATTENTION_CASES:
        *lead, t, d = shape
        q, k = (rng.normal(size=shape).astype("float32") * spread for _ in range(2))
        v = rng.normal(size=(*lead, t, d_v)).astype("float32")
        where = f"With q and k of shape {shape} and v of shape {v.shape}" + (
            ", and large scores (q and k scaled by 40)" if spread > 10 else "") + ": "
        with warnings.catch_warnings():  # Keras warns of a softmax over one key (T = 1): that case is meant
            warnings.simplefilter("ignore", UserWarning)
            got = to_array(_call_in(where, fn, q, k, v))
            want = np.asarray(ops.convert_to_numpy(causal_attention(q, k, v)))
        if spread > 10 and got.shape == want.shape and not np.isfinite(got.astype("float64")).all():
            raise Incorrect(where + _UNSTABLE)
        symbols = "(B, T, d_v)" if lead else "(T, d_v)"
        compare(got, want, (q, k, v), _ATTENTION_MISTAKES, where=where, symbols=symbols)


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
# attention_dot_products (derive): what the key/value cache saves
# ---------------------------------------------------------------------------------------------
def attention_dot_products(T):
    """The query-key dot products one attention head of one block computes to draw a sequence of ``T`` tokens,
    ``(without_cache, with_cache)``: without the cache each of the ``T`` steps runs the whole sequence of ``T``
    tokens (every query against every key, the masked scores included); with it, step ``t`` (``t = 1 ... T``)
    runs the new token's query against the ``t`` keys in the cache, its own just appended."""
    steps = np.arange(1, int(T) + 1)  # step t draws token t
    without_cache = len(steps) * (int(T) * int(T))  # each step: T queries, each against T keys
    with_cache = int(np.sum(steps))  # step t: one query against the t cached keys, its own included
    return without_cache, with_cache


_DOT_PRODUCTS_MISTAKES = [
    (lambda T: (T**3, T * (T - 1) // 2),
     "with the cache, step t attends over t keys: the t - 1 earlier ones and its own, appended before it "
     "attends (the first token sees itself), so the steps cost 1 + 2 + ... + T."),
    (lambda T: (T**3, T * T),
     "with the cache, step t scores its one query against the keys cached so far, t of them (its own "
     "included), not against all T: the later tokens are not drawn yet."),
    (lambda T: (T**3, T),
     "with the cache there is one query a step, but it is scored against every key in the cache, t of them at "
     "step t, so the steps cost 1 + 2 + ... + T, not one each."),
    (lambda T: (T * T, T * (T + 1) // 2),
     "without the cache the whole sequence runs through the block at every one of the T steps: T times the "
     "T x T scores of one forward pass."),
    (lambda T: (T * T * (T + 1) // 2, T * (T + 1) // 2),
     "without the cache the block computes every score of its T x T matrix, the masked ones too (the mask "
     "is applied to the scores once they are computed): T x T a step, not only the visible T(T + 1)/2."),
    (lambda T: (T * (T + 1) // 2, T**3),
     "the two numbers are the wrong way round: return (without the cache, with the cache)."),
]


def _check_attention_dot_products(fn):
    for T in (1, 2, 7, 49):
        got = to_array(_call_in(f"With T = {T}: ", fn, T))
        want = np.asarray(attention_dot_products(T), "float64")
        if got.shape == (2,) and got.dtype.kind == "f" and not np.allclose(got, np.round(got)):
            raise Incorrect(f"With T = {T}: a count is a whole number, got {got.tolist()}.")
        compare(got, want, (T,), _DOT_PRODUCTS_MISTAKES, where=f"With T = {T}: ",
                 symbols="(without_cache, with_cache)", kind="number")


core.register(
    "attention_dot_products", reference=attention_dot_products, checker=_check_attention_dot_products, lesson=8,
    kind="derive",
    hints="""
        Count step by step. Without the cache, every step repeats the same full forward pass, so count one pass
        and multiply. With the cache, ask at each step how many tokens the new query is compared with: it grows
        by one a step, and the new token counts itself.

        Without the cache a pass scores T queries against T keys, and there are T passes: a cube. With the cache
        step t makes t dot products, so the total is the sum of the whole numbers from 1 to T (Gauss's formula,
        or a Python sum over a range). Return the two counts as a tuple of ints.
        """,
    error_hint="T is a whole number (the tokens of a sequence): return a tuple of two whole numbers, (without the "
               "cache, with the cache).",
    mistakes=_DOT_PRODUCTS_MISTAKES)


# ---------------------------------------------------------------------------------------------
# cached_attention_step: one step of sampling with a key/value cache
# ---------------------------------------------------------------------------------------------
def cached_attention_step(q, k, v, cache_k, cache_v):
    """One step of attention with a key/value cache, for ``B`` sequences: the new token's query ``q`` and key
    ``k`` ``(B, d)`` and value ``v`` ``(B, d_v)``; the keys ``cache_k`` ``(B, t, d)`` and values ``cache_v``
    ``(B, t, d_v)`` of the ``t`` tokens before it. Appends the new key and value to the cache and attends over
    it: returns ``(output (B, d_v), keys (B, t + 1, d), values (B, t + 1, d_v))``."""
    q, k, v = (np.asarray(x, "float64") for x in (q, k, v))
    keys = np.concatenate([np.asarray(cache_k, "float64"), k[:, None]], axis=1)  # the new token's key last
    values = np.concatenate([np.asarray(cache_v, "float64"), v[:, None]], axis=1)
    scores = np.einsum("bd,btd->bt", q, keys) / np.sqrt(q.shape[-1])  # no mask: the cache holds the past only
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))  # minus the maximum: no overflow
    weights = weights / weights.sum(axis=1, keepdims=True)
    return np.einsum("bt,btv->bv", weights, values), keys, values


def _cache_variant(order="append", scale="sqrt_d", axis=1, stable=True, update=True, before=False,
                   outputs="out_first"):
    """A mistaken cache step, in NumPy: never raises (an empty cache attended before appending gives NaN)."""
    def step(q, k, v, cache_k, cache_v):
        dtype = "float64" if stable else "float32"
        q, k, v, cache_k, cache_v = (np.asarray(x, dtype) for x in (q, k, v, cache_k, cache_v))
        pieces = [(cache_k, k[:, None]), (cache_v, v[:, None])]
        keys, values = (np.concatenate(p if order == "append" else p[::-1], axis=1) for p in pieces)
        seen_k, seen_v = (cache_k, cache_v) if before else (keys, values)
        if seen_k.shape[1] == 0:
            out = np.full((len(q), v.shape[-1]), np.nan)
        else:
            scores = np.einsum("bd,btd->bt", q, seen_k) / {"sqrt_d": np.sqrt(q.shape[-1]), "none": 1.0,
                                                          "sqrt_t": np.sqrt(seen_k.shape[1])}[scale]
            if stable:
                weights = np.exp(scores - scores.max(axis=axis, keepdims=True))
            else:
                weights = np.exp(scores.astype(dtype))
            weights = weights / weights.sum(axis=axis, keepdims=True)
            out = np.einsum("bt,btv->bv", weights, seen_v)
        if not update:
            keys, values = cache_k, cache_v
        return (out, keys, values) if outputs == "out_first" else (keys, values, out)
    return step


_CACHE_MISTAKES = [
    (_cache_variant(before=True),
     "the new token attended over the cache before its own key and value were appended: a token sees itself "
     "(the causal mask keeps the diagonal), so append first, then attend over all t + 1."),
    (_cache_variant(update=False),
     "you returned the cache as it came in: return the keys and values with this step's appended, (B, t + 1, d) "
     "and (B, t + 1, d_v), so that the next step sees this token."),
    (_cache_variant(order="prepend"),
     "the new key and value went to the front of the cache: append them at the end (axis 1), so that position "
     "t of the cache is token t; the output is the same, but the cache is out of order."),
    (_cache_variant(scale="none"),
     "the scores are not scaled: divide q . k by sqrt(d), d the channels of the query, as in Exercise 8.1."),
    (_cache_variant(scale="sqrt_t"),
     "you divided by the square root of the number of cached tokens: divide by sqrt(d), d the channels of the "
     "query and keys (the last axis)."),
    (_cache_variant(axis=0),
     "the softmax ran over the batch (axis 0): each sequence's weights over its own cached keys must sum to 1, "
     "so take it over axis 1, the cache."),
    (_cache_variant(outputs="out_last"),
     "the outputs come in another order: return (output, keys, values), the output first."),
    (_cache_variant(stable=False), _UNSTABLE),
]


def _cache_cases(rng):
    """``(where, args, large)``: typical steps, then the edges: single channels, the first step (an empty cache)
    of a batch of one, and the last step of a 7x7 map with large scores."""
    cases = []
    for b, t, d, d_v, spread in [(3, 4, 5, 2, 1.5), (2, 3, 1, 1, 1.5), (1, 0, 4, 3, 1.5), (2, 48, 8, 6, 40.0)]:
        q, k = (rng.normal(size=(b, d)).astype("float32") * spread for _ in range(2))
        v = rng.normal(size=(b, d_v)).astype("float32")
        cache_k = rng.normal(size=(b, t, d)).astype("float32") * spread
        cache_v = rng.normal(size=(b, t, d_v)).astype("float32")
        where = (f"With B = {b} sequences, t = {t} cached tokens" + (" (the first step: an empty cache)" if t == 0
                 else "") + f", d = {d}, d_v = {d_v}" + (", and large scores (q and k scaled by 40)" if spread > 10
                                                         else "") + ": ")
        cases.append((where, (q, k, v, cache_k, cache_v), spread > 10))
    return cases


def _check_cached_attention_step(fn):
    parts = [("output", "(B, d_v)"), ("keys", "(B, t + 1, d)"), ("values", "(B, t + 1, d_v)")]
    for where, args, large in _cache_cases(np.random.default_rng(83)):
        with warnings.catch_warnings():  # Keras warns of a softmax over one key (the first step): that case is meant
            warnings.simplefilter("ignore", UserWarning)
            got = _call_in(where, fn, *args)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Incorrect(f"{where}return three arrays, (output, keys, values): the step's output and the cache "
                             f"with its key and value appended, got a {type(got).__name__}"
                             + (f" of {len(got)}" if isinstance(got, (tuple, list)) else "") + ".")
        got = [to_array(g) for g in got]
        want = cached_attention_step(*args)
        if all(g.dtype.kind == "f" and core.close(g, w) for g, w in zip(got, want, strict=True)):
            continue
        for mistake, mistake_hint in _CACHE_MISTAKES:
            with np.errstate(all="ignore"):
                theirs = [to_array(m) for m in mistake(*args)]
            if all(core.close(g, m, equal_nan=True) for g, m in zip(got, theirs, strict=True)):
                raise Incorrect(where + mistake_hint)
        if large and got[0].shape == want[0].shape and not np.isfinite(got[0].astype("float64")).all():
            raise Incorrect(where + _UNSTABLE)
        for (part, symbols), g, w in zip(parts, got, want, strict=True):
            compare(g, w, args, [], where=f"{where}the {part}: ", symbols=symbols)


core.register(
    "cached_attention_step", reference=cached_attention_step, checker=_check_cached_attention_step, lesson=8,
    hints="""
        The new token needs the keys and values of every token up to itself, and nothing after it (those are
        not drawn yet), which is exactly what the cache holds once this step's own key and value join it. So
        first grow the cache by one token, then attend as in Exercise 8.1, for one query; no mask is needed.

        Give the new key and value a token axis of length 1 (k[:, None]) and concatenate them at the end of the
        caches along axis 1: (B, t + 1, d) and (B, t + 1, d_v). The scores are one dot product of each sequence's
        query with each of its t + 1 keys, (B, t + 1) (np.einsum, or a batched matrix product), divided by
        sqrt(d); a softmax over axis 1, minus each row's maximum first, gives the weights, and their weighted sum
        of the values the output, (B, d_v). Return the output and both grown caches, in that order.
        """,
    error_hint="q and k are float arrays (B, d), v (B, d_v), cache_k (B, t, d) and cache_v (B, t, d_v), with t = 0 "
               "at the first step: return (output (B, d_v), keys (B, t + 1, d), values (B, t + 1, d_v)).",
    mistakes=_CACHE_MISTAKES)


# ---------------------------------------------------------------------------------------------
# maskgit_training_loss: MaskGIT's training step (hide, predict, the loss on the hidden positions)
# ---------------------------------------------------------------------------------------------
def maskgit_training_loss(codes, r, noise, predict):
    """MaskGIT's training step on ``B`` maps of ``T`` codes, ``codes`` ``(B, T)`` ints: map ``b`` hides
    ``ceil(T cos(pi r[b] / 2))`` of its positions (at least one), those where its ``noise[b]`` ``(T,)`` is
    smallest (``r`` ``(B,)`` and ``noise`` ``(B, T)`` uniform in [0, 1): the game's random numbers); ``predict``
    reads the maps with ``-1`` (the [MASK]) at the hidden positions and returns logits ``(B, T, K)``. Returns the
    cross-entropy in nats, averaged over every hidden position of the batch (the visible ones add nothing)."""
    codes = np.asarray(codes)
    T = codes.shape[1]
    count = np.clip(np.ceil(T * np.cos(np.pi * np.asarray(r, "float64") / 2)), 1, T)  # per map
    ranks = np.argsort(np.argsort(noise, axis=1), axis=1)  # 0 where the noise is smallest
    hidden = ranks < count[:, None]
    logits = np.asarray(predict(np.where(hidden, -1, codes)), "float64")
    log_p = logits - logits.max(axis=-1, keepdims=True)  # a stable log-softmax over the K codes
    log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(log_p, codes[..., None], axis=-1)[..., 0]  # (B, T), nats
    return float(nll[hidden].mean())


def _loss_variant(share="cos", rounding="ceil", smallest=True, one_r=False, one_noise=False, hide=True, mask_value=-1,
                  average="hidden", stable=True, unit="nats"):
    """A mistaken training step, in NumPy (never raises: a loss over no position is NaN)."""
    def loss(codes, r, noise, predict):
        codes, r = np.asarray(codes), np.asarray(r, "float64")
        T = codes.shape[1]
        r = np.full_like(r, r[0]) if one_r else r
        noise = np.broadcast_to(np.asarray(noise)[:1], np.shape(noise)) if one_noise else noise
        fraction = {"cos": np.cos(np.pi * r / 2), "sin": np.sin(np.pi * r / 2), "r": r}[share]
        count = np.clip({"ceil": np.ceil, "floor": np.floor}[rounding](T * fraction), 1, T)
        ranks = np.argsort(np.argsort(noise if smallest else -np.asarray(noise), axis=1), axis=1)
        hidden = ranks < count[:, None]
        logits = np.asarray(predict(np.where(hidden, mask_value, codes) if hide else codes), "float64")
        if stable:
            log_p = logits - logits.max(axis=-1, keepdims=True)
            log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        else:
            e = np.exp(logits.astype("float32"))
            log_p = np.log(e / e.sum(axis=-1, keepdims=True))
        nll = -np.take_along_axis(log_p, codes[..., None], axis=-1)[..., 0] / (np.log(2) if unit == "bits" else 1)
        if average == "all":
            return float(nll.mean())
        if average == "sum":
            return float(nll[hidden].sum())
        if average == "per_map":
            return float(np.mean([row[mask].mean() for row, mask in zip(nll, hidden, strict=True)]))
        return float(nll[hidden].mean()) if hidden.any() else float("nan")
    return loss


_LOSS_MISTAKES = [
    (_loss_variant(average="all"),
     "the loss counts every position: MaskGIT learns only from the hidden ones (a visible code is in the input, "
     "so predicting it teaches nothing). Average the cross-entropy over the hidden positions only."),
    (_loss_variant(hide=False),
     "predict saw the codes it is asked for: replace the hidden positions by -1 (the [MASK]) in the maps you "
     "give predict, then score its logits at those positions."),
    (_loss_variant(mask_value=0),
     "the hidden positions were set to 0, which is a real code (e_0): the [MASK] is -1, so that predict can "
     "tell a hidden position from a visible 0."),
    (_loss_variant(rounding="floor"),
     "you rounded T cos(pi r / 2) down: MaskGIT rounds it up (ceil), so a map hides at least one position."),
    (_loss_variant(share="sin"),
     "the share hidden is cos(pi r / 2), from all of the map (r = 0) to almost none (r near 1), not sin."),
    (_loss_variant(share="r"),
     "the share hidden is cos(pi r / 2), MaskGIT's cosine schedule, not r itself: most maps hide more than "
     "half of their positions."),
    (_loss_variant(smallest=False),
     "you hid the positions of the largest noise: hide those where the noise is smallest (rank 0 for the "
     "smallest, argsort of the argsort), as the statement says, so that the answer is reproducible."),
    (_loss_variant(one_r=True),
     "every map used the first map's r: each map draws its own r[b], so maps in a batch hide different "
     "numbers of positions."),
    (_loss_variant(one_noise=True),
     "every map used the first map's noise, so the maps of a batch hide the same places: rank each map's own "
     "noise[b] (along axis 1), so that each hides its own random positions."),
    (_loss_variant(average="per_map"),
     "you averaged each map's hidden positions, then the maps: average over every hidden position of the batch "
     "at once (sum of their cross-entropies / their number), so a map that hides more counts more."),
    (_loss_variant(average="sum"),
     "you summed the cross-entropies: return their mean over the hidden positions, nats per hidden code."),
    (_loss_variant(unit="bits"),
     "the loss is in bits: return it in nats (the natural log), as the training loss is."),
    (_loss_variant(stable=False),
     "with large logits (a confident model) your loss is inf or NaN: exp overflows. Compute the log-softmax "
     "stably: subtract each row's maximum logit before the exponential (or use a logsumexp)."),
]


class _Predictor:
    """The checker's stand-in for MaskGIT's network: logits ``(B, T, K)`` that depend on which codes are visible
    (the whole map's and each position's own), scaled by ``scale`` (large: saturated logits); refuses inputs
    other than ``(B, T)`` codes in ``[-1, K)``."""

    def __init__(self, rng, T, K, scale):
        self.T, self.K, self.scale = T, K, scale
        self.bias = rng.normal(size=(T, K))
        self.context = rng.normal(size=(T, K + 1, K)) / np.sqrt(T)  # row 0: the [MASK]
        self.own = rng.normal(size=(T, K + 1, K))

    def __call__(self, visible):
        visible = np.asarray(ops.convert_to_numpy(visible))
        if visible.ndim != 2 or visible.shape[1] != self.T:
            raise ValueError(f"predict reads maps (B, T) = (B, {self.T}), got shape {visible.shape}")
        if visible.dtype.kind == "f" and not np.all(visible == np.round(visible)):
            raise ValueError("predict reads whole codes, and -1 where a code is hidden")
        visible = visible.astype("int64")
        if visible.min() < -1 or visible.max() >= self.K:
            raise ValueError(f"predict reads codes in [0, {self.K}) and -1 where a code is hidden, got values from "
                             f"{visible.min()} to {visible.max()}")
        tokens = np.eye(self.K + 1)[visible + 1]  # (B, T, K + 1)
        context = np.einsum("bsk,skj->bj", tokens, self.context)
        own = np.einsum("btk,tkj->btj", tokens, self.own)
        return (self.bias[None] + context[:, None] + own) * self.scale


def _loss_cases(rng):
    """``(where, (codes, r, noise, predict), large)``: typical batches, then the edges: one map, maps of one
    position (always hidden), r near 0 (all hidden) and near 1 (one hidden) in one batch, saturated logits."""
    cases = []
    for b, T, K, scale, r in [(4, 12, 6, 1.0, None), (6, 49, 8, 1.0, None), (1, 9, 5, 1.0, None),
                              (3, 1, 4, 1.0, None), (3, 49, 8, 1.0, [0.001, 0.999, 0.5]),
                              (3, 16, 6, 300.0, None)]:
        r = rng.random(b) if r is None else np.asarray(r)
        codes = rng.integers(0, K, (b, T)).astype("int32")
        where = (f"With codes of shape (B, T) = {(b, T)}, K = {K}, r = {np.round(r, 3).tolist()}"
                 + (", and saturated logits (predict's logits in the hundreds)" if scale > 10 else "") + ": ")
        cases.append((where, (codes, r.astype("float32"), rng.random((b, T)).astype("float32"),
                              _Predictor(rng, T, K, scale)), scale > 10))
    return cases


def _check_maskgit_training_loss(fn):
    for where, args, large in _loss_cases(np.random.default_rng(84)):
        got = to_array(_call_in(where, fn, *args))
        got = got.reshape(()) if got.size == 1 else got
        want = np.asarray(maskgit_training_loss(*args))
        if large and got.shape == () and not np.isfinite(float(got)):
            raise Incorrect(where + _LOSS_MISTAKES[-1][1])
        compare(got, want, args, _LOSS_MISTAKES, where=where, symbols="()", kind="number")


core.register(
    "maskgit_training_loss", reference=maskgit_training_loss, checker=_check_maskgit_training_loss, lesson=8,
    hints="""
        Three moves. Decide, for each map on its own, how many positions to hide from its own r, and which: the
        positions of its smallest noise. Show predict the maps with those positions replaced by the [MASK]. Then
        score its logits only where something was hidden: what the model could see teaches it nothing.

        The count per map is the ceiling of T times the cosine of pi r / 2 (np.ceil, np.cos), clipped to
        [1, T], a (B,) array. Rank each row of the noise (an argsort of the argsort along axis 1, 0 for the
        smallest); a position is hidden where its rank is below its map's count, a (B, T) boolean. np.where
        puts -1 there for predict. A stable log-softmax of the (B, T, K) logits (minus the maximum, then minus
        the log of the sum of exponentials) and np.take_along_axis at the true codes give each position's
        cross-entropy; average it over the hidden positions (boolean indexing) and return one float.
        """,
    error_hint="codes is an int array (B, T), r a float array (B,), noise a float array (B, T) and predict a function "
               "of a (B, T) int array (-1 where hidden) that returns logits (B, T, K): return one number.",
    mistakes=_LOSS_MISTAKES)


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
    (lambda c, f, n: f | _top(_free_scores(c, f), np.maximum(_new(f, n), 1)),
     "a step may fix no new code: when a map already holds count[b] codes (the schedule's floor gives such "
     "steps), keep count[b] - (its fixed positions) = 0 new ones, not at least one."),
    (lambda c, f, n: f | (np.argsort(-_free_scores(c, f), axis=1, kind="stable") < _new(f, n)[:, None]),
     "one argsort gives the positions in order of confidence, not each position's rank: argsort that order "
     "once more (an argsort of the argsort) to get the rank of every position, 0 for the surest."),
    (lambda c, f, n: f | _top(_free_scores(c, f), np.asarray(n)[0] - np.asarray(f, bool).sum(axis=1)),
     "you used the first map's count for every map: each map b has its own count[b] (maps differ in how many "
     "positions were given), so subtract each map's fixed positions from its own count."),
    (lambda c, f, n: f | _top(np.where(f, 0.0, c), _new(f, n)),
     "the fixed positions were given a confidence of 0, and a confidence is a log-probability (plus noise), "
     "most often below 0: a fixed position then outranks the free ones. Give them -inf, so that none is "
     "chosen again."),
    (lambda c, f, n: f | _threshold_keep(c, f, n),
     "with ties (saturated predictions give several positions the same confidence, log-probability 0) a "
     "threshold on the k-th highest confidence keeps every tied position: keep exactly count[b] - (fixed "
     "positions) new ones, by rank."),
]


def _threshold_keep(confidence, fixed, count):
    """A mistaken choice: every free position at least as confident as the k-th surest (too many on ties)."""
    scores, new = _free_scores(confidence, fixed), _new(fixed, count)
    kth = -np.sort(-scores, axis=1)[np.arange(len(scores)), np.clip(new - 1, 0, scores.shape[1] - 1)]
    return (scores >= kth[:, None]) & (new[:, None] > 0)


def _valid_keep(got, confidence, fixed, count):
    """Whether ``got`` is a right choice, ties broken any way: the fixed positions and ``count[b]`` in all for
    map ``b``, no free position left out surer than one kept."""
    got = got.astype(bool)
    if got.shape != fixed.shape or (fixed & ~got).any() or (got.sum(axis=1) != count).any():
        return False
    new, left = got & ~fixed, ~got
    lowest_kept = np.where(new, confidence, np.inf).min(axis=1)
    highest_left = np.where(left, confidence, -np.inf).max(axis=1)
    return bool(np.all(lowest_kept >= highest_left))


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
    # The edges the course meets. A step that fixes no code in one map (the schedule's floor) while the others
    # fix several, with confidences that are log-probabilities plus noise, below 0 (so that a fixed position
    # given 0 would outrank the free ones):
    confidence = -np.abs(rng.normal(2.0, 1.0, size=(3, 49))).astype("float32")
    fixed = np.zeros(confidence.shape, bool)
    fixed[0, rng.choice(49, 10, replace=False)] = True
    fixed[1, rng.choice(49, 30, replace=False)] = True
    count = np.array([10, 34, 3])
    cases.append(("With a step that fixes no new code in map 0 (10 positions fixed and count = 10), 4 in map 1 and "
                  "3 in map 2, confidences below 0: ", (confidence, fixed, count)))
    # Sizes of 1: one map of one position, hidden, then already fixed (a step that fixes nothing).
    cases.append(("With one map of one position (B = T = 1), not yet fixed, count = [1]: ",
                  (np.array([[-0.5]], "float32"), np.zeros((1, 1), bool), np.array([1]))))
    cases.append(("With one map of one position (B = T = 1), already fixed, count = [1]: ",
                  (np.array([[-0.5]], "float32"), np.ones((1, 1), bool), np.array([1]))))
    # Saturated predictions: several free positions tie at confidence 0 (log-probability 0, no noise at the
    # last step), more than the step keeps. Any of the tied positions is right.
    confidence = np.tile(np.array([0.0, -3.0, 0.0, -1.0, 0.0, -2.0, 0.0, -0.5], "float32"), (2, 1))
    fixed = np.zeros(confidence.shape, bool)
    fixed[1, [1, 3]] = True
    cases.append(("With saturated predictions, four free positions tied at confidence 0 and count = [2, 5]: ",
                  (confidence, fixed, np.array([2, 5]))))
    return cases


def _check_maskgit_keep(fn):
    for where, args in _keep_cases(np.random.default_rng(82)):
        got = to_array(_call_in(where, fn, *args))
        want = maskgit_keep(*args)
        if got.shape == want.shape and got.dtype.kind == "f" and not np.isin(got, (0.0, 1.0)).all():
            raise Incorrect(f"{where}expected True (or 1) where a position holds a code and False (or 0) "
                             "elsewhere, got other numbers: return a boolean mask, not the confidences.")
        if got.dtype.kind in "biuf" and np.isin(got, (0, 1)).all() and _valid_keep(got, *args):
            continue  # right (where positions tie, any of them is)
        compare(got, want, args, _KEEP_MISTAKES, where=where, symbols="(B, T)", kind="mask")


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


# ---------------------------------------------------------------------------------------------
# maskgit_steps_fixed: a prediction, judged against the schedule's own numbers
# ---------------------------------------------------------------------------------------------
def _judge_steps_fixed(answer, measured):
    """``measured``: the codes fixed at each of the 8 steps of the package's schedule on an empty map (49 to fill).
    Right: the first step's count within 1 and the last step's within 2 (a cosine read off by eye)."""
    if isinstance(answer, (str, bytes)) or not hasattr(answer, "__len__") or len(answer) != 2:
        raise core.Wrong(f"write two numbers, the codes fixed at the first step and at the last, e.g. (3, 5), not "
                         f"{answer!r}")
    first, last = (core.as_number(value, "(3, 5)") for value in answer)
    fixed = [int(n) for n in measured]
    steps, hidden_first, hidden_before_last = len(fixed), 49 - fixed[0], fixed[-1]
    why = (f"the schedule fixes {fixed[0]} code at the first step and {fixed[-1]} at the last "
           f"({', '.join(map(str, fixed))}). After step s of {steps}, floor(49 cos(pi s / {2 * steps})) codes stay "
           f"hidden: the cosine is flat near 0, so after the first step {hidden_first} of the 49 are still hidden, "
           f"and steep near pi / 2, so the last step uncovers the {hidden_before_last} that step {steps - 1} left: "
           f"few codes while little is known, many once the map has taken shape.")
    if abs(first - fixed[0]) <= 1 and abs(last - fixed[-1]) <= 2:
        return f"({first:g}, {last:g}) is close: {why}"
    if first > last:
        raise core.Wrong(f"the first step fixes fewer codes than the last, not more: {why}")
    raise core.Wrong(f"({first:g}, {last:g}) is off: {why}")


core.register_question(
    "maskgit_steps_fixed", kind="predict", lesson=8, judge=_judge_steps_fixed,
    example=[1, 3, 5, 6, 7, 9, 9, 9],
    hints="""
        The schedule gives how many codes are still hidden after each step; the codes a step fixes are the drop
        from one step to the next. Look at where on the cosine curve the first and the last steps fall.

        After step s of 8, 49 cos(pi s / 16), rounded down, stay hidden. For the first step, cos(pi / 16) is
        close to 1 (about 0.98); for the last step, compare step 7, cos(7 pi / 16) (about 0.2), with step 8, where
        nothing stays hidden.
        """)
