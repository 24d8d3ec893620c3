"""Callbacks and readers the library's tests share."""

import glob

import keras
import tensorflow as tf


class Interrupt(keras.callbacks.Callback):
    """Stops a fit by an exception at the start of iteration `epoch`, like a crash."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def summary_tags(directory):
    """Every summary tag written under `directory`, once per write."""
    tags = []
    for path in glob.glob(str(directory / "**" / "events.out.tfevents.*"), recursive=True):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.extend(value.tag for value in event.summary.value)
    return tags
