import itertools
import math

import numpy as np
import pytest

from vqvae_lessons import metrics


def test_mse_and_psnr():
    a, b = np.zeros((2, 28, 28, 1)), np.full((2, 28, 28, 1), 0.1)
    assert metrics.mse(a, b) == pytest.approx(0.01)
    assert metrics.psnr_db(0.01) == pytest.approx(20.0)
    assert metrics.psnr_db(0.0) == math.inf
    with pytest.raises(ValueError, match="Shapes differ"):
        metrics.mse(a, b[:1])


def test_perplexity_and_usage_over_the_whole_dataset():
    assert metrics.perplexity(np.arange(8).repeat(3), 16) == pytest.approx(8.0)
    assert metrics.perplexity(np.zeros((4, 7, 7), int), 16) == pytest.approx(1.0)
    skewed = np.array([0, 0, 0, 1])
    assert metrics.perplexity(skewed, 2) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert metrics.codes_used(np.array([[3, 3], [5, 0]]), 8) == 3
    np.testing.assert_array_equal(metrics.code_counts([1, 1, 2], 4), [0, 2, 1, 0])
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        metrics.code_counts([4], 4)


def test_information_units():
    assert metrics.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert metrics.bits_to_nats(metrics.nats_to_bits(1.7)) == pytest.approx(1.7)
    assert metrics.bits_per_image(128) == pytest.approx(343.0)  # 7 x 7 codes of 7 bits
    assert metrics.bits_per_image(8, grid=(2, 2)) == pytest.approx(12.0)


@pytest.mark.parametrize("num_codes, grid", [(2, (1, 3)), (3, (2, 2)), (5, (1, 2)), (4, (2, 3))])
def test_bits_per_image_count_the_maps_a_grid_can_hold(num_codes, grid):
    # Independently of the formula: list every map of codes the grid can hold, and take log2 of their number.
    maps = {tuple(cells) for cells in itertools.product(range(num_codes), repeat=int(np.prod(grid)))}
    assert metrics.bits_per_image(num_codes, grid=grid) == pytest.approx(math.log2(len(maps)))


def test_side_by_side_alternates_the_methods_after_one_warm_up_each():
    import statistics

    from vqvae_lessons import timing

    calls = []
    methods = {"a": lambda seed: calls.append(("a", seed)), "b": lambda seed: calls.append(("b", seed))}
    seconds, medians = timing.side_by_side(methods, repeats=2)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert set(seconds) == {"a", "b"} and all(len(v) == 2 and min(v) >= 0 for v in seconds.values())
    assert medians == {name: statistics.median(values) for name, values in seconds.items()}
    with pytest.raises(ValueError, match="repeats"):
        timing.side_by_side({"a": lambda s: None}, repeats=0)
