"""Grid search as a benchmark method: `run(context) -> MethodResult` (see
`experiments.core.contract`).

The grid of `baselines.grid_search` (with `options["lr_range"]`: five rates spread
log-uniformly across that range, ends included), every model trained with Adam on the same
batches for the paper's steps per model scaled by the budget's share of the paper-scale
budget, in iterations of `budget.steps_per_iteration`; the model with the lowest loss on the
whole validation half is returned.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from baselines.grid_search import (
    LEARNING_RATES,
    PAPER_STEPS_PER_MODEL,
    FixedBatchFitness,
    grid_points,
    grid_priors,
    spread_learning_rates,
)
from experiments.core.contract import (
    MethodContext,
    MethodResult,
    get_budget,
    learning_rate_range,
    make_optimizer,
)
from experiments.methods.population import BestMemberCurve, build_population, train_population
from popdescent.population.selection import inverse_loss_fitness


def grid_learning_rates(context: MethodContext) -> tuple:
    """The paper's five rates, or with `options["lr_range"]` five rates evenly spaced in log
    space from the range's top to its bottom (both ends included)."""
    if "lr_range" not in context.options:
        return LEARNING_RATES
    low, high = learning_rate_range(context)
    return spread_learning_rates(low, high)


def grid_schedule(context: MethodContext) -> tuple:
    """(iterations, steps per iteration) per model: the paper's steps per model scaled by
    this budget's share of the paper-scale budget of the same dataset."""
    paper = get_budget(context.dataset, "paper")
    share = context.budget.member_steps / paper.member_steps
    steps = max(1, round(PAPER_STEPS_PER_MODEL[(context.dataset, context.regularization)]
                         * share))
    steps_per_iteration = min(context.budget.steps_per_iteration, steps)
    return max(1, round(steps / steps_per_iteration)), steps_per_iteration


def run(context: MethodContext) -> MethodResult:
    """Trains every grid point for the scaled Table 1 steps; returns the best on validation."""
    started = time.perf_counter()
    learning_rates = grid_learning_rates(context)  # validates lr_range before training
    keras.utils.set_random_seed(context.seed)
    points = grid_points(context.regularization, learning_rates)
    hyperparameters = grid_priors(context.regularization, learning_rates)
    population = build_population(context, hyperparameters, make_optimizer, size=len(points))
    for index, point in enumerate(points):
        population.set_hyperparameters(index, point)
    iterations, steps_per_iteration = grid_schedule(context)
    data, budget = context.data, context.budget
    curve = BestMemberCurve(data, budget.cv_batch_size, started)
    leader = FixedBatchFitness(data.x_val[: budget.cv_batch_size],
                               data.y_val[: budget.cv_batch_size])
    train_population(context, population, [leader, curve], iterations=iterations,
                     steps_per_iteration=steps_per_iteration)
    # The final choice: every model on the whole validation half.
    measured = []

    def fitness(losses):
        measured.append(np.asarray(losses, dtype=np.float64))
        return inverse_loss_fitness(losses)

    population.evaluate_fitness(data.x_val, data.y_val, fitness=fitness, batch_size=500)
    losses = measured[-1]
    best = population.best_index()
    return MethodResult(
        model=population.best_model(),
        gradient_steps=population.gradient_steps,
        curve=curve.points,
        details={
            "models": len(points),
            "iterations": iterations,
            "steps_per_iteration": steps_per_iteration,
            "steps_per_model": iterations * steps_per_iteration,
            "best_model": best,
            "hyperparameters": points[best],
            "grid": [{**point, "validation_loss": float(loss)}
                     for point, loss in zip(points, losses)],
            "nonfinite_models": int(np.count_nonzero(~np.isfinite(losses))),
        },
        candidates=list(population.members),
        resumed=curve.resumed,
    )
