"""`MemberOperations`: what a strategy may do to one member of a `Population`.

A mixin of `Population`, as `FusedTrainStep` is: snapshot and restore a member (weights,
optimizer state, hyperparameters), copy one member onto another, disturb its weights (the
paper's absolute noise, a scale-relative variant, or the reference code's single scalar
shift), restart it from its initial weights, and apply a strategy's replacement plan. Every
change is a backend variable assign, so nothing retraces. It reads the population's
`members`, `_initial_weights` and `set_hyperparameters`/`hyperparameters_of`; it knows
nothing of any tuning algorithm.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from popdescent.population import members as members_lib

__all__ = ["MemberOperations"]


class MemberOperations:
    """Member-level operations of a `Population` (see the module docstring)."""

    def forget_operation_functions(self) -> None:
        """Drops the traced weight-noise function, which closes over the members (see
        `MemberFitness.forget_fitness_functions`)."""
        self._perturb_member = None

    def member(self, index) -> keras.Model:
        """Member `index` itself (not a copy): training it changes the population."""
        return self.members[index]

    def _member_variables(self, index):
        member = self.members[index]
        return list(member.weights) + list(member.optimizer.variables)

    def member_state(self, index) -> list:
        """A snapshot (tensors) of member `index`: weights, optimizer state, hyperparameters."""
        variables = self._member_variables(index)
        snapshot = [tf.identity(variable.value) for variable in variables]
        return snapshot + [self.hyperparameters_of(index)]

    def load_member_state(self, index, state) -> None:
        """Overwrites member `index` with a `member_state` snapshot (backend assigns)."""
        *tensors, hyperparameters = state
        for variable, value in zip(self._member_variables(index), tensors, strict=True):
            variable.assign(value)
        self.set_hyperparameters(index, hyperparameters)

    def copy_member(self, source, destination) -> None:
        """Member `destination` becomes a copy of `source`: weights, its own copy of the
        optimizer state, and hyperparameters."""
        if source != destination:
            self.load_member_state(destination, self.member_state(source))

    def perturb_weights(self, index, stddev, seed, relative=False) -> None:
        """Adds independent Gaussian noise N(0, stddev) to every trainable weight of member
        `index`; `seed` (an int) makes the draw reproducible. With `relative`, each
        variable's noise std is `stddev` times that variable's own standard deviation, so a
        wide Dense kernel and a small bias are disturbed alike (the paper's noise is absolute).
        """
        if stddev <= 0:
            return
        if self._perturb_member is None:
            self._perturb_member = tf.function(self._perturb_member_graph)
        self._perturb_member(
            tf.constant(int(index), tf.int32),
            tf.constant(int(seed), tf.int64),
            tf.constant(float(stddev), tf.float64),
            tf.constant(bool(relative)),
        )

    def _perturb_member_graph(self, index, seed, stddev, relative):
        # One traced function for all members, switching on the index: one dispatch per
        # mutation instead of one per weight, the weights' draws run in parallel, and it
        # traces once (one function per member traced N times, and TensorFlow warned of
        # "frequent retracing" from five members on).
        def branch(variables):
            def perturb():
                members_lib.add_weight_noise(variables, seed, stddev, relative)
                return tf.constant(0)

            return perturb

        tf.switch_case(index, [branch(member.trainable_variables) for member in self.members])

    def shift_weights(self, index, offset) -> None:
        """Adds the same number `offset` to every trainable weight of member `index`: the
        reference code's weight mutation (one scalar draw for the whole model)."""
        if isinstance(offset, bool) or not isinstance(
            offset, (int, float, np.integer, np.floating)
        ) or not np.isfinite(offset):
            raise ValueError(f"offset must be a finite number, got {offset!r}")
        for variable in self.members[index].trainable_variables:
            variable.assign(variable.value + ops.cast(offset, variable.dtype))

    def reinitialize_member(self, index) -> None:
        """Member `index` restarts: the trainable weights its slot had when the population's
        first `fit` began, and fresh optimizer state (step count and slots zero). Its
        hyperparameters stay; a strategy sets new ones. Used to rescue a dead population."""
        if self._initial_weights is None:
            raise ValueError(
                "reinitialize_member needs the initial weights, which fit keeps only for a "
                "callback with needs_initial_weights = True (PopDescent(rescue_after=...))"
            )
        self.set_member_weights(index, self._initial_weights[index])
        optimizer = self.members[index].optimizer
        rate = optimizer.learning_rate
        # A LossScaleOptimizer's (mixed_float16) scale restarts at its initial value: at zero
        # every gradient would be 0/0 and every step skipped.
        loss_scale = getattr(optimizer, "dynamic_scale", None)
        for variable in optimizer.variables:
            if variable is loss_scale:
                variable.assign(optimizer.initial_scale)
            elif variable is not rate:
                variable.assign(ops.zeros(variable.shape, variable.dtype))

    def apply_plan(self, slots, parents, hyperparameters, weight_noise=None, seeds=None,
                   noise_mode="per_weight") -> None:
        """Applies a strategy's replacement plan: slot `slots[k]` becomes a copy of
        `parents[k]` (each parent snapshotted once, before any slot is overwritten), its
        weights get noise of std `weight_noise[k]` drawn from `seeds[k]` ("per_weight": an
        independent draw per weight; "relative": scaled by each variable's own std;
        "scalar": one draw added to every weight, the reference code's), and its
        hyperparameters become `hyperparameters[k]`."""
        snapshots = {int(p): self.member_state(int(p)) for p in set(np.asarray(parents).tolist())}
        for k, (slot, parent) in enumerate(zip(slots, parents)):
            self.load_member_state(int(slot), snapshots[int(parent)])
            stddev = 0.0 if weight_noise is None else float(weight_noise[k])
            if stddev > 0 and noise_mode == "scalar":
                offset = np.random.default_rng(int(seeds[k])).normal(0.0, stddev)
                self.shift_weights(int(slot), float(offset))
            elif stddev > 0:
                self.perturb_weights(int(slot), stddev, int(seeds[k]),
                                     relative=noise_mode == "relative")
            self.set_hyperparameters(int(slot), hyperparameters[k])

    def set_member_weights(self, index, weights) -> None:
        """Assigns a list of tensors to member `index`'s trainable weights (backend assigns)."""
        for variable, value in zip(self.members[index].trainable_variables, weights, strict=True):
            variable.assign(value)
