"""ES-Single, PES and truncated ES as benchmark methods: `run_es_single`, `run_pes`,
`run_truncated_es` (context) -> MethodResult (see `experiments.core.contract`).

The same `Population` of paper models as PopDescent and PBT (Adam per member, learning rate
drawn log-uniformly from [1e-4, 1e-2] or `options["lr_range"]`, moved within
`options["lr_bounds"]`), with the `popdescent.EvolutionStrategies` callback: the outer
parameter θ is log10 of the learning rate (and of the L2 rate with regularization), starting
at the members' mean; member i trains with θ + εᵢ, antithetic pairs (ε, -ε); after every
iteration (one truncated unroll of `steps_per_iteration` steps) the members' losses on a fresh
`budget.cv_batch_size`-image validation batch give the estimate, and Adam steps θ. One online
inner problem (no restarts): the harness wants a trained model at the end, not a meta-learned
schedule.

Antithetic pairs need an even population, so an odd `budget.population_size` (the paper's 5)
gives one member fewer (4), recorded in the result's details as `population_size`; it spends
the budget's member-steps all the same, in more iterations (the last one shorter), as every
method does. (Records made before 2026-11-30 22:30 spent 4/5 of the budget.) Options: `es_sigma` (σ in log10,
default 0.3: members at ×2 and ÷2 of θ) and `es_learning_rate` (Adam's step on θ per
iteration, default 0.2: up to ~3 decades in the small scale's 15 iterations).
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
from popdescent import EvolutionStrategies, LogUniform

DEFAULT_SIGMA = 0.3
DEFAULT_OUTER_LEARNING_RATE = 0.2


def even_size(population_size: int) -> int:
    """The largest even size <= population_size (antithetic pairs), at least 2."""
    return max(2, population_size - population_size % 2)


def _run(context: MethodContext, estimator: str) -> MethodResult:
    started = time.perf_counter()
    hyperparameters = {"learning_rate": learning_rate_prior(context)}  # validates lr options
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    strategy = EvolutionStrategies(  # validates the options before training
        estimator,
        sigma=context.options.get("es_sigma", DEFAULT_SIGMA),
        learning_rate=context.options.get("es_learning_rate", DEFAULT_OUTER_LEARNING_RATE),
        outer_optimizer="adam", antithetic=True, horizon=None,
        cv_batch_size=context.budget.cv_batch_size)
    size = even_size(context.budget.population_size)
    keras.utils.set_random_seed(context.seed)
    population = build_population(context, hyperparameters, make_optimizer, size=size)
    result = train_and_summarize(context, population, strategy, started, population_size=size)
    result.details["theta"] = strategy.theta_values(population)
    return result


def run_es_single(context: MethodContext) -> MethodResult:
    """ES-Single: one ε per member for the whole (online) run."""
    return _run(context, "es_single")


def run_pes(context: MethodContext) -> MethodResult:
    """PES: fresh ε every iteration, each member weighted by the sum of its ε so far."""
    return _run(context, "pes")


def run_truncated_es(context: MethodContext) -> MethodResult:
    """Truncated ES: fresh ε every iteration, blind to earlier iterations (biased)."""
    return _run(context, "truncated_es")
