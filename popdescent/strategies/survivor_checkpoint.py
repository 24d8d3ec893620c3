"""The budget-aware mode's guard against a survivor that overfits: once one member is left, its
weights at its lowest validation loss are kept, and the member gets them back when the budget
is spent (what `keras.callbacks.EarlyStopping(restore_best_weights=True)` does for one model,
without stopping: the budget is the user's).

Why: after the last rung the survivor has most of the budget to itself, and on a long budget it
can overfit. On FMNIST at 32,000 member-steps (seed 5, docs/budget_aware_paper.md) the
survivor's validation loss was lowest (0.270) at 6,400 steps and 1.020 at the end, and the mode
returned the final weights (test 0.878), while the single Adam run it is compared with returns
its best validation checkpoint.
"""

from __future__ import annotations

import math

import numpy as np

from popdescent.validation import check_integer

__all__ = ["SurvivorCheckpoint"]


class SurvivorCheckpoint:
    """The lowest-loss weights of the last member, checked every `every` member-steps.

    Args:
        every: member-steps between two checks of the survivor's loss; None: one iteration
            of the full population (its size times `steps_per_epoch`), set by `plan`. The
            end of the budget is always checked, so the final weights are a candidate.
    """

    def __init__(self, every=None):
        self.every = None if every is None else check_integer("restore_best_every", every,
                                                              minimum=1)
        self.loss = math.inf
        self.steps = None
        self.weights = None
        self.last_check = None

    def plan(self, size: int, steps_per_epoch: int) -> None:
        """Sets the default cadence from the population's starting size, once."""
        if self.every is None:
            self.every = int(size) * int(steps_per_epoch)

    def due(self, steps: int, finished: bool) -> bool:
        """Whether the survivor's loss is measured now: at the end of the budget, or when
        `every` member-steps have run since the last check."""
        return finished or self.last_check is None or steps - self.last_check >= self.every

    def offer(self, loss: float, steps: int, get_weights) -> bool:
        """Records a check; keeps `get_weights()` when `loss` is finite and strictly below the
        best so far (an equal later loss keeps the earlier, shallower weights). Returns
        whether they were kept."""
        self.last_check = int(steps)
        if not (math.isfinite(loss) and loss < self.loss):
            return False
        self.loss, self.steps = float(loss), int(steps)
        self.weights = [np.array(w, copy=True) for w in get_weights()]
        return True

    # ------------------------------------------------------------- state for backups
    def get_state(self) -> dict:
        return {"every": self.every, "loss": None if self.steps is None else self.loss,
                "steps": self.steps, "last_check": self.last_check}

    def set_state(self, state) -> None:
        self.every = state.get("every", self.every)
        self.steps = state.get("steps")
        self.loss = math.inf if self.steps is None else float(state["loss"])
        self.last_check = state.get("last_check")

    def get_arrays(self) -> dict:
        return {} if self.weights is None else {
            f"weight_{i:04d}": w for i, w in enumerate(self.weights)}

    def set_arrays(self, arrays) -> None:
        names = sorted(arrays)
        self.weights = [np.array(arrays[name]) for name in names] if names else None
