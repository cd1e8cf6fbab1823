"""Shared fixtures: a small synthetic MNIST (so most tests need no data file) and,
when VQVAE_LESSONS_MNIST names the real file, the real one."""

import os

import numpy as np
import pytest

from vqvae_lessons.data import MNIST, MNIST_ENV, load_mnist


def synthetic_arrays(n_train=256, n_test=64, seed=0):
    """Arrays in Keras's MNIST layout: blurry blobs whose position depends on the label."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 10, n).astype("uint8")
        yy, xx = np.mgrid[:28, :28]
        centres = np.stack([6 + 1.6 * labels, 22 - 1.6 * labels], 1)[:, :, None, None]
        blobs = np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / 18.0)
        images = np.clip(255 * blobs + rng.normal(0, 8, blobs.shape), 0, 255).astype("uint8")
        return images, labels

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist.npz"
    np.savez(path, **synthetic_arrays())
    return path


@pytest.fixture(scope="session")
def tiny_mnist(synthetic_npz) -> MNIST:
    return load_mnist(path=synthetic_npz)


@pytest.fixture(scope="session")
def real_mnist() -> MNIST:
    if not os.environ.get(MNIST_ENV):
        pytest.skip(f"{MNIST_ENV} is not set: the real MNIST is not available offline")
    return load_mnist()
