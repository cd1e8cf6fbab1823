"""A pytest plugin that hands the notebooks nbval executed to the book build, so that CI
executes each lesson once.

nbval runs every cell of a lesson in a kernel and checks it; the book build
(``jupyter-book build``) would execute the same lessons again. This plugin writes each
notebook whose every cell passed, with the outputs nbval captured, into Jupyter Book's
execution cache (jupyter-cache, the folder ``_config.yml``'s ``execute.cache`` names). A book
built with ``execute_notebooks: cache`` then finds each notebook there by the hash of its code
cells and renders those outputs instead of executing it; a notebook not in the cache (changed
since, failed, or not run) is executed by the build as usual.

Left to the build: a notebook that displays an ipywidget. nbval does not record the
widgets' state, without which the book could not draw them.

``tests/conftest.py`` registers it; ``VQVAE_LESSONS_BOOK_CACHE=0`` turns it off.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ENV = "VQVAE_LESSONS_BOOK_CACHE"


def cache_path(root=ROOT):
    """The book's execution cache: ``execute.cache`` of ``root/_config.yml`` (relative to ``root``)."""
    config = yaml.safe_load((Path(root) / "_config.yml").read_text(encoding="utf-8"))
    folder = (config.get("execute") or {}).get("cache") or "_build/.jupyter_cache"
    return Path(root) / folder


def executed_notebook(notebook, cells):
    """A copy of ``notebook`` (an nbformat node) with each code cell's outputs as nbval captured them.

    ``cells`` maps ``id()`` of each code cell of ``notebook`` to its outputs (a list of output
    nodes); execution counts run 1, 2, ... as in a run from the top.
    """
    executed = copy.deepcopy(notebook)
    count = 0
    for original, cell in zip(notebook.cells, executed.cells, strict=True):
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = copy.deepcopy(cells[id(original)])
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
    return executed


def shows_widgets(notebook):
    """Whether any output of ``notebook`` is an ipywidget's view."""
    return any(WIDGET_VIEW in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


class BookCache:
    """Collects nbval's cells by notebook and, at the end of the session, caches each notebook whose
    cells all passed (see the module's docstring)."""

    def __init__(self, path):
        self.path = Path(path)
        self.passed = defaultdict(dict)   # notebook path -> {nodeid: seconds} of the cells that passed
        self.broken = set()               # notebooks with a cell that failed or was skipped
        self.stored, self.left = [], []

    def pytest_runtest_logreport(self, report):
        if not report.nodeid.partition("::")[0].endswith(".ipynb"):
            return
        notebook = report.nodeid.partition("::")[0]
        if report.failed or report.skipped:
            self.broken.add(notebook)
        elif report.when == "call":
            self.passed[notebook][report.nodeid] = report.duration

    def pytest_sessionfinish(self, session):
        files = {}
        for item in session.items:
            if hasattr(item, "test_outputs") and hasattr(item, "cell"):  # an nbval cell
                files.setdefault(item.parent, []).append(item)
        for file, items in files.items():
            notebook = items[0].nodeid.partition("::")[0]
            ran_all = all(item.nodeid in self.passed[notebook] and item.test_outputs is not None for item in items)
            if notebook in self.broken or not ran_all or len(items) != sum(
                    cell.cell_type == "code" for cell in file.nb.cells):
                continue
            executed = executed_notebook(file.nb, {id(item.cell): item.test_outputs for item in items})
            if shows_widgets(executed):
                self.left.append(f"{notebook} (it shows widgets)")
                continue
            self.store(executed, Path(file.path), sum(self.passed[notebook].values()))
            self.stored.append(notebook)

    def store(self, notebook, path, seconds):
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        get_cache(str(self.path)).cache_notebook_bundle(
            CacheBundleIn(notebook, str(path), data={"execution_seconds": seconds, "executed_by": "nbval"}),
            check_validity=False, overwrite=True)

    def pytest_terminal_summary(self, terminalreporter):
        if self.stored or self.left:
            terminalreporter.write_line(
                f"book cache: {len(self.stored)} notebooks executed here are in {self.path} for the book build"
                + (f"; left to the build: {', '.join(self.left)}" if self.left else ""))


def register(config):
    """Registers :class:`BookCache` on ``config`` unless ``VQVAE_LESSONS_BOOK_CACHE=0``, nbval is off, or the
    run has no ``_config.yml`` to read."""
    if os.environ.get(ENV, "1") == "0" or not config.pluginmanager.hasplugin("nbval"):
        return
    if (ROOT / "_config.yml").is_file():
        config.pluginmanager.register(BookCache(cache_path()), "vqvae-lessons-book-cache")
