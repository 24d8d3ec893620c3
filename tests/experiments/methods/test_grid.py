"""Grid search: the paper's grids, Table 1's steps per model scaled with the budget, one
Population with a fixed grid point per member, the best model on validation returned."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from baselines.grid_search import grid_points  # noqa: E402
from experiments.core.contract import MethodContext, get_budget  # noqa: E402
from experiments.core.evaluation import loss_and_accuracy  # noqa: E402
from experiments.methods.grid import grid_schedule, run  # noqa: E402
from tests.helpers.method_smoke import check_common_record, smoke_context  # noqa: E402


def test_grid_is_five_learning_rates_or_their_product_with_five_l2_rates():
    assert [p["learning_rate"] for p in grid_points(False)] == [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    regularized = grid_points(True)
    assert len(regularized) == 25
    assert {(p["learning_rate"], p["l2"]) for p in regularized} == {
        (rate, l2) for rate in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
        for l2 in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)}


@pytest.mark.parametrize("dataset, scale, regularization, schedule", [
    ("fmnist", "paper", False, (100, 128)),   # 64,000 steps over 5 models
    ("fmnist", "paper", True, (50, 128)),     # 160,000 steps over 25 models
    ("cifar10", "paper", False, (15, 256)),   # 19,200 over 5
    ("cifar10", "paper", True, (15, 256)),    # 96,000 over 25
    ("fmnist", "small", False, (30, 128)),    # 30 % of paper scale
    ("cifar10", "small", True, (6, 64)),      # 10 % of paper scale
])
def test_steps_per_model_are_table_1_scaled_like_the_budget(dataset, scale, regularization,
                                                            schedule):
    context = MethodContext(method="grid", dataset=dataset, seed=5, scale=scale,
                            regularization=regularization, data=None,
                            budget=get_budget(dataset, scale), work_dir=None)
    assert grid_schedule(context) == schedule


def test_grid_runs_at_smoke_scale_and_returns_the_best_model_on_validation(tmp_path):
    context = smoke_context("grid", tmp_path)
    result = run(context)
    check_common_record(result, context)
    details = result.details
    assert details["models"] == 5 and len(result.candidates) == 5
    # Steps counted from what ran: each model's own optimizer step count.
    ran = [int(model.optimizer.iterations.numpy()) for model in result.candidates]
    assert ran == [details["steps_per_model"]] * 5
    assert result.gradient_steps == sum(ran)
    for model, point in zip(result.candidates, details["grid"]):
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(
            point["learning_rate"], rel=1e-6)
    losses = [point["validation_loss"] for point in details["grid"]]
    assert details["best_model"] == int(np.argmin(losses))
    returned = loss_and_accuracy(result.model, context.data.x_val, context.data.y_val)[0]
    assert returned == pytest.approx(min(losses), rel=1e-4)
