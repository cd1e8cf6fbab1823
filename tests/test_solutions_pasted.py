"""Each folded solution runs when a learner pastes it, alone, into its lesson (#28 part 3).

A learner who opens the folded solution under an exercise copies it into the exercise cell. It must then work
with what the lesson has defined above that cell: its imports (not the package's module that holds the
reference), and none of the lesson's own variables shadowing a name the solution needs (lesson 6 once had a
``judge`` model where its solutions wanted the ``judge`` module). Both are checked here without executing the
lesson: the cells above are read, their imports run, the solution runs in that namespace and passes ``check``;
and no name the solution reads is rebound by a cell above other than by the import that provides it.
"""

import ast
import builtins
import json
import re
from pathlib import Path

import pytest

from vqvae_lessons import exercises

BOOK = Path(__file__).resolve().parent.parent / "book"
LESSONS = sorted(BOOK.glob("0*.ipynb"))
SOLUTION = re.compile(r"```python\n(.*?)```", re.S)


def _code(cell):
    """A code cell's Python, without IPython's magics and shell lines."""
    return "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in "".join(cell["source"]).split("\n"))


def _exercises_in_lessons():
    found = []
    for lesson in LESSONS:
        cells = json.loads(lesson.read_text())["cells"]
        for index, cell in enumerate(cells):
            name = cell.get("metadata", {}).get("vqvae_lessons", {}).get("exercise")
            if name:
                above = [_code(c) for c in cells[:index] if c["cell_type"] == "code"]
                folded = SOLUTION.search("".join(cells[index + 1]["source"]))
                found.append(pytest.param(name, above, folded and folded.group(1), id=f"{lesson.stem}:{name}"))
    return found


def _bound_names(tree):
    """The names a module's statements bind other than by import: ``(name, line)`` pairs."""
    bound = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.append((node.id, node.lineno))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.append((node.name, node.lineno))
    return bound


def _read_globals(solution):
    """The names the solution reads that it does not define itself (its free, global names)."""
    tree = ast.parse(solution)
    defined = {name for name, _ in _bound_names(tree)}
    defined |= {arg.arg for node in ast.walk(tree) if isinstance(node, ast.arguments)
                for arg in [*node.posonlyargs, *node.args, *node.kwonlyargs, node.vararg, node.kwarg] if arg}
    defined |= {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return loaded - defined - set(dir(builtins))


@pytest.mark.parametrize(("name", "above", "solution"), _exercises_in_lessons())
def test_a_folded_solution_pasted_alone_into_its_lesson_passes_its_check(name, above, solution, capsys):
    assert solution, f"{name}: no folded ```python block follows the exercise"
    namespace = {"__name__": "__main__"}
    for cell in above:
        for node in ast.parse(cell).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module([node], []), "<the lesson's imports>", "exec"), namespace)
    exec(compile(solution, f"<{name}'s folded solution, pasted>", "exec"), namespace)
    assert exercises.check(name, namespace[name]) is True, capsys.readouterr().out

    needed = _read_globals(solution)
    shadowed = sorted({(bound, line) for cell in above for bound, line in _bound_names(ast.parse(cell))
                       if bound in needed})
    assert not shadowed, (f"{name}: the lesson rebinds names its folded solution reads, so the pasted solution "
                          f"would use the lesson's object: {shadowed}")
