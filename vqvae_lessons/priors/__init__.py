"""Priors over a VQ-VAE's maps of codes.

* :mod:`.masked`: masked convolutions (:func:`~.masked.causal_mask`, :class:`~.masked.MaskedConv2D`).
* :mod:`.pixelcnn`: the Keras example's PixelCNN and the gated PixelCNN (:class:`~.pixelcnn.PixelCNN`),
  and :func:`~.pixelcnn.fix_label`.
* :mod:`.attention`: self-attention and the transformer block; :mod:`.transformer`: the autoregressive
  transformer prior and MaskGIT (:class:`~.transformer.ARTransformerPrior`, :class:`~.transformer.MaskGITPrior`);
  :mod:`.decoding`: their samplers (a key/value cache; MaskGIT's parallel decoding); :mod:`.build`:
  :func:`~.build.build_prior`, a prior of any architecture.
* :mod:`.sampling`: one sampling interface, :func:`~.sampling.sample` and :func:`~.sampling.generate`.
  It imports the models; the models never import it.

The architectures and their default sizes live here, importable without Keras (the recipes read them);
:func:`.build.build_prior` builds any of them.
"""

ARCHITECTURES = {  # name: default channels, number of layers (residual, gated or transformer blocks); a transformer's
    # attention heads and MLP width (in multiples of its channels) too
    "keras-example": {"channels": 128, "num_layers": 2},
    "gated": {"channels": 64, "num_layers": 6},
    "transformer": {"channels": 128, "num_layers": 4, "heads": 4, "mlp_ratio": 4},
    "maskgit": {"channels": 64, "num_layers": 2, "heads": 2, "mlp_ratio": 2},
}
TRANSFORMERS = ("transformer", "maskgit")  # the architectures of :mod:`.transformer`; the others are PixelCNNs

