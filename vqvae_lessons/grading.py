"""Grading a class: run each learner's notebook and read the verdicts its exercises showed.

A lesson's exercise cell carries the metadata ``{"vqvae_lessons": {"exercise": NAME}}`` and ends
with ``check(NAME, NAME)``, which shows its verdict ("Correct", "Incorrect: ...", "Not attempted:
...", "Not checked: ...") as a display output whose ``text/plain`` is that line; a question's cell
(``{"question": NAME}``) ends with ``check_answer(NAME, ...)``, which shows its verdict the same way.
:func:`grade_notebook` clears a notebook's old outputs, executes it with nbclient in a fresh
kernel (in the notebook's folder, within a time limit for the whole notebook) and reads each
exercise cell's last verdict. A notebook that stops (a cell raises, a syntax error, the time
limit, a dying kernel) keeps the verdicts of the exercises checked before; the others are
"not run", with the reason ("cell N" counts every cell from 1, Markdown cells too).
:func:`grade_notebooks` grades several, one after another; :func:`write_csv` and
:func:`summary_table` present the result (``python -m vqvae_lessons grade``).

It imports neither Keras nor the exercises: the kernels do, not the grader.
"""

from __future__ import annotations

import csv
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The labels `vqvae_lessons.exercises.check` shows, and the verdict each one is in the grades.
LABELS = {"Correct": "correct", "Incorrect": "incorrect", "Not attempted": "not attempted",
          "Not checked": "not checked"}
NOT_RUN = "not run"
VERDICTS = (*LABELS.values(), NOT_RUN)
CSV_COLUMNS = ("notebook", "exercise", "verdict", "message")
KERNEL = "python3"  # the grader's own Python, where vqvae_lessons is installed
_METADATA_KEY = "vqvae_lessons"


@dataclass
class ExerciseGrade:
    """One exercise of one notebook: its name, verdict (one of :data:`VERDICTS`) and message."""

    exercise: str
    verdict: str
    message: str = ""


@dataclass
class NotebookGrade:
    """One notebook: its path (as given), its exercises' grades in the notebook's order, the
    reason it did not run to the end (None when it did) and the seconds it took."""

    notebook: str
    exercises: list[ExerciseGrade] = field(default_factory=list)
    problem: str | None = None
    seconds: float = 0.0

    def rows(self):
        """The CSV rows, one per exercise (one with an empty exercise when the notebook has none)."""
        grades = self.exercises or [ExerciseGrade("", NOT_RUN, self.problem or "")]
        return [{"notebook": self.notebook, "exercise": g.exercise, "verdict": g.verdict, "message": g.message}
                for g in grades]

    def as_dict(self):
        """What ``grade`` prints as JSON for this notebook."""
        return {"notebook": self.notebook, "ran_to_the_end": self.problem is None, "problem": self.problem,
                "seconds": round(self.seconds, 1),
                "correct": sum(g.verdict == "correct" for g in self.exercises), "exercises": len(self.exercises),
                "grades": [{"exercise": g.exercise, "verdict": g.verdict, "message": g.message}
                           for g in self.exercises]}


def exercise_cells(notebook):
    """``[(cell index, exercise name), ...]`` of the cells of an nbformat ``notebook`` whose
    metadata names an exercise (``check``) or a question (``check_answer``), in order."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        ours = cell.get("metadata", {}).get(_METADATA_KEY)
        name = (ours.get("exercise") or ours.get("question")) if isinstance(ours, dict) else None
        if cell.cell_type == "code" and isinstance(name, str) and name:
            cells.append((index, name))
    return cells


def verdict_of(cell):
    """``(verdict, message)`` of the last verdict a ``check`` in this executed code cell showed,
    or None when it showed none."""
    found = None
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        text = output.get("data", {}).get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else text
        for label, verdict in LABELS.items():
            if text == label or text.startswith(label + ": "):
                found = (verdict, text[len(label) + 2:])
    return found


def _error_of(cell):
    """``"ErrorName: message"`` of the error output of a cell that raised."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {' '.join(str(output.get('evalue', '')).split())}"
    return "an error"


def _execute(notebook, folder, timeout):
    """Run ``notebook`` (in place) in a fresh kernel in ``folder``, within ``timeout`` seconds
    from its first cell. Returns ``(index of the cell it stopped at, reason)``, or ``(None, None)``
    when every cell ran."""
    import nbclient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    started, deadline = [None], [None]

    def remaining(cell):  # nbclient asks before each cell: the time the notebook has left
        deadline[0] = deadline[0] or time.monotonic() + timeout
        return max(0.01, deadline[0] - time.monotonic())

    def on_cell_start(cell, cell_index):
        started[0] = cell_index

    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout_func=remaining, allow_errors=False,
                                     shutdown_kernel="immediate", on_cell_start=on_cell_start,
                                     resources={"metadata": {"path": str(folder)}})
    try:  # the kernel's own stdout and stderr (its start-up warnings, TensorFlow's C++ logs) off the terminal
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        return started[0], f"it took longer than the time limit ({timeout:g} s) in cell {started[0] + 1}"
    except CellExecutionError:
        return started[0], f"cell {started[0] + 1} raised {_error_of(notebook.cells[started[0]])}"
    except DeadKernelError:
        return started[0], f"its kernel died in cell {started[0] + 1} (out of memory, or the code quit Python)"
    except Exception as error:  # the kernel did not start, or nbclient failed: the notebook did not run
        where = f" in cell {started[0] + 1}" if started[0] is not None else ""
        return started[0] or 0, f"it could not be run{where}: {type(error).__name__}: {error}"
    return None, None


def grade_notebook(path, timeout=600.0):
    """Execute the notebook at ``path`` (no longer than ``timeout`` seconds from its first cell)
    and return its :class:`NotebookGrade`: each exercise cell's verdict, "not run" for those
    after the cell it stopped at, and why it stopped. Never raises for what is in the notebook
    (an unreadable file is a notebook that did not run); the notebook's file is not changed."""
    import nbformat

    path, start = Path(path), time.monotonic()
    grade = NotebookGrade(str(path))
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable
        grade.problem = f"it could not be read as a notebook: {type(error).__name__}: {error}"
        return grade
    cells = exercise_cells(notebook)
    if not cells:
        grade.problem = (f"it has no exercise cells (code cells whose metadata is "
                         f'{{"{_METADATA_KEY}": {{"exercise": NAME}}}}), so it was not run')
        return grade
    for cell in notebook.cells:  # the learner's own outputs must not count as verdicts
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    stopped, grade.problem = _execute(notebook, path.parent, timeout)
    for index, name in cells:
        verdict = verdict_of(notebook.cells[index])  # a verdict shown before the notebook stopped counts
        if verdict:
            grade.exercises.append(ExerciseGrade(name, *verdict))
        elif stopped is not None and index >= stopped:
            where = "this exercise's cell" if index == stopped else "the notebook stopped before this cell"
            grade.exercises.append(ExerciseGrade(name, NOT_RUN, f"{where}: {grade.problem}"))
        else:
            grade.exercises.append(ExerciseGrade(
                name, "not checked", f"the cell ran but showed no verdict: end it with check({name!r}, {name})"))
    grade.seconds = time.monotonic() - start
    return grade


def grade_notebooks(paths, timeout=600.0, log=None):
    """Grade each notebook of ``paths`` in turn (:func:`grade_notebook`); ``log(line)``, if given,
    hears which one is running and how it went. Returns the list of :class:`NotebookGrade`.
    Raises ValueError, before running any, when a path is not a file."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"no notebook at {', '.join(missing)}: name each learner's .ipynb file.")
    grades = []
    for number, path in enumerate(paths, 1):
        if log:
            log(f"[{number}/{len(paths)}] {path} ...")
        grades.append(grade_notebook(path, timeout))
        if log:
            done = grades[-1]
            log(f"    {sum(g.verdict == 'correct' for g in done.exercises)}/{len(done.exercises)} correct, "
                f"{done.seconds:.1f} s" + (f"; {done.problem}" if done.problem else ""))
    return grades


def write_csv(grades, file):
    """Write the rows of ``grades`` (:data:`CSV_COLUMNS`, one row per notebook and exercise) as
    CSV to ``file``, a path or an open text file."""
    if isinstance(file, (str, Path)):
        with open(file, "w", newline="", encoding="utf-8") as handle:
            return write_csv(grades, handle)
    writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for grade in grades:
        writer.writerows(grade.rows())
    return None


def summary_table(grades):
    """A plain-text table, one line per notebook: the correct exercises out of all, the count of
    each other verdict, and how the notebook ran."""
    header = ("notebook", "correct", *VERDICTS[1:], "ran")
    lines = [header]
    for grade in grades:
        counts = {verdict: sum(g.verdict == verdict for g in grade.exercises) for verdict in VERDICTS}
        lines.append((grade.notebook, f"{counts['correct']}/{len(grade.exercises)}",
                      *(str(counts[verdict]) for verdict in VERDICTS[1:]),
                      "to the end" if grade.problem is None else f"no: {grade.problem}"))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)
