"""Past the horizon one model can use, width: the budget-aware mode's last phase, on plain
numbers where it can be.

Why (docs/budget_aware_paper.md): at 32,000 FMNIST member-steps the budget-aware survivor
stalls after about a third of the budget, cools down and stops; the rest of the budget is
compute one model cannot use, and exactly what a population has that a single run does not.
Three independent single runs averaged beat every single model measured at any budget. So
when the survivor has cooled down with budget left, the population trains more members in
waves of up to `width` at once (the fused step), each on the horizon the survivor measured,
each keeping the weights of its best check, and finishes them into `Population.
finished_members`, from which `best_model`, `ensemble_model` and `soup_model` choose.

Two kinds of new members (`WIDTH_KINDS`):
- "children": copies of the survivor's weights at its rewind point (where its cool-down began
  from), each with hyperparameters and weights mutated as the paper's PopDescent mutates a
  replacement (magnitude 1 - the survivor's fitness), each cooled down like the survivor (its
  rate falling linearly from the schedule's value at the rewind point to its final value over
  the cool-down's length). Cheap (one cool-down each) and in one basin, so they can be
  averaged into a soup as well as mixed.
- "fresh": new initial weights and hyperparameters mutated from the survivor's the same way,
  each trained over the survivor's own steps (the steps its returned weights hold) with the
  budget schedule's shape on that horizon. Dearer, and more diverse.

Members of one wave start together, share the batches and one rate multiplier (their base
rates differ), and finish together; waves see different batches. The last wave's width divides
what is left, so the budget is spent exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from popdescent.returned.schedules import BudgetSchedule

__all__ = ["WIDTH_KINDS", "plan_waves", "Wave", "WidthPhase"]

WIDTH_KINDS = ("children", "fresh")


def plan_waves(remaining: int, horizon: int, width: int, steps_per_epoch: int) -> list:
    """[(members, own steps each), ...]: waves that spend `remaining` member-steps exactly.

    As many members as `remaining // horizon` (at least one), in waves of `width`; every wave
    but the last runs a whole number of iterations (`steps_per_epoch`) per member, an equal
    share of what is left for the members left; the last wave's width is the largest at most
    the members left that divides what is left, and its members run all of it."""
    remaining, horizon = int(remaining), max(1, int(horizon))
    width, steps = max(1, int(width)), max(1, int(steps_per_epoch))
    members = max(1, remaining // horizon)
    waves = []
    while remaining > 0:
        if members <= width:
            last = max(w for w in range(1, members + 1) if remaining % w == 0)
            waves.append((last, remaining // last))
            break
        own = steps * max(1, remaining // members // steps)
        waves.append((width, own))
        remaining -= width * own
        members -= width
    return waves


@dataclass
class Wave:
    """One wave in progress: its members' `kind`, how many own steps each runs, the
    member-step count when it began, and its rate multiplier's line (`line`: "cooldown",
    from `from_multiplier` to `final`; or "schedule", the budget schedule's shape)."""

    kind: str
    own_steps: int
    started: int
    line: str
    from_multiplier: float
    final: float
    decay_start: float = 0.5
    warmup: float = 0.0

    def own(self, gradient_steps: int, size: int) -> int:
        """Own steps each member has run by member-step `gradient_steps`."""
        return (int(gradient_steps) - self.started) // max(1, int(size))

    def multiplier(self, own_steps: int) -> float:
        done = min(1.0, max(0.0, own_steps / self.own_steps))
        if self.line == "cooldown":
            return self.from_multiplier + (self.final - self.from_multiplier) * done
        return BudgetSchedule(self.warmup, self.decay_start, self.final).multiplier(done)

    def over(self, gradient_steps: int, size: int) -> bool:
        return self.own(gradient_steps, size) >= self.own_steps

    def get_state(self) -> dict:
        return dict(vars(self))


class WidthPhase:
    """The state of the width phase: the waves still to come, the wave in progress and each
    of its members' best check (loss, member-steps, weights), the weights children start
    from, and what the survivor left (its hyperparameters and fitness, the mutation's
    centre and magnitude; its own steps and cool-down, the horizons)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.waves = []  # [(members, own steps), ...] still to start
        self.wave = None
        self.best_losses, self.best_steps, self.best_weights = [], [], []
        self.last_check = None
        self.start_weights = None
        self.start_point = None
        self.centre = None  # the survivor's hyperparameters
        self.magnitude = 0.0
        self.from_multiplier = 1.0
        self.final = 0.0
        self.number = 0  # waves started

    @property
    def active(self) -> bool:
        return self.wave is not None

    def begin_wave(self, members: int, own_steps: int, started: int, schedule):
        """Starts the next wave of `members`, `own_steps` each, at member-step `started`."""
        self.number += 1
        if self.kind == "children":
            self.wave = Wave("children", own_steps, started, "cooldown", self.from_multiplier,
                             self.final)
        else:
            schedule = schedule or BudgetSchedule()
            self.wave = Wave("fresh", own_steps, started, "schedule", 1.0, schedule.final,
                             schedule.decay_start, schedule.warmup)
        self.best_losses = [np.inf] * members
        self.best_steps = [None] * members
        self.best_weights = [None] * members
        self.last_check = started

    def offer(self, losses, gradient_steps, get_weights) -> None:
        """Records a check of the wave's members: each keeps its weights when its loss is
        finite and below its best so far (`get_weights(slot)`)."""
        self.last_check = int(gradient_steps)
        for slot, loss in enumerate(np.asarray(losses, dtype=np.float64)):
            if np.isfinite(loss) and loss < self.best_losses[slot]:
                self.best_losses[slot] = float(loss)
                self.best_steps[slot] = int(gradient_steps)
                self.best_weights[slot] = [np.array(w, copy=True) for w in get_weights(slot)]

    def end_wave(self) -> None:
        self.wave = None

    # ------------------------------------------------------------- state for backups
    def get_state(self) -> dict:
        return {"kind": self.kind, "waves": [list(w) for w in self.waves],
                "wave": None if self.wave is None else self.wave.get_state(),
                "best_losses": [None if not np.isfinite(v) else v for v in self.best_losses],
                "best_steps": self.best_steps, "last_check": self.last_check,
                "start_point": self.start_point, "centre": self.centre,
                "magnitude": self.magnitude, "from_multiplier": self.from_multiplier,
                "final": self.final, "number": self.number,
                "start_weights": self.start_weights is not None}

    def set_state(self, state) -> None:
        self.kind = state["kind"]
        self.waves = [tuple(w) for w in state["waves"]]
        self.wave = None if state["wave"] is None else Wave(**state["wave"])
        self.best_losses = [np.inf if v is None else float(v) for v in state["best_losses"]]
        self.best_steps = list(state["best_steps"])
        self.last_check = state["last_check"]
        self.start_point = state["start_point"]
        self.centre = state["centre"]
        self.magnitude = float(state["magnitude"])
        self.from_multiplier = float(state["from_multiplier"])
        self.final = float(state["final"])
        self.number = int(state["number"])
        self.best_weights = [None] * len(self.best_losses)

    def get_arrays(self) -> dict:
        arrays = {}
        if self.start_weights is not None:
            arrays.update({f"start_{i:04d}": w for i, w in enumerate(self.start_weights)})
        for slot, weights in enumerate(self.best_weights):
            if weights is not None:
                arrays.update({f"best_{slot:02d}_{i:04d}": w for i, w in enumerate(weights)})
        return arrays

    def set_arrays(self, arrays) -> None:
        start = sorted(name for name in arrays if name.startswith("start_"))
        self.start_weights = [np.array(arrays[name]) for name in start] or None
        for slot in range(len(self.best_losses)):
            prefix = f"best_{slot:02d}_"
            names = sorted(name for name in arrays if name.startswith(prefix))
            self.best_weights[slot] = [np.array(arrays[n]) for n in names] or None
