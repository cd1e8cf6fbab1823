"""Training on several devices (:mod:`vqvae_lessons.distribute`): two devices on a global batch give what one
device gives on the same batch, the EMA codebook's statistics and the perplexity above all.

The measurements are tests/distribution_checks.py's. On JAX they run in this process, which must see two
devices: CI's JAX run sets ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, and without it they are
skipped. On TensorFlow they run in a fresh process that splits the CPU into two logical devices before
TensorFlow starts (this process has started it long before a test runs).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from vqvae_lessons import distribute
from vqvae_lessons.data import MNIST_ENV

BACKEND = keras.backend.backend()
CHECKS = Path(__file__).with_name("distribution_checks.py")


@pytest.fixture(scope="module")
def measured(tiny_mnist, synthetic_npz):
    """Everything distribution_checks.differences measures, one device against two."""
    if BACKEND == "jax":
        import jax

        if jax.device_count() < 2:
            pytest.skip(f"JAX sees {jax.device_count()} device: run with "
                        "XLA_FLAGS=--xla_force_host_platform_device_count=2 (CI's JAX run sets it)")
        from distribution_checks import differences  # tests/distribution_checks.py

        return differences(tiny_mnist)
    if BACKEND != "tensorflow":
        pytest.skip(f"vqvae_lessons.distribute trains on several devices with JAX or TensorFlow, not {BACKEND}")
    result = subprocess.run([sys.executable, str(CHECKS), str(synthetic_npz)], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ema_codebook_update_on_two_devices_is_the_global_batchs(measured):
    assert measured["backend"] == BACKEND
    # the same state after two EMA steps, to float rounding (measured: 0 on JAX and TensorFlow) ...
    for name in ("embeddings", "ema_cluster_size", "ema_embedding_sum", "ema_steps"):
        assert measured["codebook"][name] <= 1e-6, name
    # ... and it is the update of each whole batch, written out in NumPy
    for name, difference in measured["reference"].items():
        assert difference <= 1e-5, name


def test_perplexity_and_usage_on_two_devices_are_the_global_batchs(measured):
    one, two, reference, *shards = measured["perplexity"]
    assert one == pytest.approx(reference, rel=1e-6) and two == pytest.approx(reference, rel=1e-6)
    assert all(abs(shard - reference) > 1.0 for shard in shards)  # one device's shard alone would say otherwise
    one, two, reference, *shards = measured["usage"]
    assert one == two == reference == 5 / 8 and all(shard < reference for shard in shards)


def test_dead_code_restarts_on_two_devices_match_one(measured):
    dead_one, dead_two = measured["dead"]
    assert dead_one == dead_two and dead_one  # the same codes found dead, and some were
    assert measured["codebook"]["restarted_embeddings"] <= 1e-6 and measured["codebook"]["dead"] == 0


def test_training_on_two_devices_matches_one(measured):
    # two steps of a VQ-VAE (k-means start, EMA codebook), then two of a gated PixelCNN on its codes
    assert measured["devices"] == [[1, 1], [2, 2]]
    assert measured["weights"]["vqvae"] <= 1e-5 and measured["weights"]["prior"] <= 1e-5  # measured: 3e-8, 6e-8
    np.testing.assert_allclose(measured["loss"][1], measured["loss"][0], rtol=1e-5)


def test_bad_settings_on_two_devices_are_clear_errors(measured):
    errors = measured["errors"]
    assert "batch_size=15 is the global batch" in errors["batch"] and "batch_size=16 (8 a device)" in errors["batch"]
    name = {"jax": "JAX", "tensorflow": "TensorFlow"}[BACKEND]
    assert f"devices=3 but {name} sees 2 CPU devices" in errors["count"]
    assert "positive number of devices" in errors["zero"]
    assert "not a number of devices or a distribution" in errors["object"]


# -- what needs no second device ---------------------------------------------------------------------------------
def test_one_device_changes_nothing():
    x = keras.ops.ones((3, 2))
    assert distribute.replica_sum(x) is x and distribute.scale_loss(x) is x
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(distribute.replica_mean(x)), [1.0, 1.0])
    assert distribute.distribution_for(None) is None and distribute.distribution_for(1) is None
    arrays = (np.zeros(5), None)
    assert distribute.even(arrays, 1) is arrays
    assert [None if a is None else len(a) for a in distribute.even(arrays, 2)] == [4, None]
    with distribute.scope(None, batch_size=7) as count:
        assert count == 1


def test_more_devices_than_exist_says_how_to_get_them():
    if BACKEND not in ("jax", "tensorflow"):
        with pytest.raises(ValueError, match="needs the JAX or TensorFlow backend"):
            distribute.distribution_for(2)
        return
    fix = "xla_force_host_platform_device_count=64" if BACKEND == "jax" else "set_logical_device_configuration"
    with pytest.raises(ValueError, match=f"devices=64 but .* sees .*{fix}.*Runtime > Change runtime type"):
        distribute.distribution_for(64)
    with pytest.raises(ValueError, match="devices=64"), distribute.training_devices(64):
        pass


def test_the_other_backends_distribution_is_refused():
    if BACKEND == "tensorflow":
        with pytest.raises(ValueError, match="keras.distribution, which Keras runs on the JAX backend only"):
            distribute.distribution_for(keras.distribution.DataParallel(devices=["cpu:0"]))
    with pytest.raises(ValueError, match="not a number of devices or a distribution"):
        distribute.distribution_for("2")


def test_a_batch_that_does_not_split_is_refused():
    class Four:  # what check_batch_size asks of a strategy
        num_replicas_in_sync = 4

    distribute.check_batch_size(128, Four())
    with pytest.raises(ValueError, match=r"multiple of 4; use batch_size=128 \(32 a device\) or 124"):
        distribute.check_batch_size(126, Four())


def test_the_command_line_takes_a_device_count(synthetic_npz, tmp_path):
    result = subprocess.run([sys.executable, "-m", "vqvae_lessons", "train", "vqvae", "--devices", "64", "--epochs",
                             "1", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, MNIST_ENV: str(synthetic_npz)})
    assert result.returncode == 2 and "devices=64 but" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())  # refused before anything trained
