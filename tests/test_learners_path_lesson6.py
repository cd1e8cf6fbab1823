"""The learner's path of lesson 6's scores (judge_images's seam: test_learners_path.py):
the lesson filled in by its pasted solutions gives the stub path's figures (``test_lessons.assert_learners_path``),
in a file of its own so that pytest's two processes share the lessons' runs."""

import pytest
from test_lessons import assert_learners_path  # tests/test_lessons.py


@pytest.mark.slow
@pytest.mark.notebook
def test_the_lesson_filled_in_gives_the_stub_paths_figures():
    assert_learners_path("06_generating_and_judging")
