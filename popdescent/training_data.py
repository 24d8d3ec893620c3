"""Checking `Population.fit`'s arguments and feeding exactly the steps an iteration asks for.

Keras' array input ends an epoch early when the data runs out, so `steps_per_epoch * epochs`
is not what runs. Here every iteration gets exactly `steps_per_epoch` batches from an
endless, seeded stream: pass p uses its own permutation of the data, a pure function of
(seed, p), so a resumed run can start at any step and see the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from popdescent.validation import check_integer


@dataclass(frozen=True)
class FitData:
    """The validated arguments of one `fit` call."""

    x: np.ndarray
    y: np.ndarray
    batch_size: int
    epochs: int
    steps_per_epoch: int
    initial_epoch: int
    validation: tuple | None


def _positive_int(name, value, minimum=1):
    return check_integer(name, value, minimum=minimum)


def _as_array(name, value):
    if value is None:
        raise ValueError(f"{name} is required: Population.fit takes arrays x and y")
    try:
        array = np.asarray(value)
    except Exception as error:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from error
    if array.dtype == object or array.ndim == 0 or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(
            f"{name} must be a numeric array with a batch axis, got {type(value).__name__} of "
            f"dtype {array.dtype} and shape {array.shape}"
        )
    if len(array) == 0:
        raise ValueError(f"{name} must hold at least one example, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} must be finite, got {bad} NaN or infinite values: every member would "
            "train on them and diverge"
        )
    return array


def _check_features(name, array, model):
    expected = model.inputs[0].shape[1:] if getattr(model, "inputs", None) else None
    if expected is not None and len(expected) == array.ndim - 1:
        if any(e is not None and e != a for e, a in zip(expected, array.shape[1:])):
            raise ValueError(
                f"{name} has feature shape {array.shape[1:]}, the model expects {tuple(expected)}"
            )
    elif expected is not None:
        raise ValueError(
            f"{name} has shape {array.shape}; the model expects (batch, *{tuple(expected)})"
        )


def validate_fit_arguments(
    x, y, batch_size, epochs, steps_per_epoch, validation_data, initial_epoch, model
) -> FitData:
    """Checks everything `fit` needs before any training starts; returns a FitData."""
    x, y = _as_array("x", x), _as_array("y", y)
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same length (number of examples), got {len(x)} and {len(y)}"
        )
    _check_features("x", x, model)
    batch_size = 32 if batch_size is None else batch_size
    batch_size = _positive_int("batch_size", batch_size)
    if batch_size > len(x):
        raise ValueError(
            f"batch_size must be in [1, len(x)] = [1, {len(x)}], got {batch_size}"
        )
    epochs = _positive_int("epochs", epochs)
    initial_epoch = _positive_int("initial_epoch", initial_epoch, minimum=0)
    if initial_epoch >= epochs:
        raise ValueError(f"initial_epoch must be < epochs = {epochs}, got {initial_epoch}")
    if steps_per_epoch is None:
        steps_per_epoch = len(x) // batch_size
    steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "validation_data must be a tuple (x_val, y_val), got "
                f"{type(validation_data).__name__}"
                + (f" of length {len(validation_data)}"
                   if isinstance(validation_data, (tuple, list)) else "")
            )
        x_val = _as_array("validation_data[0]", validation_data[0])
        y_val = _as_array("validation_data[1]", validation_data[1])
        if len(x_val) != len(y_val) or len(x_val) == 0:
            raise ValueError(
                "validation_data's x and y must be non-empty and of the same length, got "
                f"{len(x_val)} and {len(y_val)}"
            )
        if x_val.shape[1:] != x.shape[1:] or y_val.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"validation_data shapes {x_val.shape[1:]}, {y_val.shape[1:]} do not match the "
                f"training data's {x.shape[1:]}, {y.shape[1:]}"
            )
        validation = (x_val, y_val)
    return FitData(x, y, batch_size, epochs, steps_per_epoch, initial_epoch, validation)


def check_validation_freq(validation_freq) -> None:
    """Keras checks `validation_freq` only at the end of the first epoch; check it up front."""
    check_integer("validation_freq", validation_freq, minimum=1)


def batch_indices(count, batch_size, seed, start_step, steps):
    """The example indices of `steps` batches starting at global step `start_step` (numpy).

    Pass p over the data is `default_rng((seed, p)).permutation(count)`; batches run across
    pass boundaries, so every step has exactly `batch_size` examples.
    """
    first = start_step * batch_size
    needed = steps * batch_size
    chunks, position = [], first
    while needed > 0:
        pass_index, offset = divmod(position, count)
        permutation = np.random.default_rng((seed, pass_index)).permutation(count)
        take = permutation[offset:offset + needed]
        chunks.append(take)
        needed -= len(take)
        position += len(take)
    return np.concatenate(chunks).reshape(steps, batch_size)


def index_batches(data: FitData, seed: int, start_step=0) -> tf.data.Dataset:
    """An endless tf.data stream of (x, y) batches starting at global step `start_step`.

    `start_step` is an int or a callable returning one; a callable is called once, when the
    stream is first read. Keras' fit creates its iterator in the first epoch, after the
    callbacks' `on_train_begin`, so a start that a backup restores there is already known.
    """
    count, batch_size = len(data.x), data.batch_size
    steps_per_pass = max(1, count // batch_size)
    resolved = []

    def indices(block):
        if not resolved:
            resolved.append(int(start_step() if callable(start_step) else start_step))
        return batch_indices(count, batch_size, seed, resolved[0] + block * steps_per_pass,
                             steps_per_pass)

    def index_block(block):
        block_indices = tf.numpy_function(indices, [block], tf.int64, stateful=True)
        return tf.ensure_shape(block_indices, (steps_per_pass, batch_size))

    index_stream = tf.data.Dataset.range(2**62).map(index_block).unbatch()
    x, y = tf.constant(data.x), tf.constant(data.y)
    return index_stream.map(
        lambda index: (tf.gather(x, index), tf.gather(y, index))
    ).prefetch(2)
