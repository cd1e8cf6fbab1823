"""Shared fixtures: a small synthetic MNIST (so most tests need no data file) and,
when VQVAE_LESSONS_MNIST names the real file, the real one; and the markers that let a
contributor run the fast unit tests alone (``pytest -m "not slow"``, see pyproject.toml)."""

import os

import numpy as np
import pytest

import vqvae_lessons

vqvae_lessons.quiet()

from vqvae_lessons.data import FASHION_MNIST_ENV, MNIST, MNIST_ENV, MNISTDataError, load_dataset, load_mnist  # noqa: E402


def pytest_configure(config):
    """The notebooks nbval executes go to the book's execution cache (``book_cache``), so the book build
    that follows in CI does not execute them again."""
    import book_cache

    book_cache.register(config)


def pytest_collection_modifyitems(config, items):
    """Mark what is not a fast unit test: the notebooks, the browser test, tests that need the
    real MNIST (all three are also ``slow``)."""
    for item in items:
        kinds = set()
        if item.path.suffix == ".ipynb":
            kinds.add("notebook")
        elif item.path.name == "test_site.py":
            kinds.add("browser")
        if {"real_mnist", "real_fashion_mnist"} & set(getattr(item, "fixturenames", ())):
            kinds.add("mnist")
        for kind in kinds | ({"slow"} if kinds else set()):
            item.add_marker(kind)


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
    """The real MNIST: the file VQVAE_LESSONS_MNIST names, or else Keras's download (online, as on
    GitHub's runners, which cache it); skipped when neither is available."""
    try:
        return load_mnist()
    except MNISTDataError as error:
        if os.environ.get(MNIST_ENV):
            raise
        pytest.skip(f"the real MNIST is not available ({MNIST_ENV} is not set and Keras's download failed: {error})")


@pytest.fixture(scope="session")
def real_fashion_mnist() -> MNIST:
    """Fashion-MNIST: the file VQVAE_LESSONS_FASHION_MNIST names, or else Keras's download; skipped when
    neither is available."""
    try:
        return load_dataset("fashion_mnist")
    except MNISTDataError as error:
        if os.environ.get(FASHION_MNIST_ENV):
            raise
        pytest.skip(f"Fashion-MNIST is not available ({FASHION_MNIST_ENV} is not set and Keras's download "
                    f"failed: {error})")
