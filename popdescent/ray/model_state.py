"""A Keras model's training state in a checkpoint directory: weights, optimizer state, and
the trial's own counters (member-steps, the last restore applied).

One `.npz` file and one JSON file, written with numpy: a checkpoint is read back into a model
built by the same `build(config)`, variable by variable, in the model's own order.
"""

from __future__ import annotations

import json
import os

import numpy as np

ARRAYS_FILE = "model_state.npz"
COUNTERS_FILE = "counters.json"


def save_model_state(model, directory, counters: dict) -> None:
    """Writes `model`'s weights and optimizer variables and `counters` under `directory`."""
    arrays = {f"weight_{i}": np.asarray(v.numpy()) for i, v in enumerate(model.weights)}
    arrays.update({f"optimizer_{i}": np.asarray(v.numpy())
                   for i, v in enumerate(model.optimizer.variables)})
    np.savez(os.path.join(directory, ARRAYS_FILE), **arrays)
    with open(os.path.join(directory, COUNTERS_FILE), "w", encoding="utf-8") as file:
        json.dump(counters, file)


def load_weights(directory) -> list:
    """The weights saved under `directory`, as numpy arrays in the model's order."""
    with np.load(os.path.join(directory, ARRAYS_FILE)) as arrays:
        count = sum(1 for name in arrays.files if name.startswith("weight_"))
        return [arrays[f"weight_{i}"] for i in range(count)]


def load_model_state(model, directory) -> dict:
    """Assigns the saved weights and optimizer variables to `model` (built by the same
    `build`) and returns the saved counters. The optimizer's learning rate stays the
    model's: it comes from the trial's config, which a selection may have mutated."""
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    rate = optimizer.learning_rate
    with np.load(os.path.join(directory, ARRAYS_FILE)) as arrays:
        saved_optimizer = sum(1 for name in arrays.files if name.startswith("optimizer_"))
        if saved_optimizer != len(optimizer.variables):
            raise ValueError(
                f"the checkpoint in {directory} holds {saved_optimizer} optimizer variables, "
                f"the model built from this config has {len(optimizer.variables)}: build must "
                "make the same model and optimizer for every config"
            )
        for i, variable in enumerate(model.weights):
            variable.assign(arrays[f"weight_{i}"])
        for i, variable in enumerate(optimizer.variables):
            if variable is not rate:
                variable.assign(arrays[f"optimizer_{i}"])
    with open(os.path.join(directory, COUNTERS_FILE), encoding="utf-8") as file:
        return json.load(file)
