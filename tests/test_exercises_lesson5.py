"""Lesson 5's new checkers (nll_bits_per_image) and diagrams (the gated block, receptive fields)."""

import numpy as np
import pytest
from checking import pasted  # tests/checking.py

from vqvae_lessons import metrics
from vqvae_lessons.diagrams import pixelcnn as diagrams
from vqvae_lessons.exercises import check, lesson5


def verdict(capsys, name, fn):
    result = check(name, fn)
    return result, capsys.readouterr().out


# -- nll_bits_per_image --------------------------------------------------------------------------
def test_nll_bits_per_image_accepts_equivalent_answers(capsys):
    from keras import ops

    def with_ops(logits, codes):  # backend tensors, one-hot picking, log2 of the softmax
        picked = ops.sum(ops.log_softmax(logits, axis=-1) * ops.one_hot(codes, logits.shape[-1]), axis=-1)
        return -ops.mean(ops.sum(picked, axis=(1, 2))) / np.log(2)

    def with_loops(logits, codes):
        total = 0.0
        for n, i, j in np.ndindex(codes.shape):
            p = np.exp(logits[n, i, j] - logits[n, i, j].max())
            total -= np.log2(p[codes[n, i, j]] / p.sum())
        return total / len(codes)

    for fn in (pasted("nll_bits_per_image"), with_ops, with_loops):
        result, out = verdict(capsys, "nll_bits_per_image", fn)
        assert result is True, out


@pytest.mark.parametrize("index", range(len(lesson5._NLL_BITS_MISTAKES)))
def test_nll_bits_per_image_names_each_mistake(capsys, index):
    mistake, mistake_hint = lesson5._NLL_BITS_MISTAKES[index]
    result, out = verdict(capsys, "nll_bits_per_image", mistake)
    assert result is False and out.startswith("Incorrect:") and mistake_hint in out, out


def test_nll_bits_per_image_not_attempted_and_wrong_shape(capsys):
    def stub(logits, codes):
        raise NotImplementedError

    assert verdict(capsys, "nll_bits_per_image", stub)[0] is None
    result, out = verdict(capsys, "nll_bits_per_image", lambda x, c: np.zeros(len(c)))
    assert result is False and "single number" in out, out


def test_nll_bits_per_image_agrees_with_evaluate_prior():
    from vqvae_lessons.priors import pixelcnn

    prior = pixelcnn.PixelCNN("gated", 8, channels=8, num_layers=2)
    codes = np.random.default_rng(0).integers(0, 8, size=(5, 7, 7)).astype("int32")
    ours = lesson5.nll_bits_per_image(prior(codes), codes)
    assert ours == pytest.approx(metrics.evaluate_prior(prior, codes)["test_nll_bits_per_image"], rel=1e-4)


# -- diagrams ------------------------------------------------------------------------------------
def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]


def test_gated_block_has_a_title_and_its_parts():
    fig = diagrams.gated_block()
    assert fig.axes[0].get_title()
    drawn = " ".join(texts(fig))
    for label in ("vertical", "horizontal", "tanh(a) * sigmoid(b)", "1x1 conv", "residual", "class label"):
        assert label in drawn, label
    assert "class label" not in " ".join(texts(diagrams.gated_block(class_bias=False)))


@pytest.mark.parametrize("num_layers", [2, 3, 4])
def test_receptive_fields_from_the_masks(num_layers):
    position = (3, 3)
    earlier = diagrams._earlier((7, 7), position)
    plain = diagrams.receptive_field("plain", num_layers)[position]
    gated = diagrams.receptive_field("gated", num_layers)[position]
    assert not (plain & ~earlier).any() and not (gated & ~earlier).any()  # causal: nothing at or after
    if num_layers >= 3:  # enough layers to reach the rows above: the gated field is all of c_<t
        assert np.array_equal(gated, earlier)
    blind = earlier & ~plain
    assert blind.any()
    for i, j in np.argwhere(blind & gated):  # what the plain stack misses within reach: up and to the right
        assert i < position[0] and j > position[1]
    if num_layers == 3:
        assert sorted(map(tuple, np.argwhere(blind).tolist())) == [(1, 6), (2, 5), (2, 6)]


def test_receptive_fields_figure():
    fig = diagrams.receptive_fields()
    assert fig.get_suptitle()
    titles = [ax.get_title() for ax in fig.axes]
    assert "3 of 24 earlier positions blind" in titles[0] and "0 of 24" in titles[1]
    assert "blind" in texts(fig)
