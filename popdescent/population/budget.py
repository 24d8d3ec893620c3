"""Training to a budget of member-steps: `Population.fit(member_steps=B)`.

A budget in member-steps (every gradient step of every member counted) is what makes a
population and a single model comparable, and what a budget-aware strategy or schedule plans
with: `Population.progress` is the share of it spent. Iterations keep their fixed
`steps_per_epoch`; the budget only decides how many there are and stops the last one early.
"""

from __future__ import annotations

import math

import keras

from popdescent.validation import check_integer

__all__ = ["MemberStepBudget", "check_member_steps", "planned_iterations"]


def check_member_steps(member_steps, size) -> int:
    """`member_steps` as an int, at least one batch of the whole population."""
    return check_integer("member_steps", member_steps, minimum=int(size))


def planned_iterations(callbacks, member_steps, size, steps_per_epoch) -> int:
    """How many iterations `fit(member_steps=...)` runs: what a callback that changes the
    population's size plans (`planned_iterations(member_steps, size, steps_per_epoch)`),
    else enough iterations of `size * steps_per_epoch` member-steps to spend the budget."""
    for callback in callbacks:
        plan = getattr(callback, "planned_iterations", None)
        if callable(plan):
            planned = plan(member_steps, size, steps_per_epoch)
            if planned is not None:
                return int(planned)
    return math.ceil(member_steps / (size * steps_per_epoch))


class MemberStepBudget(keras.callbacks.Callback):
    """Stops `fit` once no further batch fits in the population's member-step budget.

    `Population.fit(member_steps=...)` puts it first in the callback list. Keras ends the
    epoch after the batch that sets `stop_training`, then runs `on_epoch_end` (strategies
    still see the last, possibly shorter, iteration) and stops.
    """

    def on_train_batch_end(self, batch, logs=None):
        population = self.model
        spent = population.gradient_steps - population._budget_start
        if population.member_step_budget - spent < population.size:
            population.stop_training = True
