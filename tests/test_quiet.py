"""Importing the package does no work; one explicit call, vqvae_lessons.quiet(), keeps
TensorFlow's start-up noise off a learner's screen."""

import os
import subprocess
import sys

import pytest


def run(code, backend="tensorflow"):
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_importing_the_package_imports_neither_keras_nor_tensorflow_nor_touches_matplotlib():
    result = run("import sys, matplotlib\n"
                 "before = matplotlib.get_backend()\n"
                 "import vqvae_lessons\n"
                 "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'import did work'\n"
                 "import vqvae_lessons.plotting\n"
                 "assert matplotlib.get_backend() == before, 'plotting switched the backend'\n"
                 "assert 'TF_CPP_MIN_LOG_LEVEL' not in __import__('os').environ\n")
    assert result.returncode == 0, result.stderr


def test_the_cards_recipes_and_results_read_without_keras():
    """``python -m vqvae_lessons list`` starts at once because the modules that read cards, recipes and lesson 7's
    results import no Keras: this keeps it so."""
    result = run("import sys\n"
                 "from vqvae_lessons import cards, cli, comparison, pretrained, recipes, reproduce, sweep\n"
                 "assert pretrained.names() and recipes.RECIPES and cards.KINDS and reproduce.REPRODUCED_DIR\n"
                 "assert comparison.load_results()['runs']\n"
                 "assert sweep.load_sweep()['points'] and cli.cmd_list(None)\n"
                 "heavy = {'keras', 'tensorflow', 'jax'} & set(sys.modules)\n"
                 "assert not heavy, f'reading cards imported {heavy}'\n")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_quiet_keeps_tensorflows_start_up_messages_off_standard_error():
    loud = run("import keras\nkeras.ops.add(1, 1)\n")
    assert loud.returncode == 0 and loud.stderr.strip(), "TensorFlow printed nothing: this test shows nothing here"
    quiet = run("import vqvae_lessons\nassert vqvae_lessons.quiet() == 'tensorflow'\n"
                "import keras\nkeras.ops.add(1, 1)\nvqvae_lessons.quiet()\n")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


@pytest.mark.parametrize("backend", ["jax"])
def test_quiet_reads_the_backend_keras_uses(backend):
    pytest.importorskip(backend)
    result = run(f"import vqvae_lessons\nassert vqvae_lessons.quiet() == {backend!r}\n"
                 "import sys\nassert 'tensorflow' not in sys.modules\n", backend=backend)
    assert result.returncode == 0, result.stderr
