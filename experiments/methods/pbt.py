"""PBT as a benchmark method: `run(context) -> MethodResult` (see `experiments.core.contract`).

The same `Population` as PopDescent (the paper's model, Adam per member, learning rate drawn
log-uniformly from [1e-4, 1e-2] (or `options["lr_range"]`, explored within
`options["lr_bounds"]`), with regularization also an L2 rate from [1e-6, 1e-1] on the
hidden Dense kernel) with the `popdescent.strategies.PBT` callback instead of PopDescent:
every `pbt_interval` iterations (option, default 1: PopDescent's cadence) the bottom 25 %
copy a random top-25 % member and explore its hyperparameters (x1.2 / x0.8, or a redraw with
probability 0.25). Fitness is measured on a fresh `budget.cv_batch_size`-image validation batch.
"""

from __future__ import annotations

import time

import keras

from baselines.pbt import DEFAULT_INTERVAL, paper_pbt
from experiments.core.contract import (
    L2_RANGE,
    MethodContext,
    MethodResult,
    learning_rate_prior,
    make_optimizer,
)
from experiments.methods.population import build_population, train_and_summarize
from popdescent import LogUniform


def run(context: MethodContext) -> MethodResult:
    """Trains a PBT population within `context.budget`; returns its fittest member."""
    started = time.perf_counter()
    interval = context.options.get("pbt_interval", DEFAULT_INTERVAL)
    strategy = paper_pbt(interval, context.budget.cv_batch_size)  # validates
    hyperparameters = {"learning_rate": learning_rate_prior(context)}  # validates lr options
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    keras.utils.set_random_seed(context.seed)
    population = build_population(context, hyperparameters, make_optimizer)
    return train_and_summarize(context, population, strategy, started)
