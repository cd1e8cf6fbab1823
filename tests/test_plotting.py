import numpy as np
import pytest
from checking import assert_titled_figure

from vqvae_lessons import plotting

rng = np.random.default_rng(0)
IMAGES = rng.random((6, 28, 28, 1)).astype("float32")
CODES = rng.integers(0, 16, (6, 7, 7))


@pytest.mark.parametrize("make", [
    lambda: plotting.image_grid(IMAGES, titles=list("abcdef"), ncols=4),
    lambda: plotting.reconstructions(IMAGES, IMAGES[::-1], n=5),
    lambda: plotting.code_maps(IMAGES, CODES, 16, n=3),
    lambda: plotting.history({"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2], "perplexity": [4, 8, 9]}),
    lambda: plotting.code_usage(CODES, 16),
    lambda: plotting.latent_scatter(rng.normal(size=(50, 2)), rng.integers(0, 10, 50)),
    lambda: plotting.latent_manifold(lambda z: np.tile(z[:, :1, None], (1, 28, 28)).clip(0, 1), n=4),
    lambda: plotting.codebook_2d(rng.normal(size=(100, 2)), rng.normal(size=(5, 2))),
])
def test_every_figure_has_a_title_and_draws(make, tmp_path):
    assert_titled_figure(make(), tmp_path)


def test_code_usage_reports_the_perplexity():
    fig = plotting.code_usage(np.array([0, 1, 2, 3]), 8)
    assert "perplexity 4.0 of 8; 4 codes used" in fig.axes[0].get_title()
