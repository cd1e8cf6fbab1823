"""A judge for generated digits: a small MNIST classifier and the metrics computed with it.

Looking at samples is not enough to compare two generators, so the course judges them
the way image generators are judged (Salimans et al., 2016; Heusel et al., 2017), with
a classifier trained on MNIST in place of Inception:

* :func:`inception_score`: ``exp(E_x KL(p(y|x) || p(y)))``. High when each image is
  clearly one digit (confident ``p(y|x)``) and all ten digits appear (flat ``p(y)``);
  10 at most.
* :func:`frechet_distance`: the distance between two Gaussians fitted to the judge's
  penultimate features of the samples and of real test digits. 0 for identical
  statistics; lower is better. It depends on the number of images: compare equal counts.
* :func:`class_histogram`: how many images the judge assigns to each digit.
* the share of class-conditional samples judged to be the class asked for.

:func:`judge_images` computes them all with the judge it is given; the shipped judge is
``pretrained.shipped_judge()`` (``pretrained.load("judge-mnist")``, loaded once).

References: Salimans et al. (2016), *Improved Techniques for Training GANs* (the inception score), arXiv:1606.03498;
Heusel et al. (2017), *GANs Trained by a Two Time-Scale Update Rule* (the Frechet distance), arXiv:1706.08500.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .checks import check_images, check_pieces, check_train_size, in_batches
from .data import load_mnist

NUM_CLASSES = 10


@keras.saving.register_keras_serializable(package="vqvae_lessons")
class Judge(keras.Model):
    """A small CNN: images ``(N, 28, 28, 1)`` in [0, 1] -> logits ``(N, 10)``.

    Two blocks of 3x3 convolutions and max-pooling, a 128-unit dense layer (the
    features the squared Fréchet distance uses) and a linear classifier, with dropout.
    """

    def __init__(self, feature_dim=128, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim = feature_dim
        self.body = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.25),
            layers.Dense(feature_dim, activation="relu"),
        ], name="body")
        self.dropout = layers.Dropout(0.4)
        self.head = layers.Dense(NUM_CLASSES)
        self(ops.zeros((1, 28, 28, 1)))  # create the weights now, so that load_weights works at once

    def call(self, images, training=False):
        return self.head(self.dropout(self.body(images, training=training), training=training))

    def features(self, images, batch_size=1000):
        """Penultimate features ``(N, feature_dim)`` of images in [0, 1]."""
        return in_batches(self.body, check_images(images), batch_size)

    def probabilities(self, images, batch_size=1000):
        """Class probabilities ``(N, 10)`` of images in [0, 1]."""
        return in_batches(lambda batch: ops.softmax(self(batch), axis=-1), check_images(images), batch_size)

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim}


def inception_score(probabilities):
    """``exp(mean KL(p(y|x) || p(y)))`` of class probabilities ``(N, C)``: from 1 to C."""
    probs = np.clip(np.asarray(probabilities, "float64"), 1e-12, 1.0)
    marginal = probs.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(probs * (np.log(probs) - np.log(marginal)), axis=1))))


def frechet_distance(features_a, features_b):
    """The squared Fréchet distance d_F^2 (what FID reports) between Gaussians fitted to two sets of
    features ``(N, F)`` and ``(M, F)``: ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"Expected two sets of at least 2 feature vectors of the same size, got {a.shape} and "
                         f"{b.shape}.")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric matrix.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def class_histogram(probabilities):
    """How many images the judge assigns to each class: ``(C,)`` ints."""
    probs = np.asarray(probabilities)
    return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])


def reference_features(judge, data=None):
    """The judge's features of the 10,000 MNIST test digits (of ``data`` if given). Those of the
    real MNIST are computed once per judge and kept with it, outside Keras's tracking."""
    if data is not None:
        return judge.features(data.x_test)
    if "_test_features" not in judge.__dict__:
        judge.__dict__["_test_features"] = judge.features(load_mnist().x_test)
    return judge.__dict__["_test_features"]


def judge_images(images, label=None, judge=None, data=None, pieces=None):
    """Judge images ``(N, 28, 28[, 1])`` in [0, 1] (N >= 2): a dict of ``n``,
    ``inception_score``, ``frechet_distance`` (to the MNIST test set, in the judge's
    features), ``class_histogram`` (list of 10 counts), ``mean_confidence`` (the mean top
    probability) and, given the class asked for (``label``: one int in [0, 10) for every image, or
    ``(N,)`` such ints, one per image), ``label_accuracy``, the share judged to be that class.
    ``judge``: a :class:`Judge`, such as the shipped one, ``pretrained.shipped_judge()``.
    ``pieces``: the learner's scores, ``{"inception_score": fn, "frechet_distance": fn}`` (either; None: the
    package's), with the signatures of :func:`inception_score` and :func:`frechet_distance` (lesson 6)."""
    pieces = check_pieces(pieces, ("inception_score", "frechet_distance"), "judge_images")
    score, distance = pieces.get("inception_score", inception_score), pieces.get("frechet_distance", frechet_distance)
    if judge is None:
        raise ValueError("Give the judge: judge=pretrained.shipped_judge() (the shipped MNIST classifier, "
                         "loaded once) or a Judge you trained (train_judge).")
    images = check_images(images)
    if len(images) < 2:
        raise ValueError(f"Judging needs at least 2 images (the Fréchet distance fits a covariance), got "
                         f"{len(images)}.")
    if label is not None:
        _labels(label, len(images))  # a wrong label fails before the judging, not after
    probs = judge.probabilities(images)
    results = {
        "n": len(images),
        "inception_score": float(score(probs)),
        "frechet_distance": float(distance(judge.features(images), reference_features(judge, data))),
        "class_histogram": class_histogram(probs).tolist(),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }
    if label is not None:
        results["label_accuracy"] = float(np.mean(probs.argmax(axis=1) == _labels(label, len(images))))
    return results


def _labels(label, n):
    """The class asked for of each of ``n`` images: ``label`` one int in [0, 10) for all of them, or ``(n,)``
    ints, one per image; else a ValueError that says which."""
    labels = np.asarray(label)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"label is the digit asked for: one int from 0 to {NUM_CLASSES - 1} for every image, or one "
                         f"int per image; got {label!r} (dtype {labels.dtype}).")
    if labels.ndim == 0:
        labels = np.full(n, labels)
    elif labels.shape != (n,):
        raise ValueError(f"label is one int from 0 to {NUM_CLASSES - 1} for every image, or one per image (shape "
                         f"({n},) for these {n} images); got an array of shape {labels.shape}: for a single class, "
                         f"pass one int, e.g. label=3.")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"label must be a digit, an int from 0 to {NUM_CLASSES - 1} (one per image or one for all), "
                         f"got values from {labels.min()} to {labels.max()}.")
    return labels


def train_judge(epochs=4, batch_size=128, learning_rate=1e-3, seed=0, train_size=None, data=None, validate=True,
                verbose="auto", validation="split", callbacks=()):
    """Train a :class:`Judge` on MNIST's training digits; return ``(judge, record)``. ``validation``
    (which images it trains on and validates on) and ``callbacks``, as :func:`~vqvae_lessons.train.train_vqvae`
    takes them."""
    from .train import fit

    check_train_size(train_size)
    keras.utils.set_random_seed(seed)
    data = data or load_mnist()
    x_fit, y_fit, x_val, y_val = data.split(validation)
    judge = Judge()
    record = fit(judge, x_fit[:train_size], epochs, batch_size, learning_rate,
                  x_val if validate else None, list(callbacks), verbose, targets=y_fit[:train_size].astype("int32"),
                  validation_targets=y_val.astype("int32"),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    record.update(seed=seed, train_size=len(x_fit[:train_size]), validation=validation)
    return judge, record


def evaluate_judge(judge, data=None, real_count=1000):
    """The judge's test accuracy, and the scores of ``real_count`` real training digits (the
    ceiling a generator can reach with that many images)."""
    data = data or load_mnist()
    probs = judge.probabilities(data.x_test)
    real = data.x_train[:real_count]
    real_probs = judge.probabilities(real)
    return {
        "test_accuracy": float(np.mean(probs.argmax(axis=1) == data.y_test)),
        f"real_{real_count}_inception_score": inception_score(real_probs),
        f"real_{real_count}_frechet_distance": frechet_distance(judge.features(real), reference_features(judge, data)),
    }
