"""Rewind and cool down a model whose validation loss has stopped improving: the budget-aware
schedule's horizon, measured while training instead of assumed to be the whole budget.

Why (docs/budget_aware_paper.md): `BudgetSchedule` decays over the whole budget. On a budget
longer than a model can use, the rate stays high long after the model stopped improving on
validation: on FMNIST at 32,000 member-steps the budget-aware survivor was best at 7,680
member-steps and only overfit after it (the schedule's decay began at 16,000), while the same
schedule over a budget the model can use (3,200 member-steps) gave the best test losses the
project has measured (0.223). The model's best check at t* measures that horizon. Cooling
down from the best checkpoint itself is too late: one Adam run on that budget, best at 4,480
steps, went back to those weights and decayed from there for 4,480 steps without a single
better check (test loss 0.2484 either way) -- by its best check a model trained at the full
rate is already past where a decay would have helped. So the cool-down replays the default
schedule's shape on the measured horizon: when the checks have not improved for `patience`
checks in a row, the model goes back to its weights at about half of t* (`RewindPoints`: the
latest kept check at or before t*/2, else the earliest kept) and its rate falls linearly from
the schedule's value there to the schedule's final value over the steps from there to t*,
or what is left of the budget if that is less. After the cool-down the run stops: the best
check (the cool-down's included) is what it returns, and the member-steps it did not spend
are not counted.

`StallCooldown` holds the decision and its state (plain numbers, so a backup keeps them),
`RewindPoints` the weights it may go back to, `CooldownLearningRate` the cool-down for one
Keras model's optimizer.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from popdescent.validation import check_integer

__all__ = ["StallCooldown", "RewindPoints", "CooldownLearningRate"]


class StallCooldown:
    """Counts checks without improvement; once `patience` in a row, plans one cool-down.

    Args:
        patience: checks in a row without a new best before the cool-down begins (>= 1).
    """

    def __init__(self, patience=3):
        self.patience = check_integer("cooldown_patience", patience, minimum=1)
        self.waiting = 0
        self.start = None  # member-step the cool-down began at, None before
        self.length = None
        self.from_multiplier = None
        self.back = None  # member-steps since the budget's start of the weights it went back to
        self.points = RewindPoints()

    @property
    def begun(self) -> bool:
        return self.start is not None

    def update(self, improved: bool) -> bool:
        """Records a check; returns True when the cool-down is due now (once per run)."""
        if self.begun:
            return False
        self.waiting = 0 if improved else self.waiting + 1
        return self.waiting >= self.patience

    def begin(self, now: int, rewind_steps: int, best_steps: int, budget_end: int,
              from_multiplier: float, minimum: int = 1) -> None:
        """Plans the cool-down from member-step `now`, after going back to the weights of
        `rewind_steps`: as long as from there to the best check (at least `minimum`, at most
        what is left of the budget, at least one step)."""
        self.start = int(now)
        span = max(int(best_steps) - int(rewind_steps), int(minimum))
        self.length = max(1, min(span, int(budget_end) - self.start))
        self.from_multiplier = float(from_multiplier)

    def rewind(self, now: int, best_steps: int, budget_start: int, budget_steps: int,
               schedule=None, minimum: int = 1):
        """Begins the cool-down at member-step `now` for a best check at `best_steps` (both
        counted like `budget_start`): from the kept point at about half the best, at the
        schedule's multiplier there (1 without a `BudgetSchedule`). Returns (the weights to
        go back to, the member-step they were kept at)."""
        best = int(best_steps) - int(budget_start)
        position = self.points.before_half_of(best)
        back = self.points.steps[position]
        at_back = 1.0 if schedule is None else schedule.multiplier(back / budget_steps)
        self.back = int(back)
        self.begin(now, back, best, int(budget_start) + int(budget_steps), at_back, minimum)
        return self.points.weights[position], int(budget_start) + back

    def multiplier(self, steps: int, final: float) -> float:
        """The learning-rate multiplier at member-step `steps`: from `from_multiplier` down to
        `final`, linearly over the cool-down."""
        done = min(1.0, max(0.0, (int(steps) - self.start) / self.length))
        return self.from_multiplier + (float(final) - self.from_multiplier) * done

    def over(self, steps: int) -> bool:
        return self.begun and int(steps) >= self.start + self.length

    def during(self, steps: int) -> bool:
        return self.begun and self.start <= int(steps) < self.start + self.length

    def get_state(self) -> dict:
        return {"waiting": self.waiting, "start": self.start, "length": self.length,
                "from_multiplier": self.from_multiplier, "back": self.back,
                "points": self.points.get_state()}

    def set_state(self, state) -> None:
        self.waiting = int(state.get("waiting", 0))
        self.start = state.get("start")
        self.length = state.get("length")
        self.from_multiplier = state.get("from_multiplier")
        self.back = state.get("back")
        self.points.set_state(state.get("points", {}))

    def get_arrays(self) -> dict:
        return self.points.get_arrays()

    def set_arrays(self, arrays) -> None:
        self.points.set_arrays(arrays)


class RewindPoints:
    """The weights at checks on a doubling grid of member-steps since the budget's start: the
    first check, then each check at least twice as far from the start as the last one kept
    (so at most log2(budget / first) + 1 of them), the points a cool-down may go back to."""

    def __init__(self):
        self.steps = []
        self.weights = []

    def offer(self, steps: int, get_weights) -> None:
        """Keeps `get_weights()` if the check at `steps` (since the budget's start) is on the
        grid."""
        if not self.steps or int(steps) >= 2 * self.steps[-1]:
            self.steps.append(int(steps))
            self.weights.append([np.array(w, copy=True) for w in get_weights()])

    def before_half_of(self, best_steps: int) -> int:
        """The position of the kept point to go back to for a best check at `best_steps`: the
        latest at or before half of it, else the earliest."""
        earlier = [i for i, s in enumerate(self.steps) if 2 * s <= int(best_steps)]
        return earlier[-1] if earlier else 0

    def get_state(self) -> dict:
        return {"steps": list(self.steps)}

    def set_state(self, state) -> None:
        self.steps = [int(s) for s in state.get("steps", [])]

    def get_arrays(self) -> dict:
        return {f"point_{p:03d}_{i:04d}": w for p, weights in enumerate(self.weights)
                for i, w in enumerate(weights)}

    def set_arrays(self, arrays) -> None:
        self.weights = [[np.array(arrays[name]) for name in sorted(arrays)
                         if name.startswith(f"point_{p:03d}_")] for p in range(len(self.steps))]


@keras.saving.register_keras_serializable(package="popdescent")
class CooldownLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate` times a linear fall from `from_multiplier` to `final` over the gradient
    steps [start, start + length]: a `StallCooldown` for one model's optimizer."""

    def __init__(self, learning_rate, start, length, from_multiplier, final=0.0):
        self.learning_rate = float(learning_rate)
        self.start, self.length = int(start), int(length)
        self.from_multiplier, self.final = float(from_multiplier), float(final)
        if not self.learning_rate > 0 or self.length < 1:
            raise ValueError(f"learning_rate must be > 0 and length >= 1, got "
                             f"{learning_rate!r} and {length!r}")

    def __call__(self, step):
        done = ops.clip((ops.cast(step, "float32") - self.start) / self.length, 0.0, 1.0)
        return self.learning_rate * (self.from_multiplier
                                     + (self.final - self.from_multiplier) * done)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "start": self.start, "length": self.length,
                "from_multiplier": self.from_multiplier, "final": self.final}
