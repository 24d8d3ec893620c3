"""An overfitting budget-aware survivor, shared by the checkpoint and cool-down tests."""

import keras
import numpy as np

import popdescent as pd
from tests.helpers.models import make_model


def memorizable_data():
    """24 training points with random labels and 64 validation points with others: a wide
    model memorizes the first and gets steadily worse on the second (it overfits)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 16)).astype("float32")
    y = rng.integers(0, 3, 24).astype("int32")
    x_val = rng.normal(size=(64, 16)).astype("float32")
    y_val = rng.integers(0, 3, 64).astype("int32")
    return x, y, x_val, y_val


def overfitting_population(seed=0):
    def build(index):
        return make_model(keras.optimizers.Adam(3e-2), units=64, features=16, metrics=())

    return pd.Population(build, size=5, seed=seed,
                         hyperparameters={"learning_rate": pd.LogUniform(1e-2, 1e-1)})


def survivor_fit(pop, data, member_steps=200, callbacks=(), **kwargs):
    """A budget-aware fit without the schedule, the rescue (random labels never beat the
    starting loss) or the range test, so the survivor trains at a constant rate and overfits;
    and without the cool-down unless asked (tests/popdescent/returned/test_cooldown.py has it),
    nor the width phase that follows it (tests/popdescent/strategies/test_width.py)."""
    x, y, x_val, y_val = data
    kwargs.setdefault("cooldown_patience", None)
    kwargs.setdefault("width", None)  # the cool-down's own tests: it ends the fit
    strategy = pd.PopDescent(elites=2, cv_batch_size=32, budget_aware=True, schedule=None,
                             rescue_after=None, range_test=False, commit_early=False, **kwargs)
    pop.fit(x, y, batch_size=8, member_steps=member_steps, steps_per_epoch=4,
            validation_data=(x_val, y_val), verbose=0, callbacks=[strategy, *callbacks])
    return strategy


def checks(pop):
    """(member-steps, loss) of every survivor check the lineage recorded."""
    return [(e["gradient_steps"], e["survivor_loss"]) for e in pop.lineage
            if "survivor_loss" in e]
