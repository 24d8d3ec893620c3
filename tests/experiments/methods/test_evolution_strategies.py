"""ES-Single, PES and truncated ES as harness methods (experiments/methods/evolution_strategies.py).

The common contract (no test-data leak, the record's fields) is checked for every method in
test_contract.py; a killed run resuming bit for bit in test_benchmark.py (PES). Here: what is
particular to these three, and a smoke run of them in the robustness study.
"""

import math

import numpy as np
import pytest

from experiments import robustness
from experiments.core.contract import get_budget
from experiments.core.records import read_records
from experiments.methods import get_method
from experiments.methods.evolution_strategies import even_size
from tests.helpers.method_smoke import smoke_context

METHODS = ("es-single", "pes", "truncated-es")


def test_antithetic_pairs_get_the_largest_even_population():
    assert [even_size(n) for n in (2, 3, 4, 5, 6)] == [2, 2, 4, 4, 6]


@pytest.mark.parametrize("options, message", [
    ({"es_sigma": 0.0}, "sigma must be a finite number > 0, got 0.0"),
    ({"es_learning_rate": -0.1}, "learning_rate must be a finite number > 0, got -0.1"),
])
def test_bad_es_options_are_refused_before_training(options, message, tmp_path):
    context = smoke_context("pes", tmp_path, **options)
    with pytest.raises(ValueError, match=message):
        get_method("pes")(context)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The three methods from the range 100x too small, at smoke scale on the tiny MLP."""
    out = tmp_path_factory.mktemp("robustness")
    smoke_context("pes", out)  # skips when the Fashion-MNIST files are missing
    assert robustness.main(["--dataset", "fmnist", "--seeds", "5", "--scale", "smoke",
                            "--quiet", "--model", "mlp", "--method", *METHODS,
                            "--range", "too-small", "--out", str(out)]) == 0
    return {r["method"]: r for r in read_records(robustness.records_path(out, "too-small"))}


def test_the_robustness_study_runs_them_with_the_wide_bounds(study):
    assert sorted(study) == sorted(METHODS)
    for record in study.values():
        assert record["options"]["lr_bounds"] == list(robustness.BOUNDS)
        assert math.isfinite(record["test_loss"])
        assert record["details"]["population_size"] == 2  # smoke's 3, made even
        # ... spending the budget's member-steps all the same (3 iterations of 2 x 2, not 2)
        assert record["gradient_steps"] == get_budget("fmnist", "smoke").member_steps == 12


def test_from_a_range_far_too_small_theta_moves_up(study):
    """Three iterations from learning rates in [1e-6, 1e-5]: the members share their initial
    weights (`shared_start`), so a pair's loss difference is its learning rates', and a larger
    rate lowers the loss: θ = log10(rate) ends above where the members started (Adam's first
    step is ~0.2, each later one ~0.2 more)."""
    for method, record in study.items():
        details = record["details"]
        start = np.mean(np.log10([h["learning_rate"]
                                  for h in details["initial_hyperparameters"]]))
        assert math.log10(details["theta"]["learning_rate"]) > start + 0.3, method
