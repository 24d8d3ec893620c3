"""The paper's CNNs for Fashion-MNIST and CIFAR-10, and a tiny MLP for fast tests.

Layer lists follow the reference code, so parameter counts match the paper: 4,575,242 for
Fashion-MNIST, 186,250 for CIFAR-10. Every model ends in a Dense(10) that outputs logits;
`paper_loss()` is the loss to pair with it.

Regularization variants:
  "none":  no weight penalty;
  "dense": L2(l2) on the kernel of the hidden Dense layer (named "dense_hidden"), the paper's
           "with regularization" setting;
  "all":   L2(l2) on every Conv2D and Dense kernel, the ablation.

The regularization a Keras user writes (issue 38), independent of the L2 variants:
`dropout=r` adds Dropout(r) after the flatten and after the hidden Dense layer,
`translation=t` a RandomTranslation(t, t) at the input, `flip=True` a horizontal RandomFlip
at the input. `GUESSES` holds the two settings the regularized benchmark starts from.
"""

import keras
import numpy as np

from experiments.core.validation import (
    check_choice,
    check_non_negative_number,
    is_integer,
    is_number,
)

MODEL_NAMES = ("fmnist", "cifar10", "mlp")
REGULARIZATIONS = ("none", "dense", "all")
INPUT_SHAPES = {"fmnist": (28, 28, 1), "cifar10": (32, 32, 3), "mlp": (28, 28, 1)}
NUM_CLASSES = 10
HIDDEN_DENSE_NAME = "dense_hidden"
# The regularized benchmark's starting points (issue 38): what a Keras user might write. The
# "good" guess trains the FMNIST CNN 12,800 steps without overfitting; the "bad" one costs a
# single run dearly at 3,200 steps. CIFAR-10 adds a horizontal flip to either.
GUESSES = {
    "good": {"dropout": 0.3, "translation": 0.1},
    "bad": {"dropout": 0.6, "translation": 0.3},
}


def guess_regularization(dataset, guess):
    """The `build_model` keywords of `guess` ("good", "bad" or None for none) on `dataset`."""
    if guess is None:
        return {}
    check_choice("guess", guess, tuple(GUESSES))
    return {**GUESSES[guess], "flip": dataset == "cifar10"}


def build_model(dataset, regularization="none", l2=1e-3, seed=None, input_shape=None,
                dropout=None, translation=None, flip=False):
    """Builds one of the paper's models, uncompiled, with an explicit `keras.Input`.

    Args:
        dataset: "fmnist" or "cifar10" for the paper's CNNs, "mlp" for
            Flatten -> Dense(64, relu) -> Dense(10), a stand-in that trains in milliseconds.
        regularization: "none", "dense" or "all" (see the module docstring).
        l2: L2 coefficient of the regularized kernels, >= 0; unused for "none".
        seed: if an int >= 0, the kernel initializers are seeded from it, so the same seed
            gives identical weights and different seeds different ones; None leaves them to
            Keras' global seeding.
        input_shape: input shape of the "mlp", default (28, 28, 1); the CNNs' input shapes
            are fixed by their datasets.
        dropout: None for no Dropout layer, else the rate in [0, 1) of a Dropout after the
            flatten and one after the hidden Dense layer.
        translation: None for no translation, else the factor in [0, 1] of a
            RandomTranslation(translation, translation) at the input.
        flip: True adds RandomFlip("horizontal") at the input.

    Returns:
        A `keras.Sequential` model whose output is (batch, 10) logits.

    Example:
        >>> model = build_model("fmnist", regularization="dense", seed=0)
        >>> count_parameters(model), len(model.losses)
        (4575242, 1)
    """
    _validate(dataset, regularization, l2, seed, input_shape)
    _validate_user_regularization(dropout, translation, flip)
    kernels = _KernelOptions(regularization, l2, seed)
    if dataset == "fmnist":
        layers = [
            keras.layers.Conv2D(64, 3, strides=2, activation="relu", name="conv_1", **kernels()),
            keras.layers.Conv2D(128, 3, strides=2, activation="relu", name="conv_2", **kernels()),
            keras.layers.Conv2D(256, 3, activation="relu", name="conv_3", **kernels()),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(1024, activation="relu", name=HIDDEN_DENSE_NAME, **kernels(True)),
        ]
    elif dataset == "cifar10":
        layers = [
            keras.layers.Conv2D(32, 3, activation="relu", name="conv_1", **kernels()),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv_2", **kernels()),
            keras.layers.MaxPooling2D(2, name="pool_1"),
            keras.layers.Conv2D(
                128, 3, padding="same", activation="relu", name="conv_3", **kernels()
            ),
            keras.layers.MaxPooling2D(2, name="pool_2"),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv_4", **kernels()),
            keras.layers.MaxPooling2D(4, name="pool_3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(256, activation="relu", name=HIDDEN_DENSE_NAME, **kernels(True)),
        ]
    else:
        layers = [
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name=HIDDEN_DENSE_NAME, **kernels(True)),
        ]
    logits = keras.layers.Dense(NUM_CLASSES, name="logits", **kernels())
    shape = tuple(input_shape) if input_shape is not None else INPUT_SHAPES[dataset]
    name = "mlp" if dataset == "mlp" else f"{dataset}_cnn"
    layers = _with_user_regularization(layers, dropout, translation, flip, seed)
    return keras.Sequential([keras.Input(shape, name="images"), *layers, logits], name=name)


def _with_user_regularization(layers, dropout, translation, flip, seed):
    """`layers` with augmentation at the front and a Dropout after the flatten and after the
    hidden Dense layer (the last of `layers`)."""
    seeds = None if seed is None else np.random.default_rng([seed, 1])

    def layer_seed():
        return None if seeds is None else int(seeds.integers(2**31))

    augmentation = []
    if flip:
        augmentation.append(keras.layers.RandomFlip("horizontal", seed=layer_seed(),
                                                    name="flip"))
    if translation is not None:
        augmentation.append(keras.layers.RandomTranslation(
            translation, translation, seed=layer_seed(), name="translation"))
    if dropout is None:
        return augmentation + layers
    regularized = []
    for layer in layers:
        regularized.append(layer)
        if layer.name in ("flatten", HIDDEN_DENSE_NAME):
            regularized.append(keras.layers.Dropout(
                dropout, seed=layer_seed(), name=f"dropout_after_{layer.name}"))
    return augmentation + regularized


def paper_loss():
    """The paper's loss for our models: sparse categorical cross-entropy on logits."""
    # The reference code ended its models in a softmax yet passed from_logits=True, so the
    # loss applied a second softmax and squashed the gradients. Our models output logits, which
    # is what from_logits=True expects; we do not copy that bug.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def count_parameters(model):
    """Number of scalars in all of the model's weights (these models have no frozen ones)."""
    return int(model.count_params())


class _KernelOptions:
    """Keyword arguments for each Conv2D / Dense kernel: initializer and regularizer."""

    def __init__(self, regularization, l2, seed):
        self._regularization = regularization
        self._l2 = l2
        self._seeds = None if seed is None else np.random.default_rng(seed)

    def __call__(self, hidden_dense=False):
        regularized = self._regularization == "all" or (
            self._regularization == "dense" and hidden_dense
        )
        # One fresh int seed per layer: a Keras initializer with a fixed int seed returns the
        # same values on every call, so sharing one would give same-shaped layers equal kernels.
        layer_seed = None if self._seeds is None else int(self._seeds.integers(2**31))
        return {
            "kernel_initializer": keras.initializers.GlorotUniform(seed=layer_seed),
            "kernel_regularizer": keras.regularizers.L2(self._l2) if regularized else None,
        }


def _validate_user_regularization(dropout, translation, flip):
    if dropout is not None and not (is_number(dropout) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be None or a number in [0, 1), got {dropout!r}")
    if translation is not None and not (is_number(translation) and 0 <= translation <= 1):
        raise ValueError(f"translation must be None or a number in [0, 1], got {translation!r}")
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False, got {flip!r}")


def _validate(dataset, regularization, l2, seed, input_shape):
    check_choice("dataset", dataset, MODEL_NAMES)
    check_choice("regularization", regularization, REGULARIZATIONS)
    check_non_negative_number("l2", l2)
    if seed is not None and (not is_integer(seed, int) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    if input_shape is not None:
        if dataset != "mlp":
            raise ValueError(
                f"input_shape can only be set for dataset='mlp', got {input_shape!r} for "
                f"dataset={dataset!r}, whose input shape is {INPUT_SHAPES[dataset]}"
            )
        if not isinstance(input_shape, (tuple, list)) or not input_shape or not all(
            isinstance(size, int) and size >= 1 for size in input_shape
        ):
            raise ValueError(
                f"input_shape must be a non-empty tuple of ints >= 1, got {input_shape!r}"
            )
