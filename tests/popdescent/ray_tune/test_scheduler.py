"""PopDescentScheduler on a local Ray: PopDescent's selection over real Tune trials."""

import json
import os
import signal

import pytest

ray = pytest.importorskip("ray", reason="popdescent.ray needs Ray Tune: pip install -e '.[ray]'")

from ray import tune  # noqa: E402

import popdescent  # noqa: E402
from popdescent.ray import PopDescentScheduler, keras_trainable  # noqa: E402
from popdescent.ray.barrier import LINEAGE_FILE  # noqa: E402
from tests.helpers.digits import build_mlp, digits  # noqa: E402
from tests.helpers.ray_runs import (  # noqa: E402
    CheckpointRecorder,
    KillOnce,
    max_change,
    noise_std,
    run_experiment,
)

STEPS = 10
WEIGHT_NOISE = 0.05
# A learning rate of ~1e-9 moves no weight by more than ~1e-7 in a report, so between two
# checkpoints a trial's weights change only by what a selection did to them.
FROZEN_RATES = popdescent.LogUniform(1e-9, 2e-9, bounds=(1e-9, 1e-8))


def scheduler(**arguments):
    defaults = dict(hyperparameters={"learning_rate": FROZEN_RATES}, metric="val_loss",
                    mode="min", elites=2, weight_noise=WEIGHT_NOISE, seed=0)
    return PopDescentScheduler(**{**defaults, **arguments})


def trainable():
    train, validation, _ = digits()
    return keras_trainable(build_mlp, (train, validation), steps_per_report=STEPS,
                           batch_size=32, seed=0)


def lineage(grid):
    with open(os.path.join(grid.experiment_path, LINEAGE_FILE), encoding="utf-8") as file:
        return [json.loads(line) for line in file]


@pytest.fixture(scope="module")
def selection_run(ray_session, tmp_path_factory):
    """Four trials, three reports, a selection after the first and the second."""
    recorder = CheckpointRecorder()
    grid = run_experiment(trainable(), scheduler(), tmp_path_factory.mktemp("ray"), "select",
                          reports=3, callbacks=[recorder])
    return grid, lineage(grid), recorder.weights


def test_a_four_trial_run_completes_with_a_selection_after_each_report(selection_run):
    grid, records, _ = selection_run
    assert [result.error for result in grid] == [None] * 4
    assert [result.metrics["training_iteration"] for result in grid] == [3] * 4
    assert [record["iteration"] for record in records] == [1, 2]
    assert all(len(record["elites"]) == 2 and len(record["replaced"]) == 2
               for record in records)


def test_elites_go_on_from_their_own_untouched_checkpoint(selection_run):
    _, records, weights = selection_run
    for record in records:
        k = record["iteration"]
        for elite in record["elites"]:
            assert max_change(weights[elite][k], weights[elite][k - 1]) < 1e-5


def test_a_replaced_trial_restores_its_parents_checkpoint_plus_noise_of_the_planned_std(
        selection_run):
    _, records, weights = selection_run
    for record in records:
        k = record["iteration"]
        for replaced in record["replaced"]:
            parent_fitness = record["fitness"][replaced["parent"]]
            assert replaced["weight_noise"] == pytest.approx(
                WEIGHT_NOISE * (1 - parent_fitness))
            measured = noise_std(weights[replaced["trial"]][k], weights[replaced["parent"]][k - 1])
            assert measured == pytest.approx(replaced["weight_noise"], rel=0.1)


def test_mutated_hyperparameters_stay_within_bounds_and_reach_the_trial(selection_run):
    grid, records, _ = selection_run
    low, high = FROZEN_RATES.bounds
    assert all(low <= result.config["learning_rate"] <= high for result in grid)
    mutated = [r["hyperparameters"]["learning_rate"] for rec in records for r in rec["replaced"]]
    assert all(low <= rate <= high for rate in mutated)
    last = {r["trial"]: r["hyperparameters"] for r in records[-1]["replaced"]}
    for result in grid:
        if result.metrics["trial_id"] in last:
            assert result.config["learning_rate"] == last[result.metrics["trial_id"]][
                "learning_rate"]


def test_a_killed_worker_restarts_and_every_trial_ends_with_uninterrupted_member_steps(
        ray_session, tmp_path):
    # Killed as it reaches the selection after report 2, before its checkpoint is saved: it
    # restarts from report 1's checkpoint while the others wait for it at the barrier.
    killer = KillOnce(iteration=2)
    grid = run_experiment(trainable(), scheduler(every=2, elites=1), tmp_path, "killed",
                          num_samples=3, reports=4, callbacks=[killer], max_failures=2)
    assert killer.killed is not None
    assert [result.error for result in grid] == [None] * 3
    assert [result.metrics["member_steps"] for result in grid] == [4 * STEPS] * 3
    assert [result.metrics["training_iteration"] for result in grid] == [4] * 3


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("arguments, message", [
    ({"mode": "maximum"}, "mode must be 'min' or 'max', got 'maximum'"),
    ({"elites": 0}, "elites"),
    ({"hyperparameters": {"learning_rate": tune.loguniform(1e-4, 1e-2)}},
     "hyperparameters['learning_rate'] must be a mutable popdescent prior with bounds"),
    ({"hyperparameters": {"learning_rate": 1e-3}}, "with bounds"),
    ({"hyperparameters": {}}, "non-empty dict"),
    ({"weight_noise": -1.0}, "weight_noise must be a finite number >= 0, got -1.0"),
    ({"hyperparameter_noise_base": 1.0},
     "hyperparameter_noise_base must be a finite number > 1, got 1.0"),
])
def test_bad_arguments_are_refused_when_the_scheduler_is_made(arguments, message):
    with pytest.raises(ValueError) as error:
        scheduler(**arguments)
    assert message in str(error.value)


def test_fitness_is_the_papers_for_a_loss_and_the_metric_itself_for_an_accuracy():
    losses, accuracies = [0.0, 2.0, float("nan")], [0.25, 0.9, 1.0]
    assert scheduler().fitness(losses).tolist() == [1.0, 0.5, 0.0]
    assert scheduler(mode="max").fitness(accuracies).tolist() == accuracies


def test_a_metric_to_maximise_outside_0_1_needs_a_fitness_function():
    with pytest.raises(ValueError, match=r"needs a metric in \[0, 1\].*pass fitness="):
        scheduler(mode="max").fitness([0.5, 3.0])
    assert scheduler(mode="max", fitness=lambda v: v / 10).fitness([0.5, 3.0]).tolist() == [
        0.05, 0.3]


class CountStarts(tune.Callback):
    def __init__(self):
        self.started = 0

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started += 1


@pytest.mark.parametrize("arguments, message", [
    ({"metric": None, "mode": None}, "needs a metric and mode 'min' or 'max'"),
    ({"elites": 4}, "elites must be in [1, number of trials - 1] = [1, 3], got 4"),
])
def test_bad_input_fails_before_any_trial_starts(ray_session, tmp_path, arguments, message):
    starts = CountStarts()
    with pytest.raises(Exception) as error:
        run_experiment(trainable(), scheduler(**arguments), tmp_path, "refused",
                       callbacks=[starts])
    assert message in str(error.value)
    assert starts.started == 0


class InterruptOnce(tune.Callback):
    """Stops the whole experiment, as Ctrl+C does, at the first result of `iteration`: Tune
    saves its state and returns (SIGUSR1 is Tune's graceful-stop signal). Once per `marker`
    file: Tuner.restore brings the run's callbacks back."""

    def __init__(self, iteration, marker):
        self.iteration, self.marker = iteration, str(marker)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not os.path.exists(self.marker) and result["training_iteration"] == self.iteration:
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGUSR1)


def test_an_interrupted_experiment_resumes_with_tuner_restore(ray_session, tmp_path):
    interrupt = InterruptOnce(iteration=2, marker=tmp_path / "interrupted")
    stopped = run_experiment(trainable(), scheduler(elites=1), tmp_path, "resumed",
                             num_samples=3, reports=4, callbacks=[interrupt])
    assert (tmp_path / "interrupted").exists()
    assert min(result.metrics["training_iteration"] for result in stopped) < 4
    grid = tune.Tuner.restore(str(tmp_path / "resumed"), trainable=trainable(),
                              resume_unfinished=True).fit()
    assert [result.error for result in grid] == [None] * 3
    assert [result.metrics["training_iteration"] for result in grid] == [4] * 3
    assert [result.metrics["member_steps"] for result in grid] == [4 * STEPS] * 3
    # The resumed run decides every selection as an uninterrupted one does (Tune restores the
    # scheduler as it was made, so its draws must not depend on the selections before).
    uninterrupted = run_experiment(trainable(), scheduler(elites=1), tmp_path, "whole",
                                   num_samples=3, reports=4)
    assert decisions(lineage(grid)) == decisions(lineage(uninterrupted))


def decisions(records):
    """{iteration: (elites, replacements)} with trials named by their index in the experiment;
    a selection repeated after the resume counts once, as it was last decided."""
    def index(trial_id):
        return int(trial_id.rsplit("_", 1)[-1])

    return {
        record["iteration"]: (
            sorted(index(t) for t in record["elites"]),
            sorted((index(r["trial"]), index(r["parent"]), r["seed"],
                    round(r["hyperparameters"]["learning_rate"], 15))
                   for r in record["replaced"]),
        )
        for record in records
    }
