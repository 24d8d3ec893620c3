"""Keras' own callback tests (keras 3.15.1, `keras/src/callbacks/*_test.py`), adapted to train
a `Population` where upstream trains a model: what a Keras user relies on from a callback must
hold on a population. Upstream's assertions are kept wherever they apply to a population;
where one cannot, the test says why in one line and asserts the population's behaviour."""

import keras
import numpy as np
import pytest

import popdescent as pd


def population(layers, input_shape, size=3, seed=0, hyperparameters=None, **compile_arguments):
    """A Population of `size` members, each `keras.Sequential([Input, *layers()])` compiled
    with `compile_arguments`; no hyperparameter is tuned unless given (every member at the
    compiled rate, so upstream's learning-rate assertions hold as written)."""

    def build(index):
        model = keras.Sequential([keras.Input(input_shape), *layers()])
        arguments = dict(compile_arguments)
        optimizer = arguments.get("optimizer")
        if isinstance(optimizer, keras.optimizers.Optimizer):  # each member its own
            arguments["optimizer"] = optimizer.__class__.from_config(optimizer.get_config())
        model.compile(**arguments)
        return model

    return pd.Population(build, size=size, seed=seed,
                         hyperparameters={} if hyperparameters is None else hyperparameters)


def get_test_data(train_samples, test_samples, input_shape, num_classes, seed=1337):
    """keras.src.testing.test_utils.get_test_data: class-centred Gaussian blobs."""
    from keras.src.testing import test_utils

    return test_utils.get_test_data(
        train_samples=train_samples, test_samples=test_samples, input_shape=input_shape,
        num_classes=num_classes, random_seed=seed)


@pytest.fixture(autouse=True)
def seeded():
    np.random.seed(1337)
    keras.utils.set_random_seed(1337)
