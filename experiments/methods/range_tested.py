"""`adam-decay-rt`: the single run given the budget-aware population's learning-rate range test.

How much of the population's rescue from a wrong range is the range test's, and how much the
population's, is measured by giving one model the same test: the rates the population's
tested members start at (`range_test_rates` over the learning-rate bounds, one per member but
the protected one), each trained for one of the population's iterations (`steps_per_iteration
// 4` steps, as `popdescent-budget` runs them) from the same initial weights on the same
batches, then scored on the first `cv_batch_size` validation images (the population scores
them on a sampled batch of that size). The run then restarts from those initial weights at
the geometric middle of the decade below the winner's rate (the population draws each
restarted member's rate from that decade; one model gets its middle), within the bounds, and
trains as `adam-decay` does (schedule, cool-down) over the budget left. The probes' steps
count in the budget.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from baselines.random_search import training_stream
from experiments.core.contract import (
    MethodContext,
    MethodResult,
    build_context_model,
    learning_rate_bounds,
    make_optimizer,
)
from experiments.core.evaluation import loss_and_accuracy
from experiments.core.models import paper_loss
from experiments.methods.adam import FIXED_L2, cooldown_option, run_details, train_single
from experiments.methods.popdescent_budget import ITERATION_SHARE
from popdescent import BudgetSchedule
from popdescent.strategies.budget_aware import range_test_rates

__all__ = ["run", "probe_rates", "rate_below"]


def rate_below(winner: float, bounds) -> float:
    """The middle (in log10) of the decade below `winner`, within `bounds`."""
    low, high = bounds
    return float(min(max(winner * 10.0 ** -0.5, low), high))


def probe_rates(context: MethodContext, rates, steps: int) -> list:
    """Each rate's loss on the first `cv_batch_size` validation images after `steps` steps
    from the context seed's initial weights, on the same batches (inf when non-finite)."""
    budget, data = context.budget, context.data
    keras.utils.set_random_seed(context.seed)
    regularization = {"regularization": "dense", "l2": FIXED_L2} if context.regularization else {}
    model = build_context_model(context, **regularization)
    initial = model.get_weights()
    losses = []
    for rate in rates:
        model.set_weights(initial)
        model.compile(optimizer=make_optimizer(rate), loss=paper_loss())
        model.fit(training_stream(data.x_train, data.y_train, budget.batch_size, context.seed),
                  epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        loss, _ = loss_and_accuracy(model, data.x_val[: budget.cv_batch_size],
                                    data.y_val[: budget.cv_batch_size])
        losses.append(loss if np.isfinite(loss) else np.inf)
    return losses


def run(context: MethodContext) -> MethodResult:
    started = time.perf_counter()
    budget, patience = context.budget, cooldown_option(context)
    bounds = learning_rate_bounds(context)
    rates = range_test_rates(bounds, budget.population_size - 1)
    steps = max(1, budget.steps_per_iteration // ITERATION_SHARE)
    losses = probe_rates(context, rates, steps)
    probed = len(rates) * steps
    finite = np.isfinite(losses)
    winner = rates[int(np.argmin(losses))] if finite.any() else float(np.sqrt(np.prod(bounds)))
    rate = rate_below(winner, bounds)
    schedule = BudgetSchedule()
    single = train_single(context, rate, budget.member_steps - probed, context.seed, schedule,
                          patience, started)
    curve = [(probed + steps_run, loss, seconds)
             for steps_run, loss, seconds in single.checkpoint.points]
    return MethodResult(
        model=single.model,
        gradient_steps=probed + single.gradient_steps,
        curve=curve,
        details={**run_details(single, context, schedule, patience),
                 "range_test": {"rates": rates, "losses": [float(v) for v in losses],
                                "steps_each": steps, "winner": winner, "chosen": rate}},
    )
