"""Fashion-MNIST and CIFAR-10 with the paper's train / validation / test splits.

The paper trains on the official training set and halves the official test set: the first
5,000 images are the validation set the population's fitness is measured on, the last 5,000
the held-out test set. `load_dataset` reads the standard file layouts from a local directory,
so offline machines, CI and online machines share one code path, and falls back to the Keras
download only where no local copy is found.

Where `load_dataset` looks, in order:
  1. `data_dir`, when given, and nothing else: a caller who names a directory wants that data,
     not a silent substitute from elsewhere;
  2. the directory in the environment variable `POPDESCENT_DATA`;
  3. `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`), fmnist only;
  4. `keras.datasets.<name>.load_data()`, unless `download=False` or the environment variable
     `POPDESCENT_DOWNLOAD` is "0" (the test suite sets it: tests never download).
Each directory is searched itself and in its standard subdirectory (`fashion-mnist/`,
`cifar-10-batches-py/`).
"""

import dataclasses
import functools
import gzip
import os
import pickle
import socket
import struct
import zlib
from pathlib import Path

import keras
import numpy as np

DATASET_NAMES = ("fmnist", "cifar10")
ENVIRONMENT_VARIABLE = "POPDESCENT_DATA"
# "0" switches the Keras download off for the whole process and its children.
DOWNLOAD_VARIABLE = "POPDESCENT_DOWNLOAD"
SYSTEM_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_SOURCE = "keras.datasets download"
# Seconds any one socket operation of the Keras download may block. Keras passes no timeout
# to urllib, so on a machine whose firewall drops packets the download would hang for minutes.
DOWNLOAD_TIMEOUT_S = 30
NUM_CLASSES = 10

_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"
_SUBDIRECTORIES = {"fmnist": "fashion-mnist", "cifar10": "cifar-10-batches-py"}
_LABELS = {"fmnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_HOW_TO_GET = {
    "fmnist": (
        "apt-get install dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist), "
        f"or set {ENVIRONMENT_VARIABLE} / data_dir to a directory holding the four "
        "*-ubyte.gz files of https://github.com/zalandoresearch/fashion-mnist"
    ),
    "cifar10": (
        f"set {ENVIRONMENT_VARIABLE} or data_dir to a cifar-10-batches-py directory (or its "
        "parent), e.g. extracted from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """No local copy of a dataset was found and the Keras download failed or was disabled."""


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: field-wise == on arrays is ambiguous.
class DatasetSplits:
    """One dataset split as in the paper, as fresh writable arrays.

    x arrays are float32 pixels / 255 in [0, 1], channels-last: (n, 28, 28, 1) for
    Fashion-MNIST, (n, 32, 32, 3) for CIFAR-10. y arrays are 1-D int32 labels in 0..9.

    Attributes:
        name: "fmnist" or "cifar10".
        label: what reports call the data: "Fashion-MNIST", "CIFAR-10", or
            "CIFAR-10 (JPEG copy)" for a copy whose README says it was rebuilt from JPEGs.
        source: the directory the files came from, or "keras.datasets download".
    """

    name: str
    label: str
    source: str
    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    x_val: np.ndarray = dataclasses.field(repr=False)
    y_val: np.ndarray = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray = dataclasses.field(repr=False)


def load_dataset(name, data_dir=None, train_subset=None, seed=0, download=True):
    """Loads Fashion-MNIST or CIFAR-10 split into train, validation and test sets.

    Local files are read once per process and kept, as read-only uint8 arrays, in an
    in-memory cache (nothing is written to disk); every call returns fresh float32 copies the
    caller may modify.

    Args:
        name: "fmnist" or "cifar10".
        data_dir: directory holding the standard files (see the module docstring); when given,
            the only place searched.
        train_subset: if given, keep this many training examples, drawn without replacement by
            `numpy.random.default_rng(seed)` (the paper's 10k-example ablation).
        seed: seed of the training-subset draw.
        download: whether to fall back to the Keras download when no local copy is found
            (never when the environment variable `POPDESCENT_DOWNLOAD` is "0").

    Returns:
        A `DatasetSplits`.

    Raises:
        DatasetNotFoundError: no local copy was found and the download failed or was disabled.
        ValueError: an argument is invalid, or a data file is corrupt (the message names it).

    Example:
        >>> splits = load_dataset("fmnist", download=False)
        >>> splits.x_train.shape, splits.x_val.shape, splits.x_test.shape
        ((60000, 28, 28, 1), (5000, 28, 28, 1), (5000, 28, 28, 1))
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    if train_subset is not None and (
        isinstance(train_subset, bool) or not isinstance(train_subset, (int, np.integer))
    ):
        raise ValueError(f"train_subset must be None or an int, got {train_subset!r}")
    label, source, raw = _load_raw(name, data_dir, download)
    x_train, y_train, x_test, y_test = raw
    if train_subset is not None:
        if not 1 <= train_subset <= len(x_train):
            raise ValueError(
                f"train_subset must be in [1, n_train] = [1, {len(x_train)}], got {train_subset}"
            )
        kept = np.sort(np.random.default_rng(seed).choice(len(x_train), train_subset, False))
        x_train, y_train = x_train[kept], y_train[kept]
    half = len(x_test) // 2
    return DatasetSplits(
        name=name,
        label=label,
        source=source,
        x_train=_to_unit_float(x_train),
        y_train=np.array(y_train, dtype=np.int32),
        x_val=_to_unit_float(x_test[:half]),
        y_val=np.array(y_test[:half], dtype=np.int32),
        x_test=_to_unit_float(x_test[half:]),
        y_test=np.array(y_test[half:], dtype=np.int32),
    )


def _to_unit_float(pixels):
    # One pass into a new float32 array; astype(float32) / 255 would allocate twice.
    return np.divide(pixels, np.float32(255), dtype=np.float32)


def _load_raw(name, data_dir, download):
    """Returns (label, source, (x_train, y_train, x_test, y_test)) as uint8 / int arrays."""
    if data_dir is not None:
        bases = [(Path(data_dir), "data_dir argument")]
    else:
        bases = []
        if os.environ.get(ENVIRONMENT_VARIABLE):
            bases.append((Path(os.environ[ENVIRONMENT_VARIABLE]), ENVIRONMENT_VARIABLE))
        if name == "fmnist":
            bases.append((SYSTEM_FMNIST_DIR, "dataset-fashion-mnist package"))
    switched_off = download and os.environ.get(DOWNLOAD_VARIABLE) == "0"
    download = download and not switched_off
    tried = []
    for base, origin in bases:
        for directory in (base, base / _SUBDIRECTORIES[name]):
            missing = _missing_files(name, directory)
            if not missing:
                directory = directory.resolve()
                return _label(name, directory), str(directory), _read_raw(name, directory)
            tried.append(f"{directory} ({origin}): {missing}")
    if data_dir is None and download:
        try:
            return _LABELS[name], DOWNLOAD_SOURCE, _download(name)
        except Exception as error:  # Keras raises a bare Exception for network failures.
            tried.append(f"{DOWNLOAD_SOURCE}: failed ({type(error).__name__}: {error})")
    elif data_dir is None:
        why = f"{DOWNLOAD_VARIABLE}=0" if switched_off else "download=False"
        tried.append(f"{DOWNLOAD_SOURCE}: disabled ({why})")
    else:
        tried.append(f"{DOWNLOAD_SOURCE}: not tried, because data_dir was given")
    raise DatasetNotFoundError(
        f"{_LABELS[name]} ({name!r}) not found. Places tried, in order:\n  - "
        + "\n  - ".join(tried)
        + f"\nTo get the data: {_HOW_TO_GET[name]}."
    )


def _missing_files(name, directory):
    """Says why `directory` does not hold the dataset, or returns "" when it does."""
    if not directory.is_dir():
        return "no such directory"
    if name == "fmnist":
        absent = [
            f"{file}[.gz]"
            for file in _FMNIST_FILES
            if not (directory / f"{file}.gz").is_file() and not (directory / file).is_file()
        ]
    else:
        absent = [
            file
            for file in (*_CIFAR_TRAIN_BATCHES, _CIFAR_TEST_BATCH)
            if not (directory / file).is_file()
        ]
    return f"missing {', '.join(absent)}" if absent else ""


def _label(name, directory):
    # The shared CIFAR-10 copy was rebuilt from per-image JPEGs, so its pixels differ slightly
    # from the official release; its README (beside or above the batches) says so.
    if name == "cifar10":
        for readme in (directory / "README.md", directory.parent / "README.md"):
            if readme.is_file() and "jpeg" in readme.read_text(errors="replace").lower():
                return "CIFAR-10 (JPEG copy)"
    return _LABELS[name]


def _read_raw(name, directory):
    files = _data_files(name, directory)
    # Size and modification time in the key, so a file rewritten in place is read again.
    signature = tuple((str(file), file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    return _read_files_cached(name, signature)


def _data_files(name, directory):
    if name == "cifar10":
        return [directory / file for file in (*_CIFAR_TRAIN_BATCHES, _CIFAR_TEST_BATCH)]
    return [
        directory / f"{file}.gz" if (directory / f"{file}.gz").is_file() else directory / file
        for file in _FMNIST_FILES
    ]


@functools.lru_cache(maxsize=4)
def _read_files_cached(name, signature):
    files = [Path(path) for path, _, _ in signature]
    if name == "fmnist":
        arrays = _read_fmnist(*files)
    else:
        arrays = _read_cifar(files[:-1], files[-1])
    for array in arrays:
        array.setflags(write=False)  # Shared by every caller through the cache.
    return arrays


def _read_fmnist(train_images, train_labels, test_images, test_labels):
    arrays = []
    for images_file, labels_file in ((train_images, train_labels), (test_images, test_labels)):
        images = _read_idx(images_file, ndim=3, image_shape=(28, 28))
        labels = _read_idx(labels_file, ndim=1, image_shape=())
        if len(images) != len(labels):
            raise ValueError(
                f"{labels_file}: holds {len(labels)} labels, but {images_file.name} holds "
                f"{len(images)} images"
            )
        _check_labels(labels, labels_file)
        arrays += [images[..., np.newaxis], labels]
    return tuple(arrays)


def _read_idx(path, ndim, image_shape):
    """Parses an IDX file of unsigned bytes (the MNIST format), checking header and size."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: not a valid gzip file ({error})") from error
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path}: {len(data)} bytes, shorter than the {header_size}-byte IDX header"
        )
    # Magic number: two zero bytes, type code 0x08 (unsigned byte), number of dimensions.
    magic, expected_magic = struct.unpack(">I", data[:4])[0], 0x0800 + ndim
    if magic != expected_magic:
        raise ValueError(
            f"{path}: IDX magic number must be 0x{expected_magic:08x} (unsigned bytes, {ndim} "
            f"dimensions), got 0x{magic:08x}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    if shape[1:] != image_shape:
        expected_shape = "(n" + "".join(f", {size}" for size in image_shape) + ")"
        raise ValueError(f"{path}: dimensions must be {expected_shape}, got {shape}")
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise ValueError(
            f"{path}: the header's dimensions {shape} need {expected_size} bytes, "
            f"the file holds {len(data)} (truncated or padded)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _read_cifar(train_files, test_file):
    train = [_read_cifar_batch(file) for file in train_files]
    x_test, y_test = _read_cifar_batch(test_file)
    # Contiguous like the concatenated training images, so later conversions read it in order.
    x_test = np.ascontiguousarray(x_test)
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
    )


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batches hold (dicts, lists, numpy arrays), so a stray file
    cannot run arbitrary code the way plain `pickle.load` lets it."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # Pickled by numpy 1 (the official files).
        ("numpy._core.multiarray", "_reconstruct"),  # Pickled by numpy 2.
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a batch")
        return super().find_class(module, name)


def _read_cifar_batch(path):
    """Reads one pickled batch: b"data" (n x 3072 uint8, R, G, B planes) and b"labels"."""
    with open(path, "rb") as file:
        try:
            batch = _NumpyArrayUnpickler(file, encoding="bytes").load()
        # Garbage bytes make the unpickler raise almost any exception type.
        except Exception as error:
            raise ValueError(
                f"{path}: not a readable CIFAR-10 batch pickle ({type(error).__name__}: {error})"
            ) from error
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
        raise ValueError(f"{path}: must hold a dict with keys b'data' and b'labels'")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: b'data' must be a uint8 array of shape (n, 3072), got {data.dtype} "
            f"{data.shape}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: b'labels' must be {len(data)} integers (one per image), got "
            f"{labels.dtype} {labels.shape}"
        )
    _check_labels(labels, path)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # Planes to channels-last.
    return images, labels


def _check_labels(labels, path):
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(
            f"{path}: labels must be in [0, {NUM_CLASSES - 1}], got values in "
            f"[{labels.min()}, {labels.max()}]"
        )


def _download(name):
    module = {"fmnist": keras.datasets.fashion_mnist, "cifar10": keras.datasets.cifar10}[name]
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    finally:
        socket.setdefaulttimeout(previous_timeout)
    if x_train.ndim == 3:  # Keras gives Fashion-MNIST without the channel axis.
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    # Keras gives CIFAR-10 labels as (n, 1).
    return x_train, y_train.reshape(-1), x_test, y_test.reshape(-1)
