"""The budget-aware half of `PopDescent` (`budget_aware=True`): the hooks that plan with the
budget of `fit(member_steps=B)`, shrink the population in rungs, restart stuck members, keep
the survivor's best weights and cool it down when it stops improving. The decisions themselves are plain functions and state in
`popdescent.strategies.budget_aware`; this mixin applies them to the population."""

from __future__ import annotations

import numpy as np

from popdescent.inputs.array_inputs import take
from popdescent.strategies.budget_aware import due_size, plan_shrink
from popdescent.strategies.replacement import ReplacementPlan, plan_replacement

__all__ = ["BudgetAwareSteps"]


class BudgetAwareSteps:
    """Mixed into `PopDescent` before `PopulationStrategy`; every hook does nothing unless
    `self.budget` (a `BudgetAwareness`) is set."""

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
        if population.gradient_steps == population._budget_start:  # a new budget
            self.width_phase = None
        self.budget.start(population, starting)
        population.learning_rate_schedule = self.budget.schedule
        self._restored = False

    def on_train_batch_begin(self, batch, logs=None):
        if self.budget is None:
            return
        population, schedule, cooldown = self.model, self.budget.schedule, self.budget.cooldown
        if self.widening:
            wave = self.width_phase.wave
            population.live_hyperparameters.set_multiplier(
                wave.multiplier(wave.own(population.gradient_steps, population.size)))
        elif cooldown is not None and cooldown.begun:
            population.live_hyperparameters.set_multiplier(cooldown.multiplier(
                population.gradient_steps, 0.0 if schedule is None else schedule.final))
        elif schedule is not None:
            population.live_hyperparameters.set_multiplier(schedule.multiplier(population.progress))

    def _evolve_within_budget(self, population, fitness, rng):
        if self.widening:  # no selection, rung or rescue among the width phase's members
            return np.array([], dtype=int), np.array([], dtype=int)
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
                slots, new_rates = budget.rescue_plan(population.last_losses, rates, bounds, rng,
                                                      protected)
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

    def _after_budget_iteration(self, population, logs):
        """After the iteration's selection: marks restarted members, applies a planned
        shrink (recorded in the lineage) and checks the survivor."""
        record = population.lineage[-1] if population.lineage else None
        if self.widening:
            self._width_iteration(population, record)
            return
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
        if self.budget.restore_best_weights:
            self._check_survivor(population, record)

    def _check_survivor(self, population, record):
        """Offers the last member's weights to the budget's `SurvivorCheckpoint` when a check
        is due (its rung loss when it has just become the last); rewinds it and begins the
        cool-down after `cooldown_patience` checks without a new best; and gives it the best
        weights back when the budget is spent or the cool-down is over (which ends `fit`)."""
        if population.size != 1:
            return
        checkpoint, cooldown = self.budget.checkpoint, self.budget.cooldown
        cooled = cooldown is not None and cooldown.over(population.gradient_steps)
        finished = population.progress >= 1.0 or cooled
        if self._pending_keep is not None:
            loss = float(self._rung_losses[int(self._pending_keep[0])])
        elif checkpoint.due(population.gradient_steps, finished):
            loss = self._survivor_loss(population)
        else:
            loss = None
        if loss is not None:
            get_weights = population.members[0].get_weights
            improved = checkpoint.offer(loss, population.gradient_steps, get_weights)
            if cooldown is not None:
                cooldown.points.offer(population.gradient_steps - population._budget_start,
                                      get_weights)
            record["survivor_loss"] = loss
            if cooldown is not None and not finished and cooldown.update(improved):
                self._begin_cooldown(population, record)
        if finished:
            self._restore_best(population, record)
        if cooled and not self._begin_width(population, record):
            population.stop_training = True

    def _begin_cooldown(self, population, record):
        """Back to the weights of about half the best check's steps; the rate falls from the
        schedule's value there to its final value by the best check's distance from there
        (see `popdescent.returned.cooldown`)."""
        budget = self.budget
        weights, back = budget.cooldown.rewind(
            population.gradient_steps, budget.checkpoint.steps, population._budget_start,
            population.member_step_budget, budget.schedule, minimum=budget.checkpoint.every)
        population.members[0].set_weights(weights)
        record["cooldown"] = {"from_gradient_steps": back,
                              "best_gradient_steps": budget.checkpoint.steps,
                              "length": budget.cooldown.length,
                              "from_multiplier": budget.cooldown.from_multiplier}

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

    def get_arrays(self) -> dict:
        """The survivor checkpoint's weights, the cool-down's rewind points and the width
        phase's weights, which a backup stores beside the variables."""
        if self.budget is None:
            return {}
        cooldown = self.budget.cooldown
        width = {} if self.width_phase is None else {
            f"width_{name}": a for name, a in self.width_phase.get_arrays().items()}
        return {**self.budget.checkpoint.get_arrays(),
                **({} if cooldown is None else cooldown.get_arrays()), **width}

    def set_arrays(self, arrays) -> None:
        if self.budget is None:
            return
        self.budget.checkpoint.set_arrays({name: a for name, a in arrays.items()
                                           if name.startswith("weight_")})
        if self.budget.cooldown is not None:
            self.budget.cooldown.set_arrays(
                {name: a for name, a in arrays.items() if name.startswith("point_")})
        if self.width_phase is not None:
            self.width_phase.set_arrays({name[len("width_"):]: a for name, a in arrays.items()
                                         if name.startswith("width_")})
