"""Grading a class (``python -m vqvae_lessons grade``): tiny notebooks built here with real exercises of
lesson 2, run in real kernels. A kernel that imports Keras takes seconds, so the notebooks are few."""

import csv
import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from vqvae_lessons import cli, grading
from vqvae_lessons.exercises import solution_source

EXERCISES = ("pairwise_sq_distances", "nearest_code")
SETUP = ("import vqvae_lessons\n\nvqvae_lessons.quiet()\n\n"
         "from keras import ops\nfrom vqvae_lessons.exercises import check")
STUB = "def {name}(x, codebook):\n    # Your code here\n    raise NotImplementedError\n\n\ncheck({name!r}, {name})"


def exercise(name, body):
    """An exercise cell as the lessons write it: the learner's code, then the check."""
    source = body if "check(" in body else f"{body}\n\ncheck({name!r}, {name})"
    return new_code_cell(source, metadata={"vqvae_lessons": {"exercise": name}})


def save(folder, name, cells):
    path = folder / f"{name}.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell(f"# {name}"), *cells]), path)
    return path


def test_labels_are_the_ones_check_shows():
    from vqvae_lessons.exercises import core

    assert set(grading.LABELS) == set(core._RESULTS)  # check's verdicts (use() shows two more labels elsewhere)


def test_verdicts_are_read_from_the_exercise_cells_outputs():
    cell = exercise("nearest_code", "pass")
    assert grading.verdict_of(cell) is None
    cell.outputs = [new_output("stream", name="stdout", text="Correct: printed, not a verdict\n"),
                    new_output("display_data", data={"text/plain": "Incorrect: the values differ.",
                                                     "text/html": "<b>Incorrect</b>"}),
                    new_output("display_data", data={"text/plain": "Correct"})]
    assert grading.verdict_of(cell) == ("correct", "")  # the last verdict counts
    cell.outputs = cell.outputs[:2]
    assert grading.verdict_of(cell) == ("incorrect", "the values differ.")
    notebook = new_notebook(cells=[new_markdown_cell("x"), cell, new_code_cell("1"), exercise("a", "pass")])
    assert grading.exercise_cells(notebook) == [(1, "nearest_code"), (3, "a")]


@pytest.mark.slow
def test_grade_a_class(tmp_path, capsys):
    """A filled-in notebook, a stub, and one whose cell raises between its two exercises: each graded."""
    solutions = {name: solution_source(name) for name in EXERCISES}
    filled = save(tmp_path, "filled", [new_code_cell(SETUP), *(exercise(n, solutions[n]) for n in EXERCISES)])
    stub = save(tmp_path, "stub", [new_code_cell(SETUP), exercise(EXERCISES[0], STUB.format(name=EXERCISES[0])),
                                   exercise(EXERCISES[1], "def nearest_code(x, codebook):  # the largest dot "
                                            "product, not the nearest\n    return ops.argmax(ops.matmul(x, "
                                            "ops.transpose(codebook)), axis=1)")])
    broken = save(tmp_path, "broken", [new_code_cell(SETUP), exercise(EXERCISES[0], solutions[EXERCISES[0]]),
                                       new_code_cell("raise ValueError('a planted error')"),
                                       exercise(EXERCISES[1], solutions[EXERCISES[1]])])
    stale = nbformat.read(stub, as_version=4)  # a stale "Correct" saved in the file must not count
    stale.cells[2].outputs = [new_output("display_data", data={"text/plain": "Correct"})]
    nbformat.write(stale, stub)
    before = stub.read_text()

    out = tmp_path / "grades" / "class.csv"
    status = cli.main(["grade", str(filled), str(stub), str(broken), "--csv", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    rows = [(r["notebook"], r["exercise"], r["verdict"]) for r in csv.DictReader(out.open())]
    assert rows == [(str(filled), EXERCISES[0], "correct"), (str(filled), EXERCISES[1], "correct"),
                    (str(stub), EXERCISES[0], "not attempted"), (str(stub), EXERCISES[1], "incorrect"),
                    (str(broken), EXERCISES[0], "correct"), (str(broken), EXERCISES[1], "not run")]
    messages = {(r["notebook"], r["exercise"]): r["message"] for r in csv.DictReader(out.open())}
    assert "NotImplementedError" in messages[str(stub), EXERCISES[0]]
    assert "cell 4 raised ValueError: a planted error" in messages[str(broken), EXERCISES[1]]
    assert stub.read_text() == before  # the learner's file is not changed

    result = json.loads(printed.out)
    assert result["csv"] == str(out)
    assert [(n["correct"], n["exercises"], n["ran_to_the_end"]) for n in result["notebooks"]] == \
        [(2, 2, True), (0, 2, True), (1, 2, False)]
    table = printed.err[printed.err.index("notebook  "):].splitlines()
    assert table[0].split()[:3] == ["notebook", "correct", "incorrect"]
    assert table[1].split()[:2] == [str(filled), "2/2"] and table[1].endswith("to the end")
    assert table[2].split()[:4] == [str(stub), "0/2", "1", "1"]
    assert table[3].split()[:2] == [str(broken), "1/2"] and "no: cell 4 raised ValueError" in table[3]


@pytest.mark.slow
def test_a_hanging_notebook_times_out_and_the_next_is_still_graded(tmp_path, capsys):
    """No Keras in these kernels: a hang (stopped by --timeout) and a syntax error, before the exercises."""
    hangs = save(tmp_path, "hangs", [new_code_cell("import time\n\ntime.sleep(600)"),
                                     exercise(EXERCISES[0], STUB.format(name=EXERCISES[0]))])
    typo = save(tmp_path, "typo", [new_code_cell("x = 1"), exercise(EXERCISES[0], "def pairwise_sq_distances(x, c)\n"
                                                                                  "    return x"),
                                   exercise(EXERCISES[1], STUB.format(name=EXERCISES[1]))])
    empty = save(tmp_path, "empty", [new_code_cell("1 + 1")])
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("not a notebook")
    assert cli.main(["grade", str(hangs), str(typo), str(empty), str(garbage), "--timeout", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    hung, failed, nothing, unreadable = result["notebooks"]
    assert "longer than the time limit (2 s) in cell 2" in hung["problem"]
    assert [g["verdict"] for g in hung["grades"]] == ["not run"] and hung["seconds"] < 30
    assert "cell 3 raised SyntaxError" in failed["problem"]
    assert [(g["verdict"], g["message"].split(":")[0]) for g in failed["grades"]] == \
        [("not run", "this exercise's cell"), ("not run", "the notebook stopped before this cell")]
    assert nothing["grades"] == [] and "no exercise cells" in nothing["problem"]
    assert unreadable["grades"] == [] and "could not be read as a notebook" in unreadable["problem"]


def test_grade_errors_exit_with_status_2(tmp_path, capsys):
    notebook = save(tmp_path, "any", [])
    assert cli.main(["grade", str(notebook), str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook at" in capsys.readouterr().err
    assert cli.main(["grade", str(notebook), "--csv", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        cli.main(["grade", str(notebook), "--timeout", "0"])
    assert error.value.code == 2
