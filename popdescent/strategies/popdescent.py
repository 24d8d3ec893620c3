"""PopDescent: the paper's Algorithm 1 as a Keras callback over a `Population`."""

from __future__ import annotations

import numpy as np

from popdescent.hyperparameters import Fixed, Inert, LogNormal
from popdescent.returned.schedules import BudgetSchedule
from popdescent.population.selection import inverse_loss_fitness
from popdescent.strategies.base import PopulationStrategy
from popdescent.strategies.budget_aware import BudgetAwareness
from popdescent.strategies.budget_steps import BudgetAwareSteps
from popdescent.strategies.width import WidthPhase
from popdescent.strategies.width_steps import WidthSteps
from popdescent.strategies.replacement import (
    REFERENCE_LOSS_SCALE_BOUNDS,
    REFERENCE_REG_CONSTANT_BOUNDS,
    WEIGHT_NOISE_MODES,
    mutate_hyperparameters,
    plan_replacement,
)
from popdescent.validation import check_integer


class PopDescent(BudgetAwareSteps, WidthSteps, PopulationStrategy):
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
            in which no member beat its starting loss; None never. Default 2. The protected
            member and a member at the lower rate bound are never restarted.
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
        cooldown_patience: with `restore_best_weights`, after this many checks in a row
            without a new best the survivor goes back to its weights at about half of its
            best check's member-steps and its rate falls linearly to the schedule's final
            value over the steps from there to the best (at most what is left); then `fit`
            ends, unspent member-steps uncounted (`popdescent.returned.cooldown`). Default 3 (None:
            never): the budget-aware schedule's horizon, measured instead of assumed to be
            the whole budget.
        width: with `cooldown_patience`, what the survivor's cool-down leaves of the budget
            is spent on more members, in waves of `width_members` (default: the population's
            size) trained at once, each on the horizon the survivor measured and keeping its
            best check: "children" (the survivor's weights where its cool-down began,
            mutated, each cooled down like it) or "fresh" (new initial weights, trained over
            the survivor's own steps with the schedule's shape); None stops when the
            survivor has cooled down. Default: "fresh" with a cool-down, else None (why
            fresh: docs/width.md; "children" gives the better soup). Finished members are
            `pop.finished_members`; `best_model`, `ensemble_model` and `soup_model` choose
            among them (see `popdescent.strategies.width`).
        width_members: members per wave of the width phase; None: the population's size.

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
        cooldown_patience="default",
        width="default",
        width_members=None,
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
                restore_best_weights=restore_best_weights, restore_best_every=restore_best_every,
                cooldown_patience=cooldown_patience, width=width, width_members=width_members)
        elif (schedule != "default" or rungs is not None or range_test
              or commit_early is not None or restore_best_every is not None
              or not (isinstance(cooldown_patience, str) and cooldown_patience == "default")
              or not (width is None or (isinstance(width, str) and width == "default"))
              or width_members is not None):
            raise ValueError(
                "schedule, rungs, range_test, commit_early, restore_best_every, "
                "cooldown_patience, width and width_members belong to the budget-aware mode: "
                "pass budget_aware=True"
            )
        self.width_phase = None
        self._pending_keep = None
        self._restarted = []
        self._rung_losses = None
        self._committed = False
        self._restored = False

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

    def on_epoch_end(self, epoch, logs=None):
        self._pending_keep, self._restarted, self._rung_losses = None, [], None
        self._committed = False
        super().on_epoch_end(epoch, logs)
        if self.budget is not None:
            self._after_budget_iteration(self.model, logs)

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
        if self.width_phase is not None:
            state["width"] = self.width_phase.get_state()
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self.budget is not None and "budget" in state:
            self.budget.set_state(state["budget"])
        self.width_phase = None
        if state.get("width") is not None:
            self.width_phase = WidthPhase(state["width"]["kind"])
            self.width_phase.set_state(state["width"])

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

