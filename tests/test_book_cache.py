"""The book cache plugin (tests/book_cache.py): the notebooks nbval executed, handed to the book build."""

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from book_cache import ROOT, WIDGET_VIEW, cache_path, executed_notebook, shows_widgets

TESTS = Path(__file__).resolve().parent


def notebook(*sources, markdown="A lesson."):
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(markdown)] + [nbformat.v4.new_code_cell(s) for s in sources],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_the_cache_is_the_books():
    assert cache_path(ROOT).parent == ROOT / "_build"
    assert cache_path(ROOT).name == ".jupyter_cache"


def test_executed_notebook_puts_each_cells_outputs_in_order_and_leaves_the_original_alone():
    nb = notebook("1 + 1", "print('hi')")
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = {id(code[0]): [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=7)],
               id(code[1]): [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]}
    executed = executed_notebook(nb, outputs)
    cells = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == [1, 2]
    assert cells[0].outputs[0].execution_count == 1 and cells[0].outputs[0].data["text/plain"] == "2"
    assert cells[1].outputs[0].text == "hi\n"
    assert all(c.outputs == [] and c.execution_count is None for c in code)  # the original is unchanged
    assert executed.cells[0].source == "A lesson."


def test_a_widget_view_is_left_to_the_build():
    nb = notebook("w")
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", {WIDGET_VIEW: {"model_id": "x"}, "text/plain": "w"})]
    assert shows_widgets(nb)
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", {"text/plain": "w"})]
    assert not shows_widgets(nb)


@pytest.mark.slow
def test_nbval_run_is_found_by_the_books_cache_lookup_and_a_failing_notebook_is_not(tmp_path):
    from jupyter_cache import get_cache

    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(notebook("x = 40 + 2", "print(x)", "x"), good)
    nbformat.write(notebook("y = 1", "raise ValueError('no')"), bad)
    cache = tmp_path / "cache"
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import book_cache

        def pytest_configure(config):
            config.pluginmanager.register(book_cache.BookCache({str(cache)!r}), "book-cache")
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "good.ipynb", "bad.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr  # bad.ipynb fails
    assert "book cache: 1 notebooks" in run.stdout

    # exactly the lookup myst-nb's cache mode makes (myst_nb.core.execute.cache)
    store = get_cache(str(cache))
    _, merged = store.merge_match_into_notebook(nbformat.read(good, as_version=4))
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert code[1].outputs[0].text == "42\n"
    assert code[2].outputs[0].data["text/plain"] == "42"
    with pytest.raises(KeyError):
        store.match_cache_notebook(nbformat.read(bad, as_version=4))
    changed = nbformat.read(good, as_version=4)
    changed.cells[1].source = "x = 41 + 2"
    with pytest.raises(KeyError):  # a notebook changed since is executed by the build
        store.match_cache_notebook(changed)
