"""What `pip install git+https://...` (Colab's way) installs must carry the shipped weights."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vqvae_lessons import comparison, pretrained, sweep

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


# What a lesson reads from the package, through the package: every shipped model, lesson 4's sweep points and
# lesson 7's comparison models (the lessons themselves run under nbval, once; none reads a file of this checkout:
# test_no_lesson_reads_a_file_of_this_checkout).
FROM_THE_PACKAGE = """
import pathlib, vqvae_lessons
assert pathlib.Path(vqvae_lessons.__file__).is_relative_to({site!r}), vqvae_lessons.__file__
from vqvae_lessons import comparison, pretrained, sweep
loaded = [pretrained.load(name) for name in pretrained.names()]
points = [sweep.load_point(record["num_embeddings"], record["embedding_dim"], record.get("ablation"))
          for record in sweep.load_sweep()["points"]]
models = [comparison.load_model(run["name"]) for run in comparison.load_results()["runs"] if run.get("weights")]
print(len(loaded), len(points), len(models))
"""


@pytest.mark.slow
def test_the_installed_wheel_loads_every_shipped_model_in_an_empty_folder(tmp_path, monkeypatch):
    """What Colab does: install the package from a wheel (not this checkout) and use it from an empty folder:
    every shipped model, sweep point and comparison model loads from the wheel's own files."""
    site = tmp_path / "site-packages"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                             str(build_wheel(tmp_path / "dist"))], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    empty = tmp_path / "colab"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-c", FROM_THE_PACKAGE.format(site=str(site))], cwd=empty,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr[-3000:]
    counts = [int(word) for word in result.stdout.split()[-3:]]
    assert counts == [len(pretrained.names()), len(sweep.load_sweep()["points"]),
                      sum(1 for run in comparison.load_results()["runs"] if run.get("weights"))]


def test_no_lesson_reads_a_file_of_this_checkout():
    """A lesson opened in Colab has the installed package and nothing else of this repository: its code reads
    files through the package (or writes its own), never by a path into the checkout."""
    import json

    for lesson in sorted((ROOT / "book").glob("0*.ipynb")):
        code = "\n".join("".join(cell["source"]) for cell in json.loads(lesson.read_text())["cells"]
                         if cell["cell_type"] == "code")
        for path in ("../", "vqvae_lessons/weights", "book/", "tests/", "benchmarks/"):
            assert path not in code, f"{lesson.name} reads {path!r}: read shipped files through vqvae_lessons"
