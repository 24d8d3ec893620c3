"""Array input of `Population.fit`: arrays, lists and dicts of arrays, checked before training.

A structure is what Keras takes for a model's `x`, `y` or `sample_weight`: one array, a
list/tuple of arrays (multi-input or multi-output models, in the order of `model.inputs` /
`model.outputs`) or a dict keyed by input/output name. Every leaf has the batch axis first,
and all leaves of x, y and sample_weight hold the same number of examples. These helpers
check, slice and weight such structures; they know nothing of populations.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = [
    "as_structure", "check_same_length", "check_model_structure", "class_weight_table",
    "class_weight_to_sample_weight", "count_examples", "lists_to_tuples", "map_leaves",
    "split_tail", "take",
]


def _leaves_with_names(name, structure):
    """(`x['image']`-style name, leaf) for every leaf of `structure`, in keras.tree order."""
    if isinstance(structure, dict):
        return [pair for key in sorted(structure)
                for pair in _leaves_with_names(f"{name}[{key!r}]", structure[key])]
    if isinstance(structure, (list, tuple)):
        return [pair for index, value in enumerate(structure)
                for pair in _leaves_with_names(f"{name}[{index}]", value)]
    return [(name, structure)]


def _as_array(name, value):
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


def _is_structure(value):
    """A list/tuple is a structure of arrays when an item is an array itself (or a dict):
    `[x_a, x_b]` is two inputs, while `[[0.1, 0.2], ...]` is one array, as numpy reads it."""
    if isinstance(value, dict):
        return True
    return isinstance(value, (list, tuple)) and any(
        hasattr(item, "shape") or isinstance(item, dict) for item in value)


def as_structure(name, value):
    """`value` (an array, or a list/tuple/dict of arrays) with every leaf a checked numpy array:
    numeric, with a batch axis, non-empty and, for floats, finite. A list of lists of numbers is
    one array, as numpy reads it."""
    if value is None:
        raise ValueError(f"{name} is required: Population.fit takes arrays (or a list or dict "
                         "of arrays), a tf.data.Dataset, a keras.utils.PyDataset or a generator")
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"{name} must not be an empty dict")
        return {key: as_structure(f"{name}[{key!r}]", item) for key, item in value.items()}
    if _is_structure(value):
        return [as_structure(f"{name}[{index}]", item) for index, item in enumerate(value)]
    return _as_array(name, value)


def count_examples(structure) -> int:
    """The number of examples (batch-axis length) of a checked structure's first leaf."""
    return len(keras.tree.flatten(structure)[0])


def check_same_length(**structures) -> int:
    """The common number of examples of every leaf of the named structures (None skipped);
    raises naming each leaf's length when they differ."""
    lengths = [(leaf_name, len(leaf)) for name, structure in structures.items()
               if structure is not None for leaf_name, leaf in _leaves_with_names(name, structure)]
    if len({length for _, length in lengths}) > 1:
        named = ", ".join(f"{leaf_name}: {length}" for leaf_name, length in lengths)
        names = [name for name, s in structures.items() if s is not None]
        names = ", ".join(names[:-1]) + " and " + names[-1]
        raise ValueError(
            f"{names} must have the same length (number of examples) in every array, got "
            f"{named}"
        )
    return lengths[0][1]


def lists_to_tuples(structure):
    """`structure` with its lists made tuples: tf.data takes tuples, not lists, as Keras' own
    data adapters convert them (a functional model reads a tuple of inputs as the list)."""
    if isinstance(structure, dict):
        return {key: lists_to_tuples(value) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return tuple(lists_to_tuples(value) for value in structure)
    return structure


def map_leaves(function, structure):
    """`structure` with `function` applied to every leaf, rebuilt from plain dicts, lists and
    tuples: Keras wraps the ones a model holds as attributes (`pop.validation_data`) in
    tracking types that a functional model's input check does not take for a dict."""
    if isinstance(structure, dict):
        return {key: map_leaves(function, value) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return (tuple if isinstance(structure, tuple) else list)(
            map_leaves(function, value) for value in structure)
    return function(structure)


def take(structure, indices):
    """The examples `indices` (an index array or a slice) of every leaf."""
    return map_leaves(lambda leaf: leaf[indices], structure)


def split_tail(structures, fraction):
    """Keras' `validation_split`: the last `fraction` of the examples, before any shuffling,
    become validation data. Returns (head structures, tail structures)."""
    count = check_same_length(**{f"arg{i}": s for i, s in enumerate(structures)})
    split = int(count * (1.0 - fraction))
    if split < 1 or split >= count:
        raise ValueError(
            f"validation_split must leave at least one training and one validation example: "
            f"{fraction} of {count} examples splits at {split}"
        )
    head = [None if s is None else take(s, slice(0, split)) for s in structures]
    tail = [None if s is None else take(s, slice(split, None)) for s in structures]
    return head, tail


def _class_ids(y):
    """Class indices per example, as Keras' class_weight reads targets: sparse integer labels,
    one-hot rows (argmax) or one binary column (rounded)."""
    if y.ndim >= 2 and y.shape[-1] > 1:
        return np.argmax(y, axis=-1).reshape(len(y))
    if y.ndim >= 2:
        return np.round(y.reshape(len(y))).astype(np.int64)
    return np.round(y).astype(np.int64)


def class_weight_table(class_weight):
    """Checks `class_weight` (a dict class index -> weight >= 0) and returns it as an array
    indexed by class (0 where a class has no key) and the sorted keys."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise ValueError(f"class_weight must be a non-empty dict class index -> weight, got "
                         f"{class_weight!r}")
    for key, weight in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"class_weight keys must be class indices (integers >= 0), got "
                             f"{key!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or not (
                np.isfinite(weight) and weight >= 0):
            raise ValueError(f"class_weight[{key}] must be a finite number >= 0, got {weight!r}")
    keys = sorted(int(key) for key in class_weight)
    table = np.zeros(keys[-1] + 1, dtype=np.float32)
    for key, weight in class_weight.items():
        table[int(key)] = weight
    return table, keys


def class_weight_to_sample_weight(class_weight, y, sample_weight):
    """Per-example weights `class_weight[class of y]`, times `sample_weight` when given.

    As in Keras, class weights apply to a single-output model only, and every class present in
    y needs a weight."""
    table, keys = class_weight_table(class_weight)
    if not isinstance(y, np.ndarray):
        raise ValueError("class_weight applies to a single-output model (one array y), as in "
                         f"Keras; got y with {len(keras.tree.flatten(y))} arrays: pass "
                         "sample_weight per output instead")
    ids = _class_ids(y)
    missing = sorted(set(np.unique(ids).tolist()) - set(keys))
    if missing:
        raise ValueError(f"class_weight has no weight for the classes {missing} found in y; "
                         f"it has keys {keys}")
    weights = table[ids]
    if sample_weight is None:
        return weights
    if not isinstance(sample_weight, np.ndarray):
        raise ValueError("class_weight with a per-output sample_weight: give one or the other")
    return (sample_weight.astype(np.float32).reshape(len(weights), -1)[:, 0] * weights)


def _model_names(model, kind):
    if kind == "input":
        return [tensor.name for tensor in model.inputs]
    return list(getattr(model, "output_names", None) or
                [f"output_{i}" for i in range(len(model.outputs))])


def check_model_structure(name, structure, model, kind="input"):
    """Checks a structure whose leaves have `.shape` (arrays, `tf.TensorSpec`s; batch axis
    first) against the model's inputs (or outputs): as many arrays as the model has, dict keys
    naming them, and, for inputs, feature shapes that match."""
    tensors = list(getattr(model, f"{kind}s", None) or [])
    if not tensors:
        return
    names = _model_names(model, kind)
    if isinstance(structure, dict):
        if sorted(structure) != sorted(names) and not (
                kind == "output" and set(structure) <= set(names)):
            raise ValueError(f"{name} is a dict keyed by {sorted(structure)}; the model's "
                             f"{kind}s are named {names}")
        pairs = [(f"{name}[{key!r}]", structure[key], tensors[names.index(key)])
                 for key in structure]
    else:
        leaves = list(structure) if isinstance(structure, (list, tuple)) else [structure]
        if len(leaves) != len(tensors):
            raise ValueError(
                f"{name} holds {len(leaves)} array(s); the model has {len(tensors)} {kind}s "
                f"{names}: pass a list in that order or a dict keyed by those names")
        label = (lambda i: f"{name}[{i}]") if len(leaves) > 1 else (lambda i: name)
        pairs = [(label(i), leaf, tensor) for i, (leaf, tensor) in enumerate(zip(leaves, tensors))]
    if kind == "output":
        return  # targets may be sparse labels for a one-hot output: the losses decide
    for leaf_name, leaf, tensor in pairs:
        if isinstance(leaf, (dict, list, tuple)):
            raise ValueError(f"{leaf_name} must be one array for the model's input "
                             f"{tensor.name!r}, got a {type(leaf).__name__}")
        expected, shape = tuple(tensor.shape[1:]), tuple(leaf.shape)
        if len(expected) != len(shape) - 1:
            raise ValueError(
                f"{leaf_name} has shape {shape}; the model expects (batch, *{expected})")
        if any(e is not None and a is not None and e != a for e, a in zip(expected, shape[1:])):
            raise ValueError(
                f"{leaf_name} has feature shape {shape[1:]}, the model expects {expected}")
