"""ESGD as a benchmark method: `run(context) -> MethodResult` (see `experiments.core.contract`),
the `baselines.esgd.ESGD` strategy over a `Population` of the paper's model."""

from __future__ import annotations

import time

import keras

from baselines.esgd import FIXED_L2, OPTIMIZERS, PAPER_SGD, paper_esgd
from experiments.core.contract import (
    MethodContext,
    MethodResult,
    learning_rate_prior,
    make_optimizer,
)
from experiments.methods.population import build_population, train_and_summarize
from popdescent.hyperparameters import Fixed


def run(context: MethodContext) -> MethodResult:
    """ESGD within `context.budget`: `budget.iterations` generations of
    `budget.steps_per_iteration` local steps per member; returns the fittest member.

    `context.options["esgd_optimizer"]`: "adam" (default: Adam(1e-3), every method's local
    optimizer) or "sgd" (the paper's ESGD run: `PAPER_SGD[dataset]`).
    `context.options["lr_range"]`: instead of that one fixed rate, each member's rate is drawn
    log-uniformly from the range; ESGD never mutates it, so it changes only as selection
    favours the offspring of members with better rates (each child inherits its first
    parent's rate). `lr_bounds` are accepted and validated, but ESGD never moves a rate.
    """
    started = time.perf_counter()
    optimizer_name = context.options.get("esgd_optimizer", "adam")
    if optimizer_name not in OPTIMIZERS:
        raise ValueError(f"esgd_optimizer must be one of {OPTIMIZERS}, got {optimizer_name!r}")
    prior = learning_rate_prior(context)  # validates lr_range and lr_bounds before training
    budget = context.budget
    strategy = paper_esgd(context.dataset, budget.population_size, budget.elites,
                          budget.cv_batch_size)
    keras.utils.set_random_seed(context.seed)
    if optimizer_name == "adam":
        learning_rate, factory = 1e-3, make_optimizer
    else:
        settings = PAPER_SGD[context.dataset]
        learning_rate = settings["learning_rate"]

        def factory():
            return keras.optimizers.SGD(**settings)

    if "lr_range" in context.options:
        hyperparameters = {"learning_rate": prior}
    else:
        hyperparameters = {"learning_rate": Fixed(learning_rate)}
    if context.regularization:
        hyperparameters["l2"] = Fixed(FIXED_L2)
    population = build_population(context, hyperparameters, factory)
    result = train_and_summarize(context, population, strategy, started, optimizer=optimizer_name)
    result.details["generations"] = strategy.generation
    return result
