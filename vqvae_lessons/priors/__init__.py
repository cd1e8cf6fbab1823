"""Priors over a VQ-VAE's maps of codes.

* :mod:`.masked`: masked convolutions (:func:`~.masked.causal_mask`, :class:`~.masked.MaskedConv2D`).
* :mod:`.pixelcnn`: the Keras example's PixelCNN and the gated PixelCNN (:class:`~.pixelcnn.PixelCNN`),
  and :func:`~.pixelcnn.fix_label`.
* :mod:`.attention`: self-attention and the transformer block; :mod:`.transformer`: the autoregressive
  transformer prior and MaskGIT (:class:`~.transformer.ARTransformerPrior`, :class:`~.transformer.MaskGITPrior`);
  :mod:`.decoding`: their samplers (a key/value cache; MaskGIT's parallel decoding).
* :mod:`.sampling`: one sampling interface, :func:`~.sampling.sample` and :func:`~.sampling.generate`.
  It imports the models; the models never import it.

The architectures and their default sizes live here, importable without Keras (the recipes read them);
:func:`build_prior` builds any of them (and imports Keras when called).
"""

ARCHITECTURES = {  # name: default channels, default number of layers (residual, gated or transformer blocks)
    "keras-example": {"channels": 128, "num_layers": 2},
    "gated": {"channels": 64, "num_layers": 6},
    "transformer": {"channels": 128, "num_layers": 4},
    "maskgit": {"channels": 64, "num_layers": 2},
}
TRANSFORMERS = ("transformer", "maskgit")  # the architectures of :mod:`.transformer`; the others are PixelCNNs


def prior_class(architecture):
    """The model class of a prior ``architecture``: :class:`~.pixelcnn.PixelCNN`,
    :class:`~.transformer.ARTransformerPrior` or :class:`~.transformer.MaskGITPrior` (imports Keras)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
    if architecture in TRANSFORMERS:
        from .transformer import ARTransformerPrior, MaskGITPrior

        return ARTransformerPrior if architecture == "transformer" else MaskGITPrior
    from .pixelcnn import PixelCNN

    return PixelCNN


def build_prior(architecture="gated", num_codes=128, num_classes=None, channels=None, num_layers=None, dropout=0.0,
                **kwargs):
    """An untrained prior of ``architecture`` (a key of :data:`ARCHITECTURES`) over ``num_codes`` codes;
    ``channels`` and ``num_layers`` default to the architecture's; ``kwargs`` go to the model class
    (:func:`prior_class`), e.g. ``heads`` for a transformer or ``grid``."""
    return prior_class(architecture)(architecture=architecture, num_codes=num_codes, num_classes=num_classes,
                                     channels=channels, num_layers=num_layers, dropout=dropout, **kwargs)
