"""Lesson 6's exercises (frechet_distance, inception_score) and its diagram (frechet_toy)."""

import numpy as np
import pytest
from checking import pasted  # tests/checking.py

from vqvae_lessons import exercises, judge
from vqvae_lessons.exercises import check, lesson6


def _stub(*_):
    raise NotImplementedError


@pytest.mark.parametrize("name", ["frechet_distance", "inception_score"])
def test_the_reference_passes_a_stub_is_not_attempted_and_errors_are_incorrect(name, capsys):
    assert check(name, pasted(name)) is True
    assert check(name, getattr(lesson6, name)) is None  # the package's own
    assert check(name, _stub) is None
    assert check(name, lambda *_: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


@pytest.mark.parametrize("name, table", [("frechet_distance", lesson6._FRECHET_DISTANCE_MISTAKES),
                                         ("inception_score", lesson6._INCEPTION_SCORE_MISTAKES)])
def test_each_known_mistake_is_rejected_with_its_own_hint(name, table, capsys):
    for mistake, mistake_hint in table:
        assert check(name, mistake) is False, mistake_hint
        assert mistake_hint in capsys.readouterr().out


def test_frechet_distance_accepts_scipy_and_an_equivalent_formula():
    linalg = pytest.importorskip("scipy.linalg")

    def with_sqrtm(a, b):  # the usual FID code: complex sqrtm, its real part taken or not
        mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b))

    def by_eigenvalues(a, b):  # the trace of the root from the eigenvalues of the (non-symmetric) product
        mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        roots = np.sqrt(np.clip(np.linalg.eigvals(s_a @ s_b).real, 0, None)).sum()
        return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * roots)

    assert check("frechet_distance", with_sqrtm) is True
    assert check("frechet_distance", by_eigenvalues) is True


def test_the_package_frechet_distance_is_right_for_covariances_that_do_not_commute():
    linalg = pytest.importorskip("scipy.linalg")
    for a, b in lesson6._frechet_distance_cases():
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        assert not np.allclose(s_a @ s_b, s_b @ s_a)  # the cases do not commute
        want = (np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2)
                + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real))
        assert judge.frechet_distance(a, b) == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert judge.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_inception_score_agrees_with_its_entropy_form_and_its_bounds():
    for (probs,) in lesson6._inception_score_cases():
        p = np.clip(probs.astype("float64"), 1e-12, 1)
        marginal = p.mean(axis=0)
        entropy_form = np.exp(-np.sum(marginal * np.log(marginal)) + np.mean(np.sum(p * np.log(p), axis=1)))
        assert judge.inception_score(probs) == pytest.approx(entropy_form, rel=1e-9)
    assert judge.inception_score(np.eye(10)) == pytest.approx(10.0)
    assert judge.inception_score(np.full((5, 10), 0.1)) == pytest.approx(1.0)


def test_the_exercises_are_registered_for_lesson_6_with_a_collapsed_solution():
    for name in ("frechet_distance", "inception_score"):
        assert exercises._EXERCISES[name].lesson == 6
        assert "def " + name in exercises.solution_markdown(name)
        assert "np." not in exercises.hint(name, 1)  # the first hint has no solution code


def test_frechet_toy_has_a_title_and_draws_both_clouds_and_the_distance():
    from vqvae_lessons.diagrams.frechet import frechet_toy

    fig = frechet_toy(seed=0)
    ax = fig.axes[0]
    title = ax.get_title()
    assert "Fréchet" in title and "d_F" in title
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("A" in label for label in labels) and any("B" in label for label in labels)
    assert len(ax.patches) >= 4  # 1- and 2-sigma ellipses of both Gaussians
    assert ax.get_xlabel() and ax.get_ylabel()
