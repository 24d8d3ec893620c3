"""`MemberFitness`: how a `Population` measures its members.

A mixin of `Population`: every member's loss on held-out data in one compiled function,
the fitness a strategy selects on (non-finite members get fitness 0), the mask of members
whose weights or optimizer state went non-finite, and the fittest member's index. It reads
the population's `members` and `size` and writes `fitness`, `last_losses` and `nonfinite`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import ops

from popdescent.inputs.array_inputs import count_examples, take
from popdescent.population.selection import inverse_loss_fitness, sanitize_fitness

__all__ = ["MemberFitness"]


class MemberFitness:
    """Fitness measurement of a `Population` (see the module docstring)."""

    def forget_fitness_functions(self) -> None:
        """Drops the traced fitness functions: they close over the members, so a population
        whose members changed (`keep_members`) traces them again at their next call."""
        self._member_loss_function = None
        self._nonfinite_function = None

    def _member_losses_graph(self, x, y):
        return ops.stack([
            member.compute_loss(x=x, y=y, y_pred=member(x, training=False), training=False)
            for member in self.members
        ])

    def member_losses(self, x, y, batch_size=None) -> np.ndarray:
        """Each member's loss on (x, y), as `member.evaluate` computes it; shape (size,)."""
        if self._member_loss_function is None:
            self._member_loss_function = tf.function(
                self._member_losses_graph, reduce_retracing=True
            )
        count = count_examples(x)
        batch_size = count if batch_size is None else int(batch_size)
        total = np.zeros(self.size, dtype=np.float64)
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            window = slice(start, stop)
            losses = self._member_loss_function(take(x, window), take(y, window)).numpy()
            total += losses.astype(np.float64) * (stop - start)
        return total / count

    def evaluate_fitness(self, x, y, fitness=inverse_loss_fitness, batch_size=None) -> np.ndarray:
        """Measures every member's fitness on (x, y), stores it in `self.fitness`, returns it.

        A member whose loss, weights or optimizer state is non-finite gets fitness 0, whatever
        the fitness function says; the mask is kept in `self.nonfinite`.
        """
        losses = self.member_losses(x, y, batch_size)
        self.last_losses = losses
        self.nonfinite = ~np.isfinite(losses) | self.nonfinite_members()
        self.fitness = sanitize_fitness(fitness(losses))
        self.fitness[self.nonfinite] = 0.0
        return self.fitness

    def nonfinite_members(self) -> np.ndarray:
        """A boolean mask, shape (size,): True where a member's weights or optimizer state hold
        a NaN or an infinity (one compiled check over all members, no retrace)."""
        if self._nonfinite_function is None:
            groups = [
                [v for v in self._member_variables(i) if "float" in str(v.dtype)]
                for i in range(self.size)
            ]

            def check():
                return tf.stack([
                    tf.logical_not(tf.reduce_all(tf.stack(
                        [tf.reduce_all(tf.math.is_finite(v.value)) for v in group])))
                    for group in groups
                ])

            self._nonfinite_function = tf.function(check)
        return self._nonfinite_function().numpy()

    def best_index(self) -> int:
        """Index of the fittest member by the last recorded fitness (never by test data)."""
        if self.fitness is None:
            raise ValueError(
                "no fitness recorded yet: fit with a strategy callback such as PopDescent, or "
                "call pop.evaluate_fitness(x_val, y_val)"
            )
        fitness = np.where(np.isnan(self.fitness), -np.inf, self.fitness)
        return int(np.argmax(fitness))

