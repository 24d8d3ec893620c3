"""PopDescent as a benchmark method: `run(context) -> MethodResult` (see
`experiments.core.contract`).

One `popdescent.Population` of `budget.population_size` paper models, each with its own Adam
whose learning rate is a live hyperparameter drawn log-uniformly from [1e-4, 1e-2] (or from
`options["lr_range"]`, mutated within `options["lr_bounds"]`); with
`regularization`, also a live L2 rate drawn log-uniformly from [1e-6, 1e-1] on the hidden Dense
kernel (the "none" model variant, so the population, not a fixed Keras regularizer, owns the
penalty). `PopDescent(elites=budget.elites)` selects and mutates at the end of every iteration
on a freshly sampled `budget.cv_batch_size`-image batch of the validation half.

The curve (`experiments.methods.population.BestMemberCurve`) has one point per iteration: the
validation loss, on the whole 5,000-image validation half, of the member PopDescent would
return at that moment (the fittest by its CV fitness). Measuring one member instead of all five
keeps the cost at ~1.2 s (FMNIST) / ~6 s (CIFAR-10) per iteration; Keras' own validation pass
over all members would cost five times that, so it is switched off. The returned model is
`population.best_model()`: chosen by validation fitness only. The ensemble of the final
elites (`population.ensemble_model`) is handed to the harness as an extra model.
"""

from __future__ import annotations

import time

import keras

from experiments.core.contract import (
    L2_RANGE,
    MethodContext,
    MethodResult,
    learning_rate_prior,
    make_optimizer,
)
from experiments.methods.population import build_population, train_and_summarize
from popdescent import LogUniform, PopDescent


def _search_space(context):
    hyperparameters = {"learning_rate": learning_rate_prior(context)}
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    return hyperparameters


def run(context: MethodContext) -> MethodResult:
    """Trains a PopDescent population within `context.budget`; returns its fittest member."""
    started = time.perf_counter()
    hyperparameters = _search_space(context)  # validates lr options before training
    keras.utils.set_random_seed(context.seed)
    population = build_population(context, hyperparameters, make_optimizer)
    strategy = PopDescent(elites=context.budget.elites, cv_batch_size=context.budget.cv_batch_size)
    result = train_and_summarize(context, population, strategy, started)
    # The final population's elites averaged: a row of its own, at no extra training.
    result.extra_models["ensemble"] = population.ensemble_model(context.budget.elites,
                                                               selection="fittest")
    return result
