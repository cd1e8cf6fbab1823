"""Lesson 3's exercises (vqvae_forward's gradient checks) and its pipeline diagram."""

import numpy as np
import pytest
from checking import pasted  # tests/checking.py
from keras import ops

from vqvae_lessons import quantizers
from vqvae_lessons.exercises import check, lesson3


def verdict(capsys, fn):
    result = check("vqvae_forward", fn)
    return result, capsys.readouterr().out


def test_the_reference_sends_each_loss_to_its_own_parts():
    images = np.random.default_rng(0).uniform(size=(4, 5)).astype("float32")
    seen = lesson3._observe_forward(lesson3.vqvae_forward, images, 1, 0.25, 0.1)
    flows = {name: {part: lesson3._nonzero(seen[f"{name}/{part}"]) for part in lesson3._PARTS}
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
