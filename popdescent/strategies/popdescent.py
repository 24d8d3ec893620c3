"""PopDescent: the paper's Algorithm 1 as a Keras callback over a `Population`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from popdescent.hyperparameters import Fixed, Inert, LogNormal

from popdescent.selection import (
    fitness_weighted_parents,
    inverse_loss_fitness,
    rank_by_fitness,
    sanitize_fitness,
)
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


WEIGHT_NOISE_MODES = ("per_weight", "scalar")
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


class PopDescent(PopulationStrategy):
    """Population Descent (Pomalapally, Mabsout & Mancuso, 2023) as a Keras callback.

    At the end of every `every`-th epoch of `Population.fit` it measures each member's
    fitness on a freshly sampled cross-validation batch, keeps the `elites` fittest
    untouched, and replaces the others by fitness-weighted draws from the whole population,
    each a copy of its parent (weights and its own copy of the optimizer state) mutated with
    magnitude 1 - fitness: per-weight Gaussian noise of std `weight_noise * magnitude`, and
    every tunable hyperparameter multiplied by 10**N(0, hyperparameter_noise * magnitude)
    (log-scale priors; see `popdescent.hyperparameters`), kept within its prior's bounds.
    `PopDescent.reference_preset()` reproduces the reference code's mutation instead.

    Args:
        elites: m, the number of fittest members kept untouched; 1 <= m < population size.
            Default 3 (population 5, 2 replaced per iteration, as in the paper's Table 1).
        weight_noise: beta1, std of the weight noise at magnitude 1. Default 0.01, the
            reference code's weight-noise std.
        hyperparameter_noise: beta2, std in log10 units at magnitude 1. Default 1.0, so that
            x10 and x0.1 are one standard deviation away at magnitude 1, as the paper puts it.
        weight_noise_mode: "per_weight" (default, the paper's Gaussian(theta, beta1 *
            magnitude): an independent draw per weight) or "scalar" (the reference code: ONE
            draw N(0, beta1 * magnitude) added to every weight of the copy).
        hyperparameter_noise_base: log-scale priors mutate by a factor
            base**N(0, hyperparameter_noise * magnitude); > 1. Default 10 (the paper); the
            reference code used 2 with hyperparameter_noise 15.
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
        weight_noise_mode="per_weight",
        hyperparameter_noise_base=10.0,
    ):
        super().__init__(every=every, cross_validation=cross_validation,
                         fitness=fitness, cv_batch_size=cv_batch_size, seed=seed)
        if isinstance(elites, bool) or not isinstance(elites, (int, np.integer)) or elites < 1:
            raise ValueError(f"elites must be an integer >= 1, got {elites!r}")
        self.elites = int(elites)
        self.weight_noise = self.check_noise("weight_noise", weight_noise)
        self.hyperparameter_noise = self.check_noise("hyperparameter_noise", hyperparameter_noise)
        self.mutate = bool(mutate)
        if weight_noise_mode not in WEIGHT_NOISE_MODES:
            raise ValueError(
                f"weight_noise_mode must be one of {WEIGHT_NOISE_MODES}, got {weight_noise_mode!r}"
            )
        self.weight_noise_mode = weight_noise_mode
        base = self.check_noise("hyperparameter_noise_base", hyperparameter_noise_base)
        if not base > 1:
            raise ValueError(
                f"hyperparameter_noise_base must be a finite number > 1, got "
                f"{hyperparameter_noise_base!r}"
            )
        self.hyperparameter_noise_base = base

    @classmethod
    def reference_preset(cls, **arguments):
        """A PopDescent that mutates as the authors' reference code did, for side-by-side runs.

        Differences from the default (the paper's Algorithm 2):
          - weight noise: ONE scalar N(0, 0.01 * magnitude) added to every weight of the copy
            (`weight_noise_mode="scalar"`), not an independent draw per weight;
          - hyperparameters: multiplied by 2**N(0, 15 * magnitude)
            (`hyperparameter_noise=15, hyperparameter_noise_base=2`), not 10**N(0, magnitude).
        The reference's other quirks live in the population, built with
        `reference_hyperparameters()`: its "learning rate" is a loss scale under Adam(1e-3)
        and its regularization rate is mutated but never used. Not reproduced: clones sharing
        their parent's Adam object, per-member training and CV batches, no mutation in the
        last iteration, the uncounted fine-tuning, and selection of the reported member by
        test loss (the benchmark's `--protocol paper` reports that one separately).

        Args:
            **arguments: any other PopDescent argument (elites, cross_validation, mutate,
                cv_batch_size, every, fitness, seed).

        Example:
            >>> pop = Population(build, size=5, seed=0,
            ...                  hyperparameters=PopDescent.reference_hyperparameters())
            >>> pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
            ...         validation_data=(x_val, y_val),
            ...         callbacks=[PopDescent.reference_preset(elites=3)])
        """
        preset = {"weight_noise": 0.01, "weight_noise_mode": "scalar",
                  "hyperparameter_noise": 15.0, "hyperparameter_noise_base": 2.0}
        fixed = sorted(set(preset) & set(arguments))
        if fixed:
            raise ValueError(
                f"reference_preset fixes {fixed}; construct PopDescent(...) directly to change "
                "them"
            )
        return cls(**preset, **arguments)

    @staticmethod
    def reference_hyperparameters(regularization=True, l2=1e-3) -> dict:
        """The Population hyperparameters of the reference code, to pair with
        `reference_preset()`; members are compiled with Adam(1e-3), whose learning rate stays.

        - "loss_scale": initial 10**N(-4, 2), multiplies each member's training loss (the
          reference's "learning rate" LR_constant, which Adam all but ignores: it acts as
          Adam's epsilon divided by the scale); within `REFERENCE_LOSS_SCALE_BOUNDS`.
        - "reg_constant": `Inert`, initial 10**N(0, 2), mutated and recorded, read by nothing
          (the reference's Fashion-MNIST regularization rate).
        - "l2": with `regularization`, `Fixed(l2)`: the reference's fixed penalty, scaled by
          the loss scale like the rest of the loss. Choose its layers with the Population's
          `l2_layers`.
        """
        hyperparameters = {
            "loss_scale": LogNormal(-4.0, 2.0, bounds=REFERENCE_LOSS_SCALE_BOUNDS),
            "reg_constant": Inert(LogNormal(0.0, 2.0, bounds=REFERENCE_REG_CONSTANT_BOUNDS)),
        }
        if regularization:
            hyperparameters["l2"] = Fixed(l2)
        return hyperparameters

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
                stddev = self.weight_noise * magnitude
                if self.weight_noise_mode == "scalar":
                    if stddev > 0:
                        offset = np.random.default_rng(int(seed)).normal(0.0, stddev)
                        population.shift_weights(int(slot), float(offset))
                else:
                    population.perturb_weights(int(slot), stddev, int(seed))
                values = mutate_hyperparameters(
                    population.priors, snapshots[int(parent)][-1], magnitude,
                    self.hyperparameter_noise, self.hyperparameter_noise_base, rng,
                )
                population.set_hyperparameters(int(slot), values)
        return plan.replaced, plan.parents

    def get_config(self):
        return {
            "elites": self.elites,
            "weight_noise": self.weight_noise,
            "hyperparameter_noise": self.hyperparameter_noise,
            "weight_noise_mode": self.weight_noise_mode,
            "hyperparameter_noise_base": self.hyperparameter_noise_base,
            "every": self.every,
            "cross_validation": self.cross_validation,
            "mutate": self.mutate,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
        }

