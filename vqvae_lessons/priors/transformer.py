"""Transformer priors over the VQ-VAE's maps of codes: an autoregressive transformer and MaskGIT.

Both read a map of codes ``(H, W) = (7, 7)`` as a sequence of ``T = 49`` tokens in raster
order. A token is the embedding of its code plus a *2-D position embedding*: a learned
vector for its row plus one for its column, so the model knows where on the map each code
lies. Then come :class:`~vqvae_lessons.priors.attention.TransformerBlock` s, a layer
normalisation and logits over the codebook, ``(N, H, W, K)``, as a PixelCNN gives them.

* :class:`ARTransformerPrior` (``"transformer"``): the blocks are *causal*, and the sequence is
  shifted by one: the token at position ``t`` holds the code at ``t - 1`` (position 0 holds a
  start token, or the class token of a class-conditional prior), so the logits at ``t`` see
  the codes before ``t`` only: ``p(codes) = prod_t p(c_t | c_<t)``, the PixelCNN's
  factorisation. Trained with ``fit(codes, codes)`` and a cross-entropy from logits, its loss is
  the negative log-likelihood in nats per code, comparable with a PixelCNN's on the same codes.
  Sampling keeps every block's keys and values (a *key/value cache*), so each of the 49 steps
  computes one position (see :mod:`~vqvae_lessons.priors.decoding`).
* :class:`MaskGITPrior` (``"maskgit"``, Chang et al., 2022): the same blocks without the causal
  mask, and a ``[MASK]`` token. It learns to fill in hidden codes: each training map hides a
  random fraction ``cos(pi r / 2)`` (``r`` uniform in [0, 1)) of its codes and the loss is the
  cross-entropy at the hidden positions only. It draws a map in a few parallel steps
  (8 by default) instead of 49, keeping the predictions it is surest of at each step. It has no
  exact likelihood: :meth:`MaskGITPrior.masked_cross_entropy` measures it instead.

A class-conditional prior (``num_classes``) gets a *class token*: the autoregressive prior's
start token is the class's embedding; MaskGIT's sequence starts with one more token, the class's.

References: Vaswani et al. (2017), *Attention Is All You Need*, arXiv:1706.03762; Chang et al. (2022), *MaskGIT:
Masked Generative Image Transformer*, arXiv:2202.04200.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from ..checks import CODE_GRID, check_pieces, check_prior_settings, concrete
from ..distribute import scale_loss
from . import ARCHITECTURES, hidden_share
from .attention import TransformerBlock, causal_attention_mask
from .pixelcnn import PixelCNN


class TransformerPrior(keras.Model):
    """What both transformer priors share: the settings and their checks, the code and position
    embeddings, the blocks and the head, and the checks of codes and labels (the PixelCNN's).

    ``channels`` (``C``, the model width; a multiple of ``heads``), ``num_layers`` (blocks), ``heads``
    (attention heads) and ``mlp_ratio`` (``mlp_ratio * C`` hidden units in each block's MLP) default
    to the architecture's in :data:`~vqvae_lessons.priors.ARCHITECTURES`; ``dropout`` in the
    blocks while training; ``architecture``, if given, must be the class's own (model cards
    record it).

    ``pieces``: functions that take the place of the package's own at one step of the model,
    ``{name: function}`` (None: the package's); each class lists the names it knows in :attr:`PIECES`
    (the autoregressive prior ``"causal_attention"``, MaskGIT ``"maskgit_keep"``), lesson 8's
    exercises (see :func:`vqvae_lessons.exercises.use`). They are not saved with the model;
    :meth:`with_pieces` gives a copy of a trained (or loaded) prior that runs them.
    """

    architecture = None  # each subclass's name in ARCHITECTURES
    extra_codes = 0  # embedding rows after the K codes' (MaskGIT's [MASK])
    PIECES = {}  # name: what the piece does, for each piece a subclass takes

    def __init__(self, num_codes=128, num_classes=None, channels=None, num_layers=None, heads=None, mlp_ratio=None,
                 grid=CODE_GRID, dropout=0.0, architecture=None, pieces=None, **kwargs):
        super().__init__(**kwargs)
        # outside Keras's tracking of attributes, so that the prior saves and loads exactly as before
        self.__dict__["pieces"] = check_pieces(pieces, self.PIECES, type(self).__name__)
        if architecture not in (None, self.architecture):
            raise ValueError(f"{type(self).__name__} is the {self.architecture!r} architecture, got "
                             f"architecture={architecture!r}: use priors.build.build_prior({architecture!r}, ...).")
        defaults = ARCHITECTURES[self.architecture]
        channels = defaults["channels"] if channels is None else channels
        num_layers = defaults["num_layers"] if num_layers is None else num_layers
        heads = defaults["heads"] if heads is None else heads
        mlp_ratio = defaults["mlp_ratio"] if mlp_ratio is None else mlp_ratio
        check_prior_settings(num_classes, dropout, num_codes=num_codes, channels=channels, num_layers=num_layers,
                             heads=heads, mlp_ratio=mlp_ratio)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads}): each attention head "
                             "gets channels / heads of them.")
        self.num_codes, self.num_classes = int(num_codes), None if num_classes is None else int(num_classes)
        self.channels, self.num_layers, self.heads, self.mlp_ratio = int(channels), int(num_layers), int(heads), int(
            mlp_ratio)
        self.grid, self.dropout = tuple(int(g) for g in grid), float(dropout)
        self.length = self.grid[0] * self.grid[1]  # T, the tokens of a map
        self.code_embedding = layers.Embedding(self.num_codes + self.extra_codes, self.channels, name="codes")
        normal = keras.initializers.RandomNormal(stddev=0.02)
        self.row_embedding = self.add_weight(shape=(self.grid[0], self.channels), initializer=normal, name="rows")
        self.column_embedding = self.add_weight(shape=(self.grid[1], self.channels), initializer=normal,
                                                name="columns")
        self.blocks = [TransformerBlock(self.channels, self.heads, self.mlp_ratio, self.dropout, name=f"block_{i}")
                       for i in range(self.num_layers)]
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm")
        self.head = layers.Dense(self.num_codes, name="logits")

    @property
    def conditional(self):
        return self.num_classes is not None

    def with_pieces(self, pieces):
        """A copy of this prior, the same settings and weights, that runs ``pieces`` ``{name: function}``
        (see :attr:`PIECES`) in place of the package's own; this prior is left as it is."""
        config = {key: value for key, value in self.get_config().items() if key not in ("trainable", "dtype")}
        copy = type(self)(**config, pieces=pieces)
        copy.set_weights(self.get_weights())
        return copy

    def positions(self):
        """The 2-D position embeddings ``(T, C)``: position ``(i, j)``'s is row ``i``'s plus column ``j``'s."""
        return ops.reshape(self.row_embedding[:, None] + self.column_embedding[None], (self.length, self.channels))

    def features(self, x, mask=None, training=None, attention=None):
        """Tokens ``(N, T', C)`` through every block (attention ``mask`` ``(T', T')`` or None; or an
        ``attention`` function in place of the package's, see :meth:`TransformerBlock.call
        <vqvae_lessons.priors.attention.TransformerBlock.call>`), then the last layer normalisation; the
        logits are ``self.head`` of them."""
        for block in self.blocks:
            if attention is None:
                x = block(x, attention_mask=mask, training=training)
            else:
                x = block(x, training=training, attention=attention)
        return self.norm(x)

    def logits_map(self, features):
        """Features ``(N, T, C)`` -> logits ``(N, H, W, K)``."""
        return ops.reshape(self.head(features), (-1, *self.grid, self.num_codes))

    _dummy_inputs = PixelCNN._dummy_inputs
    # The inputs' forms and checks are the PixelCNN's, so that every prior takes and refuses the same.
    _split, check_codes, check_labels = PixelCNN._split, PixelCNN.check_codes, PixelCNN.check_labels
    _check_values, _check_arrays = PixelCNN._check_values, PixelCNN._check_arrays

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if inputs is not None:
            self._check_values(*self._split(inputs))
        return super().__call__(*args, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` with the NumPy codes and labels of ``x``, ``y`` and ``validation_data``
        checked first, as :meth:`PixelCNN.fit <vqvae_lessons.priors.pixelcnn.PixelCNN.fit>` does."""
        self._check_arrays(x, y)
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and validation:
            self._check_arrays(validation[0], validation[1] if len(validation) > 1 else None)
        return super().fit(x, y, *args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture, "num_codes": self.num_codes,
                "num_classes": self.num_classes, "channels": self.channels, "num_layers": self.num_layers,
                "heads": self.heads, "mlp_ratio": self.mlp_ratio, "grid": list(self.grid), "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class ARTransformerPrior(TransformerPrior):
    """An autoregressive transformer prior: ``codes (N, H, W) -> logits (N, H, W, K)``, the logits at
    each position depending on the codes before it (raster order) only.

    Token ``t`` of the causal sequence is the start token (``t = 0``) or the code at ``t - 1``, plus
    position ``t``'s embedding, the position whose code it predicts. A class-conditional prior
    (``num_classes``) starts from its class's token and is called on ``(codes, labels)``. Train it as
    a PixelCNN: ``compile(loss=SparseCategoricalCrossentropy(from_logits=True))``, ``fit(codes, codes)``;
    the loss is the negative log-likelihood in nats per code. Codes may be given one-hot
    ``(N, H, W, K)`` too, which lets gradients flow to the input (the causality tests use it).

    ``pieces={"causal_attention": fn}`` (lesson 8's exercise): every block attends with
    ``fn(queries, keys, values)`` instead of the package's :func:`~.attention.attend` and causal mask,
    the queries, keys and values ``(N, heads, T, C / heads)`` (``(..., T, d)``, the heads in the leading
    axes) to ``(N, heads, T, C / heads)``, token ``t`` attending to tokens ``0..t``. A correct ``fn``
    gives the same logits (to float precision). Written with ``keras.ops`` it runs everywhere (``fit``
    too); written with NumPy, in eager calls only: :meth:`log_probs` and sampling, which then runs
    a full pass per position instead of the key/value cache (see
    :func:`~.decoding.sample_autoregressive`).
    """

    architecture = "transformer"
    PIECES = {"causal_attention": "attention with the causal mask, (..., T, d) queries, keys and values"}

    def __init__(self, num_codes=128, num_classes=None, channels=None, num_layers=None, heads=None, mlp_ratio=None,
                 grid=CODE_GRID, dropout=0.0, architecture=None, pieces=None, **kwargs):
        super().__init__(num_codes, num_classes, channels, num_layers, heads, mlp_ratio, grid, dropout, architecture,
                         pieces, **kwargs)
        self.start_embedding = layers.Embedding(self.num_classes or 1, self.channels, name="start")
        self(self._dummy_inputs())  # create the weights now, so that load_weights works at once

    def start_tokens(self, labels, n):
        """The first token of ``n`` sequences ``(n, C)``: the class token of each label, or the start token."""
        return self.start_embedding(labels if self.conditional else ops.zeros((n,), "int32"))

    def call(self, inputs, training=None):
        codes, labels = self._split(inputs)
        if len(codes.shape) == 4:  # one-hot (N, H, W, K): a matrix product instead of a lookup
            tokens = ops.matmul(ops.reshape(codes, (-1, self.length, self.num_codes)), self.code_embedding.embeddings)
        else:
            tokens = self.code_embedding(ops.reshape(codes, (-1, self.length)))
        start = self.start_tokens(labels, ops.shape(tokens)[0])[:, None]
        x = ops.concatenate([start, tokens[:, :-1]], axis=1) + self.positions()[None]  # shifted: t holds code t - 1
        attention = self.pieces.get("causal_attention")
        if attention is not None:  # the learner's attention applies the causal mask itself
            return self.logits_map(self.features(x, training=training, attention=attention))
        return self.logits_map(self.features(x, causal_attention_mask(self.length), training))

    log_probs = PixelCNN.log_probs


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class MaskGITPrior(TransformerPrior):
    """A masked (bidirectional) transformer prior: codes ``(N, H, W)`` in ``[0, K)``, ``-1`` where
    a code is hidden (``MASK``), ``->`` logits ``(N, H, W, K)`` of the code at each position given
    the codes that are not hidden.

    On a map with no hidden position each position's logits see the whole map, its own code
    included: MaskGIT never trains on such positions (its loss counts hidden positions only), so
    they are well defined but say little; hide positions to ask about them. A class-conditional
    prior (``num_classes``) is called on ``(codes, labels)``; its label's embedding is added to every
    token (so that :func:`fix_class_token` can fold one label into the position embeddings).

    It is made small (by default 2 blocks of 64 channels, 2 heads, an MLP of twice the width):
    decoding runs it over the whole map at every step, so its size is its sampling speed.

    Train with ``compile(optimizer)`` and ``fit(codes)`` (targets, if given, are not read: they
    are the codes themselves). Called with ``training=True``, as ``fit`` calls it, the prior plays
    its training game: it hides a cosine-scheduled random fraction of each map (:meth:`random_mask`)
    and returns ``(logits, hidden)``; :meth:`compute_loss` is the cross-entropy at the hidden
    positions, in nats per hidden code. Draw
    maps with :func:`~vqvae_lessons.priors.sampling.sample` (``steps``: 8 by default).
    ``masking_seed`` seeds the training masks (None: drawn from Keras's global seed, which
    ``keras.utils.set_random_seed`` sets). Two settings of training, which lesson 8's comparison tried:
    ``mask_counts`` "cosine" (MaskGIT's, the default) or "uniform" (1 to ``T`` hidden codes, equally
    often), and ``label_smoothing`` (MaskGIT's paper: 0.1) of the training loss, in [0, 1).

    ``pieces={"maskgit_keep": fn}`` (lesson 8's exercise): at each step of its decoding, which positions
    hold a code after the step is ``fn(confidence, fixed, count)`` instead of the package's choice
    (``confidence`` ``(N, T)`` float32, ``fixed`` ``(N, T)`` booleans, ``count`` ``(N,)`` ints; returns
    ``(N, T)`` booleans, see :class:`~.decoding._ParallelDecoder`). It runs on NumPy arrays between the
    compiled parts of each step; a correct ``fn`` draws the same maps.
    """

    MASK_COUNTS = ("cosine", "uniform")
    PIECES = {"maskgit_keep": "which positions hold a code after a decoding step"}

    architecture = "maskgit"
    extra_codes = 1  # the [MASK] token's embedding, row K
    MASK = -1

    def __init__(self, num_codes=128, num_classes=None, channels=None, num_layers=None, heads=None, mlp_ratio=None,
                 grid=CODE_GRID, dropout=0.0, architecture=None, masking_seed=None, mask_counts="cosine",
                 label_smoothing=0.0, pieces=None, **kwargs):
        super().__init__(num_codes, num_classes, channels, num_layers, heads, mlp_ratio, grid, dropout, architecture,
                         pieces, **kwargs)
        if mask_counts not in self.MASK_COUNTS:
            raise ValueError(f"mask_counts is how many codes a training map hides, one of {list(self.MASK_COUNTS)}, "
                             f"got {mask_counts!r}.")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not (
                0 <= label_smoothing < 1):
            raise ValueError(f"label_smoothing is a fraction in [0, 1) (MaskGIT's paper: 0.1), got "
                             f"{label_smoothing!r}.")
        self.mask_counts, self.label_smoothing = mask_counts, float(label_smoothing)
        self.class_embedding = layers.Embedding(self.num_classes, self.channels, name="classes") if (
            self.conditional) else None  # added to every token
        self.masking_seed = masking_seed
        self.masking = keras.random.SeedGenerator(masking_seed)  # the training masks' random numbers
        self(self._dummy_inputs())  # create the weights now, so that load_weights works at once

    def call(self, inputs, training=None):
        """The logits ``(N, H, W, K)`` of every position given the codes not hidden (-1). With
        ``training=True``: hide a random part of each map first and return ``(logits, hidden)``,
        ``hidden`` ``(N, H, W)`` booleans (the one forward pass a training step needs)."""
        codes, labels = self._split(inputs)
        hidden = None
        if training:
            hidden = self.random_mask(ops.shape(codes)[0])
            codes = ops.where(hidden, self.MASK, codes)
        flat = ops.reshape(codes, (-1, self.length))
        x = self.code_embedding(ops.where(flat < 0, self.num_codes, flat)) + self.positions()[None]
        if self.conditional:
            x = x + self.class_embedding(labels)[:, None]
        logits = self.logits_map(self.features(x, training=training))
        return logits if hidden is None else (logits, hidden)

    def _check_values(self, codes, labels):
        """As a PixelCNN checks its inputs, with ``-1`` (hidden) allowed among the codes."""
        values = concrete(codes)
        if values is not None and values.size and values.min() < self.MASK:
            raise ValueError(f"MaskGIT reads codes in [0, {self.num_codes}) and -1 where a code is hidden, got "
                             f"values down to {values.min()}.")
        PixelCNN._check_values(self, codes if values is None else np.maximum(values, 0), labels)

    def random_mask(self, n, seed=None):
        """Which positions to hide in ``n`` training maps, ``(n, H, W)`` booleans: each map hides
        ``ceil(T cos(pi r / 2))`` of its ``T`` positions (at least one), ``r`` uniform in [0, 1)
        (``mask_counts="uniform"``: ``floor(T r) + 1``), at positions drawn at random. ``seed``: a
        ``keras.random.SeedGenerator`` (default: the model's own)."""
        seed = self.masking if seed is None else seed
        r = keras.random.uniform((n, 1), seed=seed)
        count = ops.ceil(hidden_share(r) * self.length) if self.mask_counts == "cosine" else (
            ops.floor(r * self.length) + 1)
        count = ops.clip(count, 1, self.length)
        ranks = ops.argsort(ops.argsort(keras.random.uniform((n, self.length), seed=seed), axis=-1), axis=-1)
        return ops.reshape(ops.cast(ranks, count.dtype) < count, (-1, *self.grid))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """MaskGIT's loss on the maps ``x`` (codes, or ``(codes, labels)``): the cross-entropy at the hidden
        positions of the training game (``y_pred``, the ``(logits, hidden)`` of a training call), in nats.
        Validation's forward pass saw every code (``y_pred``: logits alone): it hides a part and predicts again."""
        codes, labels = self._split(x)
        if isinstance(y_pred, (tuple, list)):
            logits, hidden = y_pred
            if self.label_smoothing:
                return scale_loss(cross_entropy_at(codes, logits, hidden, self.label_smoothing))
        else:
            hidden = self.random_mask(ops.shape(codes)[0])
            visible = ops.where(hidden, self.MASK, codes)
            logits = self((visible, labels) if self.conditional else visible, training=False)
        return scale_loss(cross_entropy_at(codes, logits, hidden))  # on R TensorFlow replicas: its share, / R

    def masked_cross_entropy(self, codes, labels=None, seed=0, batch_size=1000):
        """The loss :meth:`compute_loss` trains on, measured on maps ``codes`` ``(N, H, W)`` (and their
        ``labels``): nats per hidden code, over masks drawn from ``seed`` (the same seed, the same masks).
        MaskGIT has no exact likelihood; this is what its validation loss reports, not an NLL."""
        codes, labels = self.check_codes(codes), self.check_labels(labels, len(codes))
        total, count, generator = 0.0, 0.0, keras.random.SeedGenerator(seed)
        for start in range(0, len(codes), batch_size):
            batch = codes[start:start + batch_size]
            hidden = self.random_mask(len(batch), seed=generator)
            visible = ops.where(hidden, self.MASK, batch)
            logits = self((visible, labels[start:start + batch_size]) if self.conditional else visible)
            weight = float(ops.convert_to_numpy(ops.sum(ops.cast(hidden, "float32"))))
            total += float(ops.convert_to_numpy(cross_entropy_at(batch, logits, hidden))) * weight
            count += weight
        return total / max(count, 1.0)

    def order_bits(self, codes, labels=None, order_seed=None, batch_size=1000):
        """MaskGIT used as an autoregressive model in a fixed order: ``-log2 p(map)`` in bits, one number a
        map ``(N,)`` float64, for maps ``codes`` ``(N, H, W)`` (and their ``labels``).

        Position ``order[t]`` is predicted with the positions ``order[:t]`` shown and the rest hidden; the
        product of these 49 conditionals is a normalised distribution over maps for any fixed order, so
        its negative log is a likelihood comparable with an autoregressive prior's. ``order_seed`` None:
        raster order, an autoregressive prior's; an int: a random order for each map, drawn from that
        seed (their mean estimates the NLL averaged over orders). 49 forward passes of the maps."""
        codes, labels = self.check_codes(codes), self.check_labels(labels, len(codes))
        n, flat = len(codes), codes.reshape(len(codes), -1)
        if order_seed is None:
            orders = np.tile(np.arange(self.length), (n, 1))
        else:
            orders = np.argsort(np.random.default_rng(order_seed).random((n, self.length)), axis=1)
        ranks = np.argsort(orders, axis=1)  # ranks[m, p]: the step at which position p is predicted
        bits = np.zeros(n)
        for t in range(self.length):
            visible = np.where(ranks < t, flat, self.MASK).reshape(codes.shape).astype("int32")
            target = orders[:, t]
            for start in range(0, n, batch_size):
                part = slice(start, start + batch_size)
                inputs = visible[part] if labels is None else (visible[part], labels[part])
                logits = ops.convert_to_numpy(self(inputs)).reshape(-1, self.length, self.num_codes)
                chosen = logits[np.arange(len(logits)), target[part]].astype("float64")
                log_p = chosen - chosen.max(axis=1, keepdims=True)
                log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
                rows = np.arange(start, start + len(logits))
                bits[part] -= log_p[np.arange(len(logits)), flat[rows, target[rows]]] / np.log(2)
        return bits

    def cross_entropy_by_hidden(self, codes, labels=None, seed=0, batch_size=1000):
        """The cross-entropy (nats per hidden code) at ``k`` hidden positions drawn at random, for ``k`` =
        1 .. 49: an array ``(49,)``, entry ``k - 1`` for ``k`` hidden (so ``49 - k`` shown). What MaskGIT's
        loss averages over its masking schedule, counted by how much of the map it sees."""
        codes, labels = self.check_codes(codes), self.check_labels(labels, len(codes))
        rng, n = np.random.default_rng(seed), len(codes)
        result = np.zeros(self.length)
        for k in range(1, self.length + 1):
            ranks = np.argsort(np.argsort(rng.random((n, self.length)), axis=1), axis=1)
            hidden = (ranks < k).reshape(codes.shape)
            total = 0.0
            for start in range(0, n, batch_size):
                part = slice(start, start + batch_size)
                visible = np.where(hidden[part], self.MASK, codes[part]).astype("int32")
                logits = self(visible if labels is None else (visible, labels[part]))
                total += float(ops.convert_to_numpy(cross_entropy_at(codes[part], logits, hidden[part]))) * len(
                    visible)
            result[k - 1] = total / n
        return result

    def get_config(self):
        return {**super().get_config(), "masking_seed": self.masking_seed, "mask_counts": self.mask_counts,
                "label_smoothing": self.label_smoothing}


def fix_class_token(prior, label):
    """An unconditional copy of the conditional transformer ``prior`` that acts as if always given ``label``:
    it computes the same logits ``(N, H, W, K)`` for ``codes`` alone as ``prior`` does for ``(codes, label)``.
    An :class:`ARTransformerPrior`'s start token becomes ``label``'s class token; a :class:`MaskGITPrior`
    adds ``label``'s embedding to every token, which the copy adds to its row embeddings instead. The
    transformers' counterpart of :func:`~vqvae_lessons.priors.pixelcnn.fix_label` (training told
    which move made each map uses it: see ``train.train_prior``)."""
    if not isinstance(prior, TransformerPrior) or not prior.conditional:
        raise ValueError("fix_class_token needs a class-conditional transformer prior (num_classes set).")
    label = int(prior.check_labels(label, 1)[0])
    config = {key: value for key, value in prior.get_config().items() if key not in ("name", "trainable", "dtype")}
    fixed = type(prior)(**{**config, "num_classes": None})
    if isinstance(prior, ARTransformerPrior):
        changed = {id(prior.start_embedding.embeddings): lambda value: value[label:label + 1]}
    else:  # MaskGIT: the class embeddings go, their row `label` joins every row's position embedding
        class_vector = ops.convert_to_numpy(prior.class_embedding.embeddings)[label]
        changed = {id(prior.row_embedding): lambda value: value + class_vector[None]}
    own = [w for w in prior.weights if not (isinstance(prior, MaskGITPrior) and w is prior.class_embedding.embeddings)]
    for source, target in zip(own, fixed.weights, strict=True):  # built in the same order
        value = ops.convert_to_numpy(source)
        target.assign(changed.get(id(source), lambda v: v)(value))
    return fixed


def cross_entropy_at(codes, logits, hidden, label_smoothing=0.0):
    """Mean cross-entropy (nats) of ``logits`` ``(N, H, W, K)`` for ``codes`` ``(N, H, W)`` over the
    positions where ``hidden`` ``(N, H, W)`` is True; ``label_smoothing`` ``e``: against targets of
    ``1 - e`` on the code and ``e / K`` spread over all ``K``."""
    if label_smoothing:
        log_p = ops.log_softmax(logits, axis=-1)
        true = ops.take_along_axis(log_p, ops.expand_dims(ops.cast(codes, "int32"), -1), axis=-1)[..., 0]
        losses = -(1.0 - label_smoothing) * true - label_smoothing * ops.mean(log_p, axis=-1)
    else:
        losses = keras.losses.sparse_categorical_crossentropy(codes, logits, from_logits=True)
    weights = ops.cast(hidden, losses.dtype)
    return ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)
