"""Sampling maps of codes from a prior, fast, and decoding them into digits.

:func:`sample` draws maps position by position without recomputing the whole map for each
of the 49 positions, as the Keras example does: every layer is causal, so the rows above
the current one never change again, and it keeps what they computed in a cache.

* A gated prior (the default) computes each position about once, as one forward pass does:
  its vertical stacks see only the rows above, so they run once per row, over the whole row;
  then, column by column, only the horizontal stacks run, one position per layer, and the
  code is drawn, all inside one compiled call per row (:class:`_GatedRow`).
* The Keras example's residual prior computes the current row of every layer (only the
  columns the next code needs, where the masks allow) from cached rows above, in one
  compiled call per position (:class:`_RowStep`).
* The transformer priors sample in one compiled loop per batch
  (:mod:`~vqvae_lessons.priors.decoding`): the autoregressive one position by position from a
  key/value cache, MaskGIT in a few parallel steps (``steps``).

Codes are drawn by inverting the cumulative distribution of ``softmax(logits / T)`` at a
uniform number per position, drawn with NumPy from the ``seed`` (so the same seed gives the
same maps). :func:`generate` decodes the samples with a VQ-VAE. :func:`sample_with` runs a plain
sampling loop of lesson 5's exercise ``sample_codes(logits_fn, shape, rng)`` on a prior instead (49
full forward passes: slow, the learner's own loop). This module imports the models; the models never
import it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

from .decoding import CONFIDENCES, sample_autoregressive, sample_maskgit
from .decoding import compiled_step as _step
from .decoding import draw as _draw
from .masked import MaskedConv2D
from .pixelcnn import run_stage
from .transformer import MaskGITPrior


def sample(prior, n=None, *, labels=None, given=None, temperature=1.0, seed=0, batch_size=1000, progress=False,
           steps=None, choice_temperature=None, confidence=None):
    """Draw maps of codes ``(n, H, W)`` (int32) from ``prior``, position by position (MaskGIT: in ``steps``).

    * ``labels``: for a class-conditional prior, the class of each map, ``(n,)`` or one int.
    * ``given``: ``(n, H, W)`` ints, -1 where a code is to be sampled; the other codes are
      kept as they are and the samples are conditioned on them (complete a partly given map).
    * ``temperature``: divides the logits; below 1 favours likely codes, 0 takes the most
      likely code at every position.
    * ``seed``: the same seed gives the same maps.
    * ``batch_size``: maps computed together (memory and speed only).
    * ``progress``: show a Keras progress bar over the batches.
    * ``steps`` and ``choice_temperature`` (MaskGIT priors only): the number of parallel decoding
      steps (default 8) and the strength of the Gumbel noise added to the codes' confidence when
      choosing which to keep (default 4.5, MaskGIT's; 0: keep the most likely codes); ``confidence``
      ("top", the default, or "drawn"): what ranks the positions, the most likely code's
      log-probability or the drawn code's (MaskGIT's paper; see :class:`~.decoding._ParallelDecoder`).

    A gated prior computes each position of each layer about once, as one forward pass does;
    the Keras example's prior one row of every layer per position (the rows above are cached).
    The transformer priors run one compiled loop per batch (see :mod:`~vqvae_lessons.priors.decoding`).
    The first call on a prior also compiles its steps (a few seconds); later calls reuse them.
    """
    n = _sample_count(prior, n, labels, given)
    sampler, steps, choice_temperature = _sampler(prior, steps, choice_temperature, confidence)
    labels = prior.check_labels(labels, n)
    if given is None:
        given = np.full((n, *prior.grid), -1, dtype="int32")
    else:
        given = np.asarray(given)
        if given.shape != (n, *prior.grid) or not np.issubdtype(given.dtype, np.integer):
            raise ValueError(f"given must be integer codes of shape ({n}, {prior.grid[0]}, {prior.grid[1]}) with -1 "
                             f"where a code is to be sampled, got {given.dtype} {given.shape}.")
        prior.check_codes(np.where(given < 0, 0, given))
        if given.min(initial=0) < -1:
            raise ValueError("given holds codes in [0, K) and -1 for the positions to sample, nothing below -1.")
        given = given.astype("int32")
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating))
            or not np.isfinite(temperature) or temperature < 0):
        raise ValueError(f"temperature must be a number >= 0 (1: the prior as trained, 0: the most likely code), "
                         f"got {temperature!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size is how many maps are drawn together, a positive integer, got {batch_size!r}.")
    rng = np.random.default_rng(seed)
    if steps is None:
        uniform = rng.random(given.shape, dtype="float32")  # one number per position
    else:  # MaskGIT: a number per step and position for the draw, and one for the choice's noise
        uniform, noise = (rng.random((n, steps, *prior.grid), dtype="float32") for _ in range(2))
    parts, bar = [], keras.utils.Progbar(n, unit_name="map") if progress else None
    for i in range(0, n, batch_size):
        batch = slice(i, i + batch_size)
        draws = {"uniform": uniform[batch], "temperature": np.full(len(given[batch]), temperature, "float32")}
        if labels is not None:
            draws["labels"] = labels[batch]
        if steps is not None:
            draws.update(noise=noise[batch], choice_temperature=np.full(len(given[batch]), choice_temperature,
                                                                        "float32"))
        parts.append(sampler(prior, given[batch], draws))
        if bar is not None:
            bar.add(len(parts[-1]))
    return np.concatenate(parts) if parts else given


def _sample_count(prior, n, labels, given):
    if n is None:
        n = len(given) if given is not None else np.size(labels) if labels is not None else None
    if n is None or not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n, the number of maps to sample, must be an integer >= 0, got {n!r}.")
    return int(n)


def _sampler(prior, steps, choice_temperature, confidence=None):
    """``(sampler, steps, choice_temperature)``: the function that samples one batch of ``prior``'s
    maps, ``sampler(prior, given, draws)`` (:data:`SAMPLERS`, by the prior's architecture), and MaskGIT's
    settings checked (None for other priors)."""
    architecture = getattr(prior, "architecture", None)
    if architecture not in SAMPLERS:
        raise ValueError(f"There is no sampler for a {type(prior).__name__} of architecture {architecture!r}: "
                         f"sample from a prior of one of {list(SAMPLERS)} (a new architecture adds its line to "
                         f"priors.sampling.SAMPLERS).")
    if not isinstance(prior, MaskGITPrior):
        if steps is not None or choice_temperature is not None or confidence is not None:
            raise ValueError("steps, choice_temperature and confidence are the settings of MaskGIT's parallel "
                             f"decoding; this {type(prior).__name__} draws one position after another: leave them "
                             "out.")
        return SAMPLERS[architecture], None, None
    steps = 8 if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= prior.length:
        raise ValueError(f"steps is the number of MaskGIT's decoding steps, an int from 1 to {prior.length} (the "
                         f"positions of a map), got {steps!r}.")
    choice_temperature = 4.5 if choice_temperature is None else choice_temperature
    if not np.isfinite(choice_temperature) or choice_temperature < 0:
        raise ValueError(f"choice_temperature must be a number >= 0 (0: keep the most likely codes), got "
                         f"{choice_temperature}.")
    confidence = "top" if confidence is None else confidence
    if confidence not in CONFIDENCES:
        raise ValueError(f"confidence is what ranks MaskGIT's hidden positions, one of {list(CONFIDENCES)} (top: the "
                         f"most likely code's log-probability; drawn: the drawn code's), got {confidence!r}.")
    return (functools.partial(SAMPLERS[architecture], steps=int(steps), confidence=confidence), int(steps),
            float(choice_temperature))


# -- gated priors: vertical stacks once per row, horizontal stacks once per position ----------
def _sample_gated(prior, given, draws):
    """Sample one batch ``given`` ``(N, H, W)`` of a gated prior, one compiled call per row.

    The codes are kept with ``R`` rows of "no code" (``num_codes``) above the map, ``R`` the
    rows the first vertical stack sees; ``vertical_l`` ``(N, 1, W, C)`` is block ``l``'s
    vertical output at the row above (zeros above the map, as the convolution pads).
    """
    height, width = prior.grid
    blocks, step = prior.stages[:-1], _step(prior, _GatedRow)
    above = blocks[0].vertical.rows_above
    codes = np.full((len(given), above + height, width), prior.num_codes, "int32")
    cache = {f"vertical_{layer}": np.zeros((len(given), 1, width, block.channels), "float32")
             for layer, block in enumerate(blocks[:-1])}
    for row in range(height):
        outputs = step.predict_on_batch({**cache, "codes_above": codes[:, row:row + above], "given": given[:, row],
                                         "uniform": draws["uniform"][:, row], "temperature": draws["temperature"],
                                         **({"labels": draws["labels"]} if "labels" in draws else {})})
        codes[:, above + row] = outputs.pop("codes")
        cache = outputs
    return codes[:, above:]


class _GatedRow(keras.Model):
    """One row of a gated prior's maps, drawn left to right, in one call.

    Inputs (a dict), for ``N`` maps ``W`` wide, blocks of ``C`` channels and ``K`` codes:
    ``codes_above`` ``(N, R, W)`` int32, the ``R`` rows above (``num_codes`` outside the map);
    ``vertical_l`` ``(N, 1, W, C)`` for every block ``l`` but the last, its vertical stack's
    output at the row above; ``given`` ``(N, W)`` int32, -1 where to draw; ``uniform`` ``(N, W)``
    and ``temperature`` ``(N,)`` floats (see :func:`_draw`); ``labels`` ``(N,)`` for a
    conditional prior. Outputs: ``codes`` ``(N, W)`` int32 and ``vertical_l`` at this row.

    The vertical stacks see only the rows above, so they run once over the whole row, with
    the 1x1 vertical-to-horizontal links. Then at each column every horizontal stack computes
    one position, from its inputs at the ``kernel // 2`` columns to the left (block 0, mask
    "A", over the codes drawn so far) or at those and the column itself (later blocks, mask
    "B"), exactly as :meth:`GatedBlock.call` does; then the :class:`OutputHead`, and the draw.
    """

    def __init__(self, prior):
        super().__init__(name="gated_row")
        self.prior = prior

    def call(self, inputs):
        blocks, head = self.prior.stages[:-1], self.prior.stages[-1]
        links, outputs = self._vertical(inputs, blocks)
        width, given = self.prior.grid[1], inputs["given"]
        codes = []  # this row's codes so far, (N,) each: the first block's horizontal input
        columns = [codes, *([] for _ in blocks[1:])]  # columns[l][j]: block l's horizontal input at column j
        for c in range(width):
            for layer, block in enumerate(blocks):
                x = self._horizontal(block, columns[layer], links[layer][:, c], c)  # (N, C)
                if layer + 1 < len(blocks):
                    columns[layer + 1].append(x)
            logits = _pointwise(head.logits, _pointwise(head.hidden[1], _pointwise(head.hidden[0], x)))
            drawn = _draw(logits, inputs["temperature"], inputs["uniform"][:, c])
            codes.append(ops.where(given[:, c] >= 0, given[:, c], drawn))
        outputs["codes"] = ops.stack(codes, axis=1)
        return outputs

    def _vertical(self, inputs, blocks):
        """Every block's vertical stack at this row: the links ``(N, W, 2C)`` (the 1x1 link, the
        horizontal convolution's bias and the label's bias, all a position's horizontal stack
        adds to its own convolution) and the vertical outputs ``{vertical_l: (N, 1, W, C)}``."""
        above = inputs["codes_above"]
        x = ops.concatenate([above, ops.zeros_like(above[:, :1])], axis=1)  # this row: masked, any codes do
        labels, links, outputs = inputs.get("labels"), [], {}
        for layer, block in enumerate(blocks):
            v = block.vertical(x, pad_top=0)  # (N, 1, W, 2C)
            link = block.vertical_to_horizontal(v) + block.horizontal.bias
            if block.class_bias is not None:
                bias = block.class_bias(labels)[:, None, None, :]
                v, link = v + bias[..., :2 * block.channels], link + bias[..., 2 * block.channels:]
            links.append(link[:, 0])
            if layer < len(blocks) - 1:  # the last vertical stack feeds only its own horizontal one
                outputs[f"vertical_{layer}"] = v = block.gate(v)  # the package's, or gate_fn
                x = ops.concatenate([inputs[f"vertical_{layer}"], v], axis=1)
        return links, outputs

    @staticmethod
    def _horizontal(block, columns, link, c):
        """``block``'s horizontal output ``(N, C)`` at column ``c``: ``columns[j]`` is its input at
        column ``j`` (codes ``(N,)`` for the first block, features ``(N, C)`` for the others)."""
        conv = block.horizontal
        h = link
        for _, dx in conv.taps:  # the kernel's visible positions: columns c - side, ..., c (or c - 1)
            j = c - conv.side + dx
            if j < 0:  # left of the map: "no code" or zero padding, nothing to add
                continue
            if block.first:
                h = h + ops.take(conv.kernel[0, dx], columns[j], axis=0)
            else:
                h = h + ops.matmul(columns[j], conv.kernel[0, dx])
        h = _pointwise(block.horizontal_out, block.gate(h))
        return h if block.first else columns[c] + h


def _pointwise(layer, x):
    """A 1x1 convolution ``layer`` (masked or not) at single positions ``x`` ``(N, C_in)``."""
    kernel = layer.kernel[0, 0]
    if isinstance(layer, MaskedConv2D):
        kernel = kernel * ops.convert_to_tensor(layer.mask[0, 0], kernel.dtype)
    return layer.activation(ops.matmul(x, kernel) + layer.bias)


# -- the Keras example's residual prior: one row of every stage per position --------------------
def _sample_rows(prior, given, draws):
    """Sample one batch row by row; ``cache[s]`` holds the inputs of stage ``s`` for the rows done."""
    height, width = prior.grid
    codes = given.copy()
    cache = [[] for _ in prior.stages]
    for row in range(height):
        rows_cached = tuple(min(row, stage.rows_above) for stage in prior.stages)
        inputs = {}
        for s, count in enumerate(rows_cached):
            if count:  # converted once per row, not once per position
                inputs[f"above_{s}"] = ops.convert_to_tensor(np.concatenate(cache[s][row - count:row], axis=1))
        for column in range(width):
            # The last column computes whole rows, to cache; the others only what the next code needs.
            cropped = column < width - 1
            step = _step(prior, _RowStep, rows_cached, cropped)
            extra = {"column": np.full((len(codes),), column, "int32")} if cropped else {}
            outputs = step.predict_on_batch({**inputs, **extra, "codes": np.maximum(codes[:, row:row + 1], 0),
                                             "uniform": draws["uniform"][:, row, column],
                                             "temperature": draws["temperature"]})
            free = codes[:, row, column] < 0
            codes[free, row, column] = outputs["codes"][free]
        # Every stage's row is final now: no activation of this row depends on the code at its last
        # position. Only the codes themselves (stage 0's input) changed since.
        cache[0].append(codes[:, row:row + 1])
        for s in range(1, len(prior.stages)):
            cache[s].append(outputs[f"input_{s}"])
    return codes


class _RowStep(keras.Model):
    """One row of every stage of a residual ``prior``, given ``rows_cached[s]`` cached rows above stage ``s``.

    Inputs (a dict): ``codes`` ``(N, 1, W)``, ``above_s`` ``(N, rows_cached[s], W, ...)``, and
    ``uniform`` and ``temperature`` ``(N,)`` for the draw (see :func:`_draw`). Outputs: ``codes``
    ``(N,)``, drawn at the row's last column, and ``input_s``, the row's input of each stage
    ``s >= 1`` (to cache), ``(N, 1, W, C)``.

    ``cropped``: only the code at the column given as input ``column`` ``(N,)`` is wanted, and
    no cache, so each stage computes only the columns the logits there need: as the masks look
    only left in the current row, stage ``s`` needs ``needs[s]`` columns left of the column.
    Columns outside the map are zeroed, as the stages' own zero padding would make them.
    ``predict_on_batch`` compiles the step once per input shape, on every backend.
    """

    def __init__(self, prior, rows_cached, cropped=False):
        super().__init__(name="row_step")
        self.prior, self.rows_cached, self.cropped = prior, rows_cached, cropped
        self.needs = [0] * len(prior.stages)
        for s in range(len(prior.stages) - 1, 0, -1):
            self.needs[s - 1] = self.needs[s] + prior.stages[s].side

    def call(self, inputs):
        x, outputs = inputs["codes"], {}
        if self.cropped:
            x = self._cropped(inputs, x)  # (N, 1, 1, K)
        else:
            for s, (stage, count) in enumerate(zip(self.prior.stages, self.rows_cached, strict=True)):
                if s:
                    outputs[f"input_{s}"] = x
                band = ops.concatenate([inputs[f"above_{s}"], x], axis=1) if count else x
                x = run_stage(stage, band, pad_top=stage.rows_above - count)  # (N, 1, W, K)
        outputs["codes"] = _draw(x[:, 0, -1], inputs["temperature"], inputs["uniform"])
        return outputs

    def _cropped(self, inputs, x):
        width, column = self.prior.grid[1], inputs["column"][0]
        margin = max(need + stage.side for need, stage in zip(self.needs, self.prior.stages, strict=True))
        # Stage 0 reads codes: outside the map is the code num_codes ("no code", a zero kernel row).
        x = ops.pad(x, [[0, 0], [0, 0], [margin, margin]], constant_values=self.prior.num_codes)
        start = column + margin  # the column, in the padded map
        for s, (stage, count) in enumerate(zip(self.prior.stages, self.rows_cached, strict=True)):
            reads = self.needs[s] + 2 * stage.side + 1  # columns column - needs - side, ..., column + side
            first = start - self.needs[s] - stage.side
            if s == 0:
                current = _columns(x, first, reads - stage.side)
            else:  # x holds the columns column - needs[s - 1], ..., column: the ones this stage reads
                valid = _inside(first - margin, reads - stage.side, width)
                current = x * ops.cast(valid[None, None, :, None], x.dtype)
            # Right of the column, the current row is masked: zeros stand in for what is not computed yet.
            current = ops.pad(current, [[0, 0], [0, 0], [0, stage.side]] + [[0, 0]] * (len(current.shape) - 3))
            band = current
            if count:
                above = inputs[f"above_{s}"]
                paddings = [[0, 0], [0, 0], [margin, margin]] + [[0, 0]] * (len(above.shape) - 3)
                above = ops.pad(above, paddings, constant_values=self.prior.num_codes if s == 0 else 0)
                band = ops.concatenate([_columns(above, first, reads), current], axis=1)
            x = run_stage(stage, band, pad_top=stage.rows_above - count, pad_left=0, pad_right=0,
                          valid=_inside(first - margin, reads, width))
        return x


def _columns(x, first, count):
    """``x[:, :, first:first + count]`` for a tensor ``first``."""
    start = [0, 0, first] + [0] * (len(x.shape) - 3)
    return ops.slice(x, start, [ops.shape(x)[0], x.shape[1], count, *x.shape[3:]])


def _inside(first, count, width):
    """Which of the columns ``first, ..., first + count - 1`` lie inside a map ``width`` wide: ``(count,)``."""
    columns = first + ops.arange(count)
    return ops.logical_and(columns >= 0, columns < width)


# The function that samples one batch of maps, ``sampler(prior, given, draws)``, of each prior architecture (MaskGIT's
# takes its decoding settings too: see _sampler).
SAMPLERS = {"keras-example": _sample_rows, "gated": _sample_gated, "transformer": sample_autoregressive,
            "maskgit": sample_maskgit}


def sample_with(sample_codes, prior, n, *, labels=None, temperature=1.0, seed=0):
    """Draw ``n`` maps of codes ``(n, H, W)`` from ``prior`` with the sampling loop ``sample_codes``.

    ``sample_codes(logits_fn, shape, rng)`` is lesson 5's exercise (its reference:
    ``vqvae_lessons.exercises.sample_codes``): it is called once with ``shape = (n, H, W)``, ``rng =
    np.random.default_rng(seed)`` and the per-step function ``logits_fn(codes)``, which takes a whole
    map of integer codes ``(n, H, W)`` and returns the prior's logits ``(n, H, W, K)`` (NumPy float32,
    divided by ``temperature``, a number > 0): one full forward pass per call, compiled (it refuses
    codes that are not integers in ``[0, K)``, as the prior does). ``labels``: for a
    class-conditional prior, ``(n,)`` or one int. Returns ``sample_codes``' codes as int32 NumPy,
    checked (shape and range). Much slower than :func:`sample`, which computes each position once;
    the lesson runs the learner's loop with it.
    """
    if not callable(sample_codes):
        raise TypeError(f"sample_codes must be a function sample_codes(logits_fn, shape, rng) that returns codes, got "
                        f"{type(sample_codes).__name__} {sample_codes!r}.")
    n = _sample_count(prior, n, labels, None)
    labels = prior.check_labels(labels, n)
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating))
            or not np.isfinite(temperature) or temperature <= 0):
        raise ValueError(f"temperature must be a number > 0 (1: the prior as trained), got {temperature!r}.")

    def logits_fn(codes):  # one compiled forward pass (predict_on_batch compiles it once), on checked codes
        codes = prior.check_codes(ops.convert_to_numpy(codes))
        logits = prior.predict_on_batch(codes if labels is None else (codes, labels))
        return np.asarray(ops.convert_to_numpy(logits), "float32") / np.float32(temperature)

    codes = np.asarray(sample_codes(logits_fn, (n, *prior.grid), np.random.default_rng(seed)))
    if codes.shape != (n, *prior.grid):
        raise ValueError(f"sample_codes returned an array of shape {codes.shape}, not the codes (n, H, W) = "
                         f"{(n, *prior.grid)}.")
    return prior.check_codes(codes)


def generate(prior, vqvae, n=None, **kwargs):
    """New images ``(n, 28, 28, 1)`` in [0, 1]: :func:`sample` codes, then ``vqvae.decode`` them."""
    if prior.num_codes != vqvae.num_embeddings:
        raise ValueError(f"The prior models {prior.num_codes} codes but the VQ-VAE has {vqvae.num_embeddings}: "
                         "use the prior trained on this VQ-VAE's codes (its card names it).")
    return vqvae.decode(sample(prior, n, **kwargs))
