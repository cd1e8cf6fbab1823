"""Lesson 4's explorer, driven headless: the selectors, what it shows, and how it moves between points."""

import ipywidgets as widgets
import pytest
from matplotlib.figure import Figure

from vqvae_lessons import sweep
from vqvae_lessons.sweep import SweepError
from vqvae_lessons.widgets import Explorer, explorer, metrics_table


@pytest.fixture(scope="module")
def shipped():
    return sweep.load_sweep()


@pytest.fixture(scope="module")
def view(tiny_mnist, shipped):
    return explorer(tiny_mnist.x_test[:4], n=4, index=shipped)


def test_explorer_is_a_widget_showing_the_base_point(view):
    assert isinstance(view, Explorer) and isinstance(view, widgets.VBox)
    assert view.record["name"] == "k128-d16"
    assert (view.k_select.value, view.d_select.value, view.setting_select.value) == (128, 16, None)
    assert list(view.k_select.options) == list(sweep.GRID_NUM_EMBEDDINGS)
    assert list(view.d_select.options) == list(sweep.GRID_EMBEDDING_DIM)
    assert len(view.setting_select.options) == 1 + len(sweep.ABLATIONS)
    assert len(view.figures) == 3 and all(isinstance(f, Figure) for f in view.figures)
    assert "K = 128, D = 16" in view.figures[0].get_suptitle()
    psnr = sweep.point(128, 16, index=view.index)["metrics"]["test_psnr_db"]
    assert f"{psnr:.2f}" in view.metrics_html.value and "343" in view.metrics_html.value


def test_select_shows_a_point(view):
    record = view.select(8, 16)
    assert record["name"] == "k8-d16" and view.k_select.value == 8 and view.record is record
    assert "K = 8, D = 16" in view.figures[0].get_suptitle() and "0 to 7" in view.figures[1].get_suptitle()
    assert "8 of 8" in view.metrics_html.value or " of 8 (" in view.metrics_html.value
    assert "147" in view.metrics_html.value  # 49 log2 8 bits


def test_the_selectors_stay_on_the_grid(view):
    view.select(128, 4)
    view.k_select.value = 32  # K off the base: D goes back to the base D
    assert (view.record["name"], view.d_select.value) == ("k32-d16", 16)
    view.d_select.value = 64  # D off the base: K goes back to the base K
    assert (view.record["name"], view.k_select.value) == ("k128-d64", 128)
    view.setting_select.value = "loss"  # an ablation: the base point
    assert view.record["name"] == "k128-d16-loss" and (view.k_select.value, view.d_select.value) == (128, 16)
    assert "codebook loss" in view.figures[0].get_suptitle()
    view.k_select.value = 256  # leaving the base point leaves the ablation
    assert view.record["name"] == "k256-d16" and view.setting_select.value is None


def test_select_off_the_grid_is_a_clear_error(view):
    with pytest.raises(SweepError, match="no point 'k32-d4'"):
        view.select(32, 4)


def test_metrics_table_is_html():
    record = {"num_embeddings": 8, "embedding_dim": 2, "label": "a <b>", "rate_bits": 147.0, "seconds": 3.0,
              "metrics": {"test_psnr_db": 18.5, "test_mse": 0.014, "test_perplexity": 3.2, "codes_used": 7,
                          "codebook_usage": 0.875}}
    html = metrics_table(record)
    assert html.startswith("<table>") and "a &lt;b&gt;" in html and "7 of 8 (88%)" in html
