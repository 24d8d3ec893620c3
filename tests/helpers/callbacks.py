"""Callbacks and readers the library's tests share."""

import glob
import json

import keras
import pytest
import tensorflow as tf


class Interrupt(keras.callbacks.Callback):
    """Stops a fit by an exception at the start of iteration `epoch`, like a crash."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def assert_resumes_bit_for_bit(run, tmp_path):
    """`run(directory, extra)` fits a fresh population with a `BackupAndRestore(directory)`
    and a strategy, `extra` callbacks appended, and returns (population, strategy). A run
    interrupted at iteration 2 and run again must end exactly as an uninterrupted one: every
    state variable's bytes, the strategy's state and the lineage."""
    reference, reference_strategy = run(tmp_path / "reference", ())
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", (Interrupt(2),))
    resumed, strategy = run(tmp_path / "run", ())
    assert [keras.ops.convert_to_numpy(v).tobytes() for v in resumed.state_variables()] == \
        [keras.ops.convert_to_numpy(v).tobytes() for v in reference.state_variables()]
    assert json.dumps(strategy.get_state()) == json.dumps(reference_strategy.get_state())
    assert resumed.lineage == reference.lineage


def summary_tags(directory):
    """Every summary tag written under `directory`, once per write."""
    tags = []
    for path in glob.glob(str(directory / "**" / "events.out.tfevents.*"), recursive=True):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.extend(value.tag for value in event.summary.value)
    return tags
