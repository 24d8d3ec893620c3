"""PBT: Population Based Training (Jaderberg et al., 2017) as Ray Tune implements it, as a
Keras callback over a `Population`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from popdescent.hyperparameters import Choice
from popdescent.population.selection import inverse_loss_fitness, rank_by_fitness, sanitize_fitness
from popdescent.strategies.base import PopulationStrategy
from popdescent.validation import check_integer

__all__ = ["PBT", "ExploitPlan", "plan_exploit", "explore"]


@dataclass(frozen=True)
class ExploitPlan:
    """What one PBT exploit step decides, before anything is applied.

    Attributes:
        bottom: indices of the lower quantile, fittest first; each is overwritten.
        top: indices of the upper quantile, fittest first; the only possible parents.
        parents: for each bottom slot, the top member it copies (drawn uniformly).
    """

    bottom: np.ndarray
    top: np.ndarray
    parents: np.ndarray


def quantile_count(size: int, quantile_fraction: float) -> int:
    """Members in each quantile: ceil(size * fraction), at most floor(size / 2) (Ray Tune)."""
    count = int(math.ceil(size * quantile_fraction))
    if count > size / 2:
        count = size // 2
    return count


def plan_exploit(fitness, quantile_fraction: float, rng: np.random.Generator) -> ExploitPlan:
    """Ray Tune's exploit on plain arrays: the bottom quantile copies random top members.

    Members are ranked by fitness (non-finite fitness counts as 0, the weakest). Each of the
    `quantile_count` weakest members gets a parent drawn uniformly, with replacement, from the
    `quantile_count` fittest. A top member with fitness 0 (diverged) is never a parent.
    """
    fitness = sanitize_fitness(fitness)
    count = quantile_count(len(fitness), quantile_fraction)
    ranking = rank_by_fitness(fitness)
    if count == 0:
        empty = np.array([], dtype=int)
        return ExploitPlan(empty, empty, empty)
    top = ranking[:count]
    bottom = ranking[len(fitness) - count:]
    candidates = top[fitness[top] > 0]
    if len(candidates) == 0:
        raise FloatingPointError(
            "every member of PBT's top quantile has fitness 0 (non-finite or infinite loss): "
            "there is no member left to copy; lower the learning-rate bounds or check the data"
        )
    parents = rng.choice(candidates, size=count, replace=True)
    return ExploitPlan(bottom, top, parents)


def explore(values: dict, priors: dict, resample_probability: float, perturbation_factors,
            rng: np.random.Generator) -> dict:
    """Ray Tune's explore on plain values: returns the new hyperparameter values.

    For each tunable hyperparameter (in name order): with probability `resample_probability`
    a fresh draw from its prior's initial range; otherwise a continuous value is multiplied by
    a factor drawn uniformly from `perturbation_factors` (1.2 or 0.8) and a `Choice` moves to
    a neighbouring value (down or up with probability 1/2 each). Results are clipped to the
    prior's bounds. `Fixed` hyperparameters keep their value.
    """
    explored = dict(values)
    for name in sorted(values):
        prior = priors[name]
        if not prior.mutable:
            continue
        if rng.uniform() < resample_probability:
            explored[name] = prior.sample(rng)
        elif isinstance(prior, Choice):
            position = prior.values.index(prior.clip(values[name]))
            step = -1 if rng.uniform() > 0.5 else 1
            explored[name] = prior.values[min(max(position + step, 0), len(prior.values) - 1)]
        else:
            factor = perturbation_factors[int(rng.integers(len(perturbation_factors)))]
            explored[name] = prior.clip(float(values[name]) * factor)
    return explored


class PBT(PopulationStrategy):
    """Population Based Training (Jaderberg et al., 2017), as Ray Tune's scheduler does it.

    At the end of every `interval`-th epoch of `Population.fit` it measures each member's
    fitness on a freshly sampled cross-validation batch. Each member of the bottom
    `quantile_fraction` copies the weights, its own copy of the optimizer state and the
    hyperparameters of a member drawn uniformly from the top `quantile_fraction` (exploit),
    then explores: each hyperparameter is multiplied by 1.2 or 0.8, or, with probability
    `resample_probability`, redrawn from its prior; values stay within the prior's bounds.
    Weights are not perturbed. The middle of the population is untouched.

    Args:
        interval: act every `interval` epochs (Ray Tune's `perturbation_interval` in
            iterations). Default 1.
        quantile_fraction: the fraction of members in each quantile, in [0, 0.5]; the count
            is ceil(size * fraction), at most size // 2 (0 disables exploitation). Default 0.25.
        resample_probability: probability of redrawing a hyperparameter from its prior
            instead of perturbing it, in [0, 1]. Default 0.25.
        perturbation_factors: the factors a continuous hyperparameter is multiplied by, each
            > 0. Default (1.2, 0.8).
        cross_validation: select on validation data; False selects on training data.
        fitness: maps an array of member losses to fitness; default 2 / (2 + loss).
        cv_batch_size: size of the sampled cross-validation batch. Default 640.
        seed: seed of this strategy's draws; default derived from the population's seed.

    Example:
        >>> pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
        ...         validation_data=(x_val, y_val), callbacks=[PBT(interval=1)])
    """

    def __init__(
        self,
        interval=1,
        quantile_fraction=0.25,
        resample_probability=0.25,
        perturbation_factors=(1.2, 0.8),
        cross_validation=True,
        fitness=inverse_loss_fitness,
        cv_batch_size=640,
        seed=None,
    ):
        check_integer("interval", interval, minimum=1)
        super().__init__(every=interval, cross_validation=cross_validation,
                         fitness=fitness, cv_batch_size=cv_batch_size, seed=seed)
        self.quantile_fraction = self._check_fraction(
            "quantile_fraction", quantile_fraction, 0.5)
        self.resample_probability = self._check_fraction(
            "resample_probability", resample_probability, 1.0)
        factors = tuple(perturbation_factors) if isinstance(
            perturbation_factors, (list, tuple)) else ()
        if not factors or any(
            isinstance(f, bool) or not isinstance(f, (int, float, np.number))
            or not math.isfinite(f) or f <= 0 for f in factors
        ):
            raise ValueError(
                "perturbation_factors must be a non-empty list of finite numbers > 0, got "
                f"{perturbation_factors!r}"
            )
        self.perturbation_factors = tuple(float(f) for f in factors)
        self.interval = int(interval)

    @staticmethod
    def _check_fraction(name, value, high):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not 0 <= value <= high:
            raise ValueError(f"{name} must be a number in [0, {high}], got {value!r}")
        return float(value)

    def evolve(self, population, fitness, rng):
        plan = plan_exploit(fitness, self.quantile_fraction, rng)
        values = [
            explore(population.hyperparameters_of(int(parent)), population.priors,
                    self.resample_probability, self.perturbation_factors, rng)
            for parent in plan.parents
        ]
        population.apply_plan(plan.bottom, plan.parents, values)
        return plan.bottom, plan.parents

    def get_config(self):
        return {
            "interval": self.interval,
            "quantile_fraction": self.quantile_fraction,
            "resample_probability": self.resample_probability,
            "perturbation_factors": list(self.perturbation_factors),
            "cross_validation": self.cross_validation,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
            "fitness": getattr(self.fitness_function, "__qualname__",
                               type(self.fitness_function).__name__),
        }
