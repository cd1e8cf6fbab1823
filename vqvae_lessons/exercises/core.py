"""The machinery every exercise shares: verdicts and how they are shown, the registry behind :func:`check`,
:func:`use`, :func:`check_answer`, :func:`hint`, :func:`solution` and :func:`solution_markdown`, and the
authoring API a lesson module writes its exercises with: :func:`register` (an exercise answered with a function),
:func:`register_question` (one answered with a value), :func:`trains_one_step` (for trials), and, from
:mod:`.authoring` (re-exported here), calling the learner's function, comparing its results and checking
gradients (``from .core import register, compare, Incorrect, ...``).

This module imports no lesson: each lesson module (``lesson1`` ... ``lesson8``) calls
:func:`register` for its exercises, and the package's ``__init__`` imports the lessons.
"""

from __future__ import annotations

import contextlib
import difflib
import dis
import functools
import html
import inspect
import numbers
import random
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from keras import ops

from .authoring import (  # the authoring API: lesson modules import it from here
    RESULT_KINDS,
    Incorrect,
    LearnerError,
    NotAttempted,
    as_numpy,
    call,
    check_by_observation,
    check_number,
    close,
    compare,
    describe_indices,
    gradients_of,
    known_mistake,
    nonzero,
    same_observation,
    short,
    to_array,
)

__all__ = ["RESULT_KINDS", "Exercise", "Incorrect", "LearnerError", "NotAttempted", "Question", "Wrong", "as_number",
           "as_numpy", "call", "check", "check_answer", "check_by_observation", "check_number", "close", "compare",
           "describe_indices", "gradients_of", "hint", "kinds", "known_mistake", "names", "nonzero", "questions",
           "register", "register_question", "same_observation", "short", "solution", "solution_markdown",
           "solution_source", "to_array", "trains_one_step", "use"]


# ---------------------------------------------------------------------------------------------
# Verdicts and how they are shown
# ---------------------------------------------------------------------------------------------
_COLOURS = {  # label: (text and border, background)
    "Correct": ("#1b5e20", "#e8f5e9"),
    "Incorrect": ("#b71c1c", "#ffebee"),
    "Not attempted": ("#8a5300", "#fff8e1"),
    "Not checked": ("#37474f", "#eceff1"),
    "Using yours": ("#1b5e20", "#f1f8e9"),
    "Using the package's": ("#37474f", "#eceff1"),
}


def _notebook_display():
    """IPython's ``display`` when running inside IPython (Jupyter, Colab), else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    return display if get_ipython() is not None else None


def _report(label, message=""):
    """Show a verdict: a small coloured box in a notebook, one line of text elsewhere."""
    text = f"{label}: {message}" if message else label
    display = _notebook_display()
    if display is None:
        print(text)
        return
    colour, background = _COLOURS[label]
    detail = f": {html.escape(message)}" if message else ""
    box = (f'<div style="border-left: 4px solid {colour}; background: {background}; padding: 6px 10px; '
           f'margin: 4px 0; font-family: sans-serif;"><b style="color: {colour};">{label}</b>{detail}</div>')
    display({"text/plain": text, "text/html": box}, raw=True)


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exercise:
    """An exercise: its reference solution, its checker, its hints in levels (the first a
    nudge with no solution code, then stronger ones), a hint for when the learner's function
    raises, its table of known mistakes ``[(mistaken_fn, hint), ...]``, the lesson it
    belongs to, and the functions whose source :func:`solution` shows (the reference, then
    the package's functions it calls, where it is a one-line adapter), and its ``trial``:
    None, or a function that runs the learner's (already checked) function the way the
    lesson's model will, e.g. on backend tensors inside a compiled training step, and
    raises if it cannot (see :func:`use`)."""

    reference: Callable
    checker: Callable
    hints: tuple
    error_hint: str
    mistakes: list
    lesson: int
    sources: tuple = ()
    trial: Callable | None = None
    trial_advice: str = "; write it with keras.ops, not NumPy, so that it works on the backend's tensors"
    kind: str = "transcribe"

    @property
    def hint(self):
        """The first hint."""
        return self.hints[0]


@dataclass(frozen=True)
class Question:
    """A question answered with a value, not a function: ``kind`` "predict" (a number the learner commits to
    before a run, judged against what the run measures) or "decide" (a choice, judged against measured
    results). ``judge(answer, measured)`` returns the feedback for a right answer and raises
    :class:`Wrong` with the feedback for a wrong one; both say what was measured and why. ``example`` is a
    typical ``measured`` (what the tests judge answers against)."""

    judge: Callable
    hints: tuple
    lesson: int
    kind: str
    example: object = None


class Wrong(Exception):
    """Raised by a question's judge: the answer is wrong; the message is the feedback (what was measured, why)."""


_EXERCISES: dict[str, Exercise] = {}
_QUESTIONS: dict[str, Question] = {}


FUNCTION_KINDS = ("transcribe", "derive", "debug")  # an exercise answered with a function
QUESTION_KINDS = ("predict", "decide")  # a question answered with a value (see register_question)


def _hint_levels(name, hints):
    levels = [" ".join(paragraph.split()) for paragraph in textwrap.dedent(hints).strip().split("\n\n")]
    if name in _EXERCISES or name in _QUESTIONS:
        raise ValueError(f"An exercise called {name!r} is already registered.")
    if len(levels) < 2:
        raise ValueError(f"Exercise {name!r} needs at least two hint levels, got {len(levels)}.")
    return tuple(levels)


def register(name, *, reference, checker, hints, error_hint, mistakes, lesson, shows=(), trial=None,
             trial_advice=None, kind="transcribe"):
    """Add exercise ``name`` to the registry (a lesson module calls this once per exercise).

    ``hints`` is the text of at least two hint levels, one paragraph each (paragraphs are
    separated by a blank line, their lines joined), the first with no solution code.
    ``shows`` names the package functions ``reference`` calls, for :func:`solution`;
    ``trial`` (optional): see :class:`Exercise` and :func:`use`; ``trial_advice``: what :func:`use` adds to
    the error of a failed trial (by default: write it with keras.ops). ``kind``: one of :data:`FUNCTION_KINDS`
    ("transcribe" a formula into vectorised code, "derive" a quantity the lesson does not print, "debug" a
    given function with a planted bug)."""
    hints = _hint_levels(name, hints)
    if kind not in FUNCTION_KINDS:
        raise ValueError(f"Exercise {name!r}: kind must be one of {FUNCTION_KINDS}, got {kind!r}.")
    advice = {} if trial_advice is None else {"trial_advice": trial_advice}
    _EXERCISES[name] = Exercise(reference, checker, hints, error_hint, mistakes, lesson,
                                (reference, *shows), trial, **advice, kind=kind)
    return _EXERCISES[name]


def names():
    """The names of the exercises answered with a function, in the order of the lessons."""
    return list(_EXERCISES)


def questions():
    """The names of the questions answered with a value (see :func:`register_question`), in lesson order."""
    return list(_QUESTIONS)


def kinds():
    """``{name: (lesson, kind)}`` of every exercise and question, by lesson: what each asks of the learner."""
    everything = {**{n: (e.lesson, e.kind) for n, e in _EXERCISES.items()},
                  **{n: (q.lesson, q.kind) for n, q in _QUESTIONS.items()}}
    return dict(sorted(everything.items(), key=lambda item: item[1][0]))


def _lookup(name, *, questions_too=False):
    """The exercise (or, with ``questions_too``, the question) called ``name``, or None after saying which
    names exist."""
    known = {**_EXERCISES, **(_QUESTIONS if questions_too else {})}
    exercise = known.get(name) if isinstance(name, str) else None
    if exercise is None:
        close = difflib.get_close_matches(str(name), list(known), n=1)
        maybe = f" Did you mean {close[0]!r}?" if close else ""
        _report("Not attempted", f"there is no exercise called {name!r}.{maybe} The exercises are: "
                                 f"{', '.join(known)}.")
    return exercise


# ---------------------------------------------------------------------------------------------
# The package's own function, handed in as the learner's
# ---------------------------------------------------------------------------------------------
_CALLS = {"CALL", "CALL_FUNCTION", "CALL_METHOD", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX", "CALL_KW"}


def _is_packages(obj):
    return getattr(obj, "__module__", None) is not None and obj.__module__.split(".")[0] == __package__.split(".")[0]


def _referenced(fn):
    """The objects a plain function's code names: its globals (and attributes of the modules among
    them, ``vae.gaussian_kl``), and its closure's cells, in its own code and nested ones."""
    code, found = fn.__code__, []
    names = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    values = [fn.__globals__[n] for n in names if n in fn.__globals__]
    values += [cell.cell_contents for cell in (fn.__closure__ or ()) if _cell_is_set(cell)]
    for value in values:
        found.append(value)
        if isinstance(value, types.ModuleType):
            found += [getattr(value, n, None) for n in names]
    return found


def _cell_is_set(cell):
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _packages_own(fn, exercise):
    """Why ``fn`` is the package's own version of ``exercise`` rather than the learner's, or None.

    It is when it is the reference or a function its solution shows (imported, or reached as
    ``exercises.<name>``), another function of this package (private ones too, e.g. ``pixelcnn._gate``; but not
    the exercise modules' private mistakes), a ``functools.partial`` of one, or a thin wrapper: a function whose
    code makes a single call, to one of those."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    sources = [*exercise.sources]
    private = any(part.startswith(("_", "<")) for part in getattr(fn, "__qualname__", "_").split("."))
    # private functions of the exercises' own modules are the checkers' planted mistakes, checked as answers
    if any(fn is source for source in sources) or (
            _is_packages(fn) and not (private and fn.__module__.startswith(__package__))):
        return f"{fn.__module__}.{fn.__qualname__} is the package's own function"
    if not isinstance(fn, types.FunctionType) or _is_packages(fn):
        return None
    calls = sum(instruction.opname in _CALLS for instruction in dis.get_instructions(fn.__code__))
    called = [value for value in _referenced(fn) if any(value is source for source in sources)]
    if calls == 1 and called:
        return f"your function only calls the package's {called[0].__name__}"
    return None


# ---------------------------------------------------------------------------------------------
# The learner's entry points
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _random_state_kept():
    """Run a check or a trial without moving the notebook's random state: Python's ``random`` (which seeds
    Keras's unseeded initialisers), NumPy's global generator and Keras's global seed generator are as they were
    after it, so a lesson draws the same weights and noise whether the learner's function was checked or not."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:  # Keras's global generator, made on first use (then seeded from Python's random): None until then
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

        generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
        keras_state = None if generator is None else ops.convert_to_numpy(generator.state)
    except ImportError:  # another Keras: its global generator is left alone
        global_state = None
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if global_state is not None:
            global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, generator)
            if generator is not None:
                generator.state.assign(keras_state)


def trains_one_step(model, inputs, targets=None, optimizer="adam", loss=None):
    """Compile ``model`` and train it for one step on ``inputs`` (and ``targets``): what a trial (see :func:`use`)
    does with a small model built from the learner's function, so that an answer that cannot run on the
    backend's symbolic tensors raises here. Raises a ValueError if the loss is not finite; returns it."""
    model.compile(optimizer=optimizer, loss=loss)
    result = model.train_on_batch(inputs, targets, return_dict=True)
    value = float(result["loss"])
    if not np.isfinite(value):
        raise ValueError(f"one training step with it gave the loss {value}")
    return value


def _verdict(name, exercise, fn):
    """``(label, message)`` of exercise ``name``'s check of ``fn``: label "Correct", "Incorrect",
    "Not attempted" or "Not checked" (the checker itself failed). Never raises."""
    if fn is None or fn is Ellipsis:
        return "Not attempted", f"write your function, then pass it itself: check({name!r}, {name})."
    if not callable(fn):
        return "Incorrect", (f"check needs your function itself, not a {type(fn).__name__}: "
                             f"check({name!r}, {name}), without parentheses after {name}.")
    packages = _packages_own(fn, exercise)
    if packages:
        return "Not attempted", (f"{packages}, not yours (the lessons use it when yours is missing). Write "
                                 f"{name} yourself in the cell above, then check it.")
    try:
        with np.errstate(all="ignore"), _random_state_kept():
            exercise.checker(fn)
    except NotAttempted as verdict:
        return "Not attempted", str(verdict)
    except LearnerError as verdict:
        return "Incorrect", f"{verdict}. {exercise.error_hint}"
    except Incorrect as verdict:
        return "Incorrect", str(verdict)
    except Exception as error:  # what the learner's function raises is a LearnerError: this is ours
        return "Not checked", (f"the checker failed (a bug in vqvae_lessons, not in your code): "
                               f"{type(error).__name__}: {short(error)}; please report it.")
    return "Correct", ""


_RESULTS = {"Correct": True, "Incorrect": False, "Not attempted": None, "Not checked": None}


def check(name, fn):
    """Check the learner's function ``fn`` for exercise ``name``, show the verdict and
    return True (correct), False (incorrect) or None (not attempted, or not checked because
    the checker itself failed). The package's own function (or a thin wrapper of it) is not
    the learner's: it is "not attempted". Never raises."""
    exercise = _lookup(name)
    if exercise is None:
        return None
    label, message = _verdict(name, exercise, fn)
    _report(label, message)
    return _RESULTS[label]


def use(name, fn):
    """The function the rest of the lesson runs for exercise ``name``: the learner's ``fn`` when it
    passes its check (and, where the exercise has one, its trial: run the way the lesson's model runs
    it, e.g. inside a compiled training step), else the package's reference. Says on screen which,
    and why; never raises::

        forward = use("vqvae_forward", vqvae_forward)  # "Using yours: ..." or "Using the package's: ..."
    """
    exercise = _lookup(name)
    if exercise is None:
        raise KeyError(f"there is no exercise called {name!r}; the exercises are {names()}")
    label, message = _verdict(name, exercise, fn)
    why = {"Not attempted": "yours is not written yet", "Incorrect": "yours does not pass its check yet",
           "Not checked": "yours could not be checked", "Correct": ""}[label]
    detail = f" ({message.rstrip('.')})" if label != "Not attempted" or fn not in (None, Ellipsis) else ""
    if label == "Correct" and exercise.trial is not None:
        try:
            with np.errstate(all="ignore"), _random_state_kept():
                exercise.trial(fn)
        except Exception as error:
            label, why = "Incorrect", "yours passes its check but cannot run inside the model"
            detail = f" ({type(error).__name__}: {short(error)}{exercise.trial_advice})"
    if label == "Correct":
        _report("Using yours", f"your {name} passes its check, so the cells below run it.")
        return fn
    _report("Using the package's", f"{why}{detail}, so the cells below run the package's {name}. Fix yours above "
                                   f"and run this cell again to use it.")
    return exercise.reference


def register_question(name, *, kind, lesson, judge, hints, example):
    """Add question ``name``: answered with a value the learner writes in a cell (``my_prediction = 0.3``),
    checked by :func:`check_answer` after the run that measures it. ``kind`` is one of
    :data:`QUESTION_KINDS`; ``judge(answer, measured)`` returns the feedback for a right answer, raises
    :class:`Wrong` (its message the feedback) for a wrong one, and may use :func:`as_number`; ``hints`` as for
    :func:`register` (what to think about, never the measured value); ``example``: a typical ``measured``, for
    the tests."""
    hints = _hint_levels(name, hints)
    if kind not in QUESTION_KINDS:
        raise ValueError(f"Question {name!r}: kind must be one of {QUESTION_KINDS}, got {kind!r}.")
    _QUESTIONS[name] = Question(judge, hints, lesson, kind, example)
    return _QUESTIONS[name]


def as_number(answer, example="0.3"):
    """``answer`` as a finite float; raises :class:`Wrong` saying how to write one (``example``) otherwise."""
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real) or not np.isfinite(float(answer)):
        raise Wrong(f"write your answer as a number, e.g. {example}, not {answer!r}")
    return float(answer)


def check_answer(name, answer, measured):
    """Judge the learner's ``answer`` to question ``name`` against ``measured`` (what the run above measured),
    show the verdict with the feedback (the measured value and why) and return True, False or None (no answer
    yet: ``None`` or ``...``). Never raises::

        my_prediction = 0.25  # written before the run
        ...                   # the run
        check_answer("dead_code_share", my_prediction, measured=share)"""
    question = _lookup(name, questions_too=True)
    if question is None:
        return None
    if not isinstance(question, Question):
        _report("Not checked", f"{name!r} is answered with a function: check({name!r}, {name}).")
        return None
    if answer is None or answer is Ellipsis:
        _report("Not attempted", "write your answer in the cell before the run (replace the None), then run both "
                                 "cells again: the point is to commit before you see the result.")
        return None
    try:
        feedback = question.judge(answer, measured)
    except Wrong as wrong:
        _report("Incorrect", str(wrong))
        return False
    except Exception as error:
        _report("Not checked", f"the judge failed (a bug in vqvae_lessons, not in your answer): "
                               f"{type(error).__name__}: {short(error)}; please report it.")
        return None
    _report("Correct", feedback)
    return True


def hint(name, level=1):
    """Show, and return, hint number ``level`` for exercise (or question) ``name``.

    Level 1 is a nudge with no solution code, level 2 the approach (which operations, which shapes, no
    line of the solution); the level after the
    last hint (and any beyond it) points to :func:`solution`. A level that is not a whole
    number from 1 up gets a message saying which levels exist. Never raises."""
    exercise = _lookup(name, questions_too=True)
    if exercise is None:
        return None
    last = len(exercise.hints) + 1
    if not isinstance(level, numbers.Integral) or isinstance(level, bool) or level < 1:
        message = (f"hint levels are whole numbers from 1 to {last}: hint({name!r}) for a first nudge, "
                   f"hint({name!r}, 2) for the approach; got {level!r}.")
        print(message)
        return message
    if level >= last and isinstance(exercise, Question):
        text = (f"that was every hint for {name!r}. Commit to your best answer: the check after the run shows what "
                f"was measured, and why.")
        print(f"Hint {last} of {last}: {text}")
        return text
    if level >= last:
        text = (f"that was every hint for {name!r}. Write what you can and check it with check({name!r}, "
                f"{name}); to see a reference solution, open the folded solution under the exercise, or run "
                f"from vqvae_lessons.exercises import solution; solution({name!r}).")
        print(f"Hint {last} of {last}: {text}")
        return text
    text = exercise.hints[level - 1]
    more = (f"The approach: hint({name!r}, {level + 1})" if level + 1 < last else
            "Still stuck? Commit to your best answer; the check after the run explains"
            if isinstance(exercise, Question)
            else "Still stuck? The folded solution under the exercise shows one way to write it")
    print(f"Hint {level} of {last}: {text}\n({more}.)")
    return text


def _source(exercise):
    """The source of the reference solution, then of the package functions it calls."""
    parts = []
    for fn in exercise.sources:
        source = textwrap.dedent(inspect.getsource(fn)).strip()
        if not fn.__module__.startswith(__package__):  # the package's own function: say where it lives
            source = f"# {fn.__module__}.{fn.__qualname__}\n{source}"
        parts.append(source)
    return "\n\n\n".join(parts) + "\n"


def solution_source(name):
    """The source code of the reference solution of exercise ``name`` as a string, without
    showing it (what :func:`solution` shows); None, after saying which exercises exist, for
    an unknown name."""
    exercise = _lookup(name)
    return None if exercise is None else _source(exercise)


def solution(name):
    """Show the source code of the reference solution of exercise ``name``.

    In a notebook it is displayed as highlighted code (and None is returned, so the
    cell shows it once); elsewhere it is printed and returned as a string."""
    source = solution_source(name)
    if source is None:
        return None
    display = _notebook_display()
    if display is None:
        print(source)
    else:
        from IPython.display import Code

        display(Code(source, language="python"))
        return None
    return source


def solution_markdown(name):
    """The Markdown of a collapsed ``<details>`` block holding the reference solution of
    exercise ``name`` (the same source :func:`solution` shows), for a notebook to embed.
    Returns None, after saying which exercises exist, for an unknown name."""
    source = solution_source(name)
    if source is None:
        return None
    return f"<details>\n<summary>Solution: {name} (click to open)</summary>\n\n```python\n{source}```\n\n</details>\n"
