"""PopDescent's decide step on plain arrays (Algorithm 1, lines 6-14): who is kept, who is
replaced by a copy of whom, and how each copy's hyperparameters are mutated. The population
applies the plan; `popdescent.ray.scheduler` makes the same decisions across Ray trials."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from popdescent.population.selection import (
    fitness_weighted_parents,
    rank_by_fitness,
    sanitize_fitness,
)

__all__ = ["ReplacementPlan", "plan_replacement", "mutate_hyperparameters", "WEIGHT_NOISE_MODES",
           "REFERENCE_LOSS_SCALE_BOUNDS", "REFERENCE_REG_CONSTANT_BOUNDS"]


@dataclass(frozen=True)
class ReplacementPlan:
    """What one PopDescent step decides, before anything is applied.

    Attributes:
        elites: indices of the m fittest members, kept untouched.
        replaced: indices of the weakest members, each overwritten by a mutated copy.
        parents: for each replaced slot, the member it copies (drawn fitness-weighted).
        magnitudes: for each replaced slot, the mutation magnitude 1 - fitness(parent).
        seeds: for each replaced slot, the seed of its weight noise.
    """

    elites: np.ndarray
    replaced: np.ndarray
    parents: np.ndarray
    magnitudes: np.ndarray
    seeds: np.ndarray


def plan_replacement(fitness, elites: int, rng: np.random.Generator) -> ReplacementPlan:
    """Algorithm 1, lines 6-14, on plain arrays.

    The `size - elites` weakest members, and any member of fitness 0, are replaced; each
    replacement is drawn, with replacement, from the whole optimized population (elites
    included) with probability proportional to fitness, and mutated with magnitude
    1 - its fitness.
    """
    fitness = sanitize_fitness(fitness)
    ranking = rank_by_fitness(fitness)
    # A member with fitness 0 (diverged: non-finite loss or weights) is never an elite, even
    # when more members diverged than are replaced; the population size stays the same.
    kept = ranking[:elites][fitness[ranking[:elites]] > 0]
    replaced = ranking[~np.isin(ranking, kept)]
    parents = fitness_weighted_parents(fitness, len(replaced), rng)
    magnitudes = 1.0 - fitness[parents]
    seeds = rng.integers(0, 2**31 - 1, size=len(replaced))
    return ReplacementPlan(np.sort(kept), replaced, parents, magnitudes, seeds)


WEIGHT_NOISE_MODES = ("per_weight", "scalar", "relative")
# The reference code's loss scale ("learning rate") had no bounds; below 1e-12 a member's
# Adam steps are ~1e-8 x its gradient (frozen), above ~1e-2 it trains as plain Adam(1e-3), so
# these bounds change nothing a member could do beyond them.
REFERENCE_LOSS_SCALE_BOUNDS = (1e-12, 1e4)
REFERENCE_REG_CONSTANT_BOUNDS = (1e-12, 1e12)


def mutate_hyperparameters(priors, values, magnitude, noise, base, rng) -> dict:
    """Each value mutated by its prior, on plain dicts.

    A log-scale prior multiplies its value by base**N(0, noise * magnitude), i.e. by
    10**N(0, noise * log10(base) * magnitude); base 10 is the paper's LogNormal, base 2 with
    noise 15 the reference code's 2**N(0, 15 * magnitude). Other priors get scale `noise`.
    """
    log_noise = noise * math.log10(base)
    return {
        name: priors[name].mutate(
            value, magnitude, log_noise if priors[name].log_scale else noise, rng
        )
        for name, value in values.items()
    }
