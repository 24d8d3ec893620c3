"""The untuned baseline: one Adam model, the whole budget, the best validation checkpoint."""

import math

import numpy as np
import pytest
from tests.helpers.method_smoke import check_common_record, smoke_context

from experiments.core.evaluation import validation_loss
from experiments.methods import adam as adam_method
from experiments.methods import get_method


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    context = smoke_context("adam", tmp_path_factory.mktemp("adam"))
    return adam_method.run(context), context


def test_adam_is_a_registered_method_with_the_common_record(trained):
    result, context = trained
    assert get_method("adam") is adam_method.run
    check_common_record(result, context)


def test_the_whole_budget_goes_to_one_model(trained):
    result, context = trained
    budget = context.budget
    assert result.gradient_steps == budget.member_steps
    # Counted from what ran: the returned model's own optimizer took every step.
    assert int(result.model.optimizer.iterations.numpy()) == budget.member_steps
    assert result.details["hyperparameters"] == {"learning_rate": 1e-3}


def test_validation_is_checked_at_the_population_methods_cadence(trained):
    result, context = trained
    budget = context.budget
    per_iteration = budget.steps_per_iteration * budget.population_size
    assert [point[0] for point in result.curve] == [
        per_iteration * (i + 1) for i in range(budget.iterations)]


def test_returned_model_is_the_best_checkpoint_on_validation(trained):
    result, context = trained
    losses = [point[1] for point in result.curve]
    assert losses == list(np.minimum.accumulate(losses))  # best so far
    assert validation_loss(result.model, context.data) == pytest.approx(min(losses), rel=1e-6)
    assert math.isclose(result.details["best_validation_loss"], min(losses), rel_tol=1e-9)


def test_lr_range_sets_the_rate_to_its_geometric_middle(tmp_path):
    context = smoke_context("adam", tmp_path, lr_range=[1e-6, 1e-4])
    result = adam_method.run(context)
    assert result.details["hyperparameters"]["learning_rate"] == pytest.approx(1e-5)
    assert float(result.model.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
