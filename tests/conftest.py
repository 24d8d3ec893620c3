"""Shared fixtures: tiny data and tiny compiled models, so core tests run in seconds."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_model(optimizer=None, units=8, features=4, classes=3, metrics=("accuracy",)):
    """A Dense(units) classifier on `features` inputs, compiled with logits loss."""
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(units, activation="relu", name="hidden"),
        keras.layers.Dense(classes, name="logits"),
    ])
    model.compile(
        optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
    )
    return model


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
