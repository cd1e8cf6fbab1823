"""Priors over a VQ-VAE's maps of codes.

* :mod:`.masked`: masked convolutions (:func:`~.masked.causal_mask`, :class:`~.masked.MaskedConv2D`).
* :mod:`.pixelcnn`: the Keras example's PixelCNN and the gated PixelCNN (:class:`~.pixelcnn.PixelCNN`),
  and :func:`~.pixelcnn.fix_label`.
* :mod:`.sampling`: one sampling interface, :func:`~.sampling.sample` and :func:`~.sampling.generate`.
  It imports the models; the models never import it.

The architectures and their default sizes live here, importable without Keras (the recipes read them).
"""

ARCHITECTURES = {  # name: default channels, default number of layers (residual or gated)
    "keras-example": {"channels": 128, "num_layers": 2},
    "gated": {"channels": 64, "num_layers": 6},
}
