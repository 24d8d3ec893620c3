"""PopDescent: the paper's Algorithm 1 as a Keras callback over a `Population`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from popdescent.selection import fitness_weighted_parents, inverse_loss_fitness, rank_by_fitness
from popdescent.strategies.base import PopulationStrategy


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

    The `size - elites` weakest members are replaced; each replacement is drawn, with
    replacement, from the whole optimized population (elites included) with probability
    proportional to fitness, and mutated with magnitude 1 - its fitness.
    """
    fitness = np.asarray(fitness, dtype=np.float64)
    ranking = rank_by_fitness(fitness)
    kept, replaced = ranking[:elites], ranking[elites:]
    parents = fitness_weighted_parents(fitness, len(replaced), rng)
    magnitudes = 1.0 - fitness[parents]
    seeds = rng.integers(0, 2**31 - 1, size=len(replaced))
    return ReplacementPlan(np.sort(kept), replaced, parents, magnitudes, seeds)


class PopDescent(PopulationStrategy):
    """Population Descent (Pomalapally, Mabsout & Mancuso, 2023) as a Keras callback.

    At the end of every `every`-th epoch of `Population.fit` it measures each member's
    fitness on a freshly sampled cross-validation batch, keeps the `elites` fittest
    untouched, and replaces the others by fitness-weighted draws from the whole population,
    each a copy of its parent (weights and its own copy of the optimizer state) mutated with
    magnitude 1 - fitness: per-weight Gaussian noise of std `weight_noise * magnitude`, and
    every tunable hyperparameter multiplied by 10**N(0, hyperparameter_noise * magnitude)
    (log-scale priors; see `popdescent.hyperparameters`), kept within its prior's bounds.

    Args:
        elites: m, the number of fittest members kept untouched; 1 <= m < population size.
            Default 3 (population 5, 2 replaced per iteration, as in the paper's Table 1).
        weight_noise: beta1, std of the weight noise at magnitude 1. Default 0.01, the
            reference code's weight-noise std.
        hyperparameter_noise: beta2, std in log10 units at magnitude 1. Default 1.0, so that
            x10 and x0.1 are one standard deviation away at magnitude 1, as the paper puts it.
        every: act every `every` epochs (the reference's replacement rate). Default 1.
        cross_validation: select on validation data (the paper); False selects on training
            data (the paper's ablation).
        mutate: False keeps selection and copying but skips all mutation (the ablation).
        fitness: maps an array of member losses to fitness in [0, 1]; default 2 / (2 + loss).
        cv_batch_size: size of the sampled cross-validation batch. Default 640 (10 batches of
            64, as in the reference code).
        seed: seed of this strategy's draws; default derived from the population's seed.

    Example:
        >>> pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
        ...         validation_data=(x_val, y_val), callbacks=[PopDescent(elites=3)])
    """

    def __init__(
        self,
        elites=3,
        weight_noise=0.01,
        hyperparameter_noise=1.0,
        every=1,
        cross_validation=True,
        mutate=True,
        fitness=inverse_loss_fitness,
        cv_batch_size=640,
        seed=None,
    ):
        super().__init__(every=every, cross_validation=cross_validation,
                         fitness=fitness, cv_batch_size=cv_batch_size, seed=seed)
        if isinstance(elites, bool) or not isinstance(elites, (int, np.integer)) or elites < 1:
            raise ValueError(f"elites must be an integer >= 1, got {elites!r}")
        self.elites = int(elites)
        self.weight_noise = self.check_noise("weight_noise", weight_noise)
        self.hyperparameter_noise = self.check_noise("hyperparameter_noise", hyperparameter_noise)
        self.mutate = bool(mutate)

    def check_population(self, population):
        if self.elites >= population.size:
            raise ValueError(
                f"elites must be in [1, size-1] = [1, {population.size - 1}], got {self.elites}"
            )

    def evolve(self, population, fitness, rng):
        plan = plan_replacement(fitness, self.elites, rng)
        snapshots = {
            int(parent): population.member_state(int(parent)) for parent in set(plan.parents)
        }
        for slot, parent, magnitude, seed in zip(
            plan.replaced, plan.parents, plan.magnitudes, plan.seeds
        ):
            population.load_member_state(int(slot), snapshots[int(parent)])
            if self.mutate:
                population.perturb_weights(int(slot), self.weight_noise * magnitude, int(seed))
                values = {
                    name: population.priors[name].mutate(
                        value, magnitude, self.hyperparameter_noise, rng
                    )
                    for name, value in snapshots[int(parent)][-1].items()
                }
                population.set_hyperparameters(int(slot), values)
        return plan.replaced, plan.parents

    def get_config(self):
        return {
            "elites": self.elites,
            "weight_noise": self.weight_noise,
            "hyperparameter_noise": self.hyperparameter_noise,
            "every": self.every,
            "cross_validation": self.cross_validation,
            "mutate": self.mutate,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
        }

