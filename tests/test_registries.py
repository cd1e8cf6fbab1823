"""Every family is held together by registries, and a name missing from one is a clear error, never built or
sampled as some other member of the family (#26 part 3)."""

import json

import pytest

from vqvae_lessons import pretrained
from vqvae_lessons.priors import ARCHITECTURES, TRANSFORMERS, build, sampling
from vqvae_lessons.priors.pixelcnn import PixelCNN
from vqvae_lessons.priors.transformer import ARTransformerPrior, MaskGITPrior


def test_every_prior_architecture_has_a_model_class_and_a_sampler():
    assert set(build.MODELS) == set(ARCHITECTURES) == set(sampling.SAMPLERS)
    assert {a for a, cls in build.MODELS.items() if cls is not PixelCNN} == set(TRANSFORMERS)
    for architecture in ARCHITECTURES:
        assert build.build_prior(architecture, num_codes=8).architecture == architecture


def test_an_architecture_without_a_model_class_is_an_error_not_a_pixelcnn(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "new-prior", {"channels": 8, "num_layers": 1})
    with pytest.raises(ValueError, match="'new-prior' has sizes in priors.ARCHITECTURES but no model class"):
        build.prior_class("new-prior")
    with pytest.raises(ValueError, match="architecture='nope' is not known"):
        build.prior_class("nope")


@pytest.mark.parametrize("cls", [PixelCNN, ARTransformerPrior, MaskGITPrior])
def test_a_prior_whose_architecture_has_no_sampler_is_an_error_not_another_sampler(monkeypatch, cls):
    prior = build.build_prior(next(a for a, c in build.MODELS.items() if c is cls), num_codes=8)
    assert sampling.sample(prior, 2, seed=0).shape == (2, 7, 7)
    monkeypatch.delitem(sampling.SAMPLERS, prior.architecture)
    with pytest.raises(ValueError, match=f"no sampler for a {cls.__name__} of architecture '{prior.architecture}'"):
        sampling.sample(prior, 2, seed=0)


def test_a_card_naming_an_unknown_prior_architecture_says_so(tmp_path):
    card = pretrained.card("gated-vqvae")
    card["config"]["architecture"] = "pixelsnail"
    (tmp_path / "p.json").write_text(json.dumps(card))
    with pytest.raises(pretrained.PretrainedError, match="The prior in the model card .*'pixelsnail' is not known"):
        pretrained.load(weights_path=tmp_path / "p.weights.h5")
