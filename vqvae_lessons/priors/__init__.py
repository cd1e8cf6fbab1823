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


def hidden_share(progress):
    """MaskGIT's cosine schedule, written once: the share of a map hidden at ``progress`` in [0, 1],
    ``cos(pi progress / 2)``, from all of it (0) to none (1). Training hides ``hidden_share(r)`` of a map,
    ``r`` uniform; decoding leaves ``hidden_share(s / S)`` hidden after step ``s`` of ``S``. NumPy (or a
    number) in, NumPy float64 out; a Keras tensor in, a tensor out."""
    import math

    import numpy as np

    if isinstance(progress, (int, float, np.ndarray, np.generic)):
        return np.cos(0.5 * math.pi * np.asarray(progress, "float64"))
    from keras import ops

    return ops.cos(0.5 * math.pi * progress)

