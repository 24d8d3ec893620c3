"""Tests of popdescent.inputs.datasets: on the real files where present, on tiny written copies
always."""

import datetime
import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from popdescent.inputs.datasets import (
    SYSTEM_FMNIST_DIR,
    DatasetNotFoundError,
    DatasetSplits,
    load_dataset,
)
from tests.helpers.data import skip_without_data

REPO_ROOT = Path(__file__).resolve().parents[3]
CIFAR_BASE = Path(os.environ.get("POPDESCENT_DATA") or REPO_ROOT.parent / "shared" / "datasets")
CIFAR_DIR = CIFAR_BASE / "cifar-10-batches-py"


@pytest.fixture(scope="module")
def fmnist():
    if not SYSTEM_FMNIST_DIR.is_dir():
        skip_without_data(f"{SYSTEM_FMNIST_DIR} absent: apt-get install dataset-fashion-mnist")
    return load_dataset("fmnist", data_dir=SYSTEM_FMNIST_DIR, download=False)


@pytest.fixture(scope="module")
def cifar10():
    if not CIFAR_DIR.is_dir():
        skip_without_data(
            f"{CIFAR_DIR} absent: set POPDESCENT_DATA to the shared datasets directory")
    return load_dataset("cifar10", data_dir=CIFAR_BASE, download=False)


# Real files.


@pytest.mark.parametrize(
    "dataset, image_shape, train_size",
    [("fmnist", (28, 28, 1), 60000), ("cifar10", (32, 32, 3), 50000)],
)
def test_real_splits_have_paper_sizes_shapes_and_dtypes(
    request, dataset, image_shape, train_size
):
    splits = request.getfixturevalue(dataset)
    sizes = {"train": train_size, "val": 5000, "test": 5000}
    for split, size in sizes.items():
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        assert x.shape == (size, *image_shape)
        assert x.dtype == np.float32
        assert y.shape == (size,)
        assert y.dtype == np.int32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))


def test_fmnist_training_set_has_6000_examples_per_class(fmnist):
    assert np.bincount(fmnist.y_train).tolist() == [6000] * 10


def test_cifar10_training_set_has_5000_examples_per_class(cifar10):
    assert np.bincount(cifar10.y_train).tolist() == [5000] * 10


def test_fmnist_validation_and_test_are_halves_of_official_test_set(fmnist):
    raw = gzip.decompress((SYSTEM_FMNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    official = np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 28, 28, 1)
    labels = np.frombuffer(
        gzip.decompress((SYSTEM_FMNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()),
        np.uint8,
        offset=8,
    )
    np.testing.assert_array_equal(fmnist.x_val, official[:5000] / np.float32(255))
    np.testing.assert_array_equal(fmnist.x_test, official[5000:] / np.float32(255))
    np.testing.assert_array_equal(fmnist.y_val, labels[:5000])
    np.testing.assert_array_equal(fmnist.y_test, labels[5000:])


def test_cifar10_validation_and_test_are_halves_of_official_test_set(cifar10):
    with open(CIFAR_DIR / "test_batch", "rb") as file:
        official = pickle.load(file, encoding="bytes")
    # Pixel (row 3, column 5) of the green plane of the first and last official test images.
    green = 1024 + 3 * 32 + 5
    assert cifar10.x_val[0, 3, 5, 1] == official[b"data"][0, green] / np.float32(255)
    assert cifar10.x_test[-1, 3, 5, 1] == official[b"data"][-1, green] / np.float32(255)
    np.testing.assert_array_equal(cifar10.y_val, official[b"labels"][:5000])
    np.testing.assert_array_equal(cifar10.y_test, official[b"labels"][5000:])


def test_shared_cifar10_copy_is_labelled_as_jpeg_copy(cifar10):
    assert cifar10.label == "CIFAR-10 (JPEG copy)"
    assert cifar10.source == str(CIFAR_DIR.resolve())


def test_fmnist_is_labelled_fashion_mnist(fmnist):
    assert (fmnist.name, fmnist.label) == ("fmnist", "Fashion-MNIST")


def test_train_subset_is_a_seeded_sample_of_the_training_set(fmnist):
    first = load_dataset("fmnist", SYSTEM_FMNIST_DIR, train_subset=1000, seed=1, download=False)
    again = load_dataset("fmnist", SYSTEM_FMNIST_DIR, train_subset=1000, seed=1, download=False)
    other = load_dataset("fmnist", SYSTEM_FMNIST_DIR, train_subset=1000, seed=2, download=False)
    assert first.x_train.shape == (1000, 28, 28, 1)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.x_train, other.x_train)
    full_rows = {row.tobytes() for row in fmnist.x_train}
    assert all(row.tobytes() in full_rows for row in first.x_train)
    np.testing.assert_array_equal(first.x_val, fmnist.x_val)


def test_returned_arrays_are_fresh_copies(fmnist):
    splits = load_dataset("fmnist", SYSTEM_FMNIST_DIR, download=False)
    splits.x_train[0] = 7.0
    assert fmnist.x_train[0].max() <= 1.0


# Tiny files written in the standard formats.

TRAIN_SIZE, TEST_SIZE = 6, 4


def write_idx(path, array, magic=None):
    header = struct.pack(">I", magic if magic is not None else 0x0800 + array.ndim)
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_fmnist(directory, suffix=".gz"):
    """Writes a 6-train, 4-test Fashion-MNIST set; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (TRAIN_SIZE, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": np.arange(TRAIN_SIZE, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (TEST_SIZE, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.array([9, 8, 7, 6], dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for file, array in arrays.items():
        write_idx(directory / f"{file}{suffix}", array)
    return arrays


def write_cifar_batch(path, data, labels):
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"x"}))


def write_cifar(directory):
    """Writes five 2-image training batches and a 4-image test batch; returns the test data."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(1, 6):
        data = rng.integers(0, 256, (2, 3072), np.uint8)
        write_cifar_batch(directory / f"data_batch_{index}", data, [index, index - 1])
    test_data = rng.integers(0, 256, (TEST_SIZE, 3072), np.uint8)
    write_cifar_batch(directory / "test_batch", test_data, [0, 1, 2, 3])
    return test_data


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_tiny_fmnist_files_load_into_paper_splits(tmp_path, suffix):
    arrays = write_fmnist(tmp_path, suffix)
    splits = load_dataset("fmnist", data_dir=tmp_path, download=False)
    test_images = arrays["t10k-images-idx3-ubyte"][..., np.newaxis] / np.float32(255)
    np.testing.assert_array_equal(
        splits.x_train, arrays["train-images-idx3-ubyte"][..., np.newaxis] / np.float32(255)
    )
    np.testing.assert_array_equal(splits.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(splits.x_val, test_images[:2])
    np.testing.assert_array_equal(splits.x_test, test_images[2:])
    assert splits.y_val.tolist() == [9, 8] and splits.y_test.tolist() == [7, 6]
    assert splits.source == str(tmp_path.resolve())


def test_tiny_cifar_batches_load_channels_last(tmp_path):
    test_data = write_cifar(tmp_path / "cifar-10-batches-py")
    splits = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert splits.x_train.shape == (10, 32, 32, 3)
    assert splits.y_train.tolist() == [1, 0, 2, 1, 3, 2, 4, 3, 5, 4]
    # Each 3072-byte row is the red, then green, then blue 32x32 plane, row-major.
    for row, column, channel in [(0, 0, 0), (1, 2, 1), (31, 30, 2)]:
        offset = channel * 1024 + row * 32 + column
        assert splits.x_val[1, row, column, channel] == test_data[1, offset] / np.float32(255)
        assert splits.x_test[0, row, column, channel] == test_data[2, offset] / np.float32(255)
    assert splits.label == "CIFAR-10"


def test_cifar_copy_with_jpeg_readme_above_is_labelled_jpeg_copy(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "README.md").write_text("Rebuilt from a per-image JPEG copy.\n")
    assert load_dataset("cifar10", tmp_path, download=False).label == "CIFAR-10 (JPEG copy)"


def test_popdescent_data_environment_variable_is_searched(tmp_path, monkeypatch):
    write_fmnist(tmp_path / "fashion-mnist")
    monkeypatch.setenv("POPDESCENT_DATA", str(tmp_path))
    splits = load_dataset("fmnist", download=False)
    assert splits.source == str((tmp_path / "fashion-mnist").resolve())
    assert len(splits.x_train) == TRAIN_SIZE


@pytest.mark.parametrize("train_subset", [0, TRAIN_SIZE + 1])
def test_train_subset_outside_one_to_train_size_is_rejected(tmp_path, train_subset):
    write_fmnist(tmp_path)
    with pytest.raises(ValueError, match=rf"\[1, {TRAIN_SIZE}\], got {train_subset}"):
        load_dataset("fmnist", tmp_path, train_subset=train_subset, download=False)


def test_unknown_dataset_name_lists_allowed_names():
    with pytest.raises(ValueError, match=r"\('fmnist', 'cifar10'\), got 'mnist'"):
        load_dataset("mnist", download=False)


def test_missing_data_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("POPDESCENT_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10", download=False)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert f"{tmp_path} (POPDESCENT_DATA): missing data_batch_1" in message
    assert f"{tmp_path / 'cifar-10-batches-py'} (POPDESCENT_DATA): no such directory" in message
    assert "disabled (download=False)" in message
    assert "cifar-10-batches-py directory" in message


def test_missing_data_dir_is_the_only_place_tried(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fmnist", data_dir=tmp_path / "absent")
    message = str(caught.value)
    assert f"{tmp_path / 'absent'} (data_dir argument): no such directory" in message
    assert str(SYSTEM_FMNIST_DIR) not in message.split("To get the data")[0]
    assert "not tried, because data_dir was given" in message
    assert "apt-get install dataset-fashion-mnist" in message


def corrupt_bad_magic(directory):
    path = directory / "train-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((TRAIN_SIZE, 28, 28), np.uint8), magic=0x0903)
    return path, "magic number must be 0x00000803"


def corrupt_truncated(directory):
    path = directory / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-100]))
    return path, "truncated"


def corrupt_bad_gzip(directory):
    path = directory / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"this is not gzip data")
    return path, "not a valid gzip file"


def corrupt_cut_gzip_stream(directory):
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])
    return path, "not a valid gzip file"


def corrupt_wrong_image_size(directory):
    path = directory / "t10k-images-idx3-ubyte.gz"
    write_idx(path, np.zeros((TEST_SIZE, 27, 28), np.uint8))
    return path, r"dimensions must be \(n, 28, 28\)"


def corrupt_label_count(directory):
    path = directory / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(TEST_SIZE + 1, np.uint8))
    return path, "holds 5 labels"


def corrupt_label_value(directory):
    path = directory / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.full(TRAIN_SIZE, 10, np.uint8))
    return path, r"labels must be in \[0, 9\]"


@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_bad_magic,
        corrupt_truncated,
        corrupt_bad_gzip,
        corrupt_cut_gzip_stream,
        corrupt_wrong_image_size,
        corrupt_label_count,
        corrupt_label_value,
    ],
)
def test_corrupt_fmnist_file_raises_value_error_naming_it(tmp_path, corrupt):
    write_fmnist(tmp_path)
    path, problem = corrupt(tmp_path)
    with pytest.raises(ValueError, match=problem) as caught:
        load_dataset("fmnist", data_dir=tmp_path, download=False)
    assert str(path.resolve()) in str(caught.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x80\x04garbage that is no pickle", "not a readable CIFAR-10 batch pickle"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})[:-40], "not a readable"),
        (pickle.dumps(datetime.date(2020, 1, 1)), "datetime.date is not allowed"),
        (pickle.dumps([1, 2]), "must hold a dict"),
        (
            pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}),
            r"shape \(n, 3072\), got uint8 \(2, 3000\)",
        ),
        (
            pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
            "must be 2 integers",
        ),
    ],
    ids=["garbage", "truncated", "foreign-class", "not-a-dict", "wrong-size", "label-count"],
)
def test_corrupt_cifar_batch_raises_value_error_naming_it(tmp_path, content, problem):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(content)
    with pytest.raises(ValueError, match=problem) as caught:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str((tmp_path / "data_batch_3").resolve()) in str(caught.value)


def test_splits_are_immutable(tmp_path):
    write_fmnist(tmp_path)
    splits = load_dataset("fmnist", tmp_path, download=False)
    assert isinstance(splits, DatasetSplits)
    with pytest.raises(AttributeError):
        splits.name = "cifar10"


def test_the_download_variable_switches_the_download_off(tmp_path, monkeypatch):
    monkeypatch.setenv("POPDESCENT_DATA", str(tmp_path))
    monkeypatch.setenv("POPDESCENT_DOWNLOAD", "0")
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10")  # download=True, but the variable wins: no network is tried
    assert "disabled (POPDESCENT_DOWNLOAD=0)" in str(caught.value)


def test_the_suite_never_downloads():
    assert os.environ.get("POPDESCENT_DOWNLOAD") == "0"  # set by tests/conftest.py
