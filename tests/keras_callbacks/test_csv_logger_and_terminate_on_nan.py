"""keras/src/callbacks/csv_logger_test.py and terminate_on_nan_test.py (keras 3.15.1) on a
Population. A population's loss is the mean over its finite members, so TerminateOnNaN stops
it when every member has diverged (these tests diverge all of them, as upstream's one model);
one diverged member, which a strategy replaces, does not stop it (tests/popdescent/population/
test_nonfinite.py)."""

import csv
import os
import re

import numpy as np
import pytest
from keras import callbacks, initializers, layers, optimizers
from keras.src.utils import numerical_utils

import popdescent as pd
from tests.keras_callbacks.conftest import population

TRAIN_SAMPLES, TEST_SAMPLES, INPUT_DIM, BATCH_SIZE = 10, 10, 3, 4


def test_csv_logger(tmp_path):
    filepath, sep = os.path.join(tmp_path, "log.tsv"), "\t"
    x_train, y_train = np.random.random((TRAIN_SAMPLES, INPUT_DIM)), np.random.random((10, 1))
    x_test, y_test = np.random.random((TEST_SAMPLES, INPUT_DIM)), np.random.random((10, 1))

    def make_model():
        return population(lambda: [layers.Dense(2, activation="relu"), layers.Dense(1)],
                          (INPUT_DIM,), loss="mse", optimizer="sgd", metrics=["mse"])

    def fit(model, cbks, **kwargs):
        return model.fit(x_train, y_train, batch_size=BATCH_SIZE, verbose=0, callbacks=cbks,
                         validation_data=(x_test, y_test), **kwargs)

    fit(make_model(), [callbacks.CSVLogger(filepath, separator=sep)], epochs=1)
    assert os.path.exists(filepath)
    with open(filepath) as csvfile:
        assert csv.Sniffer().sniff(csvfile.read()).delimiter == sep

    model, cbks = make_model(), [callbacks.CSVLogger(filepath, separator=sep, append=True)]
    fit(model, cbks, epochs=1)
    fit(model, cbks, epochs=2)
    with open(filepath) as csvfile:
        list_lines = csvfile.readlines()
    # Upstream counts 4 separators (epoch, loss, mse, val_loss, val_mse); a population writes
    # its members' columns too: the model's columns are there and every line is whole.
    header = list_lines[0].strip().split(sep)
    assert {"epoch", "loss", "mse", "val_loss", "val_mse"} <= set(header)
    assert all(line.count(sep) == len(header) - 1 for line in list_lines)
    assert len(list_lines) == 5
    assert len(re.findall("epoch", " ".join(list_lines))) == 1
    os.remove(filepath)

    hist = fit(make_model(), [callbacks.CSVLogger(filepath, separator=sep)],
               validation_freq=3, epochs=5)
    with open(filepath) as csvfile:
        for idx, row in enumerate(csv.DictReader(csvfile, delimiter=sep), 1):
            assert "val_loss" in row
            if idx == 3:
                assert row["val_loss"] == str(hist.history["val_loss"][0])
            else:
                assert row["val_loss"] == "NA"


def diverging_population():
    """Upstream's model whose kernels start at 1e5, as every member."""
    return population(lambda: [layers.Dense(2, activation="relu",
                                            kernel_initializer=initializers.Constant(1e5))
                               for _ in range(5)] + [layers.Dense(2)], (INPUT_DIM,),
                      loss="mean_squared_error", optimizer="sgd")


def classification_data():
    x_train = np.random.random((TRAIN_SAMPLES, INPUT_DIM))
    y_train = numerical_utils.to_categorical(np.random.choice(2, size=TRAIN_SAMPLES))
    x_test = np.random.random((TEST_SAMPLES, INPUT_DIM))
    y_test = numerical_utils.to_categorical(np.random.choice(2, size=TEST_SAMPLES))
    return x_train, y_train, x_test, y_test


def test_stop_training_csv(tmp_path):
    csv_logfile = os.path.join(tmp_path, "csv_logger.csv")
    x_train, y_train, x_test, y_test = classification_data()
    history = diverging_population().fit(
        x_train, y_train, batch_size=BATCH_SIZE, validation_data=(x_test, y_test), verbose=0,
        callbacks=[callbacks.TerminateOnNaN(), callbacks.CSVLogger(csv_logfile)], epochs=20)
    loss = history.history["loss"]
    assert len(loss) == 1
    assert np.isnan(loss[0]) or np.isinf(loss[0])
    with open(csv_logfile) as f:
        values = [x for x in csv.reader(f) if x]
    assert "nan" in values[-1], "NaN not logged in CSV Logger."


def test_terminate_on_nan():
    x_train, y_train, x_test, y_test = classification_data()
    history = diverging_population().fit(
        x_train, y_train, batch_size=BATCH_SIZE, validation_data=(x_test, y_test), verbose=0,
        callbacks=[callbacks.TerminateOnNaN()], epochs=20)
    loss = history.history["loss"]
    assert len(loss) == 1
    assert np.isnan(loss[0]) or np.isinf(loss[0])


def exploding():
    """A population refuses non-finite targets before training (upstream trains on y = inf):
    here every member's first step is finite and its rate of 1e30 makes the next one inf."""
    return population(lambda: [layers.Dense(1)], (1,), loss="mse",
                      optimizer=optimizers.SGD(learning_rate=1e30))


X, Y = np.array([[1.0], [2.0]]), np.array([[1.0], [2.0]])


def test_terminate_on_nan_graceful_stop():
    history = exploding().fit(X, Y, epochs=2, batch_size=1, verbose=0,
                              callbacks=[callbacks.TerminateOnNaN(raise_error=False)])
    assert len(history.history["loss"]) < 4


def test_terminate_on_nan_raise_error_raises_error():
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered"):
        exploding().fit(X, Y, epochs=1, batch_size=1, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_raise_error_terminate_does_not_trigger_on_train_end():
    class TrackingCallback(callbacks.Callback):
        train_end_called = False

        def on_train_end(self, logs=None):
            self.train_end_called = True

    tracking = TrackingCallback()
    with pytest.raises(RuntimeError):
        exploding().fit(X, Y, epochs=1, batch_size=1, verbose=0,
                        callbacks=[tracking, callbacks.TerminateOnNaN(raise_error=True)])
    assert not tracking.train_end_called


def test_raise_error_terminate_preserves_backup(tmp_path):
    # Keras' BackupAndRestore is refused on a population (tests/keras_callbacks/
    # test_backup_and_lambda.py); popdescent's takes its place.
    backup_dir = os.path.join(tmp_path, "backups")
    os.makedirs(backup_dir)
    fake_file = os.path.join(backup_dir, "checkpoint.txt")
    with open(fake_file, "w") as f:
        f.write("dummy checkpoint")
    with pytest.raises(RuntimeError):
        exploding().fit(X, Y, epochs=1, batch_size=1, verbose=0,
                        callbacks=[pd.BackupAndRestore(backup_dir),
                                   callbacks.TerminateOnNaN(raise_error=True)])
    assert os.path.exists(backup_dir) and os.path.exists(fake_file)


@pytest.mark.parametrize("raise_error", [False, True])
def test_normal_training_does_not_raise(raise_error):
    model = population(lambda: [layers.Dense(1)], (1,), optimizer="sgd", loss="mse")
    history = model.fit(X, Y, epochs=2, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN(raise_error=raise_error)])
    assert len(history.history["loss"]) == 2


def test_raise_error_terminate_stops_on_later_batch():
    with pytest.raises(RuntimeError) as error:
        exploding().fit(X, Y, epochs=1, batch_size=1, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN(raise_error=True)])
    assert "batch 1" in str(error.value)  # the first batch was finite
