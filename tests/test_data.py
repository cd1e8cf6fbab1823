import numpy as np
import pytest
from conftest import synthetic_arrays

from vqvae_lessons import data
from vqvae_lessons.data import MNIST_ENV, MNISTDataError, load_mnist


def test_unit_scale_shapes_and_variance(tiny_mnist, synthetic_npz):
    raw = np.load(synthetic_npz)
    assert tiny_mnist.x_train.shape == (256, 28, 28, 1) and tiny_mnist.x_train.dtype == np.float32
    assert tiny_mnist.x_test.shape == (64, 28, 28, 1)
    np.testing.assert_allclose(tiny_mnist.x_train[..., 0], raw["x_train"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(tiny_mnist.y_test, raw["y_test"])
    assert tiny_mnist.variance == pytest.approx(np.var(raw["x_train"] / 255.0), rel=1e-6)


def test_centered_scale_is_shifted_with_the_same_variance(synthetic_npz, tiny_mnist):
    centred = load_mnist("centered", path=synthetic_npz)
    np.testing.assert_allclose(centred.x_train, tiny_mnist.x_train - 0.5, atol=1e-6)
    assert centred.x_train.min() >= -0.5 and centred.x_train.max() <= 0.5
    assert centred.variance == pytest.approx(tiny_mnist.variance, rel=1e-5)


def test_environment_variable_is_read(monkeypatch, synthetic_npz):
    monkeypatch.setenv(MNIST_ENV, str(synthetic_npz))
    assert load_mnist().source == str(synthetic_npz)


def test_unknown_scale():
    with pytest.raises(ValueError, match="scale='pixels' is not known"):
        load_mnist("pixels")


def test_missing_file_names_the_variable_and_the_fix(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.npz"
    monkeypatch.setenv(MNIST_ENV, str(missing))
    with pytest.raises(MNISTDataError, match="does not exist") as error:
        load_mnist()
    assert f"{MNIST_ENV}={missing}" in str(error.value) and "x_train uint8 (60000, 28, 28)" in str(error.value)


def test_a_folder_instead_of_the_file_says_so_and_names_the_npz_inside(monkeypatch, tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"")
    monkeypatch.setenv(MNIST_ENV, str(tmp_path))
    with pytest.raises(MNISTDataError, match="is a folder, not a file") as error:
        load_mnist()
    assert "mnist.npz" in str(error.value) and "does not exist" not in str(error.value)


def _write(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def test_wrong_keys(tmp_path):
    arrays = synthetic_arrays(8, 8)
    arrays["images"] = arrays.pop("x_train")
    with pytest.raises(MNISTDataError, match=r"lacks the keys \['x_train'\]"):
        load_mnist(path=_write(tmp_path, **arrays))


def test_wrong_shape(tmp_path):
    arrays = synthetic_arrays(8, 8)
    arrays["x_test"] = arrays["x_test"].reshape(8, 784)
    with pytest.raises(MNISTDataError, match=r"x_test has shape \(8, 784\), expected \(N, 28, 28\)"):
        load_mnist(path=_write(tmp_path, **arrays))


def test_wrong_dtype(tmp_path):
    arrays = synthetic_arrays(8, 8)
    arrays["x_train"] = arrays["x_train"] / 255.0
    with pytest.raises(MNISTDataError, match="x_train has dtype float64, expected uint8"):
        load_mnist(path=_write(tmp_path, **arrays))


def test_labels_that_do_not_match_the_images(tmp_path):
    arrays = synthetic_arrays(8, 8)
    arrays["y_train"] = arrays["y_train"][:5]
    with pytest.raises(MNISTDataError, match="x_train has 8 images but y_train has 5 labels"):
        load_mnist(path=_write(tmp_path, **arrays))


def test_corrupt_file(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(MNISTDataError, match="is not a readable .npz"):
        load_mnist(path=path)


def test_offline_without_a_file_says_how_to_point_at_one(monkeypatch):
    monkeypatch.delenv(MNIST_ENV, raising=False)

    def no_network():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr("keras.datasets.mnist.load_data", no_network)
    with pytest.raises(MNISTDataError, match="Could not download MNIST") as error:
        load_mnist()
    assert f"{MNIST_ENV}=/path/to/mnist.npz" in str(error.value)


def test_download_path_is_checked_and_scaled(monkeypatch):
    monkeypatch.delenv(MNIST_ENV, raising=False)
    arrays = synthetic_arrays(16, 8)
    monkeypatch.setattr("keras.datasets.mnist.load_data",
                        lambda: ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])))
    loaded = data.load_mnist()
    assert loaded.source == "keras.datasets.mnist" and loaded.x_train.shape == (16, 28, 28, 1)


def test_real_mnist(real_mnist):
    assert real_mnist.x_train.shape == (60000, 28, 28, 1) and real_mnist.x_test.shape == (10000, 28, 28, 1)
    assert set(np.unique(real_mnist.y_test)) == set(range(10))
    assert real_mnist.variance == pytest.approx(0.0949, abs=5e-4)



def _moves(images, moved, max_shift):
    """The ``(dy, dx)`` by which each of ``moved`` is ``images`` moved, checked pixel by pixel."""
    found = []
    for image, copy in zip(images[..., 0], moved[..., 0], strict=True):
        matches = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)
                   if np.array_equal(copy, np.pad(image, max_shift)[max_shift - dy:max_shift - dy + 28,
                                                                   max_shift - dx:max_shift - dx + 28])]
        assert len(matches) == 1, "each copy is its image moved by one whole-pixel shift, zeros moved in"
        found.append(matches[0])
    return found


def test_random_shift_moves_each_digit_by_whole_pixels(tiny_mnist):
    images = tiny_mnist.x_train[:200]
    moved = data.random_shift(images, seed=3)
    assert moved.shape == images.shape and moved.dtype == images.dtype
    moves = _moves(images, moved, 1)
    assert (0, 0) not in moves and len(set(moves)) == 8  # every one of the 8 neighbours, never in place
    np.testing.assert_array_equal(moved, data.random_shift(images, seed=3))  # seeded
    assert _moves(images, data.random_shift(images, seed=4), 1) != moves
    far = _moves(images, data.random_shift(images, seed=0, max_shift=2), 2)
    assert max(max(abs(dy), abs(dx)) for dy, dx in far) == 2
    again, numbers = data.random_shift(images, seed=3, return_moves=True)
    np.testing.assert_array_equal(again, moved)
    assert numbers.dtype == np.int32 and numbers.min() >= 1  # 0 is left for "not moved"
    assert [data.shift_moves()[number - 1] for number in numbers] == moves  # each number names its move
    assert len(data.shift_moves(2)) == 24 and (0, 0) not in data.shift_moves(2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((2, 28, 28))), r"shape \(N, 28, 28, 1\), got \(2, 28, 28\): add the channel axis"),
    (dict(max_shift=0), "max_shift is a whole number of pixels from 1 to 27, got 0"),
    (dict(max_shift=1.5), "max_shift is a whole number of pixels from 1 to 27, got 1.5"),
])
def test_random_shift_bad_requests_are_clear_errors(kwargs, message):
    arguments = {"images": np.zeros((2, 28, 28, 1), "float32"), **kwargs}
    with pytest.raises(ValueError, match=message):
        data.random_shift(**arguments)


def test_the_validation_split_is_the_last_twelfth_of_the_training_set(tiny_mnist):
    n = len(tiny_mnist.x_train)
    x_fit, y_fit, x_val, y_val = tiny_mnist.split()
    assert len(x_val) == n // 12 and len(x_fit) + len(x_val) == n
    np.testing.assert_array_equal(np.concatenate([x_fit, x_val]), tiny_mnist.x_train)  # the last ones, in order
    np.testing.assert_array_equal(y_val, tiny_mnist.y_train[-(n // 12):])
    older = tiny_mnist.split("test")  # validation="test": all training images, the test set
    assert older[0] is tiny_mnist.x_train and older[2] is tiny_mnist.x_test
    with pytest.raises(ValueError, match="validation='val' is not known: use 'split'"):
        tiny_mnist.split("val")


def test_mnist_holds_out_its_last_5000_training_images(real_mnist):
    assert real_mnist.x_val.shape == (5000, 28, 28, 1) and real_mnist.x_fit.shape == (55000, 28, 28, 1)


def test_fashion_mnist_loads_from_its_own_variable(synthetic_npz, monkeypatch, tmp_path):
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(synthetic_npz))
    monkeypatch.setenv(data.MNIST_ENV, str(tmp_path / "elsewhere.npz"))  # not read for Fashion-MNIST
    clothes = data.load_dataset("fashion_mnist")
    assert clothes.source == str(synthetic_npz) and clothes.x_train.shape[1:] == (28, 28, 1)
    monkeypatch.setenv(data.FASHION_MNIST_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(MNISTDataError, match="Fashion-MNIST file not found: VQVAE_LESSONS_FASHION_MNIST=.*"
                                             "keras.datasets.fashion_mnist.load_data"):
        data.load_dataset("fashion_mnist")
    with pytest.raises(ValueError, match="dataset 'cifar10' is not known: use one of"):
        data.load_dataset("cifar10")


def test_the_shared_fashion_mnist_file_is_fashion_mnist():
    """On these machines and in CI the variable names Debian's Fashion-MNIST, converted: check it is."""
    import os

    if not os.environ.get(data.FASHION_MNIST_ENV):
        pytest.skip(f"{data.FASHION_MNIST_ENV} is not set")
    clothes = data.load_dataset("fashion_mnist")
    assert clothes.x_train.shape == (60000, 28, 28, 1) and clothes.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(clothes.y_train).tolist() == [6000] * 10  # ten classes of 6,000, as Zalando's set has
    assert clothes.x_train.mean() > 0.25  # clothes cover more of the image than digits (MNIST's mean: 0.13)
