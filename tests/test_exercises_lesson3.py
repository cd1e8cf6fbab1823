"""Lesson 3's exercises (vqvae_forward's gradient checks) and its pipeline diagram."""

import numpy as np
import pytest
from checking import assert_incorrect, pasted  # tests/checking.py
from keras import ops

from vqvae_lessons import quantizers
from vqvae_lessons.exercises import check, lesson3


def verdict(capsys, fn):
    result = check("vqvae_forward", fn)
    return result, capsys.readouterr().out


def test_the_reference_sends_each_loss_to_its_own_parts():
    images = np.random.default_rng(0).uniform(size=(4, 5)).astype("float32")
    seen = lesson3._observe_forward(lesson3.vqvae_forward, images, 1, 0.25, 0.1)
    flows = {name: {part: lesson3.nonzero(seen[f"{name}/{part}"]) for part in lesson3._PARTS}
             for name in lesson3._LOSS_NAMES}
    assert flows == {"reconstruction_loss": {"encoder": True, "codebook": False, "decoder": True},
                     "codebook_loss": {"encoder": False, "codebook": True, "decoder": False},
                     "commitment_loss": {"encoder": True, "codebook": False, "decoder": False}}


def test_vqvae_forward_alternatives(capsys):
    def as_tuple(*args):
        out = pasted("vqvae_forward")(*args)
        return out["reconstructions"], out["reconstruction_loss"], out["codebook_loss"], out["commitment_loss"]

    def one_hot_lookup(images, encoder, codebook, decoder, beta, data_variance=1.0):
        z_e = encoder(images - 0.5)
        flat = ops.reshape(z_e, (-1, codebook.shape[-1]))
        one_hot = ops.one_hot(quantizers.nearest_code(flat, codebook), codebook.shape[0])
        z_q = ops.reshape(ops.matmul(one_hot, codebook), ops.shape(z_e))
        x_hat = decoder(z_e + ops.stop_gradient(z_q - z_e)) + 0.5
        return {"reconstructions": x_hat, "reconstruction_loss": ops.mean((images - x_hat) ** 2) / data_variance,
                "codebook_loss": ops.mean((z_q - ops.stop_gradient(z_e)) ** 2),
                "commitment_loss": beta * ops.mean((z_e - ops.stop_gradient(z_q)) ** 2), "indices": one_hot}

    for fn in (pasted("vqvae_forward"), as_tuple, one_hot_lookup):
        result, out = verdict(capsys, fn)
        assert result is True, out


@pytest.mark.parametrize("index", range(len(lesson3._FORWARD_MISTAKES)))
def test_vqvae_forward_mistakes_get_their_own_hints(capsys, index):
    mistake, message = lesson3._FORWARD_MISTAKES[index]
    result, out = verdict(capsys, mistake)
    assert result is False and out.startswith("Incorrect:") and message in out, out


def test_vqvae_forward_diagnoses_what_it_does_not_know(capsys):
    def no_commitment(*args):
        return {**lesson3.vqvae_forward(*args), "commitment_loss": ops.convert_to_tensor(0.0)}

    def not_a_dict(*args):
        return 1.0

    result, out = verdict(capsys, no_commitment)
    assert result is False and "commitment_loss differ" in out, out
    result, out = verdict(capsys, not_a_dict)
    assert result is False and "expected a dict" in out, out


def test_pipeline_diagram_has_a_title_and_every_stage():
    from vqvae_lessons.diagrams.pipeline import vqvae_pipeline

    fig = vqvae_pipeline(embedding_dim=8, num_embeddings=32)
    ax = fig.axes[0]
    assert "VQ-VAE" in ax.get_title()
    text = " ".join(t.get_text() for t in ax.texts)
    for label in ("28x28x1", "7x7x8", "indices", "32 x 8", "encoder", "decoder", "reconstruction loss",
                  "codebook loss", "commitment loss", "straight through", "to the codebook only", "to the decoder"):
        assert label in text, label


# -- the edge cases the course meets (#28, part 4) ---------------------------------------------------
def test_vqvae_forward_checks_sizes_of_one(capsys):
    """One image, codes of one number (D = 1) and a codebook of one code: a squeeze that drops the size-1 axis
    breaks there, and the reference still passes."""
    def squeezed(images, encoder, codebook, decoder, beta, data_variance=1.0):
        z_e = encoder(images - 0.5)
        flat = ops.squeeze(ops.reshape(z_e, (-1, ops.shape(codebook)[-1])))  # (M, 1) -> (M,)
        z_q = ops.reshape(ops.take(codebook, quantizers.nearest_code(flat, codebook), axis=0), ops.shape(z_e))
        x_hat = decoder(quantizers.straight_through(z_e, z_q)) + 0.5
        codebook_loss, commitment_loss = quantizers.vq_losses(z_e, z_q, beta)
        return {"reconstructions": x_hat, "reconstruction_loss": ops.mean((images - x_hat) ** 2) / data_variance,
                "codebook_loss": codebook_loss, "commitment_loss": commitment_loss}

    result, out = verdict(capsys, squeezed)
    assert result is False and "D = 1" in out and "raised" in out, out
    images = np.random.default_rng(1).uniform(size=(1, 2, 4)).astype("float32")
    seen = lesson3._observe_forward(lesson3.vqvae_forward, images, 3, 1.0, 0.5, 1, 5)
    assert seen["reconstructions"].shape == images.shape
    one_code = lesson3._observe_forward(lesson3.vqvae_forward, images, 3, 1.0, 0.5, 2, 1)
    assert lesson3.nonzero(one_code["codebook_loss/codebook"])  # the single code still learns
    assert verdict(capsys, pasted("vqvae_forward"))[0] is True


def test_vqvae_forward_names_the_new_mistakes(capsys):
    for flag, phrase in [("by_similarity", "largest dot product"), ("summed_pixels", "sums the squared errors"),
                         ("summed_codes", "sum over each vector's D numbers")]:
        result, out = verdict(capsys, lesson3._forward_mistake(**{flag: True}))
        assert result is False and phrase in out, out


def test_codebook_perplexity_edge_cases(capsys):
    name = "codebook_perplexity"
    # codes above 255: one byte wraps code 256 round to 0; the reference counts them apart
    assert_incorrect(capsys, name, lambda i, k: pasted(name)(np.asarray(i).astype(np.uint8), k),
                     "uint8", "256")
    # a rare code in the last map of a batch
    assert_incorrect(capsys, name, lambda i, k: pasted(name)(i[0] if i.ndim > 2 else i, k),
                     "first code map only")
    assert_incorrect(capsys, name, lambda i, k: pasted(name)(i, k) / k, "share of num_codes")
    assert_incorrect(capsys, name, lambda i, k: round(pasted(name)(i, k)), "rounded")
    # sizes of 1: one index, one code: the reference gives 1
    assert lesson3.codebook_perplexity(np.array([7]), 8) == 1.0
    assert lesson3.codebook_perplexity(np.zeros((1, 7, 7), "int64"), 1) == 1.0
    big = [(i, k) for i, k in lesson3._codebook_perplexity_cases() if k > 256]
    assert big and big[0][0].max() > 255 and big[0][0].dtype == np.int32
    assert check(name, pasted(name)) is True


def test_the_perplexity_cases_tell_every_mistake_apart(capsys):
    for mistake, mistake_hint in lesson3._CODEBOOK_PERPLEXITY_MISTAKES:
        assert_incorrect(capsys, "codebook_perplexity", mistake, mistake_hint)


# -- keras_example_perplexity: a prediction ----------------------------------------------------------
def test_keras_example_perplexity_is_judged_within_a_factor(capsys):
    from vqvae_lessons import exercises

    measured = exercises._QUESTIONS["keras_example_perplexity"].example
    assert exercises._QUESTIONS["keras_example_perplexity"].kind == "predict"
    assert exercises.check_answer("keras_example_perplexity", 12, measured) is True
    out = capsys.readouterr().out
    assert out.startswith("Correct") and "11.5" in out and "81.2" in out, out
    for wrong, phrase in [(40, "too hopeful"), (5, "too few"), (0.5, "between 1"), (500, "between 1")]:
        assert exercises.check_answer("keras_example_perplexity", wrong, measured) is False
        out = capsys.readouterr().out
        assert out.startswith("Incorrect") and phrase in out and "11.5" in out, out
