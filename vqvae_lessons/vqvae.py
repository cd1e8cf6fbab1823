"""The VQ-VAE: encoder, vector quantizer, decoder, and how it trains.

Images are ``(N, 28, 28, 1)`` floats in [0, 1]; the model centres them to
[-0.5, 0.5] inside, as the Keras example does, and the encoder turns them into a
``7 x 7`` grid of ``D``-dimensional vectors, each replaced by its nearest of
``K`` codes. Two architectures give that grid:

* ``"keras-example"``: the published Keras example exactly (Conv 32 and 64 with
  stride 2, a 1x1 conv to D; the mirror image in transposed convolutions).
* ``"residual"``: the project's default, after the VQ-VAE paper and Sonnet:
  strided 4x4 convolutions to 128 channels, two residual blocks at 7x7, and a
  light decoder that spends its width at 7x7 rather than at 28x28.

:class:`VQVAE` trains with ``fit`` on images alone (no labels). Its loss is the
example's: mean squared error divided by the training data's variance, plus the
quantizer's loss; ``fit`` logs ``loss``, ``reconstruction_loss``, ``vq_loss``
and ``batch_perplexity``: the mean over the epoch's batches of each batch's perplexity, not
the perplexity of the whole dataset's codes (:func:`~vqvae_lessons.metrics.perplexity`, which
``metrics.evaluate_vqvae`` reports as ``test_perplexity``). Cards written before the metric was
renamed call it ``perplexity``; :func:`~vqvae_lessons.pretrained.card` gives it today's name.
``encode(images) -> indices`` ``(N, 7, 7)`` and ``decode(indices) -> images``
``(N, 28, 28, 1)`` work on NumPy arrays.

The quantizer is any of :mod:`~vqvae_lessons.quantizers` (``quantizer=``, see :data:`QUANTIZERS`):
the learned codebook ``"loss"`` (with ``gradient="rotation"``, the rotation trick, or
``codebook_transform=True``, SimVQ), the EMA codebook ``"ema"``, finite scalar quantization
``"fsq"`` (``levels``), lookup-free quantization ``"lfq"`` (``bits``) and residual VQ ``"rvq"``
(``num_quantizers`` EMA stages of ``num_embeddings`` codes). FSQ and LFQ have no codebook to
size: the encoder outputs ``len(levels)`` or ``bits`` channels and ``num_embeddings`` is
``prod(levels)`` or ``2**bits``; their encoder's last layer starts with outputs of order 1
(FSQ's bound rounds a fresh encoder's small outputs all to one code). Residual VQ's indices
have a trailing stage axis: ``encode`` gives ``(N, 7, 7, S)``, and ``decode`` takes
``(N, 7, 7, s)`` for the first ``s <= S`` stages (a lower rate: :attr:`VQVAE.bits_per_position`).

Images may be ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` everywhere (``fit``, calling the model,
``encode``); given as NumPy arrays, they are checked as ``encode`` checks them
(:func:`~vqvae_lessons.checks.check_images`: floats in [0, 1], no NaN).

References: van den Oord, Vinyals and Kavukcuoglu (2017), *Neural Discrete Representation Learning*, arXiv:1711.00937.
"""

from __future__ import annotations

import inspect
import math

import keras
import numpy as np
from keras import layers, ops

from .checks import (
    CODE_GRID,
    IMAGE_SHAPE,
    ImageInputs,
    check_images,
    check_indices,
    check_pieces,
    in_batches,
    model_images,
)
from .distribute import scale_loss
from .quantizers import (
    GRADIENTS,
    FiniteScalarQuantizer,
    LookupFreeQuantizer,
    ResidualVectorQuantizer,
    VectorQuantizer,
    VectorQuantizerEMA,
    batch_perplexity,
)

ARCHITECTURES = ("keras-example", "residual")
QUANTIZERS = {"loss": VectorQuantizer, "ema": VectorQuantizerEMA, "fsq": FiniteScalarQuantizer,
              "lfq": LookupFreeQuantizer, "rvq": ResidualVectorQuantizer}
# The settings only some quantizers take: name -> (its default, the quantizers that take it).
QUANTIZER_OPTIONS = {
    "gradient": ("straight_through", ("loss", "ema")),
    "codebook_transform": (False, ("loss",)),
    "levels": (None, ("fsq",)),
    "bits": (None, ("lfq",)),
    "num_quantizers": (None, ("rvq",)),
    "quantizer_dropout": (0.0, ("rvq",)),
}
# FSQ and LFQ have no codebook to meet the encoder halfway: a fresh encoder's last layer is scaled up so
# that its outputs are of order 1 (std 0.3 to 1 on MNIST, either architecture) instead of about 0.04.
SCALAR_INIT_STDDEV = 3.0


def build_encoder(architecture, embedding_dim, scaled_output=False):
    """Encoder: images ``(N, 28, 28, 1)`` centred on 0 to vectors ``(N, 7, 7, D)``; ``scaled_output``:
    its last layer starts with large weights (:data:`SCALAR_INIT_STDDEV`), for FSQ and LFQ."""
    inputs = keras.Input(IMAGE_SHAPE)
    if architecture == "keras-example":
        x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    else:
        x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2D(128, 4, strides=2, padding="same", activation="relu")(x)
        x = layers.Conv2D(128, 3, padding="same")(x)
        x = _residual_stack(x, 128, 32)
    init = keras.initializers.RandomNormal(stddev=SCALAR_INIT_STDDEV) if scaled_output else "glorot_uniform"
    outputs = layers.Conv2D(embedding_dim, 1, padding="same", kernel_initializer=init)(x)
    return keras.Model(inputs, outputs, name="encoder")


def build_decoder(architecture, embedding_dim):
    """Decoder: code vectors ``(N, 7, 7, D)`` to images ``(N, 28, 28, 1)`` centred on 0."""
    inputs = keras.Input((*CODE_GRID, embedding_dim))
    if architecture == "keras-example":
        x = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(inputs)
        x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
        outputs = layers.Conv2DTranspose(1, 3, padding="same")(x)
    else:
        x = layers.Conv2D(128, 3, padding="same")(inputs)
        x = _residual_stack(x, 128, 32)
        x = layers.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu")(x)
        outputs = layers.Conv2DTranspose(1, 4, strides=2, padding="same")(x)
    return keras.Model(inputs, outputs, name="decoder")


def _residual_stack(x, channels, hidden, blocks=2):
    """``blocks`` residual blocks (ReLU, 3x3 conv to ``hidden``, ReLU, 1x1 conv back), then ReLU."""
    for _ in range(blocks):
        h = layers.Activation("relu")(x)
        h = layers.Conv2D(hidden, 3, padding="same", activation="relu")(h)
        h = layers.Conv2D(channels, 1, padding="same")(h)
        x = layers.Add()([x, h])
    return layers.Activation("relu")(x)


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class VQVAE(ImageInputs, keras.Model):
    """A VQ-VAE for 28x28 grey images with a 7x7 grid of codes.

    Args:
        architecture: "keras-example" or "residual" (see the module docstring).
        num_embeddings: K, codebook size (the model card's is 128); per stage for "rvq"; for
            "fsq" and "lfq" it is ``prod(levels)`` or ``2**bits`` whatever is given.
        embedding_dim: D, size of each code vector (the model card's is 16); for "fsq" and
            "lfq" it is ``len(levels)`` or ``bits`` whatever is given.
        quantizer: "loss" (codebook learned by gradient, as the example), "ema", "fsq",
            "lfq" or "rvq" (see the module docstring).
        beta: weight of the commitment loss (LFQ's ``commitment_weight``; unused by FSQ).
        decay: the EMA decay (``quantizer="ema"`` and the stages of "rvq").
        data_variance: the reconstruction loss is ``MSE / data_variance``
            (``load_mnist().variance``; 1.0 gives the plain MSE).
        gradient: "straight_through" or "rotation" (the rotation trick), for "loss" and "ema".
        codebook_transform: SimVQ's codes ``C W`` ("loss" only).
        levels: FSQ's levels per channel, e.g. ``(8, 4, 4)`` (128 codes, 7 bits).
        bits: LFQ's bits per code (``2**bits`` codes).
        num_quantizers: residual VQ's number of stages S.
        quantizer_dropout: residual VQ's probability that a training batch uses only its first
            stages (SoundStream's quantizer dropout).
        pieces: the learner's functions for the quantizer's steps, ``{name: function}`` (None: the
            package's), passed to its constructor as ``pieces=``; the quantizers that take them
            document which names they know. Lessons 2 and 7 build models from the exercises this
            way (see :func:`vqvae_lessons.exercises.use`). Not saved with the model.
        forward: the learner's forward pass (lesson 3's ``vqvae_forward(images, encoder, codebook,
            decoder, beta, data_variance)``, returning ``reconstructions`` and the three losses), for
            ``quantizer="loss"``: ``call`` and ``compute_loss`` then run it instead of the package's
            chain, so ``fit`` trains the model through it (None: the package's). Not saved with the model.

    Call: images ``(N, 28, 28[, 1])`` in [0, 1] to a dict with ``reconstruction``
    ``(N, 28, 28, 1)`` (not clipped), ``indices`` ``(N, 7, 7)``, ``vq_loss`` and
    ``perplexity`` (scalars, over the batch). ``fit`` logs the mean of the batches'
    perplexities as ``batch_perplexity`` (not the dataset's perplexity: see
    :func:`~vqvae_lessons.metrics.perplexity`).
    """

    def __init__(self, architecture="residual", num_embeddings=128, embedding_dim=16, quantizer="ema",
                 beta=0.25, decay=0.99, data_variance=1.0, gradient="straight_through", codebook_transform=False,
                 levels=None, bits=None, num_quantizers=None, quantizer_dropout=0.0, pieces=None,
                 forward=None, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={architecture!r} is not known: use one of {list(ARCHITECTURES)}.")
        if quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer={quantizer!r} is not known: use one of {sorted(QUANTIZERS)}.")
        if not data_variance > 0:
            raise ValueError(f"data_variance={data_variance} must be > 0 (use load_mnist().variance).")
        self.architecture, self.quantizer_kind = architecture, quantizer
        self.beta, self.decay, self.data_variance = float(beta), float(decay), float(data_variance)
        self.options = _quantizer_options(quantizer, gradient=gradient, codebook_transform=codebook_transform,
                                          levels=levels, bits=bits, num_quantizers=num_quantizers,
                                          quantizer_dropout=quantizer_dropout)
        self.pieces = _checked_pieces(quantizer, pieces)
        if forward is not None and (quantizer != "loss" or not callable(forward)):
            raise ValueError(f"forward must be a function, for quantizer='loss' (a learned codebook, as in lesson 3); "
                             f"got forward={forward!r} with quantizer={quantizer!r}.")
        self.forward = forward
        self.quantizer = self._build_quantizer(int(num_embeddings), int(embedding_dim))
        self.num_embeddings, self.embedding_dim = self.quantizer.num_embeddings, self.quantizer.embedding_dim
        scaled = getattr(QUANTIZERS[quantizer], "needs_scaled_encoder", False)  # FSQ's and LFQ's
        self.encoder = build_encoder(architecture, self.embedding_dim, scaled_output=scaled)
        self.decoder = build_decoder(architecture, self.embedding_dim)
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        # the mean of per-batch perplexities, not the dataset's (metrics.perplexity): hence its name
        self.perplexity_tracker = keras.metrics.Mean(name="batch_perplexity")
        self.build((None, *IMAGE_SHAPE))

    def _build_quantizer(self, num_embeddings, embedding_dim):
        kind, options, name = self.quantizer_kind, self.options, "quantizer"
        pieces = {"pieces": self.pieces} if self.pieces else {}
        if kind == "fsq":
            return FiniteScalarQuantizer(options["levels"], name=name, **pieces)
        if kind == "lfq":
            return LookupFreeQuantizer(options["bits"], commitment_weight=self.beta, name=name, **pieces)
        if kind == "rvq":
            return ResidualVectorQuantizer(options["num_quantizers"], num_embeddings, embedding_dim,
                                           quantizer_dropout=options["quantizer_dropout"], beta=self.beta,
                                           stage="ema", decay=self.decay, name=name, **pieces)
        extra = {"decay": self.decay} if kind == "ema" else {}
        return QUANTIZERS[kind](num_embeddings, embedding_dim, beta=self.beta, name=name, **pieces,
                                **{key: options[key] for key in ("gradient", "codebook_transform") if key in options},
                                **extra)

    @property
    def num_stages(self):
        """S, the codes per position: ``num_quantizers`` for residual VQ, else 1."""
        return self.options.get("num_quantizers", 1)

    @property
    def bits_per_position(self):
        """Bits each of the 7x7 positions holds: ``S log2 K`` (``log2 K`` but for residual VQ)."""
        return self.num_stages * math.log2(self.num_embeddings)

    @property
    def rate_bits(self):
        """Bits per image the codes hold: 49 positions times :attr:`bits_per_position` (343 for K = 128)."""
        return CODE_GRID[0] * CODE_GRID[1] * self.bits_per_position

    def build(self, input_shape):
        self.quantizer.build((None, *CODE_GRID, self.embedding_dim))
        self.built = True

    def call(self, images, training=False):
        images = model_images(images)
        if self.forward is not None:
            return self._call_forward(images, training)
        vq = self.quantizer(self.encoder(images - 0.5, training=training), training=training)
        return {
            "reconstruction": self.decoder(vq["quantized"], training=training) + 0.5,
            "indices": vq["indices"],
            "vq_loss": vq["loss"],
            "perplexity": vq["perplexity"],
        }

    def _call_forward(self, images, training):
        """``call`` through the learner's :attr:`forward`: its reconstructions and losses; the codes (for the
        perplexity the curves show) are the quantizer's, from the encoder's outputs."""
        out = self.forward(images, self.encoder, self.quantizer.embeddings, self.decoder, self.beta,
                           self.data_variance)
        indices = self.quantizer.code_indices(self.encoder(images - 0.5, training=training))
        return {"reconstruction": out["reconstructions"], "indices": indices,
                "vq_loss": out["codebook_loss"] + out["commitment_loss"],
                "perplexity": batch_perplexity(indices, self.num_embeddings)[0],
                "reconstruction_loss": out["reconstruction_loss"]}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if len(x.shape) == 3:  # (N, 28, 28): without its channel axis, x - reconstruction would broadcast
            x = ops.expand_dims(x, -1)
        if "reconstruction_loss" in y_pred:  # the learner's forward pass computed it
            reconstruction_loss = y_pred["reconstruction_loss"]
        else:
            reconstruction_loss = ops.mean(ops.square(x - y_pred["reconstruction"])) / self.data_variance
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.vq_loss_tracker.update_state(y_pred["vq_loss"])
        self.perplexity_tracker.update_state(y_pred["perplexity"])
        return scale_loss(reconstruction_loss + y_pred["vq_loss"])  # on R TensorFlow replicas: its share, / R

    def predict_step(self, *args):
        """``predict`` gives the clipped reconstructions and the indices. Keras's step takes ``(data,)``, but
        ``(state, data)`` on JAX and returns the state too: the parent's step runs the model either way."""
        if keras.backend.backend() == "jax":
            outputs, state = super().predict_step(*args)
            return _predicted(outputs), state
        return _predicted(super().predict_step(*args))

    # -- NumPy in, NumPy out ---------------------------------------------------------------
    def encode(self, images, batch_size=1000):
        """Code indices ``(N, 7, 7)`` (int32; residual VQ: ``(N, 7, 7, S)``) of images ``(N, 28, 28[, 1])``
        in [0, 1]."""
        encode = lambda batch: self.quantizer.code_indices(self.encoder(batch - 0.5))  # noqa: E731
        return in_batches(encode, check_images(images), batch_size).astype("int32")

    def decode(self, indices, batch_size=1000):
        """Images ``(N, 28, 28, 1)`` in [0, 1] (clipped) from code indices ``(N, 7, 7)`` (residual VQ:
        ``(N, 7, 7, s)``, the first ``s`` of its S stages)."""
        decode = lambda batch: ops.clip(self.decoder(self.quantizer.lookup(batch)) + 0.5, 0.0, 1.0)  # noqa: E731
        return in_batches(decode, self._checked_indices(indices), batch_size)

    def _checked_indices(self, indices):
        if self.quantizer_kind != "rvq":
            return check_indices(indices, self.num_embeddings)
        indices = np.asarray(indices)
        if indices.ndim != 4 or not 1 <= indices.shape[-1] <= self.num_stages:
            raise ValueError(f"Expected residual VQ's code indices of shape (N, 7, 7, s), the first s of its "
                             f"{self.num_stages} stages, got {indices.shape}.")
        stacked = check_indices(np.moveaxis(indices, -1, 1).reshape(-1, *CODE_GRID), self.num_embeddings)
        return np.moveaxis(stacked.reshape(len(indices), indices.shape[-1], *CODE_GRID), 1, -1)

    def reconstruct(self, images, batch_size=1000):
        """``decode(encode(images))``: what the model makes of images, in [0, 1]."""
        return self.decode(self.encode(images, batch_size), batch_size)

    def encoder_outputs(self, images, batch_size=1000):
        """The encoder's vectors ``(N, 7, 7, D)`` before quantization."""
        return in_batches(lambda batch: self.encoder(batch - 0.5), check_images(images), batch_size)

    def get_config(self):
        # only the options this quantizer takes, and of the learned and EMA codebooks' only those changed:
        # the configs (and cards) of every model trained before the options existed stay as they were
        options = {key: list(value) if key == "levels" else value for key, value in self.options.items()
                   if self.quantizer_kind not in ("loss", "ema") or value != QUANTIZER_OPTIONS[key][0]}
        return {**super().get_config(), "architecture": self.architecture, "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "quantizer": self.quantizer_kind, "beta": self.beta,
                "decay": self.decay, "data_variance": self.data_variance, **options}


def _checked_pieces(kind, pieces):
    """``pieces`` (a dict of functions, or None) for quantizer ``kind``: None when there are none, else checked
    (:func:`~vqvae_lessons.checks.check_pieces`) against the pieces that quantizer knows; a quantizer that
    takes none is a clear error."""
    if not pieces:
        return None
    quantizer_class = QUANTIZERS[kind]
    if "pieces" not in inspect.signature(quantizer_class).parameters:
        raise ValueError(f"quantizer={kind!r} takes no learner's pieces (got {sorted(pieces)}).")
    return check_pieces(pieces, quantizer_class.PIECES, f"quantizer={kind!r}")


def _quantizer_options(kind, **given):
    """The options ``given`` that quantizer ``kind`` takes (all of them: the rest must keep their
    defaults), checked; a ValueError names an option given to a quantizer that does not take it."""
    for key, value in given.items():
        default, takers = QUANTIZER_OPTIONS[key]
        changed = value is not None and (value != default if default is not None else True)
        if changed and kind not in takers:
            raise ValueError(f"{key}={value!r} is a setting of quantizer={' or '.join(map(repr, takers))}, not of "
                             f"quantizer={kind!r}.")
    options = {key: value for key, value in given.items() if kind in QUANTIZER_OPTIONS[key][1]}
    if "gradient" in options and options["gradient"] not in GRADIENTS:
        raise ValueError(f"gradient={options['gradient']!r} is not known: use one of {list(GRADIENTS)}.")
    needed = {"fsq": ("levels", "levels=(8, 4, 4)"), "lfq": ("bits", "bits=7"),
              "rvq": ("num_quantizers", "num_quantizers=2")}
    if kind in needed and options[needed[kind][0]] is None:
        raise ValueError(f"quantizer={kind!r} needs {needed[kind][0]}, e.g. {needed[kind][1]}.")
    if kind == "fsq":
        options["levels"] = tuple(int(level) for level in options["levels"])
    if kind == "lfq":
        options["bits"] = int(options["bits"])
    if kind == "rvq":
        options["num_quantizers"], options["quantizer_dropout"] = int(options["num_quantizers"]), \
            float(options["quantizer_dropout"])
    if kind == "loss":
        options["codebook_transform"] = bool(options["codebook_transform"])
    return options


def _predicted(outputs):
    """What ``VQVAE.predict`` returns of the model's outputs: reconstructions clipped to [0, 1] and indices."""
    return {"reconstruction": ops.clip(outputs["reconstruction"], 0.0, 1.0), "indices": outputs["indices"]}
