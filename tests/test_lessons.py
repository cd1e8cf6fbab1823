"""The lessons' exercise conventions, checked on the notebooks themselves.

* Every lesson has at least two checked exercises and imports ``hint``; an exercise cell is a
  stub (``raise NotImplementedError``) that ends with ``check("name", name)``; its cell's
  metadata names it (``{"vqvae_lessons": {"exercise": "name"}}``).
* Right after each exercise comes its solution, collapsed (a Markdown ``<details>`` block made
  by ``exercises.solution_markdown(name)`` from the package's one source), so a top-to-bottom
  run never prints it; no code cell calls ``solution(...)``.
* No code cell above an exercise holds its answer.
* Each lesson asks a few "predict, then run" questions, each answered by the next cell.
* A cell after an exercise runs what the learner wrote only through ``use("name", name)`` (the
  learner's when it passes its check, else the package's); every lesson runs some of it. nbval runs
  the lessons with the stubs; the lesson filled in by its pasted solutions passes every check in the
  lesson's kernel and gives the stub run's figures (``test_the_learners_path_gives_the_package_paths_figures``).
"""

import ast
import io
import json
import os
import re
import tokenize
from pathlib import Path

import nbformat
import numpy as np
import pytest

from vqvae_lessons import exercises

BOOK = Path(__file__).resolve().parent.parent / "book"
LESSONS = sorted(BOOK.glob("0*.ipynb"))
PREDICT = "**Predict, then run.**"


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def exercise_cells(path):
    """``[(index, name)]`` of the lesson's exercise cells, in order."""
    return [(i, cell["metadata"]["vqvae_lessons"]["exercise"]) for i, cell in enumerate(cells(path))
            if "exercise" in cell.get("metadata", {}).get("vqvae_lessons", {})]


def answer_lines(name):
    """The distinctive lines of an exercise's reference solution: code, not its signature,
    docstring, comments or short lines such as ``return x``."""
    lines = []
    for line in exercises.solution_source(name).splitlines():
        line = line.split("#")[0].strip()
        if len(line) >= 20 and not line.startswith(("def ", '"""', "'''", "return None")):
            lines.append(line)
    return lines


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_checked_exercises_and_imports_hint(lesson):
    found = exercise_cells(lesson)
    assert len(found) >= 2, f"{lesson.name} has {len(found)} checked exercises; each lesson needs at least two"
    assert all(name in exercises.names() for _, name in found)
    code = "\n".join(source(c) for c in cells(lesson) if c["cell_type"] == "code")
    assert re.search(r"from vqvae_lessons\.exercises import [^\n]*\bhint\b", code), f"{lesson.name} must import hint"
    for index, name in found:
        text = source(cells(lesson)[index])
        assert "raise NotImplementedError" in text and f'check("{name}", {name})' in text, (lesson.name, name)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_each_exercise_says_how_to_get_hints_and_is_followed_by_its_collapsed_solution(lesson):
    all_cells = cells(lesson)
    for index, name in exercise_cells(lesson):
        statement = source(all_cells[index - 1])
        assert all_cells[index - 1]["cell_type"] == "markdown" and f'hint("{name}")' in statement, (lesson.name, name)
        following = all_cells[index + 1]
        assert following["cell_type"] == "markdown", f"{lesson.name}: {name}'s solution must follow it"
        assert source(following).strip() == exercises.solution_markdown(name).strip(), (
            f"{lesson.name}: the collapsed solution of {name} differs from the package's: run "
            f"python -m vqvae_lessons.exercises.sync {lesson.relative_to(BOOK.parent)}")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_no_cell_prints_a_solution_and_no_answer_stands_above_its_exercise(lesson):
    all_cells = cells(lesson)
    for cell in all_cells:
        if cell["cell_type"] == "code":
            assert not re.search(r"\bsolution\(", source(cell)), f"{lesson.name}: a code cell calls solution()"
    for index, name in exercise_cells(lesson):
        above = "\n".join(source(c) for c in all_cells[:index] if c["cell_type"] == "code")
        shown = [line for line in answer_lines(name) if line in above]
        assert not shown, f"{lesson.name}: the answer to {name} stands in a cell above it: {shown}"
        reference = exercises._EXERCISES[name].reference.__name__
        handed = re.findall(rf"exercises\.{name}\b|from vqvae_lessons\.exercises\.\w+ import|import [^\n]*\b"
                            rf"(?:{name}|{reference})\b", above)
        assert not handed, f"{lesson.name}: a cell above the exercise {name} imports or names its answer: {handed}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_predict_then_run_questions_are_answered_by_the_next_cell(lesson):
    all_cells = cells(lesson)
    questions = [i for i, c in enumerate(all_cells) if c["cell_type"] == "markdown" and PREDICT in source(c)]
    assert len(questions) >= 2, f"{lesson.name} asks {len(questions)} 'predict, then run' questions; ask a few"
    for i in questions:
        assert i + 1 < len(all_cells) and all_cells[i + 1]["cell_type"] == "code", lesson.name


def question_cells(path):
    """``[(index, name)]`` of the lesson's question cells (``check_answer``), in order."""
    return [(i, cell["metadata"]["vqvae_lessons"]["question"]) for i, cell in enumerate(cells(path))
            if "question" in cell.get("metadata", {}).get("vqvae_lessons", {})]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_each_question_is_answered_before_its_run_and_judged_after_it(lesson):
    """A question (predict, decide) is asked in Markdown that says how to get hints; the next cell is where the
    learner writes the answer (``my_answer = None``); at least one cell runs before ``check_answer`` judges it, in
    a cell whose metadata names the question."""
    all_cells = cells(lesson)
    for index, name in question_cells(lesson):
        assert name in exercises.questions(), (lesson.name, name)
        found = re.search(rf'check_answer\(\s*"{name}"\s*,\s*(\w+)', source(all_cells[index]))
        assert found, f"{lesson.name}: the cell of question {name} must call check_answer(\"{name}\", ...)"
        answer = found.group(1)
        written = [i for i, c in enumerate(all_cells[:index]) if c["cell_type"] == "code"
                   and re.search(rf"^{answer}\s*=\s*None\b", source(c), re.M)]
        assert written, f"{lesson.name}: no cell above {name}'s check lets the learner write {answer} = None"
        asked = all_cells[written[-1] - 1]
        assert asked["cell_type"] == "markdown" and f'hint("{name}")' in source(asked), (lesson.name, name)
        assert written[-1] + 1 < index, f"{lesson.name}: {name} is judged before anything runs"


def bare_names(code):
    """The names a cell's code uses as themselves (``f(...)``, ``x = f``), not as attributes (``module.f``)."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!", "from ", "import ")) else line
                     for line in code.splitlines())  # magics, and imports (module paths are not uses)
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    return {tok.string for previous, tok in zip([None, *tokens[:-1]], tokens, strict=True)
            if tok.type == tokenize.NAME and not (previous and previous.string == ".")}


def defined_by_solution(name):
    """The top-level names a reference solution defines when it is pasted into a notebook."""
    return {node.name for node in ast.parse(exercises.solution_source(name)).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


USE = re.compile(r'\buse\(\s*"(\w+)"\s*,\s*(\w+)\s*\)')  # use("name", name): the learner's, or the package's

# What of the learner's code each lesson's later cells run (through use); the closing note of #28 lists the rest.
RUNS_THE_LEARNERS = {
    "01_autoencoders_and_vae": {"reparameterize", "kl_divergence", "vae_loss"},
    "02_vector_quantization": {"pairwise_sq_distances", "nearest_code", "straight_through", "vq_losses",
                               "encoder_gradient", "ema_update"},
    "03_vqvae": {"vqvae_forward", "codebook_perplexity"},
    "04_codebook_size": {"rate_distortion_knee", "dead_codes"},
    "05_pixelcnn_prior": {"causal_mask", "gate", "nll_bits_per_image", "sample_codes"},
    "06_generating_and_judging": {"inception_score", "frechet_distance"},
    "07_modern_quantizers": {"fsq_quantize", "entropy_terms", "residual_stage"},
    "08_transformer_priors": {"causal_attention", "attention_dot_products", "cached_attention_step",
                              "maskgit_training_loss", "maskgit_keep"},
}


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_later_cells_run_what_the_learner_wrote_only_through_use(lesson):
    """A cell after an exercise runs the learner's function only as ``use("name", name)``, which gives the
    learner's when it passes its check and the package's otherwise: so the rest of the lesson runs whether the
    learner left the stub, wrote a wrong answer, or pasted the solution, and with their answer when it is right.
    No other use of the exercise's name (or of a name its pasted solution defines) is allowed."""
    all_cells = cells(lesson)
    exercises_above, used = {}, set()
    for index, cell in enumerate(all_cells):
        if cell["cell_type"] != "code":
            continue
        if "exercise" in cell.get("metadata", {}).get("vqvae_lessons", {}):
            name = cell["metadata"]["vqvae_lessons"]["exercise"]
            exercises_above[name] = defined_by_solution(name) | {name}
            continue
        code = source(cell)
        for name, argument in USE.findall(code):
            assert name == argument and name in exercises_above, (
                f"{lesson.name}, cell {index}: use({name!r}, {argument}) must pass the exercise's own function, "
                f"after the exercise")
            used.add(name)
        names = bare_names(USE.sub("", code))
        for name, defined in exercises_above.items():
            assert not names & defined, (f"{lesson.name}, cell {index}: uses {sorted(names & defined)} after the "
                                         f"exercise {name} other than through use({name!r}, {name})")
    assert used == RUNS_THE_LEARNERS.get(lesson.stem, set()), (lesson.name, used)


def test_sync_rewrites_a_folded_solution_that_drifted(tmp_path):
    from vqvae_lessons.exercises.sync import sync_solutions

    lesson = next(path for path in LESSONS if exercise_cells(path))
    copy = tmp_path / lesson.name
    notebook = json.loads(lesson.read_text())
    index, name = exercise_cells(lesson)[0]
    notebook["cells"][index + 1]["source"] = ["<details>an old solution</details>"]
    copy.write_text(json.dumps(notebook))
    assert sync_solutions(copy) == 1 and sync_solutions(copy) == 0
    assert source(json.loads(copy.read_text())["cells"][index + 1]).strip() == exercises.solution_markdown(name).strip()


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id_and_no_outputs(lesson):
    """nbformat 4.5 wants a unique id on every cell (the book build warns otherwise); lessons are
    committed without outputs, so the book always shows what the current code does."""
    all_cells = cells(lesson)
    ids = [cell.get("id") for cell in all_cells]
    assert None not in ids and len(set(ids)) == len(ids), f"{lesson.name}: cells without a unique id"
    assert not [c for c in all_cells if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_cells_that_draw_a_figure_give_it_alt_text(lesson):
    """A cell ending in a figure of the package (``plotting.*`` or a diagram) carries its alt text in
    its metadata, ``"mystnb": {"image": {"alt": ...}}``, which the book puts on the image (the site
    test checks the rendered pages)."""
    from vqvae_lessons import diagrams, plotting

    drawers = set(plotting.__all__) | {name for module in ("reparameterization", "straight_through", "pipeline",
                                                            "pixelcnn", "frechet")
                                       for name in dir(__import__(f"{diagrams.__name__}.{module}", fromlist=["_"]))
                                       if not name.startswith("_")}
    for index, cell in enumerate(cells(lesson)):
        if cell["cell_type"] != "code" or not source(cell).strip():
            continue
        last = source(cell).strip().splitlines()[-1]
        called = re.match(r"^\s*(?:[\w.]+\.)?(\w+)\(", last)
        if called and called.group(1) in drawers:
            options = cell.get("metadata", {}).get("mystnb", {})
            alt = options.get("image", {}).get("alt") or options.get("figure", {}).get("caption")
            assert alt, f"{lesson.name}, cell {index} ({last.strip()}): give the figure alt text in its metadata"


# What each lesson's cells compute from the learner's pieces: the learner's path test compares them.
LEARNERS_FIGURES = {
    "01_autoencoders_and_vae": 'demo_record["history"]',
    "02_vector_quantization": '{"ema_step": ema_step_codebook.tolist(), "history": your_history, '
                              '"restarted": [float(count) for _, count in maintenance.history]}',
    "03_vqvae": '{"steps": steps, "demo": demo_record["history"], "perplexity": [test_perplexity, batch_perplexity]}',
    "04_codebook_size": '{"dead": [int(code) for code in dead], "knee": float(knee)}',
    "05_pixelcnn_prior": '{"loss": own_history["loss"], "bits": [own_bits, shipped_bits], '
                         '"codes": own_codes.ravel().tolist(), "demo_loss": demo_record["history"]["loss"]}',
    "06_generating_and_judging": '{"score": default_score, "d2": default_d2}',
    "07_modern_quantizers": 'fsq_history | {"psnr_db": [float(fsq_metrics["test_psnr_db"])], '
                            '"codes_used": [float(fsq_metrics["codes_used"])], '
                            '"lfq": [float(spread[w][k]) for w in (0.1, 0.0) for k in ("corners", "batch_entropy")], '
                            '"rvq": [float(np.mean(np.square(row - digits))) for row in stage_rows.values()]}',
    "08_transformer_priors": '{"nll_bits": [nll_bits["this attention"], nll_bits["the shipped blocks"]], '
                             '"dot_products": [without_cache, with_cache], "cached_rows": cached_rows.tolist(), '
                             '"game_loss": [game_loss], "by_hand": ours.ravel().tolist(), '
                             '"maskgit_codes": keep_codes.ravel().tolist(), "same_codes": [float(same_codes)]}',
}


def test_every_lesson_runs_the_learners_pieces_and_names_its_figures():
    assert {path.stem for path in LESSONS} == set(RUNS_THE_LEARNERS) == set(LEARNERS_FIGURES)


def test_every_lessons_learners_path_is_tested():
    """Each lesson's learner's path runs in the test file of its seams (``assert_learners_path``), so that pytest's
    two processes share the eight lessons' runs instead of one file holding them all."""
    calls = "\n".join(path.read_text() for path in Path(__file__).parent.glob("test_learners_path*.py"))
    assert {path.stem for path in LESSONS} == set(re.findall(r'assert_learners_path\("(\w+)"\)', calls))


def assert_learners_path(stem):
    """The lesson up to its last cell that runs the learner's pieces, twice: with the stubs (the package's pieces
    stand in) and with every exercise filled in by its folded solution, pasted (the learner's pieces run). In the
    second run every check says "correct" and no output shows a solution; the cells say which pieces they run;
    and the figures (``LEARNERS_FIGURES``, same seeds) agree: the lesson's figures are what the learner's code
    gives. (nbval runs the whole lesson with its stubs.) Called by each lesson's test in its seams' file."""
    from nbclient import NotebookClient

    if not os.environ.get("VQVAE_LESSONS_MNIST"):
        pytest.skip("the lessons load the real MNIST: set VQVAE_LESSONS_MNIST")
    lesson = BOOK / f"{stem}.ipynb"
    notebook = nbformat.read(lesson, as_version=4)
    last = max(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and (
        USE.search(cell.source) or "exercise" in cell.metadata.get("vqvae_lessons", {})))
    figures = nbformat.v4.new_code_cell(f"import json\nprint(json.dumps({LEARNERS_FIGURES[stem]}))")
    runs = {}
    for path in ("package", "learner"):
        run = [cell for cell in notebook.cells[:last + 1]
               if cell.cell_type == "code" and "%pip install" not in cell.source]  # the package is installed here
        if path == "learner":
            run = [filled_in(cell) for cell in run]
        executed = nbformat.v4.new_notebook(cells=[*run, figures.copy()], metadata=notebook.metadata)
        NotebookClient(executed, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(BOOK)}}).execute()
        shown = json.dumps([cell.get("outputs", []) for cell in executed.cells])
        assert ("Using yours" in shown) == (path == "learner") and ("Using the package" in shown) == (
            path == "package"), f"{lesson.name}: the {path}'s path does not say which pieces it runs"
        runs[path] = json.loads(executed.cells[-1].outputs[0]["text"])
    for name, cell in zip([name for _, name in exercise_cells(lesson)], filled_cells(executed), strict=True):
        results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
        assert results and results[-1]["data"]["text/plain"] == "True", (
            f"{lesson.name}: check({name!r}) did not accept the pasted solution: {cell.outputs}")
    solution_lines = [line for _, name in exercise_cells(lesson) for line in answer_lines(name)]
    assert not [line for line in solution_lines if json.dumps(line)[1:-1] in shown], "an output shows a solution"
    flat = {path: np.concatenate([np.ravel(np.asarray(v, "float64")) for v in json_leaves(figures)])
            for path, figures in runs.items()}
    np.testing.assert_allclose(flat["learner"], flat["package"], rtol=1e-4,
                               err_msg=f"{lesson.name}: the learner's pieces give other figures than the package's")


def filled_cells(notebook):
    """The exercise cells that :func:`filled_in` made, in order."""
    return [cell for cell in notebook.cells if cell.metadata.get("vqvae_lessons", {}).get("filled_in")]


def filled_in(cell):
    """An exercise cell with its stub replaced by the folded solution, pasted; any other cell as it is."""
    name = cell.metadata.get("vqvae_lessons", {}).get("exercise")
    return cell if name is None else nbformat.v4.new_code_cell(
        f'{exercises.solution_source(name)}\n\ncheck("{name}", {name})\n',
        metadata={"vqvae_lessons": {"filled_in": name}})


def json_leaves(tree):
    """The numbers of a JSON tree (dicts in key order, lists in order), as a list of lists."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in json_leaves(tree[key])]
    if isinstance(tree, list) and tree and isinstance(tree[0], (dict, list)):
        return [leaf for item in tree for leaf in json_leaves(item)]
    return [tree]
