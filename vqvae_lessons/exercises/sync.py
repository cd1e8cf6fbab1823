"""Keep the lessons' folded solutions equal to the package's one source.

Each exercise cell of a lesson (cell metadata ``{"vqvae_lessons": {"exercise": NAME}}``) is
followed by a Markdown cell holding ``solution_markdown(NAME)``; after a reference changes,
``python -m vqvae_lessons.exercises.sync book/*.ipynb`` writes the new text into those cells
(``tests/test_lessons.py`` fails until it has been run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .core import solution_markdown


def sync_solutions(path):
    """Rewrite the folded solution after every exercise cell of the notebook at ``path``; return how
    many changed."""
    path = Path(path)
    notebook = json.loads(path.read_text())
    cells, changed = notebook["cells"], 0
    for index, cell in enumerate(cells):
        name = cell.get("metadata", {}).get("vqvae_lessons", {}).get("exercise")
        if name is None:
            continue
        if index + 1 == len(cells) or cells[index + 1]["cell_type"] != "markdown":
            raise ValueError(f"{path}: the exercise cell of {name!r} must be followed by a Markdown cell")
        text = solution_markdown(name).strip()
        if "".join(cells[index + 1]["source"]).strip() != text:
            cells[index + 1]["source"] = text.splitlines(keepends=True)
            changed += 1
    if changed:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return changed


def main(argv=None):
    for path in argv if argv is not None else sys.argv[1:]:
        print(f"{path}: {sync_solutions(path)} solutions rewritten")


if __name__ == "__main__":
    main()
