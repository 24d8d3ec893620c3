"""The random-selection control (issue 38): the same population, the members kept and copied
chosen at random instead of by fitness.

`RandomSelectionFitness` is a strategy's `fitness` function that hands the fitness values of
the finite members out among them in a random order: selection, rungs and parent draws then
ignore how well a member did, while the spread of fitness values, and so of mutation
magnitudes, stays what it was. The order is a pure function of the losses and a seed (no
generator state), so a resumed run draws the orders an uninterrupted one did. A member whose
loss is not finite keeps its zero fitness and is never a parent.
"""

from __future__ import annotations

import zlib

import numpy as np

from popdescent.population.selection import inverse_loss_fitness

__all__ = ["RandomSelectionFitness"]


class RandomSelectionFitness:
    """losses -> the inverse-loss fitness values, shuffled among the finite members.

    Args:
        seed: an int; the same seed and losses give the same order.
    """

    def __init__(self, seed):
        self.seed = int(seed)

    def __call__(self, losses) -> np.ndarray:
        losses = np.asarray(losses, dtype=np.float64)
        fitness = np.asarray(inverse_loss_fitness(losses), dtype=np.float64).copy()
        finite = np.flatnonzero(np.isfinite(losses))
        rng = np.random.default_rng([self.seed, zlib.crc32(losses.tobytes())])
        fitness[finite] = fitness[finite][rng.permutation(len(finite))]
        return fitness
