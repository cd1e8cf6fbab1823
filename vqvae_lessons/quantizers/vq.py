"""Vector quantizers: map each D-dimensional vector to its nearest codebook row.

Two layers share one interface (Sonnet's ``nets/vqvae.py`` is the model):

* :class:`VectorQuantizer` learns the codebook by gradient descent on the
  codebook loss ``mean((q - sg(x))**2)``; the encoder is pulled towards its codes
  by the commitment loss ``beta * mean((x - sg(q))**2)``.
* :class:`VectorQuantizerEMA` moves each code to the exponential moving average
  of the vectors assigned to it (with Laplace smoothing and bias correction),
  updated only when ``training=True``; only the commitment loss remains.

Both return, for inputs ``x`` of shape ``(..., D)``, a dict with ``quantized``
(same shape, with the straight-through estimator: its value is the code, its
gradient with respect to ``x`` is the identity), ``indices`` (``x.shape[:-1]``),
the losses, and the batch's ``perplexity`` and ``usage``. Codebook maintenance
(k-means initialisation, restarting dead codes) runs outside ``call``, eagerly,
from :class:`CodebookMaintenance` (a Keras callback) or by hand.

Two options change how they learn, nothing else (after the papers and lucidrains'
``vector-quantize-pytorch``, read to understand them; the code is our own):

* ``gradient="rotation"`` (both layers): the rotation trick (Fifty et al., ICLR 2025,
  arXiv:2410.06424). The value is still the code; the gradient reaches ``x`` through the
  rotation and rescaling that carry ``x`` onto its code (:func:`rotate_to`), not the identity.
* ``codebook_transform=True`` (:class:`VectorQuantizer`): SimVQ (Zhu et al., 2024,
  arXiv:2411.02038). The codes are ``C W``: a frozen random ``C`` ``(K, D)``, a learned ``W``
  ``(D, D)``, so each step of ``W`` moves every code and none is left behind.

Only ``keras.ops`` is used, so both layers run on every Keras 3 backend. Trained on several devices
(:mod:`~vqvae_lessons.distribute`), the EMA's counts and sums and the perplexity and usage are those of
the global batch, not of one device's shard: on TensorFlow each replica adds them up over the replicas
(:func:`~vqvae_lessons.distribute.replica_sum`) before it uses them; on JAX they are global already.

Both layers take ``pieces``: the learner's own functions for the steps of :func:`pairwise_sq_distances`,
:func:`nearest_code`, :func:`straight_through` and :func:`vq_losses` (lesson 2's exercises; see
:data:`PIECES`), so that a VQ-VAE can be built from what the learner wrote. Without them the layers compute
exactly what they always did.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..checks import check_pieces
from ..distribute import replica_mean, replica_sum

__all__ = [
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "GRADIENTS",
    "rotate_to",
    "pairwise_sq_distances",
    "nearest_code",
    "straight_through",
    "vq_losses",
    "batch_perplexity",
    "CodebookMaintenance",
    "check_vector_size",
    "check_vectors",
    "PIECES",
]


def pairwise_sq_distances(x, codebook):
    """Squared Euclidean distances, ``(N, D)`` and ``(K, D)`` to ``(N, K)``.

    Uses the expansion ``|x|^2 + |e|^2 - 2 x.e``: one matrix product instead of
    an ``(N, K, D)`` difference tensor.
    """
    return (
        ops.sum(ops.square(x), axis=1, keepdims=True)
        + ops.expand_dims(ops.sum(ops.square(codebook), axis=1), 0)
        - 2.0 * ops.matmul(x, ops.transpose(codebook))
    )


def nearest_code(x, codebook):
    """Index ``(N,)`` of the codebook row ``(K, D)`` nearest to each row of ``x`` ``(N, D)``."""
    return ops.argmin(pairwise_sq_distances(x, codebook), axis=1)


def straight_through(x, quantized):
    """The value of ``quantized``, with the gradient of ``x`` (the identity)."""
    return x + ops.stop_gradient(quantized - x)


GRADIENTS = ("straight_through", "rotation")


def _unit(v, eps):
    """``(v / max(||v||, eps), ||v||)`` along the last axis: ``(..., D)`` and ``(..., 1)``."""
    norm = ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True))
    return v / ops.maximum(norm, eps), norm


def rotate_to(e, q, eps=1e-6):
    """``e`` ``(..., D)`` carried onto ``q`` ``(..., D)`` by a rotation and a rescaling held constant.

    Returns ``lam * R e`` (shape ``(..., D)``) with ``lam = ||q|| / ||e||`` and the rotation
    ``R = I - 2 r r^T + 2 q^ e^T`` that takes ``e^ = e / ||e||`` to ``q^ = q / ||q||``, where
    ``r = (e^ + q^) / ||e^ + q^||``. ``lam``, ``r``, ``e^`` and ``q^`` are stop-gradients, so the value
    is ``q`` (up to rounding) and the gradient with respect to ``e`` is ``lam * R^T`` (times the
    incoming gradient); none reaches ``q``. ``R e = e - 2 r (r.e) + 2 q^ (e^.e)``: no ``D x D``
    matrix is built.
    """
    e_hat, e_norm = _unit(e, eps)
    q_hat, q_norm = _unit(q, eps)
    r, _ = _unit(e_hat + q_hat, eps)
    e_hat, q_hat, r = ops.stop_gradient(e_hat), ops.stop_gradient(q_hat), ops.stop_gradient(r)
    scale = ops.stop_gradient(q_norm / ops.maximum(e_norm, eps))
    dot = lambda a, b: ops.sum(a * b, axis=-1, keepdims=True)  # noqa: E731
    return scale * (e - 2.0 * r * dot(r, e) + 2.0 * q_hat * dot(e_hat, e))


def vq_losses(x, quantized, beta):
    """``(codebook_loss, commitment_loss)`` of the VQ-VAE paper, means over all elements.

    The codebook loss ``mean((q - sg(x))**2)`` moves codes towards encoder outputs;
    the commitment loss ``beta * mean((x - sg(q))**2)`` keeps the encoder near its codes.
    """
    codebook_loss = ops.mean(ops.square(quantized - ops.stop_gradient(x)))
    commitment_loss = beta * ops.mean(ops.square(x - ops.stop_gradient(quantized)))
    return codebook_loss, commitment_loss


def batch_perplexity(indices, num_codes):
    """``(perplexity, usage)`` of code indices (any shape): exp(entropy) and fraction of codes used."""
    return _perplexity(ops.one_hot(ops.reshape(indices, (-1,)), num_codes, dtype="float32"))


def _perplexity(encodings):
    """``(perplexity, usage)`` of one-hot encodings ``(N, K)`` (on several devices, of the global batch's)."""
    probs = replica_mean(encodings, axis=0)
    entropy = -ops.sum(probs * ops.log(probs + 1e-10))
    return ops.exp(entropy), ops.mean(ops.cast(probs > 0, encodings.dtype))


# The steps of a codebook quantizer's call that the learner's functions may stand in for (lesson 2's exercises).
PIECES = ("pairwise_sq_distances", "nearest_code", "straight_through", "vq_losses")


def check_vector_size(layer, input_shape, setting, size, fix=None):
    """Raise a ValueError that says what to change unless ``input_shape[-1]`` is ``size``, the
    value of the layer's ``setting`` (``fix``: the alternative to a resized encoder)."""
    if input_shape[-1] != size:
        fix = fix or f"build the quantizer with {setting}={input_shape[-1]}"
        raise ValueError(
            f"{type(layer).__name__} expects vectors of size {setting}={size} in the last axis, got input "
            f"shape {tuple(input_shape)}. Make the encoder's last layer output {size} channels, or {fix}."
        )


def check_vectors(layer, x, setting, size, fix=None):
    """What a quantizer's ``call`` checks of its input ``x`` ``(..., size)`` where it arrives, so that a built layer
    given the wrong input says so instead of failing inside the backend: floating point (a ValueError naming the
    dtype), and ``size`` in the last axis (:func:`check_vector_size`). Static properties only: nothing is computed."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise ValueError(f"{type(layer).__name__} quantizes floating-point vectors (the encoder's output), got dtype "
                         f"{dtype}: pass the encoder's output, or convert with keras.ops.cast(x, 'float32').")
    if x.shape[-1] is not None:
        check_vector_size(layer, x.shape, setting, size, fix)


class _Quantizer(keras.layers.Layer):
    """What both quantizers share: nearest-code lookup, the result dict, maintenance, and the learner's
    ``pieces`` (see :class:`VectorQuantizer`), checked here."""

    codebook_trainable = True
    PIECES = PIECES  # the names of the learner's functions it takes

    def __init__(self, num_embeddings, embedding_dim, beta=0.25, gradient="straight_through", pieces=None,
                 **kwargs):
        super().__init__(**kwargs)
        pieces = check_pieces(pieces, self.PIECES, type(self).__name__)
        self._distances_piece = pieces.get("pairwise_sq_distances")
        self._nearest_piece = pieces.get("nearest_code")
        if self._nearest_piece is nearest_code and self._distances_piece is not None:
            self._nearest_piece = None  # the package's nearest code, on the learner's distances (see _nearest)
        self._straight_through_piece = pieces.get("straight_through")
        self._vq_losses_piece = pieces.get("vq_losses")
        if int(num_embeddings) < 2 or int(embedding_dim) < 1:
            raise ValueError(
                f"A codebook needs num_embeddings >= 2 and embedding_dim >= 1; got "
                f"num_embeddings={num_embeddings}, embedding_dim={embedding_dim}."
            )
        if not beta >= 0:
            raise ValueError(f"beta={beta} must be >= 0 (the paper uses 0.25).")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient={gradient!r} is not known: use one of {list(GRADIENTS)}.")
        self.gradient = gradient
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.beta = float(beta)

    def build(self, input_shape):
        check_vector_size(self, input_shape, "embedding_dim", self.embedding_dim)
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_embeddings, self.embedding_dim),
            initializer=self._codebook_initializer(),
            trainable=self.codebook_trainable,
            aggregation=self._state_aggregation(),
        )

    def _state_aggregation(self):
        """How a variable that ``call`` assigns is written on several TensorFlow replicas: each replica computes
        the same value from statistics summed over the replicas, and the first one's is kept
        (``"only_first_replica"``; unused elsewhere). Variables that the optimizer trains keep Keras's default."""
        return "none" if self.codebook_trainable else "only_first_replica"

    def _codebook_initializer(self):
        return keras.initializers.RandomUniform(-0.05, 0.05)

    @property
    def codebook(self):
        """The codes ``(K, D)`` that inputs are matched to (here the ``embeddings`` table itself)."""
        return self.embeddings

    def _nearest(self, flat, codebook):
        """Indices ``(N,)`` of the codes nearest to ``flat`` ``(N, D)``: the package's :func:`nearest_code`, or
        the learner's pieces (``nearest_code``, else the ``argmin`` of ``pairwise_sq_distances``)."""
        if self._nearest_piece is not None:
            return self._nearest_piece(flat, codebook)
        if self._distances_piece is not None:
            return ops.argmin(self._distances_piece(flat, codebook), axis=1)
        return nearest_code(flat, codebook)

    def call(self, x, training=False):
        check_vectors(self, x, "embedding_dim", self.embedding_dim)
        flat = ops.reshape(x, (-1, self.embedding_dim))
        codebook = self.codebook
        flat_indices = self._nearest(flat, codebook)
        # One one-hot matrix (N, K) serves the lookup (a matrix product, with a dense gradient
        # for the codebook), the EMA update and the perplexity.
        encodings = ops.one_hot(flat_indices, self.num_embeddings, dtype=flat.dtype)
        quantized = ops.reshape(ops.matmul(encodings, codebook), ops.shape(x))
        if training:
            self._update_codebook(ops.stop_gradient(flat), encodings)
        codebook_loss, commitment_loss = self._loss_terms(x, quantized)
        perplexity, usage = _perplexity(encodings)
        return {
            "quantized": self._gradient_path(x, quantized),
            "indices": ops.reshape(flat_indices, ops.shape(x)[:-1]),
            "loss": codebook_loss + commitment_loss,
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
            "perplexity": perplexity,
            "usage": usage,
        }

    def _gradient_path(self, x, quantized):
        """The code's value, with the gradient of the identity or of :func:`rotate_to`."""
        through = self._straight_through_piece or straight_through
        if self.gradient == "rotation":
            return through(rotate_to(x, quantized), quantized)
        return through(x, quantized)

    def _loss_terms(self, x, quantized):
        return (self._vq_losses_piece or vq_losses)(x, quantized, self.beta)

    def _update_codebook(self, flat, encodings):
        """Only the EMA quantizer changes state in ``call``."""

    def code_indices(self, x):
        """Indices ``x.shape[:-1]`` of the codes nearest to ``x`` ``(..., D)``."""
        flat = ops.reshape(ops.convert_to_tensor(x), (-1, self.embedding_dim))
        return ops.reshape(self._nearest(flat, self.codebook), ops.shape(x)[:-1])

    def lookup(self, indices):
        """Code vectors ``indices.shape + (D,)`` for integer ``indices`` in ``[0, K)``."""
        return ops.take(self.codebook, ops.convert_to_tensor(indices, "int32"), axis=0)

    # -- codebook maintenance: eager, outside call ---------------------------------------
    def set_codes(self, code_indices, vectors):
        """Overwrite the codes ``code_indices`` ``(M,)`` with ``vectors`` ``(M, D)``."""
        table = ops.convert_to_numpy(self.embeddings).copy()
        table[np.asarray(code_indices)] = np.asarray(vectors, dtype=table.dtype)
        self.embeddings.assign(table)

    def restart_dead_codes(self, vectors, min_count=1, seed=None):
        """Move every code that fewer than ``min_count`` of ``vectors`` ``(N, D)`` pick
        onto one of those vectors chosen at random; return the restarted indices."""
        vectors = np.asarray(vectors, dtype="float32").reshape(-1, self.embedding_dim)
        counts = np.bincount(self._assign(vectors), minlength=self.num_embeddings)
        dead = np.flatnonzero(counts < min_count)
        if dead.size:
            rng = np.random.default_rng(seed)
            chosen = rng.choice(len(vectors), size=dead.size, replace=dead.size > len(vectors))
            self.set_codes(dead, vectors[chosen])
        return dead

    def initialize_kmeans(self, vectors, iterations=10, seed=None):
        """Set the codebook to k-means centroids of ``vectors`` ``(N, D)`` (k-means++ seeding, then
        Lloyd's algorithm; empty clusters reseeded from random vectors); return the final mean
        squared distance of the vectors to their centroids."""
        vectors = np.asarray(vectors, dtype="float32").reshape(-1, self.embedding_dim)
        if len(vectors) < self.num_embeddings:
            raise ValueError(
                f"k-means needs at least num_embeddings={self.num_embeddings} vectors, got {len(vectors)}."
            )
        rng = np.random.default_rng(seed)
        centroids = _kmeans_plus_plus(vectors, self.num_embeddings, rng)
        for _ in range(iterations):
            assignment = _nearest_numpy(vectors, centroids)
            counts = np.bincount(assignment, minlength=self.num_embeddings)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assignment, vectors)
            empty = counts == 0
            means = sums / np.maximum(counts, 1)[:, None].astype("float32")
            centroids = np.where(empty[:, None], vectors[rng.choice(len(vectors), self.num_embeddings)], means)
        self.set_codes(np.arange(self.num_embeddings), centroids)
        assignment = _nearest_numpy(vectors, centroids)
        self._start_statistics(np.bincount(assignment, minlength=self.num_embeddings), centroids)
        return float(np.mean(np.sum((vectors - centroids[assignment]) ** 2, axis=1)))

    def _start_statistics(self, counts, centroids):
        """After k-means: a codebook with running statistics (EMA) starts them from the assignment
        ``counts`` ``(K,)`` of the vectors to the ``centroids`` ``(K, D)``; a learned codebook has none."""

    def _assign(self, vectors):
        return _nearest_numpy(vectors, ops.convert_to_numpy(self.codebook))

    def get_config(self):
        return {**super().get_config(), "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "beta": self.beta, "gradient": self.gradient}


def _kmeans_plus_plus(vectors, k, rng):
    """k-means++ seeding: each new centroid is a vector drawn with probability
    proportional to its squared distance from the nearest centroid so far."""
    centroids = [vectors[rng.integers(len(vectors))]]
    closest = np.sum((vectors - centroids[0]) ** 2, axis=1)
    for _ in range(1, k):
        total = closest.sum()
        pick = rng.choice(len(vectors), p=closest / total) if total > 0 else rng.integers(len(vectors))
        centroids.append(vectors[pick])
        closest = np.minimum(closest, np.sum((vectors - vectors[pick]) ** 2, axis=1))
    return np.stack(centroids)


def _nearest_numpy(vectors, codebook, chunk=65536):
    """Nearest codebook row for many vectors, in chunks to bound memory."""
    return np.concatenate([
        ops.convert_to_numpy(nearest_code(ops.convert_to_tensor(vectors[i:i + chunk], "float32"),
                                          ops.convert_to_tensor(codebook, "float32")))
        for i in range(0, len(vectors), chunk)
    ]).astype("int64")


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class VectorQuantizer(_Quantizer):
    """Vector quantizer whose codebook ``(K, D)`` is learned by the codebook loss.

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each code vector.
        beta: weight of the commitment loss (0.25 in the paper and the Keras example).
        gradient: ``"straight_through"`` (the default: the identity) or ``"rotation"``
            (:func:`rotate_to`): how the gradient of ``quantized`` reaches ``x``.
        codebook_transform: SimVQ: ``embeddings`` becomes a frozen random table ``C`` ``(K, D)``
            (normal, std ``D**-0.5``), ``transform`` a learned ``W`` ``(D, D)`` starting at the
            identity, and the codes (:attr:`codebook`) are ``C W``; only ``W`` trains. ``set_codes``
            (k-means, restarts) solves ``C_k W = v`` for the rows of ``C``.
        pieces: the learner's functions, ``{name: function}`` with names from :data:`PIECES` (None: the
            package's; not saved with the layer), for the steps of ``call`` and :meth:`code_indices`. They
            receive backend tensors (inside a compiled training step, symbolic ones), so they are written
            with ``keras.ops``:

            * ``"pairwise_sq_distances"``: ``(x (N, D), codebook (K, D)) -> (N, K)``; the nearest code is
              its ``argmin`` over the codes (unless a ``"nearest_code"`` other than the package's is given,
              which computes its own distances);
            * ``"nearest_code"``: ``(x (N, D), codebook (K, D)) -> (N,)`` integer indices;
            * ``"straight_through"``: ``(x, quantized)``, both ``(..., D)``, to ``(..., D)``: the value of
              ``quantized`` with the gradient of ``x`` (with ``gradient="rotation"``, ``x`` is
              ``rotate_to(x, quantized)``);
            * ``"vq_losses"``: ``(x, quantized, beta)`` to ``(codebook_loss, commitment_loss)``, two scalars.

            Codebook maintenance (k-means, restarts) keeps the package's functions: it runs outside
            ``call``, in NumPy.

    Call: ``x`` ``(..., D)`` to a dict (see the module docstring).
    """

    def __init__(self, num_embeddings, embedding_dim, beta=0.25, codebook_transform=False, pieces=None, **kwargs):
        super().__init__(num_embeddings, embedding_dim, beta, pieces=pieces, **kwargs)
        self.codebook_transform = bool(codebook_transform)
        self.codebook_trainable = not self.codebook_transform

    def build(self, input_shape):
        super().build(input_shape)
        if self.codebook_transform:
            self.transform = self.add_weight(name="transform", shape=(self.embedding_dim, self.embedding_dim),
                                             initializer="identity", trainable=True)

    def _codebook_initializer(self):
        if self.codebook_transform:
            return keras.initializers.RandomNormal(stddev=self.embedding_dim**-0.5)
        return super()._codebook_initializer()

    @property
    def codebook(self):
        """The codes ``(K, D)``: ``embeddings``, or ``embeddings @ transform`` with ``codebook_transform``."""
        if self.codebook_transform:
            return ops.matmul(self.embeddings, self.transform)
        return self.embeddings

    def set_codes(self, code_indices, vectors):
        """Make the codes ``code_indices`` ``(M,)`` equal ``vectors`` ``(M, D)`` (with SimVQ, in least
        squares: the rows of ``C`` that ``W`` maps onto them)."""
        if self.codebook_transform:
            w = ops.convert_to_numpy(self.transform).astype("float64")
            vectors = np.linalg.lstsq(w.T, np.asarray(vectors, "float64").T, rcond=None)[0].T
        super().set_codes(code_indices, vectors)

    def get_config(self):
        return {**super().get_config(), "codebook_transform": self.codebook_transform}


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class VectorQuantizerEMA(_Quantizer):
    """Vector quantizer whose codebook follows exponential moving averages.

    Each training call assigns every vector to its nearest code, then updates

    ``N_k <- decay * N_k + (1 - decay) * n_k`` (vectors assigned to code k) and
    ``m_k <- decay * m_k + (1 - decay) * sum of those vectors``,

    divides both by ``1 - decay**t`` (bias correction of the zero start, t the
    number of updates), smooths the counts (``(N_k + eps) / (N + K eps) * N``,
    Laplace smoothing, so no code divides by zero) and sets ``e_k = m_k / N_k``.
    Only the commitment loss ``beta * mean((x - sg(q))**2)`` is returned.

    Args:
        num_embeddings, embedding_dim, beta, gradient, pieces: as :class:`VectorQuantizer` (of the
            pieces, ``vq_losses`` gives only the commitment loss used here). The EMA update itself is not
            a piece: lesson 2's ``ema_update`` is written in NumPy, which cannot run on the tensors of a
            compiled training step.
        decay: the EMA's decay, in [0, 1).
        epsilon: the Laplace smoothing constant.
    """

    codebook_trainable = False

    def __init__(self, num_embeddings, embedding_dim, beta=0.25, decay=0.99, epsilon=1e-5, pieces=None, **kwargs):
        super().__init__(num_embeddings, embedding_dim, beta, pieces=pieces, **kwargs)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay={decay} must lie in [0, 1) (0.99 is usual).")
        self.decay = float(decay)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        super().build(input_shape)
        state = {"initializer": "zeros", "trainable": False, "aggregation": self._state_aggregation()}
        self.ema_cluster_size = self.add_weight(name="ema_cluster_size", shape=(self.num_embeddings,), **state)
        self.ema_embedding_sum = self.add_weight(name="ema_embedding_sum",
                                                 shape=(self.num_embeddings, self.embedding_dim), **state)
        self.ema_steps = self.add_weight(name="ema_steps", shape=(), **state)

    def _loss_terms(self, x, quantized):
        _, commitment_loss = (self._vq_losses_piece or vq_losses)(x, quantized, self.beta)
        return ops.zeros((), dtype=commitment_loss.dtype), commitment_loss

    def _update_codebook(self, flat, one_hot):
        keep = self.decay
        steps = self.ema_steps + 1.0
        # the global batch's counts and sums: on several TensorFlow replicas, added up over them
        counts, sums = replica_sum(ops.sum(one_hot, axis=0)), replica_sum(ops.matmul(ops.transpose(one_hot), flat))
        cluster_size = keep * self.ema_cluster_size + (1.0 - keep) * counts
        embedding_sum = keep * self.ema_embedding_sum + (1.0 - keep) * sums
        self.ema_steps.assign(steps)
        self.ema_cluster_size.assign(cluster_size)
        self.ema_embedding_sum.assign(embedding_sum)
        correction = 1.0 - ops.power(keep, steps)
        size, total = cluster_size / correction, embedding_sum / correction
        n = ops.sum(size)
        smoothed = (size + self.epsilon) / (n + self.num_embeddings * self.epsilon) * n
        self.embeddings.assign(total / ops.expand_dims(smoothed, 1))

    def set_codes(self, code_indices, vectors):
        """Overwrite codes and give each the codebook's mean EMA weight, so the average
        ``m_k / N_k`` starts at the new vector and moves at the usual pace."""
        super().set_codes(code_indices, vectors)
        code_indices = np.asarray(code_indices)
        sizes = ops.convert_to_numpy(self.ema_cluster_size).copy()
        sums = ops.convert_to_numpy(self.ema_embedding_sum).copy()
        sizes[code_indices] = sizes.mean()
        sums[code_indices] = sizes[code_indices, None] * np.asarray(vectors, dtype=sums.dtype)
        self.ema_cluster_size.assign(sizes)
        self.ema_embedding_sum.assign(sums)

    def _start_statistics(self, counts, centroids):
        """Start the moving averages consistent with the k-means codebook, as if one update had seen
        the k-means assignment: counts ``N_k`` = the vectors assigned to code k, sums ``m_k = N_k e_k``,
        one step done. Bias correction then reads them back unchanged, and a code that the next batch
        does not pick keeps ``m_k / N_k`` = its centroid. (Starting from zero sums instead, the first
        update would send every code the first batch leaves out to the origin.) Codes no vector picked
        get the mean count, so that they too stay put."""
        counts = np.asarray(counts, "float32")
        counts = np.where(counts > 0, counts, max(counts.mean(), 1.0))
        fresh = 1.0 - self.decay  # the weight one update gives its batch: 1 - decay**1
        self.ema_steps.assign(1.0)
        self.ema_cluster_size.assign(fresh * counts)
        self.ema_embedding_sum.assign(fresh * counts[:, None] * np.asarray(centroids, "float32"))

    def get_config(self):
        return {**super().get_config(), "decay": self.decay, "epsilon": self.epsilon}


class CodebookMaintenance(keras.callbacks.Callback):
    """Keep the codebook alive while a :class:`VQVAE` trains.

    At the start of training, optionally sets the codebook to k-means centroids of
    encoder outputs. Every ``every`` training batches, encodes ``sample_size``
    random training images and moves each code that none of their vectors picks
    onto one of those vectors (a dead-code restart). ``history`` records
    ``(step, codes restarted)``.
    """

    def __init__(self, images, every=200, sample_size=1024, kmeans_init=True, restart_dead_codes=True,
                 min_count=1, seed=0):
        super().__init__()
        self.images, self.every, self.sample_size = images, int(every), int(sample_size)
        self.kmeans_init, self.restart, self.min_count = kmeans_init, restart_dead_codes, min_count
        self.rng = np.random.default_rng(seed)
        self.step, self.history = 0, []

    def _recent_vectors(self):
        chosen = self.rng.choice(len(self.images), min(self.sample_size, len(self.images)), replace=False)
        return self.model.encoder_outputs(self.images[np.sort(chosen)]).reshape(-1, self.model.embedding_dim)

    def on_train_begin(self, logs=None):
        if self.kmeans_init:
            self.model.quantizer.initialize_kmeans(self._recent_vectors(), seed=int(self.rng.integers(2**31)))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.restart and self.step % self.every == 0:
            dead = self.model.quantizer.restart_dead_codes(self._recent_vectors(), self.min_count,
                                                            seed=int(self.rng.integers(2**31)))
            self.history.append((self.step, int(dead.size)))
