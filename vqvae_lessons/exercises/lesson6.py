"""Lesson 6's exercises (judging generated digits): ``frechet_distance`` and ``inception_score``, and the
question ``real_inception_score`` (predict the score of the real test digits before measuring it).

The references are written out in NumPy, so that a folded solution runs when pasted alone into
lesson 6 (where the name ``judge`` is the classifier model, not the module); they compute what
the package's :func:`vqvae_lessons.judge.frechet_distance` and
:func:`vqvae_lessons.judge.inception_score` compute, and the lesson uses the package's. The
Fréchet distance's test cases have covariances that do not commute, so the shortcut
``Tr(S_a^(1/2) S_b^(1/2))`` fails them; then the edge cases the lesson meets: features with dead units (always 0,
as the judge's ReLU features have), whose covariances are singular, and a confident judge's probabilities with
exact zeros, and a single image.
"""

from __future__ import annotations

import numpy as np

from . import core
from .core import Incorrect, LearnerError, check_number

_NOT_APPLICABLE = np.zeros(0)  # what a mistake returns where it can't be computed: matches no answer


def frechet_distance(features_a, features_b):
    """The squared Fréchet distance (as FID reports it) between Gaussians fitted to features
    ``(N, F)`` and ``(M, F)``: ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    a, b = np.asarray(features_a, "float64"), np.asarray(features_b, "float64")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (F, F), unbiased
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric matrix
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def inception_score(probs):
    """``exp(mean over images of KL(p(y|x) || p(y)))`` of class probabilities ``(N, C)``, with
    ``p(y)`` the mean of ``p(y|x)`` over the images."""
    p = np.clip(np.asarray(probs, "float64"), 1e-12, 1.0)  # no log(0)
    marginal = p.mean(axis=0, keepdims=True)  # p(y), (1, C)
    kl = np.sum(p * (np.log(p) - np.log(marginal)), axis=1)  # KL(p(y|x) || p(y)) per image, in nats
    return float(np.exp(kl.mean()))


def _real(fn):
    """The learner's function with a result of negligible imaginary part made real (scipy's
    ``sqrtm`` returns complex matrices even for covariances)."""
    def wrapped(*args):
        result = fn(*args)
        array = np.asarray(result) if isinstance(result, complex | np.ndarray | np.complexfloating) else None
        if array is not None and array.dtype.kind == "c":
            scale = max(1.0, float(np.max(np.abs(array.real), initial=0.0)))
            if np.max(np.abs(array.imag), initial=0.0) <= 1e-6 * scale:
                return array.real
        return result
    return wrapped


# ---------------------------------------------------------------------------------------------
# frechet_distance
# ---------------------------------------------------------------------------------------------
def _root(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _moments(a, b, ddof=1):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    return a.mean(axis=0), b.mean(axis=0), np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)


def _trace_root_product(cov_a, cov_b):
    root_a = _root(cov_a)
    return np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()


def _frechet(a, b, *, mean_term=None, cross=None, factor=2.0, ddof=1):
    """The squared Fréchet distance, with one of its parts swapped for a mistaken one."""
    mean_a, mean_b, cov_a, cov_b = _moments(a, b, ddof)
    means = np.sum((mean_a - mean_b) ** 2) if mean_term is None else mean_term(mean_a, mean_b)
    trace_root = _trace_root_product(cov_a, cov_b) if cross is None else cross(cov_a, cov_b)
    return means + np.trace(cov_a) + np.trace(cov_b) - factor * trace_root


def _wrong_axis(a, b):
    if len(a) != len(b):
        return _NOT_APPLICABLE
    cov_a, cov_b = np.cov(a), np.cov(b)  # (N, N): the images taken as the variables
    return np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * (
        _trace_root_product(cov_a, cov_b))


def _wrong_mean_axis(a, b):
    if len(a) != len(b):
        return _NOT_APPLICABLE
    return _frechet(a, b, mean_term=lambda *_: np.sum((a.mean(axis=1) - b.mean(axis=1)) ** 2))


def _diagonal(a, b, *, use_std=False):
    mean_a, mean_b, cov_a, cov_b = _moments(a, b)
    var_a, var_b = np.diag(cov_a), np.diag(cov_b)
    if use_std:  # standard deviations where the formula has variances
        var_a, var_b = np.sqrt(var_a), np.sqrt(var_b)
    return np.sum((mean_a - mean_b) ** 2) + np.sum(var_a + var_b - 2 * np.sqrt(var_a * var_b))


def _unclipped(a, b):
    """The Fréchet distance with no clip of the round-off negative eigenvalues of a singular covariance: NaN (or,
    where np.linalg gives up on the NaN matrix, an error; what it returns here then, NaN, matches the same hint)."""
    mean_a, mean_b, cov_a, cov_b = _moments(a, b)
    try:
        with np.errstate(all="ignore"):
            values, vectors = np.linalg.eigh(cov_a)
            root_a = (vectors * np.sqrt(values)) @ vectors.T
            cross = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a)).sum()
    except np.linalg.LinAlgError:
        return np.nan
    return np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross


_FRECHET_CLIP = ("a feature that is 0 for every image (a dead ReLU unit, as the judge has) makes a covariance "
                 "singular: its eigenvalue 0 comes out of np.linalg.eigh as a tiny negative number, whose square "
                 "root is NaN. Clip the eigenvalues at 0 (np.clip(values, 0, None)) before each square root.")
_FRECHET_DISTANCE_MISTAKES = [  # the first only gives NaN where the others give numbers (a singular covariance)
    (_unclipped, _FRECHET_CLIP),
    (lambda a, b: _frechet(a, b, cross=lambda sa, sb: np.trace(_root(sa) @ _root(sb))),
     "you used Tr(S_a^(1/2) S_b^(1/2)): that equals Tr((S_a S_b)^(1/2)) only when the covariances commute, and "
     "these do not. Take the square root of the product: its trace is the sum of the square roots of the "
     "eigenvalues of S_a^(1/2) S_b S_a^(1/2) (or of S_a S_b)."),
    (lambda a, b: _frechet(a, b, cross=lambda sa, sb: np.trace(np.sqrt(sa) @ np.sqrt(sb))),
     "you took np.sqrt of each covariance: that is the square root of each entry, not a matrix square root, and "
     "even the matrix roots S_a^(1/2) S_b^(1/2) would be right only for commuting covariances. You need "
     "Tr((S_a S_b)^(1/2)): the sum of the square roots of the eigenvalues of S_a S_b."),
    (lambda a, b: _frechet(a, b, cross=lambda sa, sb: np.trace(np.sqrt(sa @ sb))),
     "you took np.sqrt of the product S_a S_b entry by entry: (S_a S_b)^(1/2) is a matrix square root; its trace "
     "is the sum of the square roots of the eigenvalues of S_a S_b."),
    (lambda a, b: _frechet(a, b, factor=1.0),
     "you forgot the factor 2: the trace term is Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."),
    (lambda a, b: np.sqrt(max(_frechet(a, b), 0.0)),
     "you took the square root at the end: FID reports the squared distance d_F^2, |mu_a - mu_b|^2 + Tr(...), "
     "with no square root over it."),
    (lambda a, b: _frechet(a, b, ddof=0),
     "your covariances divide by N (the biased estimate): use the unbiased one, divided by N - 1, as np.cov does "
     "(and as FID does)."),
    (_wrong_axis,
     "your covariance matrices are (N, N), over the images: each feature is a variable and each image an "
     "observation, so the covariance is (F, F): np.cov(features, rowvar=False)."),
    (_wrong_mean_axis,
     "you averaged each image's features (axis=1): the mean vector averages over the images, "
     "features.mean(axis=0), shape (F,)."),
    (lambda a, b: _frechet(a, b, mean_term=lambda ma, mb: np.sum(ma - mb) ** 2),
     "you squared the sum of the differences of the means: the first term is the sum of the squared "
     "differences, |mu_a - mu_b|^2 = np.sum((mu_a - mu_b) ** 2)."),
    (lambda a, b: _frechet(a, b, mean_term=lambda ma, mb: np.sqrt(np.sum((ma - mb) ** 2))),
     "your first term is |mu_a - mu_b|, not its square |mu_a - mu_b|^2."),
    (lambda a, b: _frechet(a, b, mean_term=lambda ma, mb: np.sum(ma ** 2) - np.sum(mb ** 2)),
     "you subtracted the squared lengths of the means: the first term is the squared length of their "
     "difference, |mu_a - mu_b|^2."),
    (lambda a, b: _diagonal(a, b),
     "you used only the variances of each feature (the diagonal): the features are correlated, so the formula "
     "needs the full covariance matrices (F, F)."),
    (lambda a, b: _diagonal(a, b, use_std=True),
     "you used standard deviations where the formula has covariances: S_a and S_b are the (F, F) covariance "
     "matrices (np.cov(features, rowvar=False)), not the features' standard deviations."),
]


def _correlated(rng, n, scales, angle, shift=0.0):
    """``n`` points in ``len(scales)`` dimensions with standard deviations ``scales`` along axes
    rotated by ``angle`` in the first two dimensions (and mixed in the others)."""
    dims = len(scales)
    rotation = np.eye(dims)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    mix = np.linalg.qr(rng.normal(size=(dims, dims)))[0] if dims > 2 else np.eye(dims)
    return rng.normal(size=(n, dims)) * scales @ rotation.T @ mix.T + shift


def _frechet_distance_cases():
    rng = np.random.default_rng(60)
    # Rotated clouds: covariances that do not commute (the shortcut fails), few points (N - 1 matters).
    yield _correlated(rng, 30, [2.0, 0.5], 0.3), _correlated(rng, 30, [1.5, 0.4], 1.2, shift=[1.0, -0.5])
    yield _correlated(rng, 40, [1.0, 2.0, 0.6, 1.3], 0.7), _correlated(rng, 25, [0.8, 1.5, 1.1, 0.5], 2.0, 0.4)
    yield rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3)), rng.normal(size=(20, 3)) @ rng.normal(size=(3, 3)) + 2


def _dead_features(seed=0):
    """ReLU features with dead units (always 0), as the judge's are: singular covariances."""
    rng = np.random.default_rng(seed)
    a, b = np.maximum(rng.normal(size=(40, 6)), 0), np.maximum(rng.normal(size=(30, 6)) + 0.3, 0)
    a[:, 2], b[:, 2], a[:, 4] = 0, 0, 0
    return a, b


def _frechet_distance_hard_cases():
    yield _dead_features(0), _FRECHET_CLIP


def _register(reference, cases, mistakes, describe, hard_cases=tuple, **details):
    """Register a lesson 6 exercise whose answer is one number, checked on ``cases()``, then on each
    ``(args, advice)`` of ``hard_cases()``: an edge case the course meets, where a function that raises gets
    ``advice`` (what usually makes it raise there); its solution is the NumPy reference alone (it equals the
    package's function of the same name in :mod:`vqvae_lessons.judge`, which the lesson uses after the exercise)."""
    def checker(fn):
        check_number(_real(fn), cases(), reference, mistakes, describe)
        for args, advice in hard_cases():
            try:
                check_number(_real(fn), [args], reference, mistakes, describe)
            except LearnerError as verdict:
                raise Incorrect(f"{describe(*args)}{verdict}: {advice}") from None

    core.register(reference.__name__, reference=reference, checker=checker, lesson=6,
                  mistakes=mistakes, **details)


_register(
    frechet_distance, _frechet_distance_cases, _FRECHET_DISTANCE_MISTAKES,
    lambda a, b: f"With features of shapes {a.shape} and {b.shape}: ", _frechet_distance_hard_cases,
    hints="""
        Fit a Gaussian to each set: a mean vector over the images and a covariance matrix between the features
        (F by F). Then add the squared distance between the means and the trace term. The hard part is the
        trace of the square root of the product of the two covariances: the two matrices need not commute, so it
        is not the product of their square roots.

        The means are averages over axis 0; the covariances come from np.cov, told that the features are the
        columns (rowvar), which divides by N - 1 as the exercise asks. For the trace of the square root, the
        eigenvalues of the product of the two covariances equal those of a symmetric matrix: the square root
        of the first covariance on both sides of the second. That square root comes from np.linalg.eigh of the
        first covariance (its eigenvectors, each scaled by the root of its eigenvalue, times their transpose);
        then np.linalg.eigvalsh, a clip of round-off negatives at 0, square roots and a sum. The result is the
        squared distance of the means plus both traces minus twice that sum: no square root at the end.
        """,
    error_hint="features_a and features_b are NumPy arrays (N, F) and (M, F), N and M may differ; return one number.")


# ---------------------------------------------------------------------------------------------
# inception_score
# ---------------------------------------------------------------------------------------------
def _kl_rows(p, q, log=np.log):
    return np.sum(p * (log(p) - log(q)), axis=1)


def _parts(probs):
    p = np.clip(np.asarray(probs, "float64"), 1e-12, 1.0)
    return p, p.mean(axis=0, keepdims=True)


def _entropy_of_marginal(probs):
    _, marginal = _parts(probs)
    return -np.sum(marginal * np.log(marginal))


_INCEPTION_SCORE_MISTAKES = [
    (lambda probs: np.exp(np.mean(_kl_rows(_parts(probs)[1], _parts(probs)[0]))),
     "you computed KL(p(y) || p(y|x)), reversed: the score uses KL(p(y|x) || p(y)) = sum over y of "
     "p(y|x) * (log p(y|x) - log p(y))."),
    (lambda probs: np.mean(_kl_rows(*_parts(probs))),
     "you returned the mean KL divergence: the inception score is its exponential, exp(mean KL)."),
    (lambda probs: 1.0,
     "you got 1: p(y) must be the mean of p(y|x) over all the images (probs.mean(axis=0)), the same for every "
     "image; taken per image, each KL is 0."),
    (lambda probs: np.exp(np.mean(_kl_rows(*_parts(probs), log=np.log2))),
     "you used log2 and exp: use the natural log with exp (the score is exp of the mean KL in nats)."),
    (lambda probs: np.exp(np.sum(_kl_rows(*_parts(probs)))),
     "you summed the KL divergences over the images: take their mean, so the score does not grow with N."),
    (lambda probs: np.exp(np.mean(np.mean(_parts(probs)[0] * (np.log(_parts(probs)[0]) - np.log(_parts(probs)[1])),
                                          axis=1))),
     "you averaged over the classes inside the KL: each KL is a sum over the classes y, then average over the "
     "images."),
    (lambda probs: np.exp(_entropy_of_marginal(probs)),
     "you returned exp(H(p(y))), the entropy of p(y) alone: the mean KL is H(p(y)) minus the mean entropy of "
     "each image's p(y|x), so an unsure judge lowers the score."),
    (_entropy_of_marginal,
     "you returned the entropy of p(y) alone: the score is exp(mean KL(p(y|x) || p(y)))."),
    (lambda probs: _unclipped_score(probs), None),  # its hint is _INCEPTION_ZEROS, set below
]


def _unclipped_score(probs):
    p = np.asarray(probs, "float64")
    marginal = p.mean(axis=0, keepdims=True)
    with np.errstate(all="ignore"):
        return np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))


_INCEPTION_ZEROS = ("a confident judge gives probabilities of exactly 0 (float32 softmax of saturated logits), and "
                    "0 * log(0) is NaN: clip the probabilities to at least 1e-12 before the logs (or skip the zero "
                    "terms), since p log p tends to 0.")
_INCEPTION_SCORE_MISTAKES[-1] = (_INCEPTION_SCORE_MISTAKES[-1][0], _INCEPTION_ZEROS)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _inception_score_cases():
    rng = np.random.default_rng(61)
    yield (_softmax(3.0 * rng.normal(size=(12, 10))),)
    yield (_softmax(rng.normal(size=(8, 5)) + 4.0 * np.eye(5)[rng.integers(0, 3, 8)]),)  # 3 of 5 classes drawn
    yield (_softmax(0.5 * rng.normal(size=(20, 3))).astype("float32"),)
    # Saturated: a confident judge's float32 softmax has exact zeros; and sizes of 1: one image scores exactly 1.
    yield (_softmax(200.0 * rng.normal(size=(10, 10)).astype("float32")),)
    yield (_softmax(rng.normal(size=(1, 10))),)


_register(
    inception_score, _inception_score_cases, _INCEPTION_SCORE_MISTAKES,
    lambda probs: f"With probabilities of shape {probs.shape}: ",
    hints="""
        First the marginal p(y): the average of the images' class distributions. Then, for each image, the KL
        divergence from its p(y|x) to that marginal (a sum over the classes). Average those over the images and
        undo the logarithm.

        Clip the probabilities to at least 1e-12 first, so that no log of 0 appears. The marginal is a mean
        over axis 0, shape (C,), and broadcasts against the (N, C) rows. Each image's KL is a sum over axis 1 of
        p times the difference of two natural logs (its own, and the marginal's): N numbers, in nats. The score
        is np.exp of their mean, one number.
        """,
    error_hint="probs is a NumPy array (N, C) whose rows sum to 1; return one number.")


# ---------------------------------------------------------------------------------------------
# real_inception_score: a prediction, judged against the score of the real test digits
# ---------------------------------------------------------------------------------------------
_SCORE_MARGIN = 0.5  # a prediction within this of the measured score is right


def _judge_real_inception_score(answer, measured):
    """``measured``: ``{"score": the inception score of the 10,000 real test digits, "accuracy": the judge's test
    accuracy}``."""
    guess = core.as_number(answer, "9.5")
    score, accuracy = float(measured["score"]), float(measured["accuracy"])
    why = (f"The real test digits score {score:.2f}. Their ten classes are almost equally frequent, so p(y) is "
           f"close to uniform and H(p(y)) close to log 10; and the judge is sure of nearly every digit ({accuracy:.1%} "
           f"of them right), so the mean H(p(y|x)) is small. What keeps the score below 10 is the judge's remaining "
           f"doubt and the classes' slightly unequal shares.")
    if guess > 10:
        raise core.Wrong(f"{guess:g} is above the largest possible score: 10, the number of classes (exp of the "
                         f"largest entropy of p(y), log 10). {why}")
    if guess < 1:
        raise core.Wrong(f"{guess:g} is below the smallest possible score, 1 (a mean KL of 0). {why}")
    if abs(guess - score) > _SCORE_MARGIN:
        direction = "low: real digits are what the score rewards" if guess < score else "high"
        raise core.Wrong(f"{guess:g} is too {direction}. {why}")
    return f"{guess:g} is within {_SCORE_MARGIN} of the measurement. {why}"


core.register_question(
    "real_inception_score", kind="predict", lesson=6, judge=_judge_real_inception_score,
    example={"score": 9.7, "accuracy": 0.99},
    hints="""
        The score is exp(H(p(y)) - mean H(p(y|x))): how varied the classes are, minus how unsure the judge is per
        image. Ask both questions of the real test digits: how often does each digit occur, and how sure is a
        judge that reads nearly all of them right?

        With ten classes the first term is at most log 10, reached when every class is equally frequent; the
        second is 0 when the judge puts all its probability on one class for every image. Judge how close the
        real test digits come to each of these extremes; the score is 10 at best.
        """)
