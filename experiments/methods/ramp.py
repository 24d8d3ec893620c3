"""`adam-ramp`: one `adam-decay` run of the user's model whose dropout and augmentation rise
linearly from 0 at step 0 to the guess at `options["ramp_until"]` of the budget (default 0.5),
held there after.

Why: single runs at 12,800 FMNIST member-steps rank "no regularization" ahead of the good
guess until about 90 % of the budget, and the guess ahead at the end (docs/regularization.md):
what the model needs changes over the run. Self-Tuning Networks (MacKay et al., 2019) found
that such a schedule beats the best fixed value. This is the hand-made version a user could
write in one run, fixed before the runs: it tells whether a schedule beats the fixed guess at
all, the premise of a population that tunes regularization over time. The rate, schedule,
cool-down and checks are `adam-decay`'s; the Dropout and augmentation layers are bound to
variables (`popdescent.population.live_regularization.bind`) that a callback sets before
each step, as `adam-replay` does with a population's exported values.
"""

from __future__ import annotations

import time

import keras

from experiments.core.contract import MethodContext, MethodResult, build_context_model
from experiments.core.models import GUESSES
from experiments.core.validation import check_choice
from experiments.methods.adam import (compiled_learning_rate, cooldown_option, run_details,
                                      train_model)
from experiments.methods.replay import ReplayValues
from popdescent import BudgetSchedule
from popdescent.population.live_regularization import bind
from popdescent.validation import check_number

__all__ = ["run", "ramp_series", "DEFAULT_RAMP_UNTIL"]

DEFAULT_RAMP_UNTIL = 0.5


def ramp_series(targets: dict, steps: int, until: float) -> dict:
    """Name -> the value before each of `steps` steps: target x min(1, t / (until x steps))."""
    reach = max(1, round(until * steps))
    return {name: [target * min(1.0, t / reach) for t in range(steps)]
            for name, target in targets.items()}


def run(context: MethodContext) -> MethodResult:
    """Trains one model with its regularization ramped to the guess (see the module)."""
    started = time.perf_counter()
    guess = context.options.get("guess")
    check_choice("options['guess']", guess, tuple(GUESSES))
    until = check_number("options['ramp_until']",
                         context.options.get("ramp_until", DEFAULT_RAMP_UNTIL),
                         minimum=0.0, maximum=1.0, strict_minimum=True)
    steps = context.budget.member_steps
    targets = {"dropout": GUESSES[guess]["dropout"], "augmentation": 1.0}
    series = ramp_series(targets, steps, until)
    keras.utils.set_random_seed(context.seed)
    model = build_context_model(context)
    variables = {name: keras.Variable(values[0], trainable=False, name=name)
                 for name, values in series.items()}
    for name, variable in variables.items():
        bind(model, name, variable)
    patience = cooldown_option(context)
    single = train_model(model, context, compiled_learning_rate(context), steps, context.seed,
                         BudgetSchedule(), patience, started,
                         callbacks=[ReplayValues(variables, series)])
    return MethodResult(
        model=single.model, gradient_steps=single.gradient_steps,
        curve=single.checkpoint.points,
        details={**run_details(single, context, BudgetSchedule(), patience),
                 "ramp": {"until": until, "targets": targets}})
