"""KerasTuner RandomSearch: the real tuner runs the trials; the gradient steps counted from
the trained models match what KerasTuner ran and recorded; retraining stops early."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from baselines.random_search import training_stream  # noqa: E402
from experiments.methods.random import PaperHyperModel, run  # noqa: E402
from tests.helpers.method_smoke import check_common_record, smoke_context  # noqa: E402


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    context = smoke_context("random", tmp_path_factory.mktemp("random"), regularization=True)
    return context, run(context)


def test_random_search_returns_the_common_record(searched):
    context, result = searched
    check_common_record(result, context)
    hyperparameters = result.details["hyperparameters"]
    assert 1e-4 <= hyperparameters["learning_rate"] <= 1e-2
    assert 1e-6 <= hyperparameters["l2"] <= 1e-1


def test_trials_and_steps_match_what_keras_tuner_ran(searched):
    context, result = searched
    details = result.details
    # Reload KerasTuner's own record of the search from the run's directory.
    tuner = keras_tuner.RandomSearch(
        PaperHyperModel("fmnist", True, context.data), objective="val_loss",
        max_trials=details["trials"], executions_per_trial=details["executions_per_trial"],
        directory=str(context.work_dir / "keras_tuner"), project_name="random_search",
        overwrite=False)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == details["trials"] == details["trials_completed"]
    assert all(trial.status == "COMPLETED" for trial in trials)
    executions = details["executions"]
    for trial in trials:
        runs = [e for e in executions if e["hyperparameters"] == trial.hyperparameters.values]
        assert len(runs) == details["executions_per_trial"]
    assert tuner.get_best_hyperparameters(1)[0].values == pytest.approx(
        details["hyperparameters"])
    # Every execution ran exactly the steps it was asked for: one epoch of steps_per_epoch.
    assert [e["gradient_steps"] for e in executions] == \
        [details["steps_per_epoch"]] * (details["trials"] * details["executions_per_trial"])
    assert details["search_steps"] == sum(e["gradient_steps"] for e in executions)
    assert details["retrain_steps"] == details["retrain_epochs_run"] * details["steps_per_epoch"]
    assert result.gradient_steps == details["search_steps"] + details["retrain_steps"]


def test_training_stream_wraps_around_the_data():
    x = np.arange(10, dtype="float32").reshape(10, 1)
    batches = list(training_stream(x, np.zeros(10, "int32"), 4, seed=0).take(5))
    seen = np.concatenate([batch[0].numpy().ravel() for batch in batches])
    assert len(seen) == 20  # five full batches from ten examples
    assert sorted(seen[:10]) == list(range(10))
