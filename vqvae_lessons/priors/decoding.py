"""The transformer priors' samplers, each one compiled call per batch of maps, and the draw
every sampler shares. :func:`~vqvae_lessons.priors.sampling.sample` calls them.

* :func:`sample_autoregressive` (:class:`~vqvae_lessons.priors.transformer.ARTransformerPrior`):
  49 steps, one position each. A causal block's keys and values at a position never change once
  computed, so each step keeps them in a *key/value cache* ``(N, heads, T, C / heads)`` per block:
  the step computes its own token through every block (:meth:`TransformerBlock.step
  <vqvae_lessons.priors.attention.TransformerBlock.step>`), attending to the cache, and draws its
  code; the code's embedding is the next step's token. All 49 steps run in one compiled loop.
* :func:`sample_maskgit` (:class:`~vqvae_lessons.priors.transformer.MaskGITPrior`): MaskGIT's
  parallel decoding in ``S`` steps (8 by default). Every step predicts all hidden positions at
  once and fills those it is surest of (the most likely code's log-probability, plus Gumbel noise
  that fades over the steps) with a code drawn there, so that after step ``s`` a fraction
  ``cos(pi/2 (s + 1) / S)`` of the positions to fill is still hidden: none after the last step.
  A code once filled (or given) never changes. The ``S`` steps run in one compiled loop.

A prior given *pieces* (lesson 8's exercises; see
:class:`~vqvae_lessons.priors.transformer.TransformerPrior`) samples with them, outside the compiled
loops, so that a piece written with NumPy runs: an autoregressive prior with its own
``causal_attention`` runs one full forward pass per position (:func:`sample_autoregressive`), and
MaskGIT with its own ``maskgit_keep`` runs each step's prediction compiled and the choice of the
positions to keep in between (:func:`sample_maskgit`). With a correct piece they draw the maps the
package's samplers draw from the same seed (to float precision).

Random numbers come from NumPy (the ``seed`` of ``sample``), so the same seed draws the same maps.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from . import hidden_share


def draw(logits, temperature, uniform):
    """One code per row of ``logits`` ``(N, K)``: the first whose cumulative probability under
    ``softmax(logits / temperature)`` exceeds ``uniform`` ``(N,)`` in [0, 1); argmax where
    ``temperature`` ``(N,)`` is 0. Keras ops, run inside the compiled steps."""
    hot = temperature > 0
    scaled = logits / ops.where(hot, temperature, 1.0)[:, None]
    cdf = ops.cumsum(ops.softmax(scaled, axis=-1), axis=-1)
    below = ops.cast(cdf <= uniform[:, None] * cdf[:, -1:], "int32")  # scaled by the total: never past the end
    drawn = ops.minimum(ops.sum(below, axis=-1), logits.shape[-1] - 1)
    return ops.where(hot, drawn, ops.cast(ops.argmax(logits, axis=-1), "int32"))


def compiled_step(prior, kind, *args):
    """The prior's compiled step ``kind(prior, *args)``, made once and kept with the prior (outside
    Keras's tracking of its layers, so the prior saves and loads exactly as before)."""
    steps, key = prior.__dict__.setdefault("_sampling_steps", {}), (kind, *args)
    if key not in steps:
        steps[key] = kind(prior, *args)
    return steps[key]


def _flat_inputs(prior, given, draws, keys):
    """The step's inputs: ``given`` ``(N, H, W)`` as ``(N, T)``, and ``draws[key]`` for each key (with the
    positions' axes flattened into one) plus the labels of a conditional prior."""
    n = len(given)
    inputs = {"given": given.reshape(n, -1), "temperature": draws["temperature"]}
    for key in keys:
        inputs[key] = draws[key].reshape(n, *draws[key].shape[1:-2], -1)
    if "labels" in draws:
        inputs["labels"] = draws["labels"]
    return inputs


# -- the autoregressive transformer: one position a step, from a key/value cache ---------------
def sample_autoregressive(prior, given, draws):
    """Sample one batch ``given`` ``(N, H, W)`` (-1 where to draw) of an autoregressive transformer prior;
    ``draws``: ``uniform`` ``(N, H, W)`` and ``temperature`` ``(N,)`` (see :func:`draw`), ``labels``.
    A prior with its own ``causal_attention`` (a piece) runs it: one eager forward pass of the whole
    map per position, instead of the key/value cache (which attends one query at a time)."""
    if prior.pieces.get("causal_attention") is not None:
        return _sample_by_full_passes(prior, given, draws)
    step = compiled_step(prior, _CachedDecoder)
    codes = step.predict_on_batch(_flat_inputs(prior, given, draws, ["uniform"]))
    return np.asarray(codes, "int32").reshape(given.shape)


def _sample_by_full_passes(prior, given, draws):
    """:func:`sample_autoregressive` by full forward passes: at step ``t`` the prior (called eagerly, so
    that its pieces may be NumPy) computes the whole map and the code at ``t`` is drawn (or kept)."""
    n, labels = len(given), draws.get("labels")
    codes = np.maximum(given.reshape(n, -1), 0).astype("int32")  # positions not drawn yet: any code, unseen
    uniform = draws["uniform"].reshape(n, -1)
    temperature = ops.convert_to_tensor(draws["temperature"])
    for t in range(prior.length):
        grid = codes.reshape(given.shape)
        logits = ops.reshape(prior((grid, labels) if prior.conditional else grid), (n, prior.length, -1))[:, t]
        drawn = ops.convert_to_numpy(draw(logits, temperature, ops.convert_to_tensor(uniform[:, t])))
        fixed = given.reshape(n, -1)[:, t]
        codes[:, t] = np.where(fixed >= 0, fixed, drawn)
    return codes.reshape(given.shape)


class _CachedDecoder(keras.Model):
    """A whole map, position after position, in one call: inputs ``given`` ``(N, T)`` int32 (-1 where
    to draw), ``uniform`` ``(N, T)``, ``temperature`` ``(N,)`` and ``labels`` ``(N,)`` for a conditional
    prior; output the codes ``(N, T)`` int32.

    Step ``t`` feeds one token, the start (or class) token at ``t = 0`` and the code drawn at ``t - 1``
    after, plus position ``t``'s embedding, through every block with :meth:`TransformerBlock.step`, as
    the full causal pass computes it at ``t``, then draws code ``t`` (or keeps the given one).
    """

    def __init__(self, prior):
        super().__init__(name="cached_decoder")
        self.prior = prior

    def call(self, inputs):
        prior, given = self.prior, inputs["given"]
        n, depth = ops.shape(given)[0], prior.channels // prior.heads
        caches = tuple(ops.zeros((n, prior.heads, prior.length, depth)) for _ in range(2 * len(prior.blocks)))
        positions, slots = prior.positions(), ops.arange(prior.length)

        def position(t, state):
            codes, token, caches = state
            x, updated = token + ops.take(positions, t, axis=0)[None], []
            for layer, block in enumerate(prior.blocks):
                x, keys, values = block.step(x, caches[2 * layer], caches[2 * layer + 1], t)
                updated += [keys, values]
            drawn = draw(prior.head(prior.norm(x)), inputs["temperature"], ops.take(inputs["uniform"], t, axis=1))
            fixed = ops.take(given, t, axis=1)
            code = ops.where(fixed >= 0, fixed, drawn)
            codes = ops.where(slots[None, :] == t, code[:, None], codes)
            return codes, prior.code_embedding(code), tuple(updated)

        start = (ops.zeros_like(given), prior.start_tokens(inputs.get("labels"), n), caches)
        return ops.fori_loop(0, prior.length, position, start)[0]


# -- MaskGIT: S parallel steps, keeping the surest codes -----------------------------------------
def maskgit_schedule(steps):
    """``(steps,)``: the fraction of the positions to fill that is still hidden after each step,
    ``cos(pi/2 (s + 1) / steps)``, from nearly 1 down to 0 after the last."""
    fractions = hidden_share(np.arange(1, steps + 1) / steps)
    fractions[-1] = 0.0  # exactly: cos(pi/2) is 6e-17 in floating point
    return fractions.astype("float32")


def most_kept(length, steps):
    """The most positions one step of :func:`maskgit_schedule` can fill in a map of ``length``
    positions, whatever the number ``U`` of them to fill (``floor(U f_{s-1}) - floor(U f_s)``, in
    float32 as the decoder computes it), plus one to spare for rounding (at most ``length``)."""
    fractions = np.concatenate([[1.0], maskgit_schedule(steps)]).astype("float32")
    hidden = np.floor(np.arange(1, length + 1, dtype="float32")[:, None] * fractions[None, :])  # (U, steps + 1)
    return min(length, int((hidden[:, :-1] - hidden[:, 1:]).max()) + 1)


CONFIDENCES = ("drawn", "top")  # what MaskGIT's decoder ranks the hidden positions by (see _ParallelDecoder)


def sample_maskgit(prior, given, draws, steps=8, confidence="top"):
    """Sample one batch ``given`` ``(N, H, W)`` (-1 where to draw) of a MaskGIT prior in ``steps`` steps;
    ``draws``: ``uniform`` and ``noise`` ``(N, steps, H, W)`` in [0, 1) (the codes' draws and the Gumbel
    noise of the choice), ``temperature`` and ``choice_temperature`` ``(N,)``, ``labels``; ``confidence``:
    one of :data:`CONFIDENCES` (see :class:`_ParallelDecoder`). A prior with its own ``maskgit_keep``
    (a piece) runs it at every step (:func:`_decode_keeping_with`)."""
    inputs = _flat_inputs(prior, given, draws, ["uniform", "noise"]) | {
        "choice_temperature": draws["choice_temperature"]}
    keep = prior.pieces.get("maskgit_keep")
    if keep is not None:
        return _decode_keeping_with(keep, prior, inputs, steps, confidence).reshape(given.shape)
    step = compiled_step(prior, _ParallelDecoder, steps, confidence)
    codes = step.predict_on_batch(inputs)
    return np.asarray(codes, "int32").reshape(given.shape)


def _decode_keeping_with(keep, prior, inputs, steps, confidence):
    """MaskGIT's decoding, step by step, with ``keep(confidence, fixed, count)`` choosing which positions
    hold a code after each step (the package's decoder chooses with ``top_k`` inside its compiled loop).
    Each step's prediction, confidence and draws are :meth:`_ParallelDecoder.scores`, compiled
    (:class:`_StepScores`); ``keep`` runs on their NumPy arrays. Returns the codes ``(N, T)`` int32."""
    scores = compiled_step(prior, _StepScores, steps, confidence)
    codes, n = np.asarray(inputs["given"], "int32"), len(inputs["given"])
    for s in range(steps):
        out = scores.predict_on_batch(inputs | {"codes": codes, "step": np.full(n, s, "int32")})
        fixed = codes >= 0
        kept = np.asarray(ops.convert_to_numpy(keep(out["confidence"], fixed, out["count"])))
        if kept.shape != codes.shape:
            raise ValueError(f"maskgit_keep must return one boolean a position, (N, T) = {codes.shape}, got an array "
                             f"of shape {kept.shape}.")
        codes = np.where(kept.astype(bool) & ~fixed, out["drawn"], codes).astype("int32")
    if (codes < 0).any():
        raise ValueError(f"maskgit_keep left {int(np.sum(codes < 0))} positions without a code after the last step: "
                         "after step s, each map must hold count codes (every position, after the last).")
    return codes


class _ParallelDecoder(keras.Model):
    """MaskGIT's decoding of a batch in ``steps`` steps, in one call: inputs ``given`` ``(N, T)`` int32
    (-1 where to draw), ``uniform`` and ``noise`` ``(N, steps, T)``, ``temperature`` and
    ``choice_temperature`` ``(N,)``, and ``labels`` ``(N,)`` for a conditional prior; output the codes
    ``(N, T)`` int32, every position filled.

    At step ``s`` the prior predicts every position from the codes known so far (-1: hidden). Of a
    map's ``U`` positions to fill, ``floor(U * schedule[s])`` stay hidden after the step
    (:func:`maskgit_schedule`); the others get a code for good: the hidden positions whose
    *confidence* is highest, a log-probability plus ``choice_temperature * (1 - (s + 1) / steps)``
    times Gumbel noise (MaskGIT's annealed noise, which varies which codes come first).
    ``confidence="top"`` (the default): ranked by the most likely code's log-probability there, and a
    code drawn only at the positions kept (:func:`most_kept`), which makes each step cheaper;
    ``"drawn"`` (MaskGIT's paper): a code is drawn at every hidden position, at ``temperature``, and
    ranked by its own log-probability. The two agree at temperature 0. On the validation split
    neither gave clearly better digits (``benchmarks/maskgit_decoding.py``), so the cheaper one is the
    default.
    """

    def __init__(self, prior, steps, confidence="top"):
        super().__init__(name="parallel_decoder")
        if confidence not in CONFIDENCES:
            raise ValueError(f"confidence is one of {list(CONFIDENCES)}, got {confidence!r}.")
        self.prior, self.steps, self.confidence = prior, steps, confidence
        self.schedule, self.most_kept = maskgit_schedule(steps), most_kept(prior.length, steps)

    def call(self, inputs):
        return ops.fori_loop(0, self.steps, lambda s, codes: self.decode_step(s, codes, inputs), inputs["given"])

    def scores(self, s, codes, inputs):
        """What step ``s`` computes before choosing: ``(confidence, keep, logits, uniform, everywhere)``,
        the confidence ``(N, T)`` of each hidden position (-1e9 at the others), how many positions to fill
        now ``(N,)`` (float32), the logits ``(N, T, K)``, this step's uniform numbers ``(N, T)``, and for
        ``confidence="drawn"`` the code drawn at every position ``(N, T)`` (else None)."""
        prior, labels = self.prior, inputs.get("labels")
        to_fill = ops.sum(ops.cast(inputs["given"] < 0, "float32"), axis=1)  # U, per map
        hidden = codes < 0
        grid = ops.reshape(codes, (-1, *prior.grid))
        logits = ops.reshape(prior((grid, labels) if prior.conditional else grid), (-1, prior.length, prior.num_codes))
        log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)  # (N, T, K)
        uniform = ops.take(inputs["uniform"], s, axis=1)  # (N, T)
        if self.confidence == "drawn":  # a code everywhere, ranked by its own log-probability
            n = ops.shape(logits)[0]
            everywhere = ops.reshape(draw(ops.reshape(logits, (-1, prior.num_codes)),
                                          ops.repeat(inputs["temperature"], prior.length), ops.reshape(uniform, (-1,))),
                                     (n, prior.length))
            score = ops.take_along_axis(log_probs, everywhere[..., None], axis=-1)[..., 0]
        else:
            everywhere, score = None, ops.max(log_probs, axis=-1)  # (N, T)
        noise = ops.clip(ops.take(inputs["noise"], s, axis=1), 1e-12, 1.0 - 1e-7)
        fade = inputs["choice_temperature"][:, None] * (1.0 - ops.cast(s + 1, "float32") / self.steps)
        confidence = ops.where(hidden, score - fade * ops.log(-ops.log(noise)), -1e9)  # + fade * Gumbel
        still_hidden = ops.floor(to_fill * ops.take(ops.convert_to_tensor(self.schedule), s))
        keep = ops.sum(ops.cast(hidden, "float32"), axis=1) - still_hidden  # (N,): how many to fill now
        return confidence, keep, logits, uniform, everywhere

    def decode_step(self, s, codes, inputs):
        """Step ``s`` (an int, or a scalar tensor inside the loop): the codes ``(N, T)`` (-1: hidden)
        after it, from those before it; ``inputs`` as :meth:`call` takes them."""
        prior, kept_at_most = self.prior, self.most_kept
        confidence, keep, logits, uniform, everywhere = self.scores(s, codes, inputs)
        _, chosen = ops.top_k(confidence, kept_at_most)  # (N, B): the surest positions first
        # position p gets a code now if it is among the first `keep` chosen
        first = ops.cast(ops.arange(kept_at_most), "float32")[None, :] < keep[:, None]  # (N, B)
        hits = ops.logical_and(chosen[..., None] == ops.arange(prior.length), first[..., None])  # (N, B, T)
        kept = ops.any(hits, axis=1)  # (N, T)
        if self.confidence == "drawn":
            return ops.where(kept, everywhere, codes)
        chosen_logits = ops.reshape(ops.take_along_axis(logits, chosen[..., None], axis=1), (-1, prior.num_codes))
        uniform = ops.reshape(ops.take_along_axis(uniform, chosen, axis=1), (-1,))
        drawn = draw(chosen_logits, ops.repeat(inputs["temperature"], kept_at_most), uniform)  # (N * B,)
        codes_drawn = ops.sum(ops.where(hits, ops.reshape(drawn, (-1, kept_at_most, 1)), 0), axis=1)
        return ops.where(kept, codes_drawn, codes)


class _StepScores(_ParallelDecoder):
    """One step of MaskGIT's decoding up to the choice of the positions to keep, for a ``maskgit_keep``
    piece (:func:`_decode_keeping_with`): inputs those of :class:`_ParallelDecoder`, plus ``codes``
    ``(N, T)`` int32 (-1: hidden) and ``step`` ``(N,)`` int32 (the step ``s``, the same in every row);
    outputs ``confidence`` ``(N, T)`` (as :meth:`_ParallelDecoder.scores` computes it), ``count`` ``(N,)``
    int32 (the positions that hold a code after the step: those that do now plus the ones to fill), and
    ``drawn`` ``(N, T)`` int32, a code drawn at every position as the package's decoder draws it at the
    positions it keeps (the same uniform number at each position)."""

    def call(self, inputs):
        prior, codes = self.prior, inputs["codes"]
        confidence, keep, logits, uniform, everywhere = self.scores(inputs["step"][0], codes, inputs)
        if everywhere is None:
            everywhere = ops.reshape(draw(ops.reshape(logits, (-1, prior.num_codes)),
                                          ops.repeat(inputs["temperature"], prior.length), ops.reshape(uniform, (-1,))),
                                     (-1, prior.length))
        holding = ops.sum(ops.cast(codes >= 0, "float32"), axis=1)
        return {"confidence": confidence, "count": ops.cast(holding + keep, "int32"), "drawn": everywhere}
