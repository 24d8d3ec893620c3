"""Pure selection helpers on plain arrays: fitness, elites, fitness-weighted parent draws.

They take numpy arrays and a `numpy.random.Generator` and return plans; the population applies
the plans. Keeping them free of Keras lets tests check the statistics on thousands of draws.
"""

from __future__ import annotations

import numpy as np

__all__ = ["inverse_loss_fitness", "rank_by_fitness", "fitness_weighted_parents"]


def inverse_loss_fitness(losses) -> np.ndarray:
    """The paper's fitness 2 / (2 + loss), in (0, 1] for loss >= 0; non-finite loss -> 0.

    A member whose loss is NaN or infinite has diverged: fitness 0 makes sure it is never
    kept as an elite and never drawn as a parent.
    """
    losses = np.asarray(losses, dtype=np.float64)
    fitness = np.zeros_like(losses)
    finite = np.isfinite(losses)
    fitness[finite] = 2.0 / (2.0 + np.maximum(losses[finite], 0.0))
    return fitness


def sanitize_fitness(fitness) -> np.ndarray:
    """Returns fitness as float64 with non-finite or negative values set to 0."""
    fitness = np.asarray(fitness, dtype=np.float64).copy()
    fitness[~np.isfinite(fitness) | (fitness < 0)] = 0.0
    return fitness


def rank_by_fitness(fitness) -> np.ndarray:
    """Member indices from fittest to weakest; ties keep the lower index first (stable)."""
    return np.argsort(-sanitize_fitness(fitness), kind="stable")


def fitness_weighted_parents(fitness, count: int, rng: np.random.Generator) -> np.ndarray:
    """Draws `count` parent indices with replacement, P(i) = fitness_i / sum(fitness).

    This is the paper's WeightedMultinomial over the whole optimized population, elites
    included. Raises if no member has positive fitness (every member diverged).
    """
    fitness = sanitize_fitness(fitness)
    total = fitness.sum()
    if not total > 0:
        raise FloatingPointError(
            "every member of the population has fitness 0 (non-finite or infinite loss): "
            "nothing is left to select from; lower the learning-rate bounds or check the data"
        )
    return rng.choice(len(fitness), size=count, replace=True, p=fitness / total)
