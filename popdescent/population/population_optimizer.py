"""`PopulationOptimizer`: what Keras callbacks find as `model.optimizer` on a Population.

A population has no optimizer of its own: each member trains with its own. Keras callbacks
that steer or report a model's optimizer read `model.optimizer.learning_rate` and
`model.optimizer.iterations` (`ReduceLROnPlateau`, `LearningRateScheduler`,
`TensorBoard(write_steps_per_second=True)`); this object answers them for the whole
population, so those callbacks work on a Population as on one model:

- `learning_rate` is the population's reference rate: the geometric mean of the members'
  own (base) learning rates, which tuning sets, times one population-wide scale. Setting it
  multiplies that scale by new / old: every member's rate is scaled alike, so the ratios
  tuning found between members are kept, and a relative schedule
  (`lambda epoch, rate: rate * 0.9`) or ReduceLROnPlateau's `factor` acts on each member
  as on one model. An absolute schedule (`lambda epoch, rate: 1e-3`) sets the members'
  geometric mean to its value at every epoch, keeping their ratios. The scale multiplies,
  and is not overwritten by, a budget-aware schedule's factor: a member trains at
  base rate x schedule factor x scale (`LiveHyperparameters.apply_learning_rate`). The
  geometric mean leaves the budget schedule's factor out, which falls to 0 at the end of the
  budget, where a ratio new / old would mean nothing.
- `iterations` counts member-steps (`Population.gradient_steps`): every gradient step of every
  member, so TensorBoard's steps per second are member-steps per second. It is not a weight
  of the model, so restoring earlier weights (`set_weights`, `load_weights`, EarlyStopping's
  `restore_best_weights`) does not rewind it; `load_population` and `BackupAndRestore`
  restore it.
- `variables` are the members' optimizer variables (what `summary()` counts).

Members whose optimizers follow a `LearningRateSchedule` can be read (the geometric mean of
their current rates) but not set: setting raises TypeError, as a Keras optimizer's does.
`LearningRateLog` puts the reference rate into every iteration's logs as `learning_rate`,
which is where Keras' TensorBoard finds a model's (`epoch_learning_rate`): it reads a
`keras.optimizers.Optimizer`'s itself, which this object is not.
"""

from __future__ import annotations

import keras

__all__ = ["PopulationOptimizer", "LearningRateLog", "learning_rate_floor"]


class PopulationOptimizer:
    """The `optimizer` of a `Population` as Keras callbacks see it (see the module).

    Args:
        live_hyperparameters: the population's `LiveHyperparameters` (members, base rates
            and the population-wide learning-rate scale).
    """

    built = True  # Keras' fit builds an unbuilt model.optimizer; the members' are built
    name = "population_optimizer"

    def __init__(self, live_hyperparameters):
        self.live_hyperparameters = live_hyperparameters
        self.iterations = keras.Variable(0, dtype="int64", trainable=False, name="steps")

    @property
    def learning_rate(self) -> float:
        """The members' geometric-mean base learning rate times the population-wide scale."""
        return self.live_hyperparameters.reference_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        self.live_hyperparameters.set_reference_learning_rate(value)

    @property
    def variables(self) -> list:
        """Every member optimizer's variables."""
        return [variable for member in self.live_hyperparameters.members
                for variable in member.optimizer.variables]


class LearningRateLog(keras.callbacks.Callback):
    """Logs the population's reference learning rate as `learning_rate` at every iteration's
    end (`Population.fit` puts it first, so TensorBoard and History see it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


def learning_rate_floor(callbacks) -> float:
    """The largest `min_lr` of the `keras.callbacks.ReduceLROnPlateau` among `callbacks` (0
    without one): each member's floor, as it is one model's."""
    return max((float(c.min_lr) for c in callbacks
                if isinstance(c, keras.callbacks.ReduceLROnPlateau)), default=0.0)
