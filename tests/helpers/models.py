"""The tiny compiled model the library's tests train: a Dense(8) classifier in seconds."""

import keras
import numpy as np


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


def fast_model(optimizer=None):
    """`make_model` without metrics and with Adam(1e-2): the fastest model that learns in a
    few steps, for tests of the population's machinery rather than of training."""
    return make_model(optimizer if optimizer is not None else keras.optimizers.Adam(1e-2),
                      metrics=())


def toy_problem():
    """A 3-class problem `fast_model` learns in a few steps: (x, y, x_val, y_val), 96 + 64."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    return x[:96], y[:96], x[96:], y[96:]
