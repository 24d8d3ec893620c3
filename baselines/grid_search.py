"""Grid search as a benchmark method: `run(context) -> MethodResult` (see `experiments.methods`).

One model per learning rate in {1e-2, 1e-3, 1e-4, 1e-5, 1e-6} (with `options["lr_range"]`:
five rates spread log-uniformly across that range, ends included); with regularization, one
per (learning rate, L2 rate) pair, L2 rates {1e-2, ..., 1e-6} on the hidden Dense kernel: 25
models. As in the paper's code, every model trains with Adam on the same batches; the model
with the lowest loss on the whole validation half is returned.

The grid trains as one `Population` whose members hold their grid point as live
hyperparameters (`Choice` priors over the grid, set once, never mutated: no strategy runs),
so it shares the population's train step, the code base's one training loop, with every other
method. Steps per model follow the paper's Table 1 (Fashion-MNIST: 64,000 steps over 5 models =
12,800 each, 160,000 over 25 = 6,400 each; CIFAR-10: 19,200 / 96,000 = 3,840 each), scaled by
the budget's share of the paper-scale budget, in iterations of `budget.steps_per_iteration`.
"""

from __future__ import annotations

import itertools
import time

import keras
import numpy as np

from baselines.common import BestMemberCurve, build_population, train_population
from experiments.methods import (
    MethodContext,
    MethodResult,
    get_budget,
    learning_rate_range,
    make_optimizer,
)
from popdescent import Choice
from popdescent.selection import inverse_loss_fitness

LEARNING_RATES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
L2_RATES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# Steps per model at paper scale, (dataset, regularization) -> steps: Table 1's totals over
# the 5 (no regularization) or 25 (regularization) models.
PAPER_STEPS_PER_MODEL = {
    ("fmnist", False): 64_000 // 5,
    ("fmnist", True): 160_000 // 25,
    ("cifar10", False): 19_200 // 5,
    ("cifar10", True): 96_000 // 25,
}


def grid_points(regularization: bool, learning_rates=LEARNING_RATES) -> list:
    """The grid's hyperparameters, one dict per model."""
    if not regularization:
        return [{"learning_rate": rate} for rate in learning_rates]
    return [{"learning_rate": rate, "l2": l2}
            for rate, l2 in itertools.product(learning_rates, L2_RATES)]


def grid_learning_rates(context: MethodContext) -> tuple:
    """The paper's five rates, or with `options["lr_range"]` five rates evenly spaced in log
    space from the range's top to its bottom (both ends included)."""
    if "lr_range" not in context.options:
        return LEARNING_RATES
    low, high = learning_rate_range(context)
    return tuple(float(rate) for rate in np.geomspace(high, low, len(LEARNING_RATES)))


def grid_schedule(context: MethodContext) -> tuple:
    """(iterations, steps per iteration) per model: the paper's steps per model scaled by
    this budget's share of the paper-scale budget of the same dataset."""
    paper = get_budget(context.dataset, "paper")
    share = context.budget.member_steps / paper.member_steps
    steps = max(1, round(PAPER_STEPS_PER_MODEL[(context.dataset, context.regularization)]
                         * share))
    steps_per_iteration = min(context.budget.steps_per_iteration, steps)
    return max(1, round(steps / steps_per_iteration)), steps_per_iteration


class FixedBatchFitness(keras.callbacks.Callback):
    """Scores every member on the same validation images after each iteration, so the curve
    follows the grid's current leader (no strategy measures fitness here)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        self.model.evaluate_fitness(self.x, self.y,
                                    batch_size=self.model.training_data.batch_size)


def run(context: MethodContext) -> MethodResult:
    """Trains every grid point for the scaled Table 1 steps; returns the best on validation."""
    started = time.perf_counter()
    learning_rates = grid_learning_rates(context)  # validates lr_range before training
    keras.utils.set_random_seed(context.seed)
    points = grid_points(context.regularization, learning_rates)
    hyperparameters = {"learning_rate": Choice(learning_rates)}
    if context.regularization:
        hyperparameters["l2"] = Choice(L2_RATES)
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
