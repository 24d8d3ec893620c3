"""Streamed input of `Population.fit`: a `tf.data.Dataset`, a `keras.utils.PyDataset` or a
Python generator, turned into one endless `tf.data` stream of batches that can start at any step.

Keras' `fit` ends an epoch when a finite input runs out; a population's iteration must run
exactly `steps_per_epoch` steps, so a finite input is repeated. Each source is checked before
any step (non-empty, yielding `(x, y)` or `(x, y, sample_weight)`, its first batch finite),
and its stream starts at a step that is read only when Keras first pulls a batch, after a
backup has been restored in `on_train_begin`. How each kind reaches that step after a resume:

- `tf.data.Dataset`: re-iterated from its start and the steps reached skipped (read and
  dropped, so resuming costs reading them); the same batches when the pipeline is
  deterministic (seeded `shuffle`, seeded or stateless random augmentations).
- `keras.utils.PyDataset`: batch `step % len(dataset)` is read by index, nothing skipped; the
  same batches when `__getitem__` depends on the index alone (`on_epoch_end` is called after
  each pass, but a resumed run does not replay the calls of the passes it skipped). Its
  `workers`/`use_multiprocessing` are not used: batches are read in the training process.
- a generator: a fresh process's generator starts again, and the steps reached are skipped by
  reading them; the same batches when the generator is deterministic. A generator is consumed
  once: a second `fit` continues where the first stopped. It must not end before
  `epochs * steps_per_epoch` batches.
"""

from __future__ import annotations

import itertools
import types

import keras
import numpy as np
import tensorflow as tf

from popdescent.inputs.array_inputs import (
    class_weight_table,
    class_weight_to_sample_weight,
    lists_to_tuples,
    map_leaves,
)

__all__ = ["FITNESS_POOL_LIMIT", "StreamSource", "fitness_pool", "is_stream", "stream_source",
           "with_class_weight"]

# At most this many examples are read from a validation dataset (from its first batches) into
# the pool strategies draw their seeded `cv_batch_size` fitness batches from: an endless or huge
# dataset is never read whole. The pool is read once, when fit starts.
FITNESS_POOL_LIMIT = 10_000


def is_stream(value) -> bool:
    """Whether `value` is streamed input rather than arrays."""
    return isinstance(value, (tf.data.Dataset, keras.utils.PyDataset, types.GeneratorType)) or (
        hasattr(value, "__next__") and hasattr(value, "__iter__")
        and not isinstance(value, (np.ndarray, list, tuple, dict)))


def _check_element(name, element, spec_text):
    if not isinstance(element, tuple) or len(element) not in (2, 3):
        raise ValueError(
            f"{name} must yield (x, y) or (x, y, sample_weight) tuples, got {spec_text}"
        )


def _check_first_batch(name, batch):
    """The first batch's floats must be finite; returns its batch size."""
    leaves = [np.asarray(leaf) for leaf in keras.tree.flatten(batch)]
    for leaf in leaves:
        if np.issubdtype(leaf.dtype, np.floating) and not np.isfinite(leaf).all():
            raise ValueError(f"{name} yields NaN or infinite values in its first batch: every "
                             "member would train on them and diverge")
    if not leaves or leaves[0].ndim == 0 or len(leaves[0]) == 0:
        raise ValueError(f"{name} must yield batches with a batch axis, got first batch shapes "
                         f"{[leaf.shape for leaf in leaves]}")
    return len(leaves[0])


class StreamSource:
    """A checked streamed input: its kind, `element_spec`, batches per pass (None when unknown
    or endless), first batch size, and `stream(start_step)`, the endless stream from a step."""

    def __init__(self, kind, element_spec, batches, first_batch, stream):
        self.kind, self.element_spec, self.batches = kind, element_spec, batches
        self.first_batch, self._stream = first_batch, stream
        self.batch_size = len(keras.tree.flatten(first_batch)[0])

    def stream(self, start_step) -> tf.data.Dataset:
        """The endless batch stream from `start_step` (an int or a callable returning one,
        called once, when the stream is first read)."""
        resolved = []

        def start():
            if not resolved:
                resolved.append(int(start_step() if callable(start_step) else start_step))
            return resolved[0]

        return self._stream(start)


def _tf_dataset_source(name, dataset):
    spec = dataset.element_spec
    _check_element(name, spec, f"element_spec {spec}")
    cardinality = int(dataset.cardinality())
    if cardinality == 0:
        raise ValueError(f"{name} is an empty dataset (cardinality 0): nothing to train on")
    first = next(iter(dataset.take(1)), None)
    if first is None:
        raise ValueError(f"{name} is an empty dataset: it yielded no batch")
    _check_first_batch(name, first)

    def stream(start):
        def skip_to_start(_):
            step = tf.numpy_function(lambda: np.int64(start()), [], tf.int64, stateful=True)
            return dataset.repeat().skip(tf.reshape(step, []))

        return tf.data.Dataset.range(1).flat_map(skip_to_start)

    return StreamSource("dataset", spec, cardinality if cardinality > 0 else None,
                        keras.tree.map_structure(np.asarray, first), stream)


def _spec_of(batch):
    return map_leaves(lambda leaf: tf.TensorSpec((None, *np.shape(leaf)[1:]),
                                           tf.as_dtype(np.asarray(leaf).dtype)), batch)


def _as_tuple(batch):
    return lists_to_tuples(batch)


def _py_dataset_source(name, dataset):
    batches = dataset.num_batches
    if batches == 0:
        raise ValueError(f"{name} is an empty PyDataset (len 0): there is nothing to train on")
    first = _as_tuple(dataset[0])
    _check_element(name, first, f"a {type(first).__name__}")
    _check_first_batch(name, first)
    spec = _spec_of(first)

    def stream(start):
        def batches_from_start():
            step = start()
            while True:
                index = step if batches is None else step % batches
                yield _as_tuple(dataset[index])
                step += 1
                if batches is not None and step % batches == 0:
                    dataset.on_epoch_end()

        return tf.data.Dataset.from_generator(batches_from_start, output_signature=spec)

    return StreamSource("py_dataset", spec, batches, first, stream)


def _generator_source(name, generator):
    try:
        first = next(generator)
    except StopIteration:
        raise ValueError(f"{name} is an empty generator: it yielded no batch") from None
    first = _as_tuple(first)
    _check_element(name, first, f"a {type(first).__name__}")
    _check_first_batch(name, first)
    spec = _spec_of(first)
    remaining = itertools.chain([first], generator)

    def stream(start):
        def batches_from_start():
            read = 0
            for batch in remaining:
                read += 1
                if read > start():
                    yield _as_tuple(batch)
            raise ValueError(f"{name}, a generator, ended after {read} batches: Population.fit "
                             "needs epochs * steps_per_epoch of them; give an endless generator")

        return tf.data.Dataset.from_generator(batches_from_start, output_signature=spec)

    return StreamSource("generator", spec, None, first, stream)


def stream_source(name, value) -> StreamSource:
    """Checks streamed input `value` (argument `name`) and returns its StreamSource."""
    if isinstance(value, tf.data.Dataset):
        return _tf_dataset_source(name, value)
    if isinstance(value, keras.utils.PyDataset):
        return _py_dataset_source(name, value)
    return _generator_source(name, value)


def _class_ids(y):
    """`array_inputs._class_ids` in TensorFlow: sparse labels, one-hot rows or a binary column."""
    if y.shape.rank >= 2 and (y.shape[-1] or 0) > 1:
        return tf.argmax(y, axis=-1, output_type=tf.int64)
    return tf.cast(tf.round(tf.reshape(tf.cast(y, tf.float32), [-1])), tf.int64)


def with_class_weight(name, source, class_weight) -> StreamSource:
    """`source` whose batches carry the sample weights `class_weight[class of y]` (times their
    own), as Keras weighs a dataset's classes. Checked before training on the first batch; a
    later batch with a class that has no weight stops training with an error naming it."""
    table, keys = class_weight_table(class_weight)
    x_spec, y_spec = source.element_spec[:2]
    if not isinstance(y_spec, tf.TensorSpec):
        raise ValueError(f"class_weight applies to a single-output model, as in Keras; {name} "
                         f"yields y of structure {y_spec}: yield sample weights instead")
    first = source.first_batch
    class_weight_to_sample_weight(class_weight, np.asarray(first[1]),
                                  None if len(first) == 2 else np.asarray(first[2]))
    known = np.zeros(len(table), dtype=bool)
    known[keys] = True
    table, known = tf.constant(table), tf.constant(known)

    def weigh(*batch):
        ids = _class_ids(batch[1])
        inside = tf.logical_and(ids >= 0, ids < known.shape[0])
        has_weight = tf.logical_and(inside, tf.gather(known, tf.where(inside, ids, 0)))
        check = tf.debugging.assert_equal(tf.reduce_all(has_weight), True, message=(
            f"{name} yielded a class that class_weight has no weight for (keys: {keys})"))
        with tf.control_dependencies([check]):  # in a traced map, only what is used runs
            weights = tf.gather(table, tf.where(inside, ids, 0))
        if len(batch) == 3:
            weights = weights * tf.reshape(tf.cast(batch[2], weights.dtype), [-1])
        return batch[0], batch[1], weights

    weight_spec = tf.TensorSpec((None,), tf.float32)
    return StreamSource(source.kind, (x_spec, y_spec, weight_spec), source.batches, first,
                        lambda start: source._stream(start).map(weigh))


def fitness_pool(name, dataset, steps=None, limit=FITNESS_POOL_LIMIT):
    """(x, y) numpy structures of a validation dataset's first batches, at most `limit`
    examples (and at most `steps` batches): the pool strategies draw fitness batches from."""
    spec = dataset.element_spec
    _check_element(name, spec, f"element_spec {spec}")
    if int(dataset.cardinality()) == 0:
        raise ValueError(f"{name} is an empty dataset (cardinality 0)")
    if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY and steps is None:
        raise ValueError(f"{name} is an endless dataset: pass validation_steps, the number of "
                         "its batches Keras validates on")
    batches, count = [], 0
    for batch in dataset.take(-1 if steps is None else steps):
        batch = keras.tree.map_structure(np.asarray, tuple(batch[:2]))
        batches.append(batch)
        count += len(keras.tree.flatten(batch)[0])
        if count >= limit:
            break
    if not batches:
        raise ValueError(f"{name} is an empty dataset: it yielded no batch")
    pool = keras.tree.map_structure(lambda *leaves: np.concatenate(leaves)[:limit], *batches)
    return pool
