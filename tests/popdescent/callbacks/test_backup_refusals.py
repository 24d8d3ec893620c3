"""A backup belongs to one run: resuming with another population size, priors, batch size,
iteration length or fitness function is refused before any step, naming what differs."""

import numpy as np
import pytest

import popdescent as pd
from tests.helpers.models import fast_model


def squared_fitness(losses):
    return 1.0 / (1.0 + np.asarray(losses) ** 2)


BASE = {"size": 3, "low": 1e-3, "batch_size": 16, "steps_per_epoch": 2, "fitness": None}
CHANGES = {
    "size": {"size": 4},
    "priors": {"low": 1e-4},
    "batch_size": {"batch_size": 8},
    "steps_per_epoch": {"steps_per_epoch": 3},
    "strategy_configs": {"fitness": squared_fitness},
}


def run(directory, size, low, batch_size, steps_per_epoch, fitness):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    pop = pd.Population(fast_model(), size=size, seed=0,
                        hyperparameters={"learning_rate": pd.LogUniform(low, 1e-1)})
    strategy = pd.PopDescent(elites=1, cv_batch_size=16,
                             **({} if fitness is None else {"fitness": fitness}))
    pop.fit(x[:64], y[:64], batch_size=batch_size, epochs=2, steps_per_epoch=steps_per_epoch,
            validation_data=(x[64:], y[64:]), verbose=0,
            callbacks=[strategy, pd.BackupAndRestore(directory, delete_checkpoint=False)])
    return pop


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_a_backup_of_another_run_is_refused(tmp_path, what):
    run(tmp_path, **BASE)
    with pytest.raises(ValueError, match=f"different run: its {what} is"):
        run(tmp_path, **{**BASE, **CHANGES[what]})
