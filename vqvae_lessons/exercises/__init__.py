"""Exercises for the lessons, checked in the notebook (in the style of Kaggle's learntools).

The learner writes a function, then asks for a verdict::

    from vqvae_lessons.exercises import check, hint, solution

    def reparameterize(mean, log_var, eps):
        # Your code here
        raise NotImplementedError

    check("reparameterize", reparameterize)   # Not attempted: ...
    hint("reparameterize")                    # a first nudge, with no solution code
    hint("reparameterize", 2)                 # a stronger hint
    solution("reparameterize")                # the reference's source code

:func:`check` runs the function on a few seeded inputs of varied shapes, compares
its results with a reference and shows "Correct", "Incorrect: <what differs, and
the likely mistake>" or "Not attempted: <what to do>" (a coloured box in Jupyter,
plain text elsewhere), returning True, False or None. It never raises: whatever the
learner's function raises becomes an "Incorrect" that names the exception, and a
failure of the checker itself is reported as such ("Not checked"), never blamed on
the learner.

The package is split the way the lessons are: :mod:`.core` holds what every exercise
shares (verdicts, comparisons, gradient checks, the registry and the functions above)
and imports no lesson; each of :mod:`.lesson1` ... :mod:`.lesson5` holds its lesson's
exercises (reference, checker, hints and table of known mistakes) and registers them
with the core. Where the package has the function already, the reference *is* the
package's function (e.g. :func:`vqvae_lessons.vae.reparameterize`), so it is written
once. :func:`names` lists the exercises; :func:`solution_source` gives a reference
solution's source as a string, and :func:`solution_markdown` as a collapsed
``<details>`` block for a notebook.
"""

# Importing the lessons registers their exercises, in the order of the lessons; their
# references stay reachable as before (a lesson times ``exercises.sample_codes``), and so
# does the registry (``_EXERCISES``, ``Exercise``, ``register``), for tests and new lessons.
from . import lesson1, lesson2, lesson3, lesson4, lesson5  # noqa: F401
from .core import (  # noqa: F401
    _EXERCISES,
    Exercise,
    check,
    hint,
    names,
    register,
    solution,
    solution_markdown,
    solution_source,
)
from .lesson1 import kl_divergence, reparameterize  # noqa: F401
from .lesson2 import nearest_code, pairwise_sq_distances, straight_through, vq_losses  # noqa: F401
from .lesson3 import codebook_perplexity  # noqa: F401
from .lesson4 import codebook_usage, rate_bits_per_image  # noqa: F401
from .lesson5 import causal_mask, sample_codes  # noqa: F401

__all__ = ["check", "hint", "names", "solution", "solution_markdown", "solution_source"]
