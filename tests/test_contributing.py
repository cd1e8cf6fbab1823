"""CONTRIBUTING.md's recipe for a new prior works through the public registries only: a toy architecture gets
its sizes (``priors.ARCHITECTURES``), its model class (``priors.build.MODELS``), its sampler
(``priors.sampling.SAMPLERS``) and, being a transformer, its line in ``TRANSFORMERS``; then the package builds
it, trains it, samples it and rebuilds it from a model card with no other change (#26 part 9)."""

import keras
import numpy as np
import pytest

from vqvae_lessons import pretrained, priors
from vqvae_lessons.priors import build, decoding, sampling
from vqvae_lessons.priors.transformer import ARTransformerPrior

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


class TinyTransformer(ARTransformerPrior):
    """The toy prior of CONTRIBUTING.md: the autoregressive transformer, one narrow block."""

    architecture = "tiny-transformer"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(priors.ARCHITECTURES, "tiny-transformer",
                        {"channels": 16, "num_layers": 1, "heads": 2, "mlp_ratio": 2})
    monkeypatch.setattr(priors, "TRANSFORMERS", (*priors.TRANSFORMERS, "tiny-transformer"))
    monkeypatch.setattr(build, "TRANSFORMERS", priors.TRANSFORMERS)
    monkeypatch.setitem(build.MODELS, "tiny-transformer", TinyTransformer)
    monkeypatch.setitem(sampling.SAMPLERS, "tiny-transformer", decoding.sample_autoregressive)


def test_a_new_prior_is_its_module_and_a_line_in_each_registry(registered):
    prior = build.build_prior("tiny-transformer", num_codes=8)
    assert isinstance(prior, TinyTransformer) and prior.channels == 16 and prior.num_layers == 1
    codes = np.random.default_rng(0).integers(0, 8, size=(32, 7, 7)).astype("int32")
    prior.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = prior.fit(codes, codes, epochs=2, batch_size=16, verbose=0).history  # as train.train_prior fits
    assert np.all(np.isfinite(history["loss"]))
    maps = sampling.sample(prior, 3, seed=1)
    assert maps.shape == (3, 7, 7) and maps.min() >= 0 and maps.max() < 8
    np.testing.assert_array_equal(maps, sampling.sample(prior, 3, seed=1))  # the registered sampler, seeded
    copy = pretrained.build_model("prior", prior.get_config())  # what loading a card does
    assert type(copy) is TinyTransformer


def test_contributing_names_every_registry_the_toy_prior_used():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for where in ("priors/__init__.py", "ARCHITECTURES", "TRANSFORMERS", "priors/build.py", "MODELS",
                  "priors/sampling.py", "SAMPLERS", "exercises/core.py", "register(", "register_question(",
                  "exercises/authoring.py", "tests/test_contributing.py", "_toc.yml", "ruff check"):
        assert where in text, f"CONTRIBUTING.md does not mention {where}"
