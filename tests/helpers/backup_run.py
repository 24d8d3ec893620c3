"""A small PopDescent run with BackupAndRestore, as a user's script would be; tests run it in a
subprocess, kill it, run it again and compare the final population with an uninterrupted run.

    python tests/helpers/backup_run.py DIRECTORY OUTPUT.npz [--kill-during-backup K]
        [--input tf.data]

Writes OUTPUT.npz at the end: every member's variables and optimizer variables, the live
hyperparameters, fitness, lineage, the strategy's generator state, the step counter, and which
epochs this process ran. The dump is made here, independently of the backup's own format.
--kill-during-backup K makes the process SIGKILL itself in the middle of writing its K-th
backup (after half the temporary file is written, before the rename). --input tf.data feeds
the training data as a tf.data pipeline (seeded shuffle, reshuffled every pass) instead of arrays.
"""

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import popdescent as pd  # noqa: E402
from popdescent.callbacks import backup as backup_module  # noqa: E402

EPOCHS = 12


def build_model():
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dropout(0.25),  # a seed-generator state to carry across the restart
        keras.layers.Dense(3),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def kill_during_backup(number):
    """Replaces os.replace in this process: the `number`-th backup's temporary file is cut to
    half its length and the process SIGKILLs itself before the rename."""
    real_replace = os.replace
    count = [0]

    def replace(source, destination):
        if os.path.basename(destination) == backup_module.BACKUP_FILE:
            count[0] += 1
            if count[0] == number:
                size = os.path.getsize(source)
                with open(source, "r+b") as file:
                    file.truncate(size // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(source, destination)

    os.replace = replace


class EpochsRun(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("output")
    parser.add_argument("--kill-during-backup", type=int, default=0)
    parser.add_argument("--input", choices=["arrays", "tf.data"], default="arrays")
    args = parser.parse_args(argv)
    if args.kill_during_backup:
        kill_during_backup(args.kill_during_backup)

    rng = np.random.default_rng(7)
    x = rng.normal(size=(320, 6)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int32")
    population = pd.Population(build_model(), size=4, seed=11, hyperparameters={
        "learning_rate": pd.LogUniform(1e-3, 3e-2), "l2": pd.Uniform(0.0, 1e-3)})
    epochs_run = EpochsRun()
    strategy = pd.PopDescent(elites=2, cv_batch_size=48)
    # The backup is deliberately first: Population.fit must run it after the strategy.
    if args.input == "tf.data":  # 16 batches per pass: iterations run across pass ends
        import tensorflow as tf

        training = {"x": tf.data.Dataset.from_tensor_slices((x[:256], y[:256]))
                    .shuffle(256, seed=2).batch(16)}
    else:
        training = {"x": x[:256], "y": y[:256], "batch_size": 16}
    population.fit(
        **training, epochs=EPOCHS, steps_per_epoch=6, verbose=0,
        validation_data=(x[256:], y[256:]),
        callbacks=[pd.BackupAndRestore(args.directory), epochs_run, strategy],
    )

    dump = {}
    for index, member in enumerate(population.members):
        for position, variable in enumerate(member.variables):
            dump[f"member{index}_variable{position}"] = keras.ops.convert_to_numpy(variable)
        for position, variable in enumerate(member.optimizer.variables):
            dump[f"member{index}_optimizer{position}"] = keras.ops.convert_to_numpy(variable)
    dump["hyperparameters"] = np.array(json.dumps(population.hyperparameter_values()))
    dump["fitness"] = np.asarray(population.fitness)
    dump["lineage"] = np.array(json.dumps(population.lineage))
    dump["gradient_steps"] = np.array(population.gradient_steps)
    dump["strategy_rng"] = np.array(json.dumps(strategy.rng.bit_generator.state))
    dump["epochs_run"] = np.array(epochs_run.epochs)
    np.savez(args.output, **dump)


if __name__ == "__main__":
    main(sys.argv[1:])
