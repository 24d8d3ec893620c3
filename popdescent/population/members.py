"""Making the members of a population: independent clones of a compiled Keras model.

A member is a compiled `keras.Model` with its own weights, drawn by its own seed, and its own
optimizer of the same class and configuration as the template's.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def check_compiled_model(model, argument: str) -> None:
    """Raises if `model` is not a built, compiled Keras model with trainable weights."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{argument} must be a keras.Model, got {type(model).__name__}")
    if not getattr(model, "compiled", False) or model.optimizer is None or model.loss is None:
        raise ValueError(
            f"{argument} must be compiled with an optimizer and a loss "
            "(model.compile(optimizer=..., loss=...)) before it joins a Population"
        )
    if not model.built:
        raise ValueError(
            f"{argument} must be built: give it a keras.Input or call model.build(input_shape)"
        )
    if not model.trainable_variables:
        raise ValueError(f"{argument} has no trainable weights: there is nothing to train")


def _reseed(config, rng: np.random.Generator):
    """Replaces every `seed` entry in a nested layer config by a fresh draw from `rng`.

    Cloning copies initializer configs, so a model built with seeded initializers would give
    identical clones; reseeding makes each member's initial weights its own and reproducible.
    """
    if isinstance(config, dict):
        return {
            key: (int(rng.integers(2**31 - 1)) if key == "seed" else _reseed(value, rng))
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_reseed(value, rng) for value in config]
    return config


def member_scope(index: int):
    """The name scope member `index` is built in. Its weights' paths
    (`member_0/sequential/dense/kernel`) then differ between members even when the members'
    own names are the same, so TensorBoard's weight histograms, tagged by path, do not
    collide. `index` is the member's original slot (`Population.origins`)."""
    return keras.name_scope(f"member_{int(index)}")


def clone_member(template: keras.Model, seed: int, index: int) -> keras.Model:
    """A freshly initialised, compiled copy of `template`, reproducible from `seed`, built in
    member `index`'s name scope."""
    rng = np.random.default_rng(seed)

    def clone_layer(layer):
        return layer.__class__.from_config(_reseed(layer.get_config(), rng))

    keras.utils.set_random_seed(seed)  # for layers whose randomness has no seed entry
    with member_scope(index):
        try:
            clone = keras.models.clone_model(template, clone_function=clone_layer)
        except Exception as error:  # a subclassed model without get_config/from_config
            raise ValueError(
                "could not clone the model (a subclassed model needs get_config/from_config); "
                "pass a builder instead: Population(lambda index: build_compiled_model(), "
                "size=...)"
            ) from error
        clone.compile_from_config(template.get_compile_config())
        if not clone.optimizer.built:
            clone.optimizer.build(clone.trainable_variables)
    return clone


def build_member(builder, index: int, seed: int) -> keras.Model:
    """Calls the user's `builder(index)` under a fixed global seed, in member `index`'s name
    scope, and checks the result."""
    keras.utils.set_random_seed(seed)
    with member_scope(index):
        member = builder(index)
        check_compiled_model(member, f"model_or_builder({index})")
        if not member.optimizer.built:
            member.optimizer.build(member.trainable_variables)
    return member


def kernel_variables(model: keras.Model, layer_names=None) -> list:
    """The trainable `kernel` weights of `model`'s layers (nested models included).

    These are what an L2 penalty applies to; biases and normalisation scales are left alone,
    as Keras' own `kernel_regularizer` does. `layer_names` restricts the penalty to named layers.
    """
    kernels, found = [], set()

    def visit(layer):
        for child in getattr(layer, "layers", []):
            visit(child)
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            if layer_names is None or layer.name in layer_names:
                kernels.append(kernel)
                found.add(layer.name)

    visit(model)
    if layer_names is not None:
        missing = sorted(set(layer_names) - found)
        if missing:
            raise ValueError(
                f"l2_layers names layers without a trainable kernel in the model: {missing}"
            )
    return kernels


def add_weight_noise(variables, seed, stddev, relative) -> None:
    """Adds N(0, stddev) to each variable, one independent draw per weight, reproducible
    from `seed` (an int64 tensor): variable k draws from the stateless seed (seed, k). With
    `relative` (a bool tensor) each variable's std is `stddev` times its own std.

    One definition for the population's traced mutation and for a single model restored by
    `popdescent.ray`, so that both carry the same noise for the same seed.
    """
    for position, variable in enumerate(variables):
        scale = tf.cast(stddev, variable.dtype)
        scale = tf.where(relative, scale * tf.math.reduce_std(variable.value), scale)
        noise = tf.random.stateless_normal(
            variable.shape,
            seed=tf.stack([tf.cast(seed, tf.int64), tf.constant(position, tf.int64)]),
            stddev=scale,
            dtype=variable.dtype,
        )
        variable.assign_add(noise)
