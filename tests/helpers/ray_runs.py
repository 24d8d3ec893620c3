"""Running small Ray Tune experiments in the tests, and reading their checkpoints back."""

import os
import shutil
import signal
import tempfile

import numpy as np
from ray import tune

from popdescent.ray.model_state import load_weights


class CheckpointRecorder(tune.Callback):
    """Keeps what each checkpoint held when Ray registered it, per trial and in order: its
    weights (`keras_trainable`'s format) or, with `copy`, a copy of its directory; and each
    trial's results as the driver received them (`results[trial_id]`, in order).

    The results are taken here rather than from `Result.metrics_dataframe`: that frame is read
    back from the trial's files after the run and has missed a row of a restarted trial."""

    def __init__(self, copy=False):
        self.copy = copy
        self.weights, self.copies, self.results = {}, {}, {}
        self._directory = tempfile.mkdtemp(prefix="checkpoint-copies-")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.setdefault(trial.trial_id, []).append(dict(result))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.copy:
            copies = self.copies.setdefault(trial.trial_id, [])
            destination = os.path.join(self._directory, f"{trial.trial_id}-{len(copies)}")
            shutil.copytree(checkpoint.path, destination)
            copies.append(destination)
        else:
            self.weights.setdefault(trial.trial_id, []).append(load_weights(checkpoint.path))


class KillOnce(tune.Callback):
    """SIGKILLs the worker process of the first trial that reports `iteration`, once; the
    killed trial's id is in `killed`."""

    def __init__(self, iteration):
        self.iteration, self.killed = iteration, None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is None and result["training_iteration"] == self.iteration:
            self.killed = trial.trial_id
            os.kill(result["pid"], signal.SIGKILL)


def run_experiment(trainable, scheduler, path, name, num_samples=4, reports=4,
                   callbacks=(), max_failures=0):
    """Tuner.fit of `num_samples` trials for `reports` reports; returns the ResultGrid."""
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=num_samples,
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=str(path), verbose=0, callbacks=list(callbacks),
            stop={"training_iteration": reports},
            failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    return tuner.fit()


def noise_std(after, before) -> float:
    """The std of the difference between two weight lists, over every weight."""
    return float(np.concatenate([(a - b).ravel() for a, b in zip(after, before)]).std())


def max_change(after, before) -> float:
    return float(max(np.abs(a - b).max() for a, b in zip(after, before)))



