"""The package uses keras.ops only: it must train, save, load and agree on every Keras 3 backend
that is installed (JAX and PyTorch are optional; TensorFlow is the default)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vqvae_lessons.data import MNIST_ENV

pytestmark = pytest.mark.slow  # trains on every installed backend in subprocesses


def run_on(backend, npz, tmp_path):
    out = tmp_path / backend
    out.mkdir()
    env = {**os.environ, "KERAS_BACKEND": backend, MNIST_ENV: str(npz), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("backend_smoke.py")), str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend, module", [("jax", "jax"), ("torch", "torch")])
def test_other_backends_agree_with_tensorflow(backend, module, synthetic_npz, tmp_path):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (optional: pip install {module})")
    other, reference = run_on(backend, synthetic_npz, tmp_path), run_on("tensorflow", synthetic_npz, tmp_path)
    assert other["backend"] == backend and reference["backend"] == "tensorflow"
    for name, history in other["histories"].items():
        assert history["loss"][-1] < history["loss"][0], f"{name} did not learn on {backend}"
    for name, images in reference["shipped_reconstructions"].items():
        np.testing.assert_allclose(other["shipped_reconstructions"][name], images, atol=2e-3, err_msg=name)
    for name, log_probs in reference["shipped_log_probs"].items():
        np.testing.assert_allclose(other["shipped_log_probs"][name], log_probs, atol=2e-3, err_msg=name)
