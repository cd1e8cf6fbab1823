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

    def with_loops(logits, codes):  # the log-softmax position by position (stable for saturated logits)
        total = 0.0
        for n, i, j in np.ndindex(codes.shape):
            shifted = logits[n, i, j].astype("float64") - logits[n, i, j].max()
            total -= (shifted[codes[n, i, j]] - np.log(np.exp(shifted).sum())) / np.log(2)
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


# -- part 4 of #28: the edge cases the course meets, each mistake named -----------------------------
def assert_named(capsys, name, fn, mistake_hint):
    result, out = verdict(capsys, name, fn)
    assert result is False and out.startswith("Incorrect:") and mistake_hint in out, out


@pytest.mark.parametrize("name", ["causal_mask", "gate", "nll_bits_per_image", "sample_codes"])
def test_the_pasted_reference_still_passes_every_edge_case(capsys, name):
    result, out = verdict(capsys, name, pasted(name))
    assert result is True, out


def test_causal_mask_names_a_mask_with_only_the_row_just_above(capsys):
    mistake, mistake_hint = lesson5._CAUSAL_MASK_MISTAKES[-1]
    assert np.array_equal(mistake(3, "A"), lesson5.causal_mask(3, "A"))  # right for 3x3: the 7x7 case finds it
    assert_named(capsys, "causal_mask", mistake, mistake_hint)
    assert "7x7" in mistake_hint


# gate: every planted mistake is rejected with its own hint; sizes of 1, saturation and dtype are checked
@pytest.mark.parametrize("index", range(len(lesson5._GATE_MISTAKES)))
def test_gate_names_each_mistake(capsys, index):
    mistake, mistake_hint = lesson5._GATE_MISTAKES[index]
    assert_named(capsys, "gate", mistake, mistake_hint)


def test_gate_edge_cases_are_in_the_cases():
    shapes = [features.shape for features in lesson5._gate_cases()]
    assert (1, 1, 1, 2) in shapes  # one map, one position, C = 1
    saturated = list(lesson5._gate_cases())[-1]
    assert np.abs(saturated).max() > 400  # beyond float64's exp(2a) overflow
    assert all(features.dtype == np.float32 for features in lesson5._gate_cases())


def test_gate_accepts_ops_split_and_numpy_in_float32_and_refuses_float64(capsys):
    from keras import ops

    def with_split(x):
        a, b = ops.split(x, 2, axis=-1)
        return ops.tanh(a) * ops.sigmoid(b)

    def in_numpy(x):  # right, and float32: passes the check (use's trial then asks for keras.ops)
        c = x.shape[-1] // 2
        return np.tanh(x[..., :c]) * (0.5 + 0.5 * np.tanh(0.5 * x[..., c:]))

    assert verdict(capsys, "gate", with_split)[0] is True
    assert verdict(capsys, "gate", in_numpy)[0] is True
    result, out = verdict(capsys, "gate", lambda x: in_numpy(x.astype("float64")))
    assert result is False and "dtype float64" in out, out


# nll_bits_per_image: saturated logits, codes above 255, sizes of 1, a sum over the images
def _nll_naive_softmax(logits, codes):  # how a learner writes it: exp, normalise, pick, log2
    logits = np.asarray(logits, "float64")
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return float(np.mean(-np.log2(np.take_along_axis(p, np.asarray(codes)[..., None], -1)[..., 0]).sum((1, 2))))


def _nll_log_of_stable_softmax(logits, codes):
    logits = np.asarray(logits, "float64")
    e = np.exp(logits - logits.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    return float(np.mean(-np.log2(np.take_along_axis(p, np.asarray(codes)[..., None], -1)[..., 0]).sum((1, 2))))


def _nll_uint8_codes(logits, codes):
    logits = np.asarray(logits, "float64")
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, np.asarray(codes).astype(np.uint8).astype(int)[..., None], -1)[..., 0]
    return float(np.mean(-picked.sum((1, 2)) / np.log(2)))


@pytest.mark.parametrize(("fn", "words"), [
    (_nll_naive_softmax, "exp overflows"),
    (_nll_log_of_stable_softmax, "never the log of a softmax"),
    (_nll_uint8_codes, "uint8 holds 0 to 255"),
    (lambda x, c: lesson5._nll(x, c) * len(c), "summed over the images"),
])
def test_nll_bits_per_image_names_the_edge_case_mistakes(capsys, fn, words):
    """Each was accepted before the saturated, K = 512 and one-position cases were added (#28, part 4)."""
    result, out = verdict(capsys, "nll_bits_per_image", fn)
    assert result is False and words in out, out


def test_nll_bits_per_image_cases_hold_the_edge_cases():
    cases = list(lesson5._nll_cases())
    assert any(np.ptp(logits, axis=-1).min() > 800 for logits, _ in cases)  # saturated everywhere in one case
    assert any(np.asarray(codes).max() > 255 for _, codes in cases)
    assert any(logits.shape[:3] == (1, 1, 1) for logits, _ in cases)


# sample_codes: independent draws across a batch, codes above 255, saturated logits, sizes of 1
def _loop(draw, dtype=int, softmax=lesson5._softmax):
    def sample(logits_fn, shape, rng):
        codes = np.zeros(shape, dtype=dtype)
        for i, j in np.ndindex(*shape[1:]):
            with np.errstate(all="ignore"):
                probs = softmax(np.asarray(logits_fn(codes), "float64")[:, i, j])
            codes[:, i, j] = draw(probs, rng)
        return codes
    return sample


def _choice(probs, rng):
    return [rng.choice(len(p), p=p) for p in probs]


def _one_uniform_for_the_batch(probs, rng):  # inverse CDF with one shared random number
    return np.minimum((np.cumsum(probs, -1) < rng.random()).sum(-1), probs.shape[-1] - 1)


def _naive_softmax(logits):
    e = np.exp(logits)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize(("fn", "words"), [
    (_loop(_one_uniform_for_the_batch), "not independent"),
    (_loop(_choice, dtype=np.uint8), "cannot hold codes up to K - 1 = 299"),
    (_loop(_choice, softmax=_naive_softmax), "exp overflows"),
])
def test_sample_codes_names_the_edge_case_mistakes(capsys, fn, words):
    """Each was accepted before the batch-independence, K = 300 and saturated cases were added (#28, part 4)."""
    result, out = verdict(capsys, "sample_codes", fn)
    assert result is False and words in out, out


@pytest.mark.parametrize("index", range(len(lesson5._SAMPLE_CODES_MISTAKES)))
def test_sample_codes_rejects_each_mistake_of_its_table(capsys, index):
    mistake, mistake_hint = lesson5._SAMPLE_CODES_MISTAKES[index]
    assert_named(capsys, "sample_codes", mistake, mistake_hint)


def test_sample_codes_accepts_independent_inverse_cdf_draws_and_int32(capsys):
    def per_example_uniform(probs, rng):
        return np.minimum((np.cumsum(probs, -1) < rng.random((len(probs), 1))).sum(-1), probs.shape[-1] - 1)

    assert verdict(capsys, "sample_codes", _loop(per_example_uniform, dtype=np.int32))[0] is True


def test_each_check_of_lesson_5_is_fast():
    import time

    for name in ("causal_mask", "gate", "nll_bits_per_image", "sample_codes"):
        start = time.perf_counter()
        check(name, pasted(name))
        assert time.perf_counter() - start < 2.0, name


# the prediction of section 6
def test_gated_bits_per_image_is_judged_within_a_factor_and_explains(capsys):
    from vqvae_lessons.exercises import check_answer, core

    measured = core._QUESTIONS["gated_bits_per_image"].example
    for answer, right in [(measured["prior"], True), (150, True), (230, True), (100, False), (300, False),
                          (measured["uniform"], False), (-5, False)]:
        assert check_answer("gated_bits_per_image", answer, measured=measured) is right, answer
        out = capsys.readouterr().out
        assert f"{measured['prior']:.1f}" in out and "knows nothing" in out, out
