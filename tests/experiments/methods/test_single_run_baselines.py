"""The single-run baselines of issue 29: `adam-decay-ensemble` (independent `adam-decay` runs,
as many as the budget holds at the horizon they measure, averaged) and `adam-decay-rt` (one
`adam-decay` run given the population's range test)."""

import dataclasses

import numpy as np
import pytest

from experiments.core.contract import get_budget
from experiments.methods import adam, independent_ensemble, range_tested
from popdescent.strategies.budget_aware import range_test_rates
from tests.helpers.method_smoke import check_common_record, smoke_context


def test_each_next_run_gets_an_equal_share_of_what_the_shortest_run_fits():
    assert independent_ensemble.next_share(left=22_400, shortest=5_760) == 22_400 // 3
    assert independent_ensemble.next_share(left=5_760, shortest=5_760) == 5_760
    assert independent_ensemble.next_share(left=5_759, shortest=5_760) == 0
    seeds = [independent_ensemble.run_seed(5, i) for i in range(4)]
    assert seeds[0] == 5 and len(set(seeds)) == 4 and all(0 <= s < 2**63 for s in seeds)


def long_context(tmp_path, method, **options):
    """Smoke data, a budget of 40 checks of 6 steps, a rate that stalls early."""
    context = smoke_context(method, tmp_path, model="mlp", lr_range=[0.05, 0.2],
                            cooldown_patience=1, **options)
    budget = dataclasses.replace(get_budget("fmnist", "smoke"), iterations=40)
    return dataclasses.replace(context, budget=budget)


def test_the_independent_ensemble_spends_the_budget_on_runs_that_cooled_down(tmp_path):
    context = long_context(tmp_path, "adam-decay-ensemble")
    result = independent_ensemble.run(context)
    check_common_record(result, context)
    runs = result.details["runs"]
    assert len(runs) == result.details["members"] >= 2
    assert result.gradient_steps == sum(r["gradient_steps"] for r in runs) <= 240
    assert runs[0]["budget"] == 240 and runs[0]["seed"] == 5
    assert runs[0]["gradient_steps"] < 240  # it cooled down and stopped
    # the first run is adam-decay's own run, step for step
    single = adam.run_decayed(long_context(tmp_path, "adam-decay"))
    assert runs[0]["gradient_steps"] == single.gradient_steps
    assert runs[0]["best_validation_loss"] == single.details["best_validation_loss"]
    left = 240 - result.gradient_steps
    assert left < min(r["gradient_steps"] for r in runs)  # no further run fits
    # greedy selection never does worse on validation than the plain average's best member
    best = min(r["best_validation_loss"] for r in runs)
    assert result.details["greedy_validation_loss"] <= best + 1e-9
    assert set(result.extra_models) == {"greedy", "best"}


def test_a_fixed_run_length_gives_every_run_that_horizon_until_the_budget_holds_no_more(tmp_path):
    # the control of the population's measured horizon: every run, the first too, gets 70 steps
    context = long_context(tmp_path, "adam-decay-ensemble", run_steps=70)
    result = independent_ensemble.run(context)
    runs = result.details["runs"]
    assert [r["budget"] for r in runs] == [70] * len(runs) and len(runs) >= 3
    assert all(r["gradient_steps"] <= 70 for r in runs)
    assert result.gradient_steps == sum(r["gradient_steps"] for r in runs)
    assert 240 - result.gradient_steps < 70  # what is left holds no further run
    assert result.details["unspent_member_steps"] == 240 - result.gradient_steps
    assert len({r["seed"] for r in runs}) == len(runs)


@pytest.mark.parametrize("bad", [0, 241, 3.5, "70"])
def test_a_run_length_outside_the_budget_is_refused_before_training(tmp_path, bad):
    context = long_context(tmp_path, "adam-decay-ensemble", run_steps=bad)
    with pytest.raises(ValueError, match=r"options\['run_steps'\] must be an integer in \[1, 240\]"):
        independent_ensemble.run(context)


def test_the_range_tested_run_probes_the_populations_rates_and_counts_their_steps(tmp_path):
    context = smoke_context("adam-decay-rt", tmp_path, model="mlp", lr_range=[1e-6, 1e-5],
                            lr_bounds=[1e-7, 1.0])
    result = range_tested.run(context)
    check_common_record(result, context)
    test = result.details["range_test"]
    budget = context.budget
    assert test["rates"] == range_test_rates((1e-7, 1.0), budget.population_size - 1)
    winner = test["rates"][int(np.argmin(test["losses"]))]
    assert test["winner"] == winner
    assert test["chosen"] == pytest.approx(max(winner / np.sqrt(10), 1e-7))
    probed = len(test["rates"]) * test["steps_each"]
    assert result.gradient_steps == budget.member_steps  # probes and run spend the budget
    assert result.curve[0][0] > probed
    assert result.details["hyperparameters"]["learning_rate"] == test["chosen"]
