"""keras/src/callbacks/backup_and_restore_test.py and lambda_callback_test.py (keras 3.15.1) on
a Population.

Keras' BackupAndRestore is refused on a population: it keeps neither the strategies' random
state nor the lineage and does not write atomically. `popdescent.BackupAndRestore` takes its
place in upstream's cases; it backs up once per iteration (where strategies act), so
upstream's per-batch case (`save_freq=1`) has no counterpart, and it refuses a damaged backup
naming the file where Keras falls back to a second copy (`double_checkpoint`)."""

import logging
import os

import numpy as np
import pytest
from absl import logging as absl_logging
from keras import callbacks, layers, losses, optimizers

import popdescent as pd
from tests.keras_callbacks.conftest import population


class InterruptingCallback(callbacks.Callback):
    """Upstream's: raises after `epoch_int` epochs."""

    def __init__(self, epoch_int):
        super().__init__()
        self.epoch_count, self.epoch_int = 0, epoch_int

    def on_epoch_end(self, epoch, log=None):
        self.epoch_count += 1
        if self.epoch_count == self.epoch_int:
            raise RuntimeError("EpochInterruption")


class CanaryLayer(layers.Layer):
    """Upstream's: counts its calls in a non-trainable weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.counter = self.add_weight(shape=(), initializer="zeros", dtype="float32",
                                       trainable=False)

    def call(self, x):
        self.counter.assign_add(1)
        return x


def make_model():
    return population(lambda: [CanaryLayer(), layers.Dense(1)], (3,), loss="mse",
                      optimizer="sgd", metrics=["mse"])


def counters(model):
    return [int(member.layers[0].counter.value) for member in model.members]


def test_keras_backup_and_restore_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="cannot resume a Population exactly"):
        make_model().fit(np.random.random((10, 3)), np.random.random((10, 1)), verbose=0,
                         callbacks=[callbacks.BackupAndRestore(str(tmp_path))])


def test_every_is_checked():  # upstream's test_save_freq_unknown_error
    with pytest.raises(ValueError, match=r"every must be an integer >= 1, got 0"):
        pd.BackupAndRestore("backup_dir", every=0)


@pytest.mark.parametrize("directory", ["", None])
def test_backup_dir_empty_or_none_error(directory):
    with pytest.raises(ValueError, match="directory must be a non-empty path"):
        pd.BackupAndRestore(directory)


def test_best_case_epoch(tmp_path):
    backup_dir = os.path.join(tmp_path, "subdir")
    model = make_model()
    assert counters(model) == [0, 0, 0]
    cbk = pd.BackupAndRestore(backup_dir)
    x_train, y_train = np.random.random((10, 3)), np.random.random((10, 1))
    with pytest.raises(RuntimeError):
        model.fit(x_train, y_train, batch_size=4, epochs=6, verbose=0,
                  callbacks=[cbk, InterruptingCallback(epoch_int=2)])
    assert cbk.restored_epoch is None and os.path.exists(backup_dir)
    # A population's epoch takes whole batches of its seeded stream: 2 of 4 from 10
    # examples, where Keras' takes 3 (one partial).
    assert counters(model) == [2 * 2] * 3
    hist = model.fit(x_train, y_train, batch_size=4, callbacks=[cbk], epochs=5, verbose=0)
    # Upstream resumes after epoch 2: its backup runs first. A population's runs after every
    # other callback (it must see the iteration they acted on), so the exception raised in
    # epoch 2's on_epoch_end came before that epoch's backup: it resumes after epoch 1.
    assert cbk.restored_epoch == 1
    assert hist.epoch[-1] == 4
    assert counters(model) == [5 * 2] * 3


def test_backup_corrupted(tmp_path):
    backup_dir = os.path.join(tmp_path, "subdir")
    model, cbk = make_model(), pd.BackupAndRestore(backup_dir)
    x_train, y_train = np.random.random((10, 3)), np.random.random((10, 1))
    with pytest.raises(RuntimeError):
        model.fit(x_train, y_train, batch_size=4, epochs=6, verbose=0,
                  callbacks=[cbk, InterruptingCallback(epoch_int=2)])
    assert os.path.exists(cbk.path)
    with open(cbk.path, "w") as f:
        f.write("0")
    with pytest.raises(ValueError, match="cannot be read"):
        model.fit(x_train, y_train, batch_size=4, callbacks=[cbk], epochs=5, verbose=0)


def test_model_deleted_case_epoch(tmp_path):
    backup_dir = os.path.join(tmp_path, "subdir")
    make_model().fit(np.random.random((10, 3)), np.random.random((10, 1)), batch_size=4,
                     epochs=2, verbose=0, callbacks=[pd.BackupAndRestore(backup_dir)])
    assert not os.path.exists(backup_dir)


def lambda_population():
    return population(lambda: [layers.Dense(1)], (2,), optimizer=optimizers.SGD(),
                      loss=losses.MeanSquaredError())


XY = (np.random.randn(16, 2), np.random.randn(16, 1))


def warnings_during(caplog, run):
    with caplog.at_level(logging.WARNING):
        run()
    return [record.getMessage() for record in caplog.records]


def test_lambda_callback(caplog):
    cbk = callbacks.LambdaCallback(
        on_train_begin=lambda logs: absl_logging.warning("on_train_begin"),
        on_epoch_begin=lambda epoch, logs: absl_logging.warning("on_epoch_begin"),
        on_epoch_end=lambda epoch, logs: absl_logging.warning("on_epoch_end"),
        on_train_end=lambda logs: absl_logging.warning("on_train_end"))
    logs = warnings_during(caplog, lambda: lambda_population().fit(
        *XY, batch_size=4, validation_split=0.2, callbacks=[cbk], epochs=5, verbose=0))
    for hook in ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end"):
        assert any(hook in log for log in logs)


def test_lambda_callback_with_batches(caplog):
    cbk = callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: absl_logging.warning("on_train_batch_begin"),
        on_train_batch_end=lambda batch, logs: absl_logging.warning("on_train_batch_end"))
    logs = warnings_during(caplog, lambda: lambda_population().fit(
        *XY, batch_size=4, validation_split=0.2, callbacks=[cbk], epochs=5, verbose=0))
    assert any("on_train_batch_begin" in log for log in logs)
    assert any("on_train_batch_end" in log for log in logs)


def test_lambda_callback_with_kwargs(caplog):
    model = lambda_population()
    model.fit(*XY, batch_size=4, epochs=1, verbose=0)
    cbk = callbacks.LambdaCallback(
        on_test_begin=lambda logs: absl_logging.warning("custom_on_test_begin_executed"))
    logs = warnings_during(caplog, lambda: model.evaluate(*XY, batch_size=4, callbacks=[cbk],
                                                          verbose=0))
    assert any("custom_on_test_begin_executed" in log for log in logs)


def test_lambda_callback_no_args_and_additional_kwargs():
    assert isinstance(callbacks.LambdaCallback(), callbacks.LambdaCallback)
    assert hasattr(callbacks.LambdaCallback(custom_method=lambda logs: None), "custom_method")


def test_lambda_callback_during_prediction(caplog):
    cbk = callbacks.LambdaCallback(
        on_predict_begin=lambda logs: absl_logging.warning("on_predict_begin_executed"))
    logs = warnings_during(caplog, lambda: lambda_population().predict(
        XY[0], batch_size=4, callbacks=[cbk], verbose=0))
    assert any("on_predict_begin_executed" in log for log in logs)
