"""scikit-learn's digits (8x8 images, 10 classes) and a tiny MLP for the Ray tests: real data
small enough that a trial's report takes milliseconds."""

import keras
import numpy as np


def digits():
    """((x, y), (x_val, y_val), (x_test, y_test)): 1000 / 400 / 397 examples, x in [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0).astype("float32"), y[order].astype("int32")
    return (x[:1000], y[:1000]), (x[1000:1400], y[1000:1400]), (x[1400:], y[1400:])


def build_mlp(config):
    """A Dense(16) MLP on the 64 pixels, Adam at the config's learning rate (default 1e-3)."""
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.Adam(config.get("learning_rate", 1e-3)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model
