"""Sampling maps of codes from a PixelCNN prior, fast, and decoding them into digits.

:func:`sample` draws maps position by position without recomputing the whole map for each
of the 49 positions, as the Keras example does: every layer is causal, so the rows above
the current one never change again. It keeps each layer's rows above in a cache and
computes only the current row (and, where the masks allow, only the columns the next
code needs), in one compiled step per case. :func:`generate` decodes the samples with a
VQ-VAE. This module imports the models; the models never import it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .pixelcnn import run_stage


def sample(prior, n=None, *, labels=None, given=None, temperature=1.0, seed=0, batch_size=1000, progress=False):
    """Draw maps of codes ``(n, H, W)`` (int32) from ``prior``, position by position.

    * ``labels``: for a class-conditional prior, the class of each map, ``(n,)`` or one int.
    * ``given``: ``(n, H, W)`` ints, -1 where a code is to be sampled; the other codes are
      kept as they are and the samples are conditioned on them (complete a partly given map).
    * ``temperature``: divides the logits; below 1 favours likely codes, 0 takes the most
      likely code at every position.
    * ``seed``: the same seed (and ``batch_size``) gives the same maps.
    * ``progress``: show a Keras progress bar over the batches.

    Each position costs one pass over *one row* of every layer: the rows above are cached.
    The first call on a prior also compiles its steps (a few seconds); later calls reuse them.
    """
    n = _sample_count(prior, n, labels, given)
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
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (1: the prior as trained, 0: the most likely code), "
                         f"got {temperature}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    seeds, parts = keras.random.SeedGenerator(seed), []
    bar = keras.utils.Progbar(n, unit_name="map") if progress else None
    for i in range(0, n, batch_size):
        parts.append(_sample_batch(prior, given[i:i + batch_size], None if labels is None else
                                   labels[i:i + batch_size], temperature, seeds))
        if bar is not None:
            bar.add(len(parts[-1]))
    return np.concatenate(parts) if parts else given


def _sample_count(prior, n, labels, given):
    if n is None:
        n = len(given) if given is not None else np.size(labels) if labels is not None else None
    if n is None or not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n, the number of maps to sample, must be an integer >= 0, got {n!r}.")
    return int(n)


def _sample_batch(prior, given, labels, temperature, seeds):
    """Sample one batch row by row; ``cache[s]`` holds the inputs of stage ``s`` for the rows done."""
    height, width = prior.grid
    crops = all(stage.side is not None for stage in prior.stages)
    codes = given.copy()
    cache = [[] for _ in prior.stages]
    for row in range(height):
        rows_cached = tuple(min(row, stage.rows_above) for stage in prior.stages)
        inputs = {} if labels is None else {"labels": labels}
        for s, count in enumerate(rows_cached):
            if count:  # converted once per row, not once per position
                above = _named(f"above_{s}", _concat_rows(cache[s][row - count:row], np.concatenate))
                inputs.update({key: ops.convert_to_tensor(value) for key, value in above.items()})
        for column in range(width):
            # The last column computes whole rows, to cache; the others only what the next code needs.
            cropped = crops and column < width - 1
            step = _row_step(prior, rows_cached, cropped)
            row_codes = np.maximum(codes[:, row:row + 1], 0)
            extra = {"column": np.full((len(codes),), column, "int32")} if cropped else {}
            outputs = step.predict_on_batch({**inputs, **extra, "codes": row_codes})
            free = codes[:, row, column] < 0
            if free.any():
                logits = outputs["logits"][:, 0, -1 if cropped else column]
                codes[free, row, column] = _draw(logits, temperature, seeds)[free]
        # Every stage's row is final now: no activation of this row depends on the code at its last
        # position. Only the codes themselves (stage 0's input) changed since.
        cache[0].append(codes[:, row:row + 1])
        for s in range(1, len(prior.stages)):
            cache[s].append(_unnamed(f"input_{s}", outputs))
    return codes


def _row_step(prior, rows_cached, cropped):
    """The prior's compiled step for this case, made once and kept with the prior (outside Keras's
    tracking of its layers, so the prior saves and loads exactly as before)."""
    steps = prior.__dict__.setdefault("_sampling_steps", {})
    if (rows_cached, cropped) not in steps:
        steps[rows_cached, cropped] = _RowStep(prior, rows_cached, cropped)
    return steps[rows_cached, cropped]


class _RowStep(keras.Model):
    """One row of every stage of ``prior``, given ``rows_cached[s]`` cached rows above stage ``s``.

    Inputs (a dict): ``codes`` ``(N, 1, W)``, ``labels`` ``(N,)`` for a conditional prior, and
    ``above_s`` ``(N, rows_cached[s], W, ...)``. Outputs: ``logits`` ``(N, 1, W, K)`` and
    ``input_s``, the row's input of each stage ``s >= 1`` (to cache), ``(N, 1, W, ...)``.

    ``cropped``: only the logits at the column given as input ``column`` ``(N,)`` are wanted
    (``(N, 1, 1, K)``), so each stage computes only the columns they need: as the masks look
    only left in the current row, stage ``s`` needs ``needs[s]`` columns left of the column.
    Columns outside the map are zeroed, as the stages' own zero padding would make them.
    ``predict_on_batch`` compiles the step once per input shape, on every backend.
    """

    def __init__(self, prior, rows_cached, cropped=False):
        super().__init__(name="row_step")
        self.prior, self.rows_cached, self.cropped = prior, rows_cached, cropped
        self.needs = [0] * len(prior.stages)
        for s in range(len(prior.stages) - 1, 0, -1):
            self.needs[s - 1] = self.needs[s] + (prior.stages[s].side or 0)

    def call(self, inputs):
        x, labels, outputs = inputs["codes"], inputs.get("labels"), {}
        if self.cropped:
            return {"logits": self._cropped(inputs, x, labels)}
        for s, (stage, count) in enumerate(zip(self.prior.stages, self.rows_cached, strict=True)):
            if s:
                outputs.update(_named(f"input_{s}", x))
            band = _concat_rows([_unnamed(f"above_{s}", inputs), x], ops.concatenate) if count else x
            x = run_stage(stage, band, labels, pad_top=stage.rows_above - count)
        outputs["logits"] = x
        return outputs

    def _cropped(self, inputs, x, labels):
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
            x = run_stage(stage, band, labels, pad_top=stage.rows_above - count, pad_left=0, pad_right=0,
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


def _named(name, value):
    """A stage's input as named arrays: ``{name: x}``, or ``{name_v: v, name_h: h}`` for a gated stack."""
    return {f"{name}_v": value[0], f"{name}_h": value[1]} if isinstance(value, (tuple, list)) else {name: value}


def _unnamed(name, arrays):
    return (arrays[f"{name}_v"], arrays[f"{name}_h"]) if f"{name}_v" in arrays else arrays[name]


def _concat_rows(rows, concatenate):
    """Rows ``(N, r_i, W, ...)`` (or ``(v, h)`` pairs of them) joined along the row axis."""
    if len(rows) == 1:
        return rows[0]
    if isinstance(rows[0], (tuple, list)):
        return tuple(concatenate(parts, axis=1) for parts in zip(*rows, strict=True))
    return concatenate(rows, axis=1)


def _draw(logits, temperature, seeds):
    """One code per row of ``logits`` ``(N, K)``: categorical at ``temperature``, argmax at 0."""
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype("int32")
    scaled = ops.convert_to_tensor(logits / temperature)
    return ops.convert_to_numpy(keras.random.categorical(scaled, 1, seed=seeds)[:, 0]).astype("int32")


def generate(prior, vqvae, n=None, **kwargs):
    """New images ``(n, 28, 28, 1)`` in [0, 1]: :func:`sample` codes, then ``vqvae.decode`` them."""
    if prior.num_codes != vqvae.num_embeddings:
        raise ValueError(f"The prior models {prior.num_codes} codes but the VQ-VAE has {vqvae.num_embeddings}: "
                         "use the prior trained on this VQ-VAE's codes (its card names it).")
    return vqvae.decode(sample(prior, n, **kwargs))
