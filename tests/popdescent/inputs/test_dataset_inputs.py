"""Streamed input (tf.data, PyDataset, generators) starts at the step a resume asks for."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from popdescent.inputs.dataset_inputs import stream_source, with_class_weight

X = np.arange(96 * 2, dtype="float32").reshape(96, 2)
Y = np.arange(96, dtype="int32")
BATCH = 16  # 6 batches per pass


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return X[index * BATCH:(index + 1) * BATCH], Y[index * BATCH:(index + 1) * BATCH]


def endless_batches():
    for step in range(10**6):
        batch = step % 6
        yield X[batch * BATCH:(batch + 1) * BATCH], Y[batch * BATCH:(batch + 1) * BATCH]


SOURCES = {
    "tf.data": lambda: tf.data.Dataset.from_tensor_slices((X, Y)).batch(BATCH),
    "PyDataset": Batches,
    "generator": endless_batches,
}


@pytest.mark.parametrize("kind", list(SOURCES))
def test_stream_starts_at_the_step_known_only_when_it_is_first_read(kind):
    """Step 7 of a 6-batch input is the second pass's batch 1; the start is set after the
    stream is built, as a backup restored in on_train_begin sets it."""
    start = [0]
    stream = stream_source("x", SOURCES[kind]()).stream(lambda: start[0])
    start[0] = 7
    labels = [int(y[0]) for _, y in stream.take(6)]
    assert labels == [16, 32, 48, 64, 80, 0]  # batches 1-5, then the third pass's batch 0


def test_class_weight_refuses_a_later_batch_with_a_class_it_has_no_weight_for():
    labels = np.where(np.arange(96) < 16, 0, 2).astype("int32")  # batch 0 all class 0
    source = stream_source("x", tf.data.Dataset.from_tensor_slices((X, labels)).batch(BATCH))
    weighted = with_class_weight("x", source, {0: 1.0, 1: 3.0})
    stream = iter(weighted.stream(0))
    np.testing.assert_array_equal(next(stream)[2], np.ones(BATCH))
    with pytest.raises(tf.errors.InvalidArgumentError, match="class_weight has no weight"):
        next(stream)
