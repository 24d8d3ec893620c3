"""keras/src/callbacks/model_checkpoint_test.py (keras 3.15.1) on a Population: upstream's
cases, one test each, with upstream's assertions; the checkpoint is the whole population."""

import os
import warnings

import numpy as np
import pytest
from keras import callbacks, layers, metrics, saving
from keras.src.utils import numerical_utils

import popdescent as pd
from tests.keras_callbacks.conftest import get_test_data, population

TRAIN_SAMPLES, TEST_SAMPLES, NUM_CLASSES, INPUT_DIM, NUM_HIDDEN, BATCH_SIZE = 30, 30, 3, 3, 5, 5


@pytest.fixture(scope="module")
def data():
    (x_train, y_train), (x_test, y_test) = get_test_data(
        seed=42, train_samples=TRAIN_SAMPLES, test_samples=TEST_SAMPLES,
        input_shape=(INPUT_DIM,), num_classes=NUM_CLASSES)
    return (x_train, numerical_utils.to_categorical(y_train, num_classes=NUM_CLASSES),
            x_test, numerical_utils.to_categorical(y_test, num_classes=NUM_CLASSES))


def get_model(metric=None):
    return population(lambda: [layers.Dense(NUM_HIDDEN, activation="relu"),
                               layers.Dense(NUM_CLASSES, activation="softmax")], (INPUT_DIM,),
                      loss="categorical_crossentropy", optimizer="sgd",
                      metrics=[metric or metrics.Accuracy("acc")])


def fit(model, data, cbks, batch_size=BATCH_SIZE, epochs=1):
    x_train, y_train, x_test, y_test = data
    return model.fit(x_train, y_train, batch_size=batch_size, validation_data=(x_test, y_test),
                     callbacks=cbks, epochs=epochs, verbose=0)


@pytest.mark.parametrize("monitor, mode, save_best_only", [
    ("val_loss", "auto", False),  # case 1
    ("val_loss", "min", False),  # case 2
    ("val_acc", "max", False),  # case 3
    ("val_acc", "max", True),  # case 4
])
def test_saves_every_epoch_or_the_best(data, tmp_path, monitor, mode, save_best_only):
    filepath = os.path.join(tmp_path, "subdir", "checkpoint.keras")  # the directory is made
    fit(get_model(), data, [callbacks.ModelCheckpoint(filepath, monitor=monitor, mode=mode,
                                                      save_best_only=save_best_only)])
    assert os.path.exists(filepath)


def test_an_unknown_metric_warns_and_saves(data, tmp_path):  # case 5
    filepath = os.path.join(tmp_path, "checkpoint.keras")
    with pytest.warns(UserWarning):
        fit(get_model(), data, [callbacks.ModelCheckpoint(filepath, monitor="unknown",
                                                          save_best_only=True, mode="min")])
    assert os.path.exists(filepath)


def test_an_unknown_mode_warns(tmp_path):  # case 6
    with warnings.catch_warnings(record=True) as warning_logs:
        warnings.simplefilter("always")
        callbacks.ModelCheckpoint(os.path.join(tmp_path, "c.keras"), monitor="val_acc",
                                  save_best_only=True, mode="unknown")
        assert "ModelCheckpoint mode 'unknown' is unknown" in str(warning_logs[-1].message)


@pytest.mark.parametrize("name, weights_only", [
    ("checkpoint.epoch{epoch:02d}.keras", False),  # case 8a
    ("checkpoint.epoch{epoch:02d}.weights.h5", True),  # case 8b
])
def test_an_integer_save_freq_counts_batches(data, tmp_path, name, weights_only):
    filepath = os.path.join(tmp_path, name)
    cbks = [callbacks.ModelCheckpoint(filepath, monitor="val_acc", mode="max", save_freq=15,
                                      save_weights_only=weights_only)]
    fit(get_model(), data, cbks, batch_size=6, epochs=10)  # 5 batches an epoch: every 3rd
    assert [os.path.exists(filepath.format(epoch=e)) for e in range(1, 10)] == [
        e % 3 == 0 for e in range(1, 10)]


def test_save_freq_is_checked(tmp_path):  # case 9
    filepath = os.path.join(tmp_path, "c.weights.h5")
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint(filepath, save_weights_only=True,
                                  save_freq="invalid_save_freq")
    callbacks.ModelCheckpoint(filepath, save_weights_only=True, save_freq="epoch")
    callbacks.ModelCheckpoint(filepath, save_weights_only=True, save_freq=3)


@pytest.mark.parametrize("name, weights_only", [
    ("checkpoint.epoch{epoch:02d}batch{batch:02d}.keras", False),  # case 10a
    ("checkpoint.epoch{epoch:02d}batch{batch:02d}.weights.h5", True),  # case 10b
])
def test_the_batch_in_the_file_name(data, tmp_path, name, weights_only):
    filepath = os.path.join(tmp_path, name)
    fit(get_model(), data, [callbacks.ModelCheckpoint(filepath, monitor="val_acc", save_freq=1,
                                                      save_weights_only=weights_only)],
        batch_size=15, epochs=5)
    for epoch in range(1, 6):
        for batch in (1, 2):
            assert os.path.exists(filepath.format(epoch=epoch, batch=batch))


@pytest.mark.parametrize("monitor, mode, threshold, saved", [
    ("val_acc", "max", -0.01, True),  # case 11
    ("val_loss", "auto", None, True),  # case 12
    ("val_loss", "min", 0, False),  # case 13
    ("val_loss", "auto", 0, False),  # case 14
])
def test_initial_value_threshold(data, tmp_path, monitor, mode, threshold, saved):
    filepath = os.path.join(tmp_path, "checkpoint.keras")
    fit(get_model(), data, [callbacks.ModelCheckpoint(
        filepath, monitor=monitor, save_best_only=True, initial_value_threshold=threshold,
        mode=mode)])
    assert os.path.exists(filepath) == saved


def test_no_save_when_auc_was_at_its_maximum_in_auto_mode(data, tmp_path):  # case 15
    # Upstream recompiles its model with AUC; a population's members are compiled when made.
    filepath = os.path.join(tmp_path, "checkpoint.keras")
    fit(get_model(metrics.AUC()), data, [callbacks.ModelCheckpoint(
        filepath, monitor="val_auc", save_best_only=True, initial_value_threshold=1,
        mode="auto")])
    assert not os.path.exists(filepath)


def test_model_checkpoint_loading(data, tmp_path):
    filepath = os.path.join(tmp_path, "checkpoint.model.keras")
    model = get_model()
    fit(model, data, [callbacks.ModelCheckpoint(filepath, monitor="val_loss",
                                                save_best_only=True, mode="auto")])
    ref_weights = model.get_weights()
    assert os.path.exists(filepath)
    new_model = saving.load_model(filepath)
    assert isinstance(new_model, pd.Population)
    new_weights = new_model.get_weights()
    assert len(ref_weights) == len(new_weights)
    for ref_w, w in zip(ref_weights, new_weights):
        np.testing.assert_allclose(w, ref_w)

    filepath = os.path.join(tmp_path, "checkpoint.weights.h5")
    model = get_model()
    fit(model, data, [callbacks.ModelCheckpoint(filepath, monitor="val_loss",
                                                save_best_only=True, save_weights_only=True)])
    ref_weights = model.get_weights()
    new_model = get_model()
    new_model.load_weights(filepath)
    new_weights = new_model.get_weights()
    assert len(ref_weights) == len(new_weights)
    for ref_w, w in zip(ref_weights, new_weights):
        np.testing.assert_allclose(w, ref_w)


def test_save_best_only_on_a_compiled_metric_keeps_the_best_epochs_population(data, tmp_path):
    """Issue 31: `monitor="val_acc"` is the population's mean over its members, so the file
    holds the population of the epoch where that mean was highest (not upstream)."""
    filepath = os.path.join(tmp_path, "best.weights.h5")
    model, saved = get_model(), []

    class Weights(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append([w.copy() for w in self.model.get_weights()])

    history = fit(model, data, [Weights(), callbacks.ModelCheckpoint(
        filepath, monitor="val_acc", mode="max", save_best_only=True,
        save_weights_only=True)], epochs=6)
    best = int(np.argmax(history.history["val_acc"]))
    restored = get_model()
    restored.load_weights(filepath)
    for a, b in zip(restored.get_weights(), saved[best], strict=True):
        np.testing.assert_array_equal(a, b)
