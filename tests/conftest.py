"""Shared fixtures: tiny data and tiny compiled models, so core tests run in seconds.

Tests never download: `POPDESCENT_DOWNLOAD=0` switches `popdescent.inputs.datasets`' Keras fallback
off here and in every subprocess a test starts; a test without its data files skips, or fails
under `CI=true` (`tests.helpers.data.skip_without_data`).
"""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["POPDESCENT_DOWNLOAD"] = "0"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers.models import make_model  # noqa: E402


LAYER_ORDER = ("tests/popdescent/", "tests/baselines/", "tests/experiments/")


def pytest_collection_modifyitems(items):
    """The library's tests first, then the layers above it, then the repository-wide checks:
    the library's memory test then measures a process that has not yet run the harness's
    end-to-end runs (in the order of the directories' names it grew by ~50 MiB there)."""

    def layer(item):
        path = item.nodeid
        return next((rank for rank, prefix in enumerate(LAYER_ORDER)
                     if path.startswith(prefix)), len(LAYER_ORDER))

    items.sort(key=layer)  # stable: within a layer, files and tests keep their order


@pytest.fixture(scope="module", autouse=True)
def release_keras_state_after_each_module():
    """Frees each test module's models and traced functions once the module is done, so the
    whole suite's memory stays flat (it grew past 7 GiB without this)."""
    yield
    keras.backend.clear_session()
    gc.collect()


@pytest.fixture
def data():
    """64 training and 32 validation examples of a 3-class problem on 4 features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int32")
    return x[:64], y[:64], x[64:], y[64:]


@pytest.fixture
def model():
    return make_model()
