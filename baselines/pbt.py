"""PBT as a benchmark method: `run(context) -> MethodResult` (see `experiments.methods`).

The same `Population` as PopDescent (the paper's model, Adam per member, learning rate drawn
log-uniformly from [1e-4, 1e-2], with regularization also an L2 rate from [1e-6, 1e-1] on the
hidden Dense kernel) with the `popdescent.strategies.PBT` callback instead of PopDescent:
every `pbt_interval` iterations (option, default 1: PopDescent's cadence) the bottom 25 %
copy a random top-25 % member and explore its hyperparameters (x1.2 / x0.8, or a redraw with
probability 0.25). Fitness is measured on a fresh `budget.cv_batch_size`-image validation batch.
"""

from __future__ import annotations

import keras

from baselines.common import BestMemberCurve, build_population, lineage_summary, train_population
from experiments.methods import (
    L2_RANGE,
    LEARNING_RATE_RANGE,
    MethodContext,
    MethodResult,
    make_optimizer,
)
from popdescent import LogUniform
from popdescent.strategies import PBT


def run(context: MethodContext) -> MethodResult:
    """Trains a PBT population within `context.budget`; returns its fittest member."""
    interval = context.options.get("pbt_interval", 1)
    strategy = PBT(interval=interval, cv_batch_size=context.budget.cv_batch_size)  # validates
    keras.utils.set_random_seed(context.seed)
    hyperparameters = {"learning_rate": LogUniform(*LEARNING_RATE_RANGE)}
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    population = build_population(context, hyperparameters, make_optimizer)
    curve = BestMemberCurve(context.data, context.budget.cv_batch_size)
    train_population(context, population, [strategy, curve])
    best = population.best_index()
    lineage = lineage_summary(population)
    return MethodResult(
        model=population.best_model(),
        gradient_steps=population.gradient_steps,
        curve=curve.points,
        details={
            "strategy": strategy.get_config(),
            "best_member": best,
            "hyperparameters": population.hyperparameters_of(best),
            "population_hyperparameters": population.hyperparameter_values(),
            "replacements": sum(len(entry["replaced"]) for entry in lineage),
            "lineage": lineage,
        },
        candidates=list(population.members),
    )
