"""The width phase's hooks (`PopDescent(budget_aware=True, width=...)`): what begins it when
the survivor has cooled down with budget left, what each iteration of a wave does, and how a
wave starts and finishes. The plan and the state are `popdescent.strategies.width`'s; this
mixin applies them to the population."""

from __future__ import annotations

import math

import numpy as np

from popdescent.strategies.replacement import mutate_hyperparameters
from popdescent.strategies.width import WidthPhase, plan_waves

__all__ = ["WidthSteps"]


class WidthSteps:
    """Mixed into `PopDescent` beside `BudgetAwareSteps`; does nothing unless the budget's
    `width` is set (see `popdescent.strategies.width`)."""

    @property
    def widening(self) -> bool:
        """Whether a wave of the width phase is in progress."""
        phase = getattr(self, "width_phase", None)
        return phase is not None and phase.active

    def _begin_width(self, population, record) -> bool:
        """When the survivor has cooled down: keeps it among the finished members and, with
        budget left and `width` set, plans the waves and starts the first. Returns whether
        training goes on."""
        budget = self.budget
        left = population.member_step_budget - (population.gradient_steps
                                                - population._budget_start)
        if budget.width is None or left <= 0:
            return False
        checkpoint, cooldown = budget.checkpoint, budget.cooldown
        phase = self.width_phase = WidthPhase(budget.width)
        position = cooldown.points.steps.index(cooldown.back)
        phase.start_point = f"{population.origins[0]}@{population._budget_start + cooldown.back}"
        own = self._survivor_own_steps(population, checkpoint)
        population.finish_member(0, checkpoint.weights, checkpoint.loss, checkpoint.steps,
                                 "survivor", phase.start_point, own)
        phase.centre = population.hyperparameters_of(0)
        phase.magnitude = float(1.0 - self.fitness_function(np.array([checkpoint.loss]))[0])
        phase.from_multiplier = cooldown.from_multiplier
        phase.final = 0.0 if budget.schedule is None else budget.schedule.final
        if phase.kind == "children":
            phase.start_weights = cooldown.points.weights[position]
            horizon = cooldown.length
        else:
            horizon = own
        phase.waves = plan_waves(left, horizon, budget.width_members or population.starting_size,
                                 population.training_data.steps_per_epoch)
        record["width"] = {"kind": phase.kind, "horizon": int(horizon),
                           "waves": [list(w) for w in phase.waves],
                           "start_point": phase.start_point}
        self._start_wave(population, record)
        return True

    @staticmethod
    def _survivor_own_steps(population, checkpoint) -> int:
        """The steps the survivor's returned weights hold (its exported schedule's length),
        or, where no schedule can be exported, the member-steps of its best check."""
        try:
            return len(population.exported_schedule(0)[0].values)
        except ValueError:
            return int(checkpoint.steps - population._budget_start)

    def _start_wave(self, population, record):
        """The next wave's members replace those in training: new members, started as the
        phase's kind says (see `popdescent.strategies.width`)."""
        phase = self.width_phase
        members, own_steps = phase.waves.pop(0)
        slots = population.add_members(members, template=0)
        population.keep_members(slots)
        magnitude = phase.magnitude if self.mutate else 0.0
        for slot in range(population.size):
            values = mutate_hyperparameters(population.priors, phase.centre, magnitude,
                                            self.hyperparameter_noise,
                                            self.hyperparameter_noise_base, self.rng)
            population.set_hyperparameters(slot, values)
            if phase.kind == "children":
                population.members[slot].set_weights(phase.start_weights)
                noise = self.weight_noise * magnitude
                if noise > 0 and self.weight_noise_mode == "scalar":
                    population.shift_weights(slot, float(self.rng.normal(0.0, noise)))
                elif noise > 0:
                    population.perturb_weights(slot, noise, int(self.rng.integers(2**31)),
                                               relative=self.weight_noise_mode == "relative")
        population.fitness = None
        phase.begin_wave(population.size, own_steps, population.gradient_steps,
                         self.budget.schedule)
        record["width_wave"] = {"number": phase.number, "kind": phase.kind,
                                "origins": [int(o) for o in population.origins],
                                "own_steps": int(own_steps),
                                "hyperparameters": population.hyperparameter_values()}

    def _width_iteration(self, population, record):
        """After an iteration of a wave: its members' checks (every `restore_best_every` of
        their own steps, and at its end), and at its end their finish and the next wave."""
        phase, wave = self.width_phase, self.width_phase.wave
        every = self.budget.checkpoint.every
        size, steps = population.size, population.gradient_steps
        over = wave.over(steps, size) or population.progress >= 1.0
        since = (steps - phase.last_check) // size
        if over or since >= every:
            losses = self._rung_sample_losses(population)
            phase.offer(losses, steps, lambda slot: population.members[slot].get_weights())
            record["width_losses"] = [float(v) for v in losses]
        if not over:
            return
        finished = []
        for slot in range(size):
            weights = phase.best_weights[slot]
            if weights is None:  # never finite: it finishes as it is, with an infinite loss
                weights = population.members[slot].get_weights()
            entry = population.finish_member(
                slot, weights, phase.best_losses[slot],
                phase.best_steps[slot] if phase.best_steps[slot] is not None else steps,
                phase.kind, phase.start_point if phase.kind == "children" else None,
                wave.own(steps, size))
            finished.append({"origin": entry.origin, "loss": entry.loss
                             if math.isfinite(entry.loss) else None,
                             "gradient_steps": entry.gradient_steps})
        record["finished"] = finished
        phase.end_wave()
        if phase.waves and population.progress < 1.0:
            self._start_wave(population, record)
