"""What is done the same way to a prior of any architecture, the PixelCNNs' and the transformers'.

:func:`build_prior` is what training (:func:`~vqvae_lessons.train.train_prior`) and the model
cards (:func:`~vqvae_lessons.pretrained.build_model`) build a prior with; :func:`prior_class`
names the class of an architecture; :func:`fix_label` turns a conditional prior into the
unconditional prior of one label.
"""

from __future__ import annotations

from . import ARCHITECTURES, TRANSFORMERS, pixelcnn, transformer
from .pixelcnn import PixelCNN
from .transformer import ARTransformerPrior, MaskGITPrior


def prior_class(architecture):
    """The model class of a prior ``architecture``: :class:`~.pixelcnn.PixelCNN`,
    :class:`~.transformer.ARTransformerPrior` or :class:`~.transformer.MaskGITPrior`."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
    if architecture in TRANSFORMERS:
        return ARTransformerPrior if architecture == "transformer" else MaskGITPrior
    return PixelCNN


def build_prior(architecture="gated", num_codes=128, num_classes=None, channels=None, num_layers=None, dropout=0.0,
                **kwargs):
    """An untrained prior of ``architecture`` (a key of :data:`~vqvae_lessons.priors.ARCHITECTURES`) over
    ``num_codes`` codes; ``channels`` and ``num_layers`` default to the architecture's; ``kwargs`` go to
    the model class (:func:`prior_class`), e.g. ``heads`` for a transformer or ``grid``."""
    return prior_class(architecture)(architecture=architecture, num_codes=num_codes, num_classes=num_classes,
                                     channels=channels, num_layers=num_layers, dropout=dropout, **kwargs)


def fix_label(prior, label):
    """The unconditional prior that acts as the conditional ``prior`` given ``label``: a gated PixelCNN's
    (:func:`~vqvae_lessons.priors.pixelcnn.fix_label`) or an autoregressive transformer's
    (:func:`~vqvae_lessons.priors.transformer.fix_class_token`); MaskGIT's label is a token of its own,
    which no unconditional MaskGIT has, so it has none."""
    if isinstance(prior, PixelCNN):
        return pixelcnn.fix_label(prior, label)
    if isinstance(prior, ARTransformerPrior):
        return transformer.fix_class_token(prior, label)
    raise ValueError(f"A {type(prior).__name__} cannot be made the unconditional prior of one label: use a gated "
                     "PixelCNN or an autoregressive transformer.")
