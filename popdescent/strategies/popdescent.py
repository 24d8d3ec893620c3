"""PopDescent: the paper's Algorithm 1 as a Keras callback over a `Population`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from popdescent.array_inputs import take
from popdescent.hyperparameters import Fixed, Inert, LogNormal

from popdescent.schedules import BudgetSchedule
from popdescent.selection import (
    fitness_weighted_parents,
    inverse_loss_fitness,
    rank_by_fitness,
    sanitize_fitness,
)
from popdescent.strategies.base import PopulationStrategy
from popdescent.strategies.budget_aware import BudgetAwareness, due_size, plan_shrink
from popdescent.validation import check_integer


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
            magnitude): an independent draw per weight), "relative" (the same, with each
            variable's std scaled by that variable's own std: scale-aware) or "scalar" (the
            reference code: ONE draw N(0, beta1 * magnitude) added to every weight).
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
        budget_aware: False (default) is the paper's algorithm. True plans with the budget of
            `fit(member_steps=B)`: members' rates follow `schedule`, the population shrinks
            in `rungs` (5 -> 2 -> 1 by default) and the freed member-steps go to the
            survivors, selection with mutation happens only before the first shrink, the
            member compiled at the user's rate is protected until the last rung, and stuck
            members are rescued (see `popdescent.strategies.budget_aware`).
        schedule: with `budget_aware`, a `BudgetSchedule` (default `BudgetSchedule()`:
            constant, then linear decay to 0 over the second half) or None for none.
        rungs: with `budget_aware`, (progress, members kept) pairs; default 5 -> 2 at 5 %
            and -> 1 at 20 % of the budget.
        protect_compiled: with `budget_aware`, protect the compiled-rate member. Default True.
        rescue_after: with `budget_aware`, restart stuck members after this many iterations
            in which no member beat its starting loss; None never. Default 2.
        rung_samples: with `budget_aware`, a shrink ranks members on the first
            `rung_samples` samples of the fitness data (all of them when fewer), not on the
            sampled `cv_batch_size` batch: a shrink is final, so it gets the larger sample.
            Default 10,000.
        range_test: with `budget_aware`, spend the first iteration on a learning-rate range
            test: every member but the protected one trains at rates log-spaced over the
            learning-rate prior's bounds, then restarts from its initial weights with a rate
            in the decade below the fastest learner's (the steps count in the budget). None
            (the default) runs it whenever the population tunes the learning rate: over three
            seeds it rescued ranges 100x too small or too large and cost nothing in a good
            range (docs/budget_aware.md); False never, True always (an error without a
            learning-rate hyperparameter).
        commit_early: with `budget_aware`, a rung at which the protected member has the
            lowest loss keeps it alone: exploring further would only take depth from the
            model returned. None (the default) means True, chosen on three seeds of both
            datasets (docs/budget_aware.md); False keeps every rung.
        restore_best_weights: with `budget_aware`, once one member is left its loss on the
            rung samples is checked every `restore_best_every` member-steps (default: one
            iteration of the full population) and at the end; when the budget is spent (or
            `fit` stops early) the member gets back the weights of its lowest check, as
            Keras' `EarlyStopping(restore_best_weights=True)` would. Default True: on a
            long budget the survivor overfits (docs/budget_aware_paper.md). Checks are
            forward passes, not member-steps.

    Example:
        >>> pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
        ...         validation_data=(x_val, y_val), callbacks=[PopDescent(elites=3)])
        >>> pop.fit(x, y, batch_size=64, member_steps=3200, steps_per_epoch=16,
        ...         validation_data=(x_val, y_val), callbacks=[PopDescent(budget_aware=True)])
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
        budget_aware=False,
        schedule="default",
        rungs=None,
        protect_compiled=True,
        rescue_after=2,
        rung_samples=10_000,
        range_test=None,
        commit_early=None,
        restore_best_weights=True,
        restore_best_every=None,
    ):
        super().__init__(every=every, cross_validation=cross_validation,
                         fitness=fitness, cv_batch_size=cv_batch_size, seed=seed)
        self.elites = check_integer("elites", elites, minimum=1)
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
        self.budget_aware = bool(budget_aware)
        self.budget = None
        if self.budget_aware:
            self.budget = BudgetAwareness(
                schedule=BudgetSchedule() if schedule == "default" else schedule,
                rungs=rungs, protect_compiled=protect_compiled, rescue_after=rescue_after,
                rung_samples=rung_samples, range_test=range_test, commit_early=commit_early,
                restore_best_weights=restore_best_weights, restore_best_every=restore_best_every)
        elif (schedule != "default" or rungs is not None or range_test
              or commit_early is not None or restore_best_every is not None):
            raise ValueError(
                "schedule, rungs, range_test, commit_early and restore_best_every belong to "
                "the budget-aware mode: pass budget_aware=True"
            )
        self._pending_keep = None
        self._restarted = []
        self._rung_losses = None
        self._committed = False
        self._restored = False

    @property
    def needs_initial_weights(self) -> bool:
        """Whether `fit` must keep the initial weights (for the rescue and the range test)."""
        return self.budget is not None and (self.budget.rescue_after is not None
                                            or self.budget.range_test is not False)

    def planned_iterations(self, member_steps, size, steps_per_epoch):
        """Iterations `fit(member_steps=...)` runs: the shrinks change the size (None: the
        population's default arithmetic)."""
        if self.budget is None:
            return None
        return self.budget.planned_iterations(member_steps, size, steps_per_epoch)

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

    def start(self, population):
        if self.budget is None:
            return
        if population.progress is None:
            raise ValueError(
                "PopDescent(budget_aware=True) plans with a budget: call "
                "fit(..., member_steps=B) instead of epochs"
            )
        x, y = self.fitness_data(population)
        first = slice(0, self.cv_batch_size)
        starting = population.member_losses(take(x, first), take(y, first),
                                            population.training_data.batch_size)
        self.budget.start(population, starting)
        population.learning_rate_schedule = self.budget.schedule
        self._restored = False

    def on_train_batch_begin(self, batch, logs=None):
        if self.budget is not None and self.budget.schedule is not None:
            population = self.model
            population.live_hyperparameters.set_multiplier(
                self.budget.schedule.multiplier(population.progress))

    def evolve(self, population, fitness, rng):
        if self.budget is not None:
            return self._evolve_within_budget(population, fitness, rng)
        return self._replace(population, plan_replacement(fitness, self.elites, rng), rng)

    def _replace(self, population, plan, rng):
        """Copies and mutates as `plan` says (the paper's lines 10-14)."""
        values = [population.hyperparameters_of(int(parent)) for parent in plan.parents]
        noise = np.zeros(len(plan.replaced))
        if self.mutate:
            values = [
                mutate_hyperparameters(population.priors, value, magnitude,
                                       self.hyperparameter_noise,
                                       self.hyperparameter_noise_base, rng)
                for value, magnitude in zip(values, plan.magnitudes)
            ]
            noise = self.weight_noise * np.asarray(plan.magnitudes)
        population.apply_plan(plan.replaced, plan.parents, values, noise, plan.seeds,
                              noise_mode=self.weight_noise_mode)
        return plan.replaced, plan.parents

    def _evolve_within_budget(self, population, fitness, rng):
        budget, progress = self.budget, population.progress
        protected = budget.protected_slot(population)
        # A rung due at the end of the range test's iteration waits one iteration: the
        # tested members are about to restart, and their range-test losses say nothing of
        # the rates they restart with.
        size = None if budget.range_test_pending else due_size(budget.rungs, progress,
                                                               population.size)
        if size is not None:
            # A shrink cannot be undone: judge it on `rung_samples` fitness samples, not on
            # the sampled cv batch whose noise flipped a decision (docs/budget_aware.md).
            self._rung_losses = self._rung_sample_losses(population)
            if budget.commits(self._rung_losses, protected):
                size, self._committed = 1, True
            self._pending_keep = plan_shrink(self.fitness_function(self._rung_losses), size,
                                             protected if size > 1 else None)
            return np.array([], dtype=int), np.array([], dtype=int)
        if "learning_rate" in population.priors:
            rates = [v["learning_rate"] for v in population.hyperparameter_values()]
            bounds = population.priors["learning_rate"].bounds
            if budget.range_test_pending:
                slots, new_rates = budget.range_test_plan(
                    population.last_losses, rates, bounds,
                    budget.range_test_slots(population), rng)
            else:
                slots, new_rates = budget.rescue_plan(population.last_losses, rates, bounds, rng)
            if slots:
                for slot, rate in zip(slots, new_rates):
                    population.reinitialize_member(slot)
                    population.set_hyperparameters(slot, {"learning_rate": rate})
                self._restarted = slots
                return np.array(slots, dtype=int), np.array(slots, dtype=int)
        if budget.shrunk or progress >= 1.0 or population.size < 2:
            return np.array([], dtype=int), np.array([], dtype=int)
        plan = plan_replacement(fitness, min(self.elites, population.size - 1), rng)
        if protected is not None and protected in plan.replaced:
            keep = plan.replaced != protected
            plan = ReplacementPlan(np.sort(np.append(plan.elites, protected)),
                                   plan.replaced[keep], plan.parents[keep],
                                   plan.magnitudes[keep], plan.seeds[keep])
        return self._replace(population, plan, rng)

    def on_epoch_end(self, epoch, logs=None):
        self._pending_keep, self._restarted, self._rung_losses = None, [], None
        self._committed = False
        super().on_epoch_end(epoch, logs)
        population = self.model
        record = population.lineage[-1] if population.lineage else None
        for slot in self._restarted:
            record["members"][slot]["restarted"] = True
        if self._pending_keep is not None:
            kept = [int(i) for i in self._pending_keep]
            record["kept"] = kept
            record["rung_losses"] = [float(v) for v in self._rung_losses]
            record["left"] = [int(population.origins[i]) for i in range(population.size)
                              if i not in kept]
            if self._committed:
                record["committed"] = True
            population.keep_members(kept)
            self.budget.shrunk = True
            if logs is not None:
                logs["population_size"] = population.size
        if self.budget is not None and self.budget.restore_best_weights:
            self._check_survivor(population, record)

    def _check_survivor(self, population, record):
        """Offers the last member's weights to the budget's `SurvivorCheckpoint` when a check
        is due (its rung loss when it has just become the last), and gives it the best
        weights back when the budget is spent."""
        if population.size != 1:
            return
        checkpoint = self.budget.checkpoint
        finished = population.progress >= 1.0
        if self._pending_keep is not None:
            loss = float(self._rung_losses[int(self._pending_keep[0])])
        elif checkpoint.due(population.gradient_steps, finished):
            loss = self._survivor_loss(population)
        else:
            loss = None
        if loss is not None:
            checkpoint.offer(loss, population.gradient_steps, population.members[0].get_weights)
            record["survivor_loss"] = loss
        if finished:
            self._restore_best(population, record)

    def _restore_best(self, population, record):
        """The last member gets its best checkpoint's weights (once per fit)."""
        checkpoint = self.budget.checkpoint
        if population.size != 1 or checkpoint.weights is None or self._restored:
            return
        self._restored = True
        population.members[0].set_weights(checkpoint.weights)
        population.fitness = np.array([self.fitness_function(np.array([checkpoint.loss]))[0]])
        if record is not None:
            record["restored_best"] = {"gradient_steps": checkpoint.steps,
                                       "loss": checkpoint.loss}

    def on_train_end(self, logs=None):
        # A fit stopped before the budget was spent (EarlyStopping, say) returns the best
        # too, its final weights among the candidates.
        population = self.model
        if (self.budget is None or not self.budget.restore_best_weights or self._restored
                or population.size != 1 or not population.lineage):
            return
        checkpoint = self.budget.checkpoint
        if checkpoint.last_check != population.gradient_steps:
            checkpoint.offer(self._survivor_loss(population), population.gradient_steps,
                             population.members[0].get_weights)
        self._restore_best(population, population.lineage[-1])

    def _rung_sample_losses(self, population) -> np.ndarray:
        """Every member's loss on the first `rung_samples` samples of the fitness data: what
        a shrink ranks on and the survivor checkpoint compares."""
        x, y = self.fitness_data(population)
        first = slice(0, self.budget.rung_samples)
        return population.member_losses(take(x, first), take(y, first),
                                         population.training_data.batch_size)

    def _survivor_loss(self, population) -> float:
        return float(self._rung_sample_losses(population)[0])

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        budget = config.pop("budget", None) or {}
        if budget.get("schedule") is not None:
            budget["schedule"] = BudgetSchedule(**budget["schedule"])
        return super().from_config({**config, **budget})

    def get_state(self) -> dict:
        state = super().get_state()
        if self.budget is not None:
            state["budget"] = self.budget.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self.budget is not None and "budget" in state:
            self.budget.set_state(state["budget"])

    def get_arrays(self) -> dict:
        """The survivor checkpoint's weights, which a backup stores beside the variables."""
        return {} if self.budget is None else self.budget.checkpoint.get_arrays()

    def set_arrays(self, arrays) -> None:
        if self.budget is not None:
            self.budget.checkpoint.set_arrays(arrays)

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
            "fitness": getattr(self.fitness_function, "__qualname__",
                               type(self.fitness_function).__name__),
            "budget_aware": self.budget_aware,
            **({"budget": self.budget.get_config()} if self.budget is not None else {}),
        }

