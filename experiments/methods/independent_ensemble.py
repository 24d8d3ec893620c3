"""`adam-decay-ensemble`: how a user spends a long budget without this library.

Independent `adam-decay` runs (Adam, the budget-aware schedule, the same cool-down, each its
best checkpoint on validation), as many as the budget holds at the horizon they measure, their
predicted probabilities averaged. The first run gets the whole budget and is exactly
`adam-decay`'s run (same seed, same steps); it measures how many steps one model can use (it
cools down and stops when it stalls). Then, while the steps left hold at least the shortest run
so far, the next run gets an equal share of them (all of them for the last that fits), its own
seed (initial weights and data order), and the schedule over that share; a run that stops
early leaves its steps to the next. Every step that ran is counted.

With `options["run_steps"]` = S, every run (the first too) gets S steps instead, for as long as
the steps left hold S: the control that gives independent runs the horizon the population
measured (its fresh members train 3,840 steps each at 32,000 FMNIST member-steps), so the
population's share of its ensemble can be told from the horizon's. The steps left over (fewer
than S) stay unspent and are recorded.

The record's model is the plain average (what a user writes); `extras` holds the same runs
chosen by greedy ensemble selection on validation
(`popdescent.returned.ensemble.greedy_selection`, the population's rule, so the comparison is
rule for rule) and the single run with the lowest validation loss.

Curve: the first run's checks, then one point per further run, the validation loss of the
average of the runs finished so far.
"""

from __future__ import annotations

import time

import numpy as np

from experiments.core.contract import MethodContext, MethodResult
from experiments.methods.adam import (
    compiled_learning_rate,
    cooldown_option,
    run_details,
    train_single,
)
from popdescent import BudgetSchedule
from popdescent.returned.ensemble import (
    mixable_outputs,
    mixture_loss,
    mixture_model,
    select_mixture,
)
from popdescent.validation import check_integer

__all__ = ["run", "run_seed", "next_share", "run_steps_option", "average_validation_loss"]


def run_seed(seed: int, position: int) -> int:
    """The seed of run `position` (0 is the context's own seed, so run 0 is `adam-decay`)."""
    if position == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(position)]).generate_state(1)[0] >> 1)


def next_share(left: int, shortest: int) -> int:
    """The budget of the next run: an equal share of the `left` steps among the runs of
    `shortest` steps they hold; 0 when they hold none."""
    if shortest <= 0 or left < shortest:
        return 0
    return left // (left // shortest)


def run_steps_option(context: MethodContext):
    """`options["run_steps"]`: every run's fixed budget (None: measured by the first run),
    refused before training unless an integer in [1, the budget's member-steps]."""
    steps = context.options.get("run_steps")
    if steps is not None:
        check_integer("options['run_steps']", steps, minimum=1,
                      maximum=context.budget.member_steps)
    return steps


def run(context: MethodContext) -> MethodResult:
    started = time.perf_counter()
    rate, patience = compiled_learning_rate(context), cooldown_option(context)
    fixed = run_steps_option(context)
    schedule, budget, data = BudgetSchedule(), context.budget.member_steps, context.data
    runs, shares, curve, spent, share = [], [], [], 0, fixed or budget
    while share > 0:
        single = train_single(context, rate, share, run_seed(context.seed, len(runs)),
                              schedule, patience, started)
        runs.append(single)
        shares.append(share)
        spent += single.gradient_steps
        if len(runs) == 1:
            curve.extend(single.checkpoint.points)
        else:
            curve.append((spent, average_validation_loss([r.model for r in runs], data),
                          time.perf_counter() - started))
        if fixed:
            share = fixed if budget - spent >= fixed else 0
        else:
            share = next_share(budget - spent, min(r.gradient_steps for r in runs))
    models = [r.model for r in runs]
    counts, greedy_loss = select_mixture(models, (data.x_val, data.y_val), size=len(models))
    best = int(np.argmin([r.checkpoint.best_loss for r in runs]))
    return MethodResult(
        model=mixture_model(models, name=f"average_of_{len(models)}"),
        gradient_steps=spent,
        curve=curve,
        details={
            "runs": [dict(run_details(r, context, schedule, patience),
                          seed=run_seed(context.seed, i), budget=shares[i],
                          gradient_steps=r.gradient_steps) for i, r in enumerate(runs)],
            "members": len(runs),
            "unspent_member_steps": budget - spent,
            "greedy_counts": [int(c) for c in counts],
            "greedy_validation_loss": greedy_loss,
            "best_single": best,
        },
        extra_models={"greedy": mixture_model(models, counts, name="greedy_ensemble"),
                      "best": runs[best].model},
    )


def average_validation_loss(models, data) -> float:
    """The validation loss of the models' plain average."""
    outputs = mixable_outputs(models, data.x_val)
    return mixture_loss(models[0], data.y_val)(sum(outputs) / len(outputs))
