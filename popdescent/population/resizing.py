"""`Resizing`: members leave a population's fused step, and new ones join it.

A mixin of `Population`, as `MemberOperations` is. A budget-aware strategy shrinks the
population in rungs (`keep_members`) and, past the horizon one model can use, trains new
members beside or after the survivor (`add_members`). Either way the fused step retraces once
at its next call; member-steps already taken stay counted; `origins` says which member each
slot holds (a new member gets an origin no member had before). It knows nothing of why.
"""

from __future__ import annotations

import keras
import numpy as np

from popdescent.population import members as members_lib

__all__ = ["Resizing"]


class Resizing:
    """Shrinking and growing a `Population` (see the module docstring)."""

    @property
    def next_origin(self) -> int:
        """The origin the next new member gets: one more than any member ever had."""
        return max(self._origin_count, max(self.origins) + 1)

    def keep_members(self, indices) -> None:
        """Shrinks the population to the members `indices` (at least one); the others leave
        the fused step, which retraces once at its next call. Member-steps already taken
        stay counted; `origins` keeps who is left."""
        indices = [int(i) for i in indices]
        if not indices or sorted(set(indices)) != sorted(indices) or not all(
            0 <= i < self.size for i in indices
        ):
            raise ValueError(
                f"indices must be distinct members in [0, {self.size - 1}], at least one, "
                f"got {indices}"
            )
        indices = sorted(indices)
        self._origin_count = self.next_origin
        # Keras tracks what these lists hold (save writes it): pop in place, which untracks,
        # rather than assigning new lists, which would leave the old entries tracked.
        for index in reversed(range(self.size)):
            if index not in indices:
                self.members.pop(index)
                self._loss_trackers.pop(index)
                kernels = self._l2_kernels.pop(index)
                while kernels:
                    kernels.pop()
        self.live_hyperparameters.keep(indices)
        kept = {id(variable) for variable in self.live_hyperparameters.own_variables()}
        for position in reversed(range(len(self._hyperparameter_variables))):
            if id(self._hyperparameter_variables[position]) not in kept:
                self._hyperparameter_variables.pop(position)
        self.origins = [self.origins[i] for i in indices]
        if self._initial_weights is not None:
            self._initial_weights = [self._initial_weights[i] for i in indices]
        self.nonfinite = self.nonfinite[indices]
        if self.fitness is not None:
            self.fitness = np.asarray(self.fitness)[indices]
        self.size = len(indices)
        for index, tracker in enumerate(self._loss_trackers):
            tracker.name = f"loss_{index}"
        self._members_changed()

    def add_members(self, count, template=0, origins=None) -> list:
        """Adds `count` new members at the end: each a freshly initialised clone of member
        `template`'s model (seeded by the population's seed and its origin, so the same
        population grows the same members), compiled like it, with a fresh optimizer and the
        template's hyperparameters; returns their slots. `origins` gives their origins (a
        backup restoring a grown population does); default the next unused ones."""
        count = int(count)
        if count < 1 or not 0 <= int(template) < self.size:
            raise ValueError(f"count must be >= 1 and template a member in [0, {self.size - 1}],"
                             f" got count={count}, template={template}")
        if origins is None:
            origins = list(range(self.next_origin, self.next_origin + count))
        origins = [int(o) for o in origins]
        if len(origins) != count or set(origins) & set(self.origins):
            raise ValueError(f"origins must be {count} origins no member holds, got {origins}")
        source = self.members[int(template)]
        values = self.hyperparameters_of(int(template))
        new = [members_lib.clone_member(source, _member_seed(self.seed, origin), origin)
               for origin in origins]
        slots = list(range(self.size, self.size + count))
        self.members.extend(new)
        self.live_hyperparameters.extend(new)
        # In own_variables' order, which a saved population is loaded in.
        while self._hyperparameter_variables:
            self._hyperparameter_variables.pop()
        self._hyperparameter_variables.extend(self.live_hyperparameters.own_variables())
        # extend, not append: Keras' tracked list keeps what extend wraps (a tracked list of
        # the kernels, whose pop untracks them in keep_members) but appends the raw list.
        self._l2_kernels.extend(members_lib.kernel_variables(member, self.l2_layers)
                                for member in new)
        self._loss_trackers.extend(keras.metrics.Mean(name=f"loss_{slot}") for slot in slots)
        self.origins = self.origins + origins
        self._origin_count = max(self._origin_count, max(origins) + 1)
        if self._initial_weights is not None:
            self._initial_weights = self._initial_weights + [
                [keras.ops.copy(v.value) for v in member.trainable_variables] for member in new]
        self.nonfinite = np.concatenate([self.nonfinite, np.zeros(count, dtype=bool)])
        if self.fitness is not None:
            self.fitness = np.concatenate([np.asarray(self.fitness, dtype=np.float64),
                                           np.full(count, np.nan)])
        self.size += count
        for slot in slots:
            self.set_hyperparameters(slot, values)
        self._members_changed()
        return slots

    def _members_changed(self):
        """After a resize: drop the traced functions that close over the members, recompile
        (the members' XLA updates) and retrace the train step at its next call."""
        self.forget_fitness_functions()
        self.forget_operation_functions()
        self.compile(**self.get_compile_config())
        self.make_train_function(force=True)
        self.test_function = self.predict_function = None


def _member_seed(seed: int, origin: int) -> int:
    """The initialisation seed of a member added with `origin`."""
    return int(np.random.SeedSequence([int(seed), int(origin)]).generate_state(1)[0])
