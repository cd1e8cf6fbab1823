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

# The model class of each architecture of :data:`~vqvae_lessons.priors.ARCHITECTURES` (a new prior: its module,
# its sizes there, one line here and one in :data:`~vqvae_lessons.priors.sampling.SAMPLERS`).
MODELS = {"keras-example": PixelCNN, "gated": PixelCNN, "transformer": ARTransformerPrior, "maskgit": MaskGITPrior}


def prior_class(architecture):
    """The model class of a prior ``architecture`` (:data:`MODELS`): :class:`~.pixelcnn.PixelCNN`,
    :class:`~.transformer.ARTransformerPrior` or :class:`~.transformer.MaskGITPrior`. An architecture that is
    not known, or has no class here, is a ValueError (never built as some other prior)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
    if architecture not in MODELS:
        raise ValueError(f"architecture={architecture!r} has sizes in priors.ARCHITECTURES but no model class in "
                         f"priors.build.MODELS: add its line there.")
    return MODELS[architecture]


def build_prior(architecture="gated", num_codes=128, num_classes=None, channels=None, num_layers=None, dropout=0.0,
                heads=None, mlp_ratio=None, **kwargs):
    """An untrained prior of ``architecture`` (a key of :data:`~vqvae_lessons.priors.ARCHITECTURES`) over
    ``num_codes`` codes; ``channels``, ``num_layers`` and a transformer's ``heads`` and ``mlp_ratio`` default
    to the architecture's (None); ``kwargs`` go to the model class (:func:`prior_class`), e.g. ``grid``."""
    cls = prior_class(architecture)
    if architecture not in TRANSFORMERS:
        if heads is not None or mlp_ratio is not None:
            raise ValueError(f"heads and mlp_ratio set a transformer's attention and MLP; a {architecture!r} PixelCNN "
                             "has neither: leave them out, or use architecture='transformer' or 'maskgit'.")
    else:
        kwargs.update(heads=heads, mlp_ratio=mlp_ratio)
    return cls(architecture=architecture, num_codes=num_codes, num_classes=num_classes, channels=channels,
               num_layers=num_layers, dropout=dropout, **kwargs)


def fix_label(prior, label):
    """The unconditional prior that acts as the conditional ``prior`` given ``label``: a gated PixelCNN's
    (:func:`~vqvae_lessons.priors.pixelcnn.fix_label`) or a transformer's
    (:func:`~vqvae_lessons.priors.transformer.fix_class_token`)."""
    if isinstance(prior, PixelCNN):
        return pixelcnn.fix_label(prior, label)
    if isinstance(prior, (ARTransformerPrior, MaskGITPrior)):
        return transformer.fix_class_token(prior, label)
    raise ValueError(f"A {type(prior).__name__} cannot be made the unconditional prior of one label: use a gated "
                     "PixelCNN or a transformer prior.")
