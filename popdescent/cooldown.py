"""Rewind and cool down a model whose validation loss has stopped improving: the budget-aware
schedule's horizon, measured while training instead of assumed to be the whole budget.

Why (docs/budget_aware_paper.md): `BudgetSchedule` decays over the whole budget. On a budget
longer than a model can use, the rate stays high long after the model stopped improving on
validation, and the model only overfits: on FMNIST at 32,000 member-steps the budget-aware
survivor was best at 7,680 member-steps and its validation loss rose from 0.27 to 0.86 by the
end (the schedule's decay began at 16,000). The same schedule over a budget the model can use
(3,200 member-steps) gave the best test losses the project has measured (0.223). So when the
checks have not improved for `patience` checks in a row, the model goes back to its best
checkpoint's weights and its rate falls linearly from the schedule's value at that checkpoint
to the schedule's final value, over as many member-steps as the best checkpoint took (the
default schedule's shape: a decay as long as what came before it), or what is left of the
budget if that is less. After the cool-down the run stops: its checkpoint is what it returns,
and the member-steps it did not spend are not counted.

`StallCooldown` holds the decision and its state (plain numbers, so a backup keeps them);
`CooldownLearningRate` is the cool-down for one Keras model's optimizer.
"""

from __future__ import annotations

import keras
from keras import ops

from popdescent.validation import check_integer

__all__ = ["StallCooldown", "CooldownLearningRate"]


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

    @property
    def begun(self) -> bool:
        return self.start is not None

    def update(self, improved: bool) -> bool:
        """Records a check; returns True when the cool-down is due now (once per run)."""
        if self.begun:
            return False
        self.waiting = 0 if improved else self.waiting + 1
        return self.waiting >= self.patience

    def begin(self, now: int, best_steps: int, budget_start: int, budget_end: int,
              from_multiplier: float) -> None:
        """Plans the cool-down from member-step `now`: as long as the best checkpoint took
        (`best_steps - budget_start`), at most what is left of the budget, at least one step."""
        self.start = int(now)
        self.length = max(1, min(int(best_steps) - int(budget_start), int(budget_end) - self.start))
        self.from_multiplier = float(from_multiplier)

    def multiplier(self, steps: int, final: float) -> float:
        """The learning-rate multiplier at member-step `steps`: from `from_multiplier` down to
        `final`, linearly over the cool-down."""
        done = min(1.0, max(0.0, (int(steps) - self.start) / self.length))
        return self.from_multiplier + (float(final) - self.from_multiplier) * done

    def over(self, steps: int) -> bool:
        return self.begun and int(steps) >= self.start + self.length

    def get_state(self) -> dict:
        return {"waiting": self.waiting, "start": self.start, "length": self.length,
                "from_multiplier": self.from_multiplier}

    def set_state(self, state) -> None:
        self.waiting = int(state.get("waiting", 0))
        self.start = state.get("start")
        self.length = state.get("length")
        self.from_multiplier = state.get("from_multiplier")


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
