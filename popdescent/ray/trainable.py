"""keras_trainable: a Ray Tune function trainable that trains one compiled Keras model.

A trial builds its model from its config, trains `steps_per_report` steps at a time on the
library's seeded batch stream (`popdescent.inputs.training_data.batch_indices`, the same batches for
every trial, as the members of an in-process population see), and reports the validation
loss with a checkpoint. Restarted from a checkpoint it resumes where that checkpoint was;
restarted by a `PopDescentScheduler` selection (a new `RESTORE_KEY` entry in its config) it
adds the planned weight noise once.
"""

from __future__ import annotations

import tempfile
import zlib

import keras
import numpy as np
import tensorflow as tf
from ray import tune

from popdescent.population.members import add_weight_noise, check_compiled_model
from popdescent.ray.model_state import load_model_state, save_model_state
from popdescent.ray.scheduler import RESTORE_KEY
from popdescent.inputs.training_data import batch_indices
from popdescent.validation import check_integer


def _check_data(data):
    try:
        (x, y), (x_val, y_val) = data
    except (TypeError, ValueError):
        raise ValueError(
            "data must be ((x, y), (x_val, y_val)), numpy arrays, got "
            f"{type(data).__name__}"
        ) from None
    arrays = [np.asarray(a) for a in (x, y, x_val, y_val)]
    if len(arrays[0]) != len(arrays[1]) or len(arrays[2]) != len(arrays[3]):
        raise ValueError(
            f"data must pair features and labels of the same length, got x: {len(arrays[0])}, "
            f"y: {len(arrays[1])}, x_val: {len(arrays[2])}, y_val: {len(arrays[3])}"
        )
    return arrays


def restore_trial(model, directory, config) -> dict:
    """Loads a checkpoint into `model`; when the config carries a selection not applied yet,
    adds its weight noise and takes the trial's own member-step count. Returns the counters
    the trial continues with."""
    counters = load_model_state(model, directory)
    restore = config.get(RESTORE_KEY)
    if restore is not None and restore["seed"] != counters.get("restored_seed"):
        if restore["weight_noise"] > 0:
            add_weight_noise(model.trainable_variables, tf.constant(restore["seed"], tf.int64),
                             tf.constant(restore["weight_noise"], tf.float64),
                             tf.constant(False))
        if restore.get("member_steps") is not None:
            counters["member_steps"] = int(restore["member_steps"])
        counters["restored_seed"] = restore["seed"]
    return counters


def trial_seed(seed: int) -> int:
    """The seed of the running trial: `seed` with the trial's number in its experiment.

    Ray's trial ids are "<experiment hash>_<number>"; the hash is drawn anew for every
    experiment, so only the number is used: the same experiment run twice starts each trial
    from the same weights (and a restored trial keeps its id, so its seed)."""
    trial_id = tune.get_context().get_trial_id() or "local"
    return zlib.crc32(f"{seed}/{trial_id.rsplit('_', 1)[-1]}".encode())


def train_trial(config, build, data, steps_per_report, batch_size, seed):
    """The body of one trial (see `keras_trainable`)."""
    (x, y, x_val, y_val) = data
    keras.utils.set_random_seed(trial_seed(seed))
    model = build(config)
    check_compiled_model(model, "build(config)")
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    counters = {"member_steps": 0, "restored_seed": None}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            counters = restore_trial(model, directory, config)
    while True:
        indices = batch_indices(len(x), batch_size, seed, counters["member_steps"],
                                steps_per_report).ravel()
        before = int(model.optimizer.iterations.numpy())
        model.fit(x[indices], y[indices], batch_size=batch_size, epochs=1, shuffle=False,
                  verbose=0)
        # Counted from what ran (the optimizer's steps), not from what was asked.
        counters["member_steps"] += int(model.optimizer.iterations.numpy()) - before
        scores = model.evaluate(x_val, y_val, batch_size=batch_size, verbose=0,
                                return_dict=True)
        metrics = {f"val_{name}": float(value) for name, value in scores.items()}
        metrics["member_steps"] = counters["member_steps"]
        with tempfile.TemporaryDirectory() as directory:
            save_model_state(model, directory, counters)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def keras_trainable(build, data, steps_per_report=100, batch_size=64, seed=0):
    """A Ray Tune trainable training the model `build(config)` returns, compiled.

    Every report: `steps_per_report` gradient steps, then `val_loss` (and `val_<metric>` for
    each compiled metric) on the validation data, `member_steps` (the trial's own gradient
    steps, restored with its checkpoint, so a restarted trial counts as if uninterrupted),
    and a checkpoint of weights, optimizer state and counters. The learning rate after a
    restore is the one `build(config)` compiled: a selection's mutated config wins over the
    parent's checkpoint. Stop it with `tune.RunConfig(stop={"training_iteration": n})`.

    Args:
        build: `build(config) -> compiled keras.Model`; the same architecture and optimizer
            for every config.
        data: ((x, y), (x_val, y_val)) numpy arrays, put in Ray's object store once.
        steps_per_report: gradient steps between two reports, >= 1.
        batch_size: >= 1.
        seed: seed of the batch stream (shared by all trials) and of each trial's
            initialisation (with its trial id).

    Example:
        >>> def build(config):
        ...     model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
        ...     model.compile(keras.optimizers.Adam(config["learning_rate"]),
        ...                   "sparse_categorical_crossentropy")
        ...     return model
        >>> trainable = keras_trainable(build, ((x, y), (x_val, y_val)), steps_per_report=50)
    """
    if not callable(build):
        raise ValueError(f"build must be a callable build(config) -> keras.Model, got {build!r}")
    arrays = _check_data(data)
    steps_per_report = check_integer("steps_per_report", steps_per_report, minimum=1)
    batch_size = check_integer("batch_size", batch_size, minimum=1)
    seed = check_integer("seed", seed, minimum=0)

    def popdescent_keras_trial(config, data):
        train_trial(config, build, data, steps_per_report, batch_size, seed)

    return tune.with_parameters(popdescent_keras_trial, data=arrays)
