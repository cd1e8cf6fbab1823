"""The judge: its metrics on cases with known answers, its errors, and the shipped classifier."""

import numpy as np
import pytest

from vqvae_lessons import judge, pretrained


def test_inception_score_on_cases_with_known_answers():
    confident_and_varied = np.eye(10)[np.arange(100) % 10]
    assert judge.inception_score(confident_and_varied) == pytest.approx(10.0, rel=1e-6)
    assert judge.inception_score(np.eye(10)[np.zeros(50, int)]) == pytest.approx(1.0)  # always the same digit
    assert judge.inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)  # never sure of any digit
    two_classes = np.eye(10)[np.arange(100) % 2]
    assert judge.inception_score(two_classes) == pytest.approx(2.0, rel=1e-6)


def test_frechet_distance_on_cases_with_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert judge.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0, 0.0, 4.0])
    assert judge.frechet_distance(a, shifted) == pytest.approx(25.0, rel=1e-6)  # |mean difference|^2
    scaled = a * 2.0  # S_b = 4 S_a, so Tr(S_a + 4 S_a - 2 (4 S_a^2)^(1/2)) = Tr(S_a), plus the mean term
    want = np.trace(np.cov(a, rowvar=False)) + np.sum(a.mean(axis=0) ** 2)
    assert judge.frechet_distance(a, scaled) == pytest.approx(want, rel=1e-6)
    assert judge.frechet_distance(a, scaled) == pytest.approx(judge.frechet_distance(scaled, a), rel=1e-6)


def test_frechet_distance_matches_scipy_s_matrix_square_root_on_covariances_that_do_not_commute():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    for features in (3, 8):
        mix_a, mix_b = rng.normal(size=(features, features)), rng.normal(size=(features, features))
        a = rng.normal(size=(500, features)) @ mix_a + rng.normal(size=features)
        b = rng.normal(size=(300, features)) @ mix_b + rng.normal(size=features)
        cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        # S_a S_b != S_b S_a: (S_a S_b)^(1/2) is not S_a^(1/2) S_b^(1/2), the mistake this test catches
        assert np.abs(cov_a @ cov_b - cov_b @ cov_a).max() > 0.1 * np.abs(cov_a @ cov_b).max()
        cross = linalg.sqrtm(cov_a @ cov_b)
        want = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2 * np.trace(np.real(cross)))
        assert judge.frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
        assert judge.frechet_distance(b, a) == pytest.approx(want, rel=1e-6)
        naive = np.trace(np.real(linalg.sqrtm(cov_a) @ linalg.sqrtm(cov_b)))  # what commuting matrices would give
        assert abs(naive - np.trace(np.real(cross))) > 1e-3 * abs(want)  # so the check above can tell them apart


def test_class_histogram_counts_the_judge_s_verdicts():
    probs = np.eye(10)[[3, 3, 7, 0]] * 0.9 + 0.01
    np.testing.assert_array_equal(judge.class_histogram(probs), [1, 0, 0, 2, 0, 0, 0, 1, 0, 0])


@pytest.mark.parametrize("a, b, message", [(np.zeros((5, 3)), np.zeros((5, 4)), "same size"),
                                           (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2")])
def test_frechet_distance_needs_two_sets_of_matching_features(a, b, message):
    with pytest.raises(ValueError, match=message):
        judge.frechet_distance(a, b)


def test_judging_images_on_synthetic_data(tiny_mnist):
    untrained = judge.Judge()
    results = judge.judge_images(tiny_mnist.x_test[:20], label=3, judge=untrained, data=tiny_mnist)
    assert results["n"] == 20 and sum(results["class_histogram"]) == 20
    assert 1.0 <= results["inception_score"] <= 10.0 and results["frechet_distance"] >= 0
    assert 0.0 <= results["label_accuracy"] <= 1.0 and 0.1 <= results["mean_confidence"] <= 1.0
    for bad, message in [(tiny_mnist.x_test[:1], "at least 2 images"), (tiny_mnist.x_test[:4, :20], "shape")]:
        with pytest.raises(ValueError, match=message):
            judge.judge_images(bad, judge=untrained, data=tiny_mnist)
    with pytest.raises(ValueError, match="label must be a digit"):
        judge.judge_images(tiny_mnist.x_test[:4], label=12, judge=untrained, data=tiny_mnist)
    for label, message in [([1, 2], r"one per image \(shape \(4,\) .* got an array of shape \(2,\)"),
                           (2.5, "label is the digit asked for: one int"), (-1, "label must be a digit"),
                           ([3, 3, 3, 10], "got values from 3 to 10"), (True, "one int")]:
        with pytest.raises(ValueError, match=message):
            judge.judge_images(tiny_mnist.x_test[:4], label=label, judge=untrained, data=tiny_mnist)
    per_image = judge.judge_images(tiny_mnist.x_test[:4], label=[1, 2, 3, 4], judge=untrained, data=tiny_mnist)
    assert per_image["label_accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    with pytest.raises(ValueError, match=r"Give the judge: judge=pretrained.shipped_judge\(\)"):
        judge.judge_images(tiny_mnist.x_test[:4], data=tiny_mnist)  # judge knows no shipped weights


def test_the_shipped_judge_is_accurate(real_mnist):
    model = pretrained.shipped_judge()
    assert model is pretrained.shipped_judge() and isinstance(model, judge.Judge)  # loaded once
    results = judge.evaluate_judge(model, real_mnist)
    assert results["test_accuracy"] >= 0.99
    real = judge.judge_images(real_mnist.x_train[:1000], label=real_mnist.y_train[:1000], judge=model,
                              data=real_mnist)
    assert real["label_accuracy"] >= 0.99 and real["inception_score"] > 9.0
    assert real["frechet_distance"] == pytest.approx(results["real_1000_frechet_distance"], rel=1e-4)
