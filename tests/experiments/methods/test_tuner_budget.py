"""The tuners' budget arithmetic: Hyperband's cost is what KerasTuner's own oracle schedules, no
mapping exceeds any budget of the harness, and a budget too small is refused with its number."""

import math

import keras_tuner
import numpy as np
import pytest

from experiments.core.contract import DATASETS, SCALES, get_budget
from experiments.methods.tuner_budget import (
    HORIZON_TOLERANCE,
    HORIZONS,
    hyperband_epochs,
    hyperband_rounds,
    plan_fixed_trials,
    plan_hyperband,
    startup_trials,
)

EVERY_BUDGET = [(dataset, scale) for dataset in DATASETS for scale in SCALES]


def epochs_keras_tuner_runs(max_epochs, factor):
    """Runs KerasTuner's HyperbandOracle for one iteration without training: every trial
    ends at once with a random score; returns the epochs each trial trains (its
    tuner/epochs past its tuner/initial_epoch)."""
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.HyperbandOracle(
        objective=keras_tuner.Objective("score", "min"), max_epochs=max_epochs, factor=factor,
        hyperband_iterations=1, seed=0, hyperparameters=hp)
    oracle.save = oracle._save_trial = lambda *args: None  # nothing written to disk
    scores, trained = np.random.default_rng(0), []
    while True:
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            assert trial.status == "STOPPED"
            return trained
        values = trial.hyperparameters.values
        trained.append(values["tuner/epochs"] - values["tuner/initial_epoch"])
        oracle.update_trial(trial.trial_id, {"score": float(scores.random())})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


@pytest.mark.parametrize("max_epochs, factor", [(3, 3), (9, 3), (27, 3), (10, 3), (8, 2)])
def test_hyperband_cost_is_what_keras_tuners_oracle_schedules(max_epochs, factor):
    trained = epochs_keras_tuner_runs(max_epochs, factor)
    rounds = hyperband_rounds(max_epochs, factor)
    assert len(trained) == sum(r.trials for r in rounds)
    assert sum(trained) == hyperband_epochs(max_epochs, factor)


def test_keras_tuners_docstring_estimate_is_too_low():
    # "approximately max_epochs * (math.log(max_epochs, factor) ** 2) cumulative epochs"
    for max_epochs in (9, 27, 81):
        estimate = max_epochs * math.log(max_epochs, 3) ** 2
        assert hyperband_epochs(max_epochs, 3) / estimate > 1.3


@pytest.mark.parametrize("dataset, scale", EVERY_BUDGET)
def test_hyperband_mapping_never_exceeds_the_budget(dataset, scale):
    budget = get_budget(dataset, scale).member_steps
    plan = plan_hyperband(budget, HORIZONS[dataset])
    assert 1 <= plan.member_steps <= budget
    assert plan.iterations == 1 and plan.steps_per_epoch >= 1
    # One iteration spends the budget: not even one more epoch of the smallest bracket fits.
    assert budget - plan.member_steps < plan.epochs_per_iteration


@pytest.mark.parametrize("dataset, scale", EVERY_BUDGET)
def test_fixed_trial_mapping_never_exceeds_the_budget(dataset, scale):
    budget = get_budget(dataset, scale).member_steps
    plan = plan_fixed_trials(budget, HORIZONS[dataset])
    hyperband = plan_hyperband(budget, HORIZONS[dataset])
    assert 1 <= plan.member_steps <= budget
    assert plan.trials >= 1 and plan.epochs == hyperband.max_epochs
    assert plan.trial_steps >= hyperband.longest_trial_steps  # stretched, never shortened
    assert budget - plan.member_steps < plan.trials * plan.epochs


@pytest.mark.parametrize("budget, horizon, expected", [
    # (member-steps, horizon) -> (max_epochs, steps_per_epoch, trials, planned member-steps)
    (3200, 3840, (3, 290, 6, 3190)),      # fmnist quick: no Hyperband reaches the horizon
    (12800, 3840, (3, 1163, 6, 12793)),   # fmnist middle: longest trial 3,489
    (32000, 3840, (9, 426, 23, 31950)),   # fmnist paper: longest trial 3,834
    (2560, 5120, (3, 232, 6, 2552)),      # cifar10 quick
])
def test_hyperband_mapping_of_the_documented_budgets(budget, horizon, expected):
    plan = plan_hyperband(budget, horizon)
    assert (plan.max_epochs, plan.steps_per_epoch, plan.trials, plan.member_steps) == expected


@pytest.mark.parametrize("budget, horizon, expected", [
    # -> (epochs, steps_per_epoch, trials, planned member-steps)
    (3200, 3840, (3, 355, 3, 3195)),
    (12800, 3840, (3, 1422, 3, 12798)),
    (32000, 3840, (9, 444, 8, 31968)),
    (2560, 5120, (3, 284, 3, 2556)),
])
def test_fixed_trial_mapping_of_the_documented_budgets(budget, horizon, expected):
    plan = plan_fixed_trials(budget, horizon)
    assert (plan.epochs, plan.steps_per_epoch, plan.trials, plan.member_steps) == expected


def test_the_longest_trial_reaches_the_horizon_where_the_budget_allows():
    plan = plan_hyperband(32000, 3840)
    assert plan.longest_trial_steps >= (1 - HORIZON_TOLERANCE) * 3840
    # A larger budget buys more brackets, not longer trials past the horizon.
    bigger = plan_hyperband(100_000, 3840)
    assert bigger.max_epochs > plan.max_epochs
    assert (1 - HORIZON_TOLERANCE) * 3840 <= bigger.longest_trial_steps < 2 * 3840


def test_where_the_budget_holds_no_horizon_the_longest_trial_is_as_long_as_it_can_be():
    plan = plan_hyperband(3200, 3840)
    others = [max_epochs * (3200 // hyperband_epochs(max_epochs)) for max_epochs in (9, 27)]
    assert plan.longest_trial_steps > max(others)


@pytest.mark.parametrize("member_steps", [0, 6, 10])
def test_a_budget_below_one_hyperband_iteration_is_refused_with_its_numbers(member_steps):
    if member_steps < 1:
        match = r"member_steps must be an integer >= 1, got 0"
    else:
        match = (r"budget.member_steps must be >= 11 for one Hyperband iteration "
                 rf"\(max_epochs=3, factor=3.*got {member_steps}")
    with pytest.raises(ValueError, match=match):
        plan_hyperband(member_steps, 3840)
    with pytest.raises(ValueError, match=match):
        plan_fixed_trials(member_steps, 3840)


@pytest.mark.parametrize("horizon", [0, -5, 2.5, "long", True])
def test_a_bad_horizon_is_refused(horizon):
    with pytest.raises(ValueError, match=rf"horizon must be an integer >= 1, got {horizon!r}"):
        plan_hyperband(3200, horizon)


@pytest.mark.parametrize("default, planned, expected", [(3, 8, 3), (15, 8, 4), (10, 3, 1),
                                                        (3, 1, 1)])
def test_model_based_samplers_start_from_at_most_half_the_trials(default, planned, expected):
    assert startup_trials(default, planned) == expected
