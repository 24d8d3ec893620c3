"""Checking `Population.fit`'s arguments and feeding exactly the steps an iteration asks for.

Keras' array input ends an epoch early when the data runs out, so `steps_per_epoch * epochs`
is not what runs. Here every iteration gets exactly `steps_per_epoch` batches from an endless
stream. Arrays (or lists and dicts of them, checked by `popdescent.inputs.array_inputs`) are drawn
from seeded permutations: pass p uses its own permutation of the data, a pure function of
(seed, p), so a resumed run can start at any step and see the same batches. Streamed input
(`tf.data`, PyDataset, generators) is repeated by `popdescent.inputs.dataset_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from popdescent.inputs import array_inputs, dataset_inputs
from popdescent.validation import check_fraction, check_integer


@dataclass(frozen=True)
class FitData:
    """The validated arguments of one `fit` call.

    `x`, `y` and `sample_weight` are array structures (`sample_weight` holds the class
    weights too), or None when the input is streamed (`source`, see
    `dataset_inputs`). `validation` is the (x, y) array pool strategies draw fitness
    batches from; `keras_validation` what Keras validates on; `x_spec`/`y_spec` structures of
    arrays or `tf.TensorSpec`s giving the inputs' and targets' shapes and dtypes."""

    x: object
    y: object
    batch_size: int
    epochs: int
    steps_per_epoch: int
    initial_epoch: int
    validation: tuple | None
    sample_weight: object = None
    source: object = None
    keras_validation: object = None
    x_spec: object = None
    y_spec: object = None

    @property
    def kind(self) -> str:
        """"arrays", "dataset" (tf.data), "py_dataset" or "generator"."""
        return "arrays" if self.source is None else self.source.kind


def _positive_int(name, value, minimum=1):
    return check_integer(name, value, minimum=minimum)


def _check_run_length(epochs, initial_epoch):
    epochs = _positive_int("epochs", epochs)
    initial_epoch = _positive_int("initial_epoch", initial_epoch, minimum=0)
    if initial_epoch >= epochs:
        raise ValueError(f"initial_epoch must be < epochs = {epochs}, got {initial_epoch}")
    return epochs, initial_epoch


def _array_validation(validation_data, x, y, model):
    """(x_val, y_val) structures from a tuple (x_val, y_val[, sample_weight_val])."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "validation_data must be a tuple (x_val, y_val), (x_val, y_val, sample_weight_val) "
            f"or a tf.data.Dataset, got {type(validation_data).__name__}"
            + (f" of length {len(validation_data)}"
               if isinstance(validation_data, (tuple, list)) else "")
        )
    names = ("validation_data[0]", "validation_data[1]", "validation_data[2]")
    parts = [array_inputs.as_structure(n, v) for n, v in zip(names, validation_data)]
    x_val, y_val = parts[0], parts[1]
    lengths = {len(leaf) for part in parts for leaf in _leaves(part)}
    if len(lengths) > 1:
        raise ValueError(
            "validation_data's x and y must be non-empty and of the same length, got "
            f"{array_inputs.count_examples(x_val)} and {array_inputs.count_examples(y_val)}"
        )
    array_inputs.check_model_structure("validation_data[0]", x_val, model)
    if x is not None:
        pairs = list(zip(_leaves(x_val) + _leaves(y_val), _leaves(x) + _leaves(y)))
        if len(pairs) != len(_leaves(x) + _leaves(y)) or any(
                v.shape[1:] != t.shape[1:] for v, t in pairs):
            raise ValueError(
                f"validation_data shapes {_shapes(x_val)}, {_shapes(y_val)} do not match the "
                f"training data's {_shapes(x)}, {_shapes(y)}"
            )
    return (x_val, y_val), tuple(parts)


def _leaves(structure):
    return keras.tree.flatten(structure)


def _shapes(structure):
    shapes = [leaf.shape[1:] for leaf in _leaves(structure)]
    return shapes[0] if len(shapes) == 1 else shapes


def _validation(validation_data, validation_steps, x, y, model):
    """(fitness pool, what Keras validates on) for any validation_data, or (None, None)."""
    if validation_data is None:
        return None, None
    if isinstance(validation_data, tf.data.Dataset):
        pool = dataset_inputs.fitness_pool("validation_data", validation_data, validation_steps)
        array_inputs.check_model_structure("validation_data's x", pool[0], model)
        return pool, validation_data
    return _array_validation(validation_data, x, y, model)


def _array_fit_data(x, y, sample_weight, class_weight, validation_split, batch_size, model):
    x = array_inputs.as_structure("x", x)
    y = array_inputs.as_structure("y", y)
    if sample_weight is not None:
        sample_weight = array_inputs.as_structure("sample_weight", sample_weight)
    count = array_inputs.check_same_length(x=x, y=y, sample_weight=sample_weight)
    array_inputs.check_model_structure("x", x, model)
    array_inputs.check_model_structure("y", y, model, kind="output")
    if class_weight is not None:
        sample_weight = array_inputs.class_weight_to_sample_weight(class_weight, y, sample_weight)
    split = None
    if validation_split:
        check_fraction("validation_split", validation_split)
        (x, y, sample_weight), (x_val, y_val, weight_val) = array_inputs.split_tail(
            [x, y, sample_weight], validation_split)
        split = (x_val, y_val) if weight_val is None else (x_val, y_val, weight_val)
        count = array_inputs.count_examples(x)
    # Keras' default, clamped to the data as Keras' one partial batch would be.
    batch_size = min(32, count) if batch_size is None else batch_size
    batch_size = _positive_int("batch_size", batch_size)
    if batch_size > count:
        raise ValueError(f"batch_size must be in [1, len(x)] = [1, {count}], got {batch_size}")
    return x, y, sample_weight, split, batch_size, count // batch_size


def _stream_fit_data(x, y, sample_weight, class_weight, validation_split, batch_size, model):
    for argument, value in (("y", y), ("sample_weight", sample_weight),
                            ("batch_size", batch_size)):
        if value is not None:
            raise ValueError(
                f"{argument} must be None when x is a {type(x).__name__}: the dataset yields "
                "(x, y) or (x, y, sample_weight) batches")
    if validation_split:
        raise ValueError(f"validation_split needs array input, x is a {type(x).__name__}: "
                         "pass validation_data")
    source = dataset_inputs.stream_source("x", x)
    array_inputs.check_model_structure("x", source.element_spec[0], model)
    array_inputs.check_model_structure("y", source.element_spec[1], model, kind="output")
    if class_weight is not None:
        source = dataset_inputs.with_class_weight("x", source, class_weight)
    return source


INPUT_KEYWORDS = ("class_weight", "sample_weight", "validation_split")


def pop_input_keywords(kwargs) -> dict:
    """Takes `fit`'s input keywords out of `kwargs` (leaving `validation_steps` for Keras) and
    refuses the keywords `Population.fit` does not take."""
    unsupported = sorted(set(kwargs) - set(INPUT_KEYWORDS) - {"validation_steps"})
    if unsupported:
        raise ValueError(
            f"Population.fit does not take {unsupported}: it feeds its own seeded batch stream "
            "(no shuffle or validation_batch_size); allowed extra arguments: "
            f"{sorted((*INPUT_KEYWORDS, 'validation_steps'))}"
        )
    return {name: kwargs.pop(name, None) for name in INPUT_KEYWORDS}


def validate_fit_arguments(
    x, y, batch_size, epochs, steps_per_epoch, validation_data, initial_epoch, model,
    sample_weight=None, class_weight=None, validation_split=None, validation_steps=None,
) -> FitData:
    """Checks everything `fit` needs before any training starts; returns a FitData."""
    if validation_split and validation_data is not None:
        raise ValueError("give fit either validation_data or validation_split, not both")
    epochs, initial_epoch = _check_run_length(epochs, initial_epoch)
    if dataset_inputs.is_stream(x):
        source = _stream_fit_data(x, y, sample_weight, class_weight, validation_split,
                                  batch_size, model)
        if steps_per_epoch is None and source.batches is None:
            raise ValueError(
                f"steps_per_epoch is required when x is a {type(x).__name__} without a known "
                "length (a generator, an endless or filtered dataset): it is the number of "
                "steps per iteration")
        steps_per_epoch = _positive_int(
            "steps_per_epoch", source.batches if steps_per_epoch is None else steps_per_epoch)
        pool, keras_validation = _validation(validation_data, validation_steps, None, None,
                                             model)
        return FitData(None, None, source.batch_size, epochs, steps_per_epoch, initial_epoch,
                       pool, source=source, keras_validation=keras_validation,
                       x_spec=source.element_spec[0], y_spec=source.element_spec[1])
    x, y, sample_weight, split, batch_size, passes = _array_fit_data(
        x, y, sample_weight, class_weight, validation_split, batch_size, model)
    steps_per_epoch = _positive_int("steps_per_epoch",
                                    passes if steps_per_epoch is None else steps_per_epoch)
    pool, keras_validation = _validation(split if split is not None else validation_data,
                                         validation_steps, x, y, model)
    return FitData(x, y, batch_size, epochs, steps_per_epoch, initial_epoch, pool,
                   sample_weight=sample_weight, keras_validation=keras_validation,
                   x_spec=x, y_spec=y)


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
    count, batch_size = array_inputs.count_examples(data.x), data.batch_size
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
    arrays = (data.x, data.y) if data.sample_weight is None else (
        data.x, data.y, data.sample_weight)
    arrays = tf.nest.map_structure(tf.constant, array_inputs.lists_to_tuples(arrays))
    return index_stream.map(
        lambda index: tf.nest.map_structure(lambda leaf: tf.gather(leaf, index), arrays)
    ).prefetch(2)


def training_batches(data: FitData, seed: int, start_step=0) -> tf.data.Dataset:
    """The endless stream of training batches from global step `start_step` (int or callable):
    arrays through the seeded permutations of `index_batches`, streamed input through its own
    order (see `popdescent.inputs.dataset_inputs` for what a resume replays)."""
    if data.source is None:
        return index_batches(data, seed, start_step)
    return data.source.stream(start_step)
