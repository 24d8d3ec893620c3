"""The short-horizon bias probe: it probes where the budget-aware rungs decide, its main run is
the `adam-decay` run the benchmark records, and a cooled branch never touches it."""

import math

from experiments.core.contract import get_budget
from experiments.horizon_bias import probe_run, rung_horizons
from experiments.methods.adam import run_decayed
from popdescent.strategies.budget_aware import default_rungs, planned_sizes
from tests.helpers.method_smoke import smoke_context


def test_the_probes_are_where_the_budget_aware_rungs_shrink():
    for scale in ("quick", "middle", "paper"):
        budget = get_budget("fmnist", scale)
        size = budget.population_size
        sizes = planned_sizes(default_rungs(size), budget.member_steps, size,
                              budget.steps_per_iteration)
        expected, spent = [], 0
        for number, members in enumerate(sizes):
            spent += members * budget.steps_per_iteration
            if number + 1 < len(sizes) and sizes[number + 1] < members:
                expected.append((spent, (number + 1) * budget.steps_per_iteration))
        assert rung_horizons(budget) == expected


def test_the_probed_run_is_adam_decay_and_its_branches_leave_it_alone(tmp_path):
    context = smoke_context("probe-good", tmp_path, guess="good")
    short = probe_run(context, "good", branches=(2,))
    long = probe_run(context, "good", branches=(4,))
    assert short["checks"] == long["checks"]
    for probe in long["probes"]:
        assert math.isfinite(probe["cooled"]["4"]) and probe["cooled"]["4"] != probe["loss"]
    recorded = run_decayed(smoke_context("adam-decay", tmp_path, guess="good"))
    steps, loss, _ = recorded.curve[0]
    assert dict(long["checks"])[steps] == loss
