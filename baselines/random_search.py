"""KerasTuner's RandomSearch as the paper's random-search baseline ran it: a hypermodel that
records every execution (`RecordingHyperModel`), the tuner scored on validation loss
(`random_search_tuner`), the retraining's best-loss curve (`BestLossCurve`) and early stopping
patience, and an endless training stream (`training_stream`). The benchmark's `random` method
(the paper's model, its budget, its search space) is `experiments.methods.random`.
"""

from __future__ import annotations

import math
import pathlib
import time

import keras
import keras_tuner
import tensorflow as tf

__all__ = ["RecordingHyperModel", "BestLossCurve", "random_search_tuner", "training_stream",
           "PATIENCE"]

PATIENCE = 2  # the retraining's EarlyStopping patience (epochs)


class RecordingHyperModel(keras_tuner.HyperModel):
    """A hypermodel whose `fit` records every execution: hyperparameters, epochs, gradient
    steps, `score(model)` after training and the seconds since `started` (default: when the
    hypermodel is made), in `executions`. Subclasses define `build(hp)`."""

    def __init__(self, score, started=None, name=None):
        super().__init__(name=name)
        self.score = score
        self.started = time.perf_counter() if started is None else float(started)
        self.executions = []

    def fit(self, hp, model, *args, **kwargs):
        history = model.fit(*args, **kwargs)
        self.executions.append({
            "hyperparameters": dict(hp.values),
            "epochs": len(history.epoch),
            "gradient_steps": int(model.optimizer.iterations.numpy()),
            "validation_loss": self.score(model),
            "seconds": time.perf_counter() - self.started,
        })
        return history


class BestLossCurve(keras.callbacks.Callback):
    """During retraining: the best `score(model)` so far, one point (gradient steps,
    loss, seconds since `started`) per epoch."""

    def __init__(self, score, steps_before, best_so_far=math.inf, started=None):
        super().__init__()
        self.score, self.steps_before = score, steps_before
        self.best = best_so_far
        self.started = time.perf_counter() if started is None else float(started)
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        self.best = min(self.best, self.score(self.model))
        steps = self.steps_before + int(self.model.optimizer.iterations.numpy())
        self.points.append((steps, float(self.best), time.perf_counter() - self.started))


def random_search_tuner(hypermodel, trials, executions_per_trial, seed,
                        directory) -> keras_tuner.RandomSearch:
    """`keras_tuner.RandomSearch` over `hypermodel`, trials scored on validation loss, in a
    fresh project under `directory`."""
    return keras_tuner.RandomSearch(
        hypermodel,
        objective="val_loss",
        max_trials=trials,
        executions_per_trial=executions_per_trial,
        seed=seed,
        directory=str(pathlib.Path(directory)),
        project_name="random_search",
        overwrite=True,
    )


def training_stream(x, y, batch_size, seed) -> tf.data.Dataset:
    """Endless shuffled batches, reshuffled on every pass, so any number of steps runs."""
    return (tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
            .repeat().batch(batch_size).prefetch(2))
