"""The untuned baseline: one Adam model, the whole budget, the best validation checkpoint."""

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.helpers.method_smoke import check_common_record, smoke_context
from tests.helpers.models import make_model

from experiments.core.evaluation import validation_loss
from experiments.methods import adam as adam_method
from experiments.methods import get_method
from popdescent import BudgetSchedule, ScheduledLearningRate


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


class Rates(keras.callbacks.Callback):
    """At every batch: (gradient steps before it, the optimizer's learning rate, the size of
    the update the train step applied), so a schedule the step does not read shows."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.before = (int(optimizer.iterations.numpy()),
                       float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
                       self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        steps, rate, weights = self.before
        update = np.sqrt(sum(np.sum((a - b) ** 2)
                             for a, b in zip(self.model.get_weights(), weights)))
        self.rates.append((steps, rate, float(update)))


def test_adam_decay_cools_down_from_its_best_checkpoint_when_it_stalls():
    """The single run a budget-aware population is compared with gets the same cool-down:
    a wide model memorizing random labels stalls on validation, goes back to earlier
    weights, its rate falls linearly from the schedule's value there to zero, and it stops."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 16)).astype("float32"), rng.integers(0, 3, 24)
    data = SimpleNamespace(x_val=rng.normal(size=(64, 16)).astype("float32"),
                           y_val=rng.integers(0, 3, 64))
    keras.utils.set_random_seed(0)
    total = 400
    rate = ScheduledLearningRate(3e-2, total, BudgetSchedule())
    model = make_model(keras.optimizers.Adam(rate), units=64, features=16, metrics=())
    checkpoint = adam_method.CooledCheckpoint(data, 0.0, rate, patience=3, every=8)
    rates = Rates()
    stream = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(8)
    model.fit(stream, epochs=total // 8, steps_per_epoch=8, verbose=0,
              callbacks=[checkpoint, rates])
    summary = checkpoint.summary()
    began, length = summary["gradient_steps"], summary["length"]
    # the checks at which the best so far fell (the curve holds the best so far)
    points = checkpoint.points
    improved = [points[0][0]] + [b[0] for a, b in zip(points, points[1:]) if b[1] < a[1]]
    best_then = max(steps for steps in improved if steps <= began)
    assert began == best_then + 3 * 8  # three checks without a new best
    rewind = summary["from_gradient_steps"]  # a check at or before half the best, or the first
    assert rewind % 8 == 0 and (rewind == 8 or 2 * rewind <= best_then)
    assert length == min(max(best_then - rewind, 8), total - began)
    assert summary["from_multiplier"] == pytest.approx(
        BudgetSchedule().multiplier(rewind / total))
    during = [(steps, value, update) for steps, value, update in rates.rates if steps >= began]
    for steps, value, _ in during:
        expected = 3e-2 * summary["from_multiplier"] * (1 - (steps - began) / length)
        assert value == pytest.approx(expected, rel=1e-4, abs=1e-9)
    # and the train step applies it (it must be traced again): Adam's last update, at
    # 1/length of the starting rate, is a fraction of its first (without the retrace, 1.5x)
    assert during[-1][2] < 0.4 * during[0][2]
    assert int(model.optimizer.iterations.numpy()) == began + length < total
    model.set_weights(checkpoint.best_weights)
    assert validation_loss(model, data) == pytest.approx(checkpoint.best_loss, rel=1e-6)


@pytest.mark.parametrize("patience", [0, "three"])
def test_a_bad_cooldown_patience_option_is_refused_before_training(tmp_path, patience):
    context = smoke_context("adam-decay", tmp_path, cooldown_patience=patience)
    with pytest.raises(ValueError, match=r"options\['cooldown_patience'\] must be an integer"):
        adam_method.run_decayed(context)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written
