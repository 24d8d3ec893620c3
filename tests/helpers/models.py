"""The tiny compiled model the library's tests train: a Dense(8) classifier in seconds."""

import keras


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
