"""Exercises for the lessons, checked in the notebook (in the style of Kaggle's learntools).

The learner writes a function, then asks for a verdict::

    from vqvae_lessons.exercises import check, hint, solution

    def reparameterize(mean, log_var, eps):
        # Your code here
        raise NotImplementedError

    check("reparameterize", reparameterize)   # Not attempted: ...
    hint("reparameterize")                    # a first nudge, with no solution code
    hint("reparameterize", 2)                 # the approach: which operations, which shapes
    solution("reparameterize")                # the reference's source code
    sample = use("reparameterize", reparameterize)  # yours if it passes, else the package's: later cells run it

A question is answered with a value instead: a prediction committed before a run, or a decision, judged
against what the run measured (:func:`check_answer` shows the measured value and why)::

    my_prediction = 0.25                                   # before the run
    check_answer("dead_code_share", my_prediction, share)  # after it: Correct / Incorrect, and why

:func:`check` runs the function on a few seeded inputs of varied shapes, compares
its results with a reference and shows "Correct", "Incorrect: <what differs, and
the likely mistake>" or "Not attempted: <what to do>" (a coloured box in Jupyter,
plain text elsewhere), returning True, False or None. It never raises: whatever the
learner's function raises becomes an "Incorrect" that names the exception, and a
failure of the checker itself is reported as such ("Not checked"), never blamed on
the learner.

The package is split the way the lessons are: :mod:`.core` holds what every exercise
shares (verdicts, comparisons, gradient checks, the registry and the functions above)
and imports no lesson; each of :mod:`.lesson1` ... :mod:`.lesson8` holds its lesson's
exercises (reference, checker, hints and table of known mistakes) and registers them
with the core. Where the package has the function already, the reference *is* the
package's function (e.g. :func:`vqvae_lessons.vae.reparameterize`), so it is written
once. :func:`names` lists the exercises; :func:`solution_source` gives a reference
solution's source as a string, and :func:`solution_markdown` as a collapsed
``<details>`` block for a notebook.
"""

# Importing the lessons registers their exercises, in the order of the lessons; the registry
# (``_EXERCISES``, ``Exercise``, ``register``) stays reachable for tests and new lessons.
from . import lesson1, lesson2, lesson3, lesson4, lesson5, lesson6, lesson7, lesson8  # noqa: F401
from .core import (  # noqa: F401
    _EXERCISES,
    _QUESTIONS,
    Exercise,
    Question,
    Wrong,
    as_number,
    check,
    check_answer,
    hint,
    kinds,
    names,
    questions,
    register,
    register_question,
    solution,
    solution_markdown,
    solution_source,
    use,
)

__all__ = ["check", "check_answer", "hint", "kinds", "names", "questions", "solution", "solution_markdown",
           "solution_source", "use"]


def __getattr__(name):
    """Every exercise's reference, by the exercise's name: ``exercises.sample_codes`` (a lesson times it)."""
    if name in _EXERCISES:
        return _EXERCISES[name].reference
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the exercises are {names()}")
