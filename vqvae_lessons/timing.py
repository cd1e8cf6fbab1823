"""Timing several methods side by side, as the benchmarks and lesson 8 do.

These machines are shared and noisy: the same work can take twice as long a minute later. So
methods are compared by the medians of repeats that alternate between them in one process,
after a warm-up call each (which builds and compiles), never by times taken at different moments.
"""

from __future__ import annotations

import statistics
import time


def side_by_side(methods, repeats=5, digits=4):
    """Times each method of ``methods`` (``{name: function of a seed}``) ``repeats`` times, alternating.

    Each method is first called once with seed 0 (warm-up, not timed); repeat ``r`` then calls
    every method in turn with seed ``r + 1``. Returns ``(seconds, medians)``: ``{name: [seconds
    of each repeat]}`` rounded to ``digits`` decimals, and ``{name: their median}``.
    """
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats is a positive whole number of timed calls per method, got {repeats!r}.")
    for method in methods.values():
        method(0)
    seconds = {name: [] for name in methods}
    for repeat in range(repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method(repeat + 1)
            seconds[name].append(round(time.perf_counter() - start, digits))
    return seconds, {name: statistics.median(values) for name, values in seconds.items()}
