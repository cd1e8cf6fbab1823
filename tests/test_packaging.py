"""What `pip install git+https://...` (Colab's way) installs must carry the shipped weights."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vqvae_lessons import pretrained, sweep

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_every_shipped_weight_and_card(tmp_path):
    contents = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    for name in pretrained.names():
        for suffix in (".weights.h5", ".json", ".md"):
            assert f"vqvae_lessons/weights/{name}{suffix}" in contents
    # lesson 4's sweep: its index, its card and every point's weights
    shipped = [record["weights"] for record in sweep.load_sweep()["points"]] + ["sweep.json", "README.md"]
    missing = [name for name in shipped if f"vqvae_lessons/weights/sweep/{name}" not in contents]
    assert not missing, f"the wheel lacks {missing}: list them in pyproject.toml's package-data"


def build_wheel(directory):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                             "--quiet", "-w", str(directory)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and "setuptools" in result.stderr:
        pytest.skip("setuptools is not installed, so the wheel can't be built without network access")
    assert result.returncode == 0, result.stderr
    (wheel,) = Path(directory).glob("*.whl")
    return wheel


def test_the_wheel_carries_every_module_of_the_package(tmp_path):
    contents = set(zipfile.ZipFile(build_wheel(tmp_path)).namelist())
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "vqvae_lessons").rglob("*.py"))
    missing = [module for module in modules if module not in contents]
    assert not missing, f"the wheel lacks {missing}: see [tool.setuptools.packages.find] in pyproject.toml"


@pytest.mark.slow
@pytest.mark.notebook
def test_a_lesson_runs_from_the_installed_wheel_in_an_empty_folder(tmp_path, monkeypatch):
    """What Colab does: install the package from a wheel (not this checkout), copy one lesson
    into an empty folder and run it top to bottom there."""
    import os

    import nbformat
    from nbclient import NotebookClient

    if not os.environ.get("VQVAE_LESSONS_MNIST"):
        pytest.skip("the lesson needs the real MNIST: set VQVAE_LESSONS_MNIST")
    site = tmp_path / "site-packages"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                             str(build_wheel(tmp_path / "dist"))], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    empty = tmp_path / "colab"
    empty.mkdir()
    lesson = nbformat.read(ROOT / "book" / "03_vqvae.ipynb", as_version=4)
    # The installed wheel, not the checkout (whose editable install is also on the path), is what runs.
    lesson.cells.insert(0, nbformat.v4.new_code_cell(
        "import pathlib, vqvae_lessons\n"
        f"assert pathlib.Path(vqvae_lessons.__file__).is_relative_to({str(site)!r}), vqvae_lessons.__file__"))
    nbformat.write(lesson, empty / "03_vqvae.ipynb")
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.chdir(empty)
    NotebookClient(lesson, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(empty)}}).execute()
    errors = [output for cell in lesson.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert not errors, errors
