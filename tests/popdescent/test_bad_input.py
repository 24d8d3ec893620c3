"""Bad calls are rejected before any training, with an error naming the argument and what
is allowed. Each fit case runs on the same population and must leave it untouched."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.helpers.models import make_model

import popdescent as pd

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4)).astype("float32")
Y = np.argmax(X[:, :3], axis=1).astype("int32")
X_VAL = rng.normal(size=(32, 4)).astype("float32")
Y_VAL = np.argmax(X_VAL[:, :3], axis=1).astype("int32")
DROP = object()  # leave the argument out


def with_nan(array):
    array = array.copy()
    array[3, 1] = np.nan
    return array


# (fit arguments that replace the good ones, exception type, message naming the argument)
FIT_CASES = {
    "x missing": ({"x": None}, ValueError, "x is required"),
    "x a string": ({"x": "images.npy"}, TypeError, "x must be a numeric array"),
    "x of objects": ({"x": [[object()] * 4] * 64}, TypeError, "x must be a numeric array"),
    "x empty": ({"x": X[:0], "y": Y[:0]}, ValueError, "x must hold at least one example"),
    "x with NaN": ({"x": with_nan(X)}, ValueError, "x must be finite, got 1 NaN"),
    "y with inf": ({"y": np.where(np.arange(64) == 5, np.inf, Y.astype("float32"))},
                   ValueError, "y must be finite"),
    "x and y lengths differ": ({"y": Y[:50]}, ValueError,
                               r"x and y must have the same length .* got x: 64, y: 50"),
    "inputs of different lengths": (
        {"x": [X[:, :2], X[:50, 2:]]}, ValueError,
        r"x and y must have the same length .* got x\[0\]: 64, x\[1\]: 50, y: 64"),
    "two inputs for a one-input model": (
        {"x": [X, X]}, ValueError, r"x holds 2 array\(s\); the model has 1 inputs"),
    "NaN in one input of a dict": ({"x": {"features": with_nan(X)}}, ValueError,
                                   r"x\['features'\] must be finite, got 1 NaN"),
    "sample_weight length differs": (
        {"sample_weight": np.ones(60)}, ValueError,
        r"x, y and sample_weight must have the same length .* sample_weight: 60"),
    "sample_weight with NaN": ({"sample_weight": np.where(np.arange(64) == 2, np.nan, 1.0)},
                               ValueError, "sample_weight must be finite"),
    "class_weight key not a class index": (
        {"class_weight": {"cat": 1.0}}, ValueError,
        "class_weight keys must be class indices .integers >= 0., got 'cat'"),
    "class_weight missing a class of y": (
        {"class_weight": {0: 1.0, 1: 2.0}}, ValueError,
        r"class_weight has no weight for the classes \[2\] found in y"),
    "class_weight negative": ({"class_weight": {0: 1.0, 1: -2.0, 2: 1.0}}, ValueError,
                              r"class_weight\[1\] must be a finite number >= 0, got -2.0"),
    "validation_split above 1": ({"validation_split": 1.5, "validation_data": DROP}, ValueError,
                                 "validation_split must be a finite number >= 0.0 and <= 1.0"),
    "validation_split and validation_data": (
        {"validation_split": 0.2}, ValueError,
        "give fit either validation_data or validation_split, not both"),
    "empty dataset": ({"x": tf.data.Dataset.from_tensor_slices((X[:0], Y[:0])).batch(16),
                       "y": DROP, "batch_size": DROP}, ValueError,
                      "x is an empty dataset"),
    "dataset yielding x only": ({"x": tf.data.Dataset.from_tensor_slices(X).batch(16),
                                 "y": DROP, "batch_size": DROP}, ValueError,
                                r"x must yield \(x, y\) or \(x, y, sample_weight\) tuples"),
    "dataset of the wrong feature shape": (
        {"x": tf.data.Dataset.from_tensor_slices((X[:, :3], Y)).batch(16), "y": DROP,
         "batch_size": DROP}, ValueError,
        r"x has feature shape \(3,\), the model expects \(4,\)"),
    "dataset with NaN": ({"x": tf.data.Dataset.from_tensor_slices((with_nan(X), Y)).batch(16),
                          "y": DROP, "batch_size": DROP}, ValueError,
                         "x yields NaN or infinite values in its first batch"),
    "dataset and y": ({"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16),
                       "batch_size": DROP}, ValueError, "y must be None when x is a"),
    "class_weight missing a class of a dataset's first batch": (
        {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16), "y": DROP,
         "batch_size": DROP, "class_weight": {0: 1.0}}, ValueError,
        r"class_weight has no weight for the classes \[1, 2\] found in y"),
    "generator without steps_per_epoch": (
        {"x": ((X[:16], Y[:16]) for _ in range(100)), "y": DROP, "batch_size": DROP,
         "steps_per_epoch": DROP}, ValueError,
        "steps_per_epoch is required when x is a generator without a known length"),
    "generator yielding x only": ({"x": (X[:16] for _ in range(100)), "y": DROP,
                                   "batch_size": DROP}, ValueError,
                                  r"x must yield \(x, y\) or \(x, y, sample_weight\) tuples"),
    "empty generator": ({"x": (batch for batch in []), "y": DROP, "batch_size": DROP},
                        ValueError, "x is an empty generator"),
    "endless validation dataset without validation_steps": (
        {"validation_data": tf.data.Dataset.from_tensor_slices((X_VAL, Y_VAL)).batch(8)
         .repeat()}, ValueError,
        "validation_data is an endless dataset: pass validation_steps"),
    "cross_validation=False on a dataset": (
        {"x": tf.data.Dataset.from_tensor_slices((X, Y)).batch(16), "y": DROP,
         "batch_size": DROP,
         "callbacks": [pd.PopDescent(elites=1, cv_batch_size=16, cross_validation=False)]},
        ValueError, r"cross_validation=False\) measures fitness on training arrays"),
    "x features differ from the model's": (
        {"x": np.zeros((64, 5), "float32")}, ValueError,
        r"x has feature shape \(5,\), the model expects \(4,\)"),
    "x rank differs from the model's": (
        {"x": np.zeros((64, 4, 1), "float32")}, ValueError,
        r"x has shape \(64, 4, 1\); the model expects \(batch, \*\(4,\)\)"),
    "batch larger than the data": ({"batch_size": 65}, ValueError,
                                   r"batch_size must be in \[1, len\(x\)\] = \[1, 64\], got 65"),
    "batch_size 0": ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
    "batch_size a float": ({"batch_size": 16.0}, ValueError,
                           "batch_size must be an integer >= 1, got 16.0"),
    "steps_per_epoch 0": ({"steps_per_epoch": 0}, ValueError,
                          "steps_per_epoch must be an integer >= 1, got 0"),
    "steps_per_epoch negative": ({"steps_per_epoch": -3}, ValueError,
                                 "steps_per_epoch must be an integer >= 1, got -3"),
    "epochs 0": ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0"),
    "epochs a string": ({"epochs": "10"}, ValueError, "epochs must be an integer >= 1, got '10'"),
    "initial_epoch not below epochs": ({"initial_epoch": 2, "epochs": 2}, ValueError,
                                       "initial_epoch must be < epochs = 2, got 2"),
    "initial_epoch negative": ({"initial_epoch": -1}, ValueError,
                               "initial_epoch must be an integer >= 0, got -1"),
    "validation_data an array": (
        {"validation_data": X_VAL}, ValueError,
        r"validation_data must be a tuple \(x_val, y_val\), .*got ndarray"),
    "validation x and y lengths differ": (
        {"validation_data": (X_VAL, Y_VAL[:5])}, ValueError,
        "validation_data's x and y must be non-empty and of the same length, got 32 and 5"),
    "validation features differ from training": (
        {"validation_data": (X_VAL[:, :3], Y_VAL)}, ValueError,
        r"validation_data\[0\] has feature shape \(3,\), the model expects \(4,\)"),
    "validation labels shaped differently": (
        {"validation_data": (X_VAL, Y_VAL[:, None])}, ValueError,
        r"validation_data shapes \(4,\), \(1,\) do not match"),
    "validation_freq 0": ({"validation_freq": 0}, ValueError,
                          "validation_freq must be an integer >= 1, got 0"),
    "shuffle": ({"shuffle": True}, ValueError, r"Population.fit does not take \['shuffle'\]"),
    "callbacks not a list": ({"callbacks": "PopDescent"}, TypeError,
                             "callbacks must be a list of keras.callbacks.Callback, got str"),
    "keras BackupAndRestore": (
        {"callbacks": [keras.callbacks.BackupAndRestore("/tmp/unused_backup")]}, ValueError,
        r"callbacks\[0\] is keras.callbacks.BackupAndRestore.*use popdescent.BackupAndRestore"),
    "elites not below the population size": (
        {"callbacks": [pd.PopDescent(elites=3)]}, ValueError,
        r"elites must be in \[1, size-1\] = \[1, 2\], got 3"),
    "cross-validation without validation data": (
        {"validation_data": DROP}, ValueError,
        r"PopDescent\(cross_validation=True\) needs validation data"),
}


@pytest.fixture(scope="module")
def population():
    return pd.Population(make_model(), size=3, seed=0)


def weights_of(pop):
    return [keras.ops.convert_to_numpy(v).copy() for v in pop.state_variables()]


@pytest.mark.parametrize("case", list(FIT_CASES))
def test_bad_fit_call_is_rejected_before_training(case, population):
    overrides, error, message = FIT_CASES[case]
    arguments = {
        "x": X, "y": Y, "batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "verbose": 0,
        "validation_data": (X_VAL, Y_VAL),
        "callbacks": [pd.PopDescent(elites=1, cv_batch_size=16)],
    }
    arguments.update(overrides)
    arguments = {name: value for name, value in arguments.items() if value is not DROP}
    before = weights_of(population)
    with pytest.raises(error, match=message):
        population.fit(**arguments)
    assert population.gradient_steps == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(population)))


def frozen_model():
    model = make_model()
    for layer in model.layers:
        layer.trainable = False
    return model


def scheduled_model():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    return make_model(optimizer=keras.optimizers.Adam(schedule))


def uncompiled_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


# (model factory, Population arguments, exception type, message naming the argument)
CONSTRUCTION_CASES = {
    "size 1": (make_model, {"size": 1}, ValueError, "size must be an integer >= 2, got 1"),
    "size a string": (make_model, {"size": "5"}, ValueError,
                      "size must be an integer >= 2, got '5'"),
    "size a float": (make_model, {"size": 2.5}, ValueError,
                     "size must be an integer >= 2, got 2.5"),
    "model not compiled": (uncompiled_model, {"size": 2}, ValueError,
                           "model_or_builder must be compiled with an optimizer and a loss"),
    "model without trainable weights": (frozen_model, {"size": 2}, ValueError,
                                        "model_or_builder has no trainable weights"),
    "not a model": (lambda: 42, {"size": 2}, TypeError,
                    "model_or_builder must be a compiled keras.Model, a callable"),
    "hyperparameters not a dict": (
        make_model, {"size": 2, "hyperparameters": [("learning_rate", 1e-3)]}, TypeError,
        "hyperparameters must be a dict name -> prior, got list"),
    "hyperparameter not a prior": (
        make_model, {"size": 2, "hyperparameters": {"learning_rate": "fast"}}, TypeError,
        r"hyperparameters\['learning_rate'\] must be a prior .* or a number, got 'fast'"),
    "hyperparameter the optimizer lacks": (
        make_model, {"size": 2, "hyperparameters": {"momentum": pd.Uniform(0.0, 0.9)}},
        ValueError,
        r"untunable hyperparameter 'momentum'.*allowed names: \['l2', .*'learning_rate'"),
    "learning-rate schedule": (
        scheduled_model, {"size": 2, "hyperparameters": {"learning_rate": pd.Fixed(1e-3)}},
        ValueError, "a learning-rate schedule cannot be tuned"),
    "negative learning rate": (
        make_model, {"size": 2, "hyperparameters": {"learning_rate": pd.Uniform(-1e-3, 1e-2)}},
        ValueError, r"hyperparameters\['learning_rate'\] must stay within \(0.0, inf\).*-0.001"),
    "zero learning rate": (
        make_model, {"size": 2, "hyperparameters": {"learning_rate": 0.0}}, ValueError,
        r"hyperparameters\['learning_rate'\] must stay within \(0.0, inf\)"),
    "negative learning rate among choices": (
        make_model, {"size": 2, "hyperparameters": {"learning_rate": pd.Choice([1e-3, -1e-3])}},
        ValueError, r"hyperparameters\['learning_rate'\] must stay within \(0.0, inf\)"),
    "negative l2": (
        make_model, {"size": 2, "hyperparameters": {"l2": pd.Uniform(-1.0, 1.0)}}, ValueError,
        r"hyperparameters\['l2'\] must stay within \[0.0, inf\)"),
    "negative seed": (make_model, {"size": 2, "seed": -1}, ValueError,
                      "seed must be a non-negative integer or None, got -1"),
    "l2_layers naming no layer": (
        make_model, {"size": 2, "hyperparameters": {"l2": 1e-4}, "l2_layers": ["conv9"]},
        ValueError,
        r"l2_layers names layers without a trainable kernel in the model: \['conv9'\]"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTION_CASES))
def test_bad_population_is_rejected_before_training(case):
    factory, arguments, error, message = CONSTRUCTION_CASES[case]
    model = factory()
    before = [np.array(w) for w in model.get_weights()] if isinstance(model, keras.Model) else []
    with pytest.raises(error, match=message):
        pd.Population(model, **arguments)
    if isinstance(model, keras.Model):
        assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and optimizer.built:
            assert int(optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("arguments, message", [
    ({"weight_noise": float("nan")}, "weight_noise must be a finite number >= 0, got nan"),
    ({"cv_batch_size": 0}, "cv_batch_size must be an integer >= 1, got 0"),
    ({"seed": -2}, "seed must be a non-negative integer or None, got -2"),
])
def test_bad_strategy_is_rejected_when_built(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.PopDescent(**arguments)


def test_the_table_has_at_least_twenty_cases():
    assert len(FIT_CASES) + len(CONSTRUCTION_CASES) >= 20


def test_without_batch_size_fewer_examples_than_keras_default_make_one_batch(population):
    """Keras' default batch of 32, clamped to the data as Keras' one partial batch is."""
    history = population.fit(X[:20], Y[:20], epochs=2, verbose=0)
    assert population.training_data.batch_size == 20
    assert population.gradient_steps == 2 * population.size
    assert len(history.history["loss"]) == 2
