"""popdescent: population-based, online hyperparameter tuning for Keras 3 models.

    import popdescent as pd
    pop = pd.Population(model, size=5, seed=0,
                        hyperparameters={"learning_rate": pd.LogUniform(1e-4, 1e-2)})
    pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
            validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=3)])
    best = pop.best_model()
"""

from popdescent.callbacks.backup import BackupAndRestore
from popdescent.hyperparameters import (
    Bernoulli,
    Choice,
    Fixed,
    Inert,
    LogNormal,
    LogUniform,
    Prior,
    Uniform,
)
from popdescent.callbacks.member_board import MemberBoard
from popdescent.population.live_regularization import LabelSmoothedCrossentropy
from popdescent.population.population import Population, load_population
from popdescent.returned.schedules import BudgetSchedule, ScheduledLearningRate, StepwiseSchedule
from popdescent.strategies import (
    PBT,
    BernoulliPolicy,
    EvolutionStrategies,
    PopDescent,
    PopulationStrategy,
)

__version__ = "0.1.0"


def __getattr__(name):
    """`popdescent.tuners` (GeneticSearch, a KerasTuner tuner) loads keras_tuner, so it is
    imported on first use rather than with the package."""
    if name == "tuners":
        import importlib

        return importlib.import_module("popdescent.tuners")
    raise AttributeError(f"module 'popdescent' has no attribute {name!r}")

__all__ = [
    "Population",
    "load_population",
    "BackupAndRestore",
    "MemberBoard",
    "PopDescent",
    "PBT",
    "EvolutionStrategies",
    "BernoulliPolicy",
    "PopulationStrategy",
    "BudgetSchedule",
    "ScheduledLearningRate",
    "StepwiseSchedule",
    "LabelSmoothedCrossentropy",
    "Prior",
    "LogUniform",
    "LogNormal",
    "Inert",
    "Uniform",
    "Choice",
    "Bernoulli",
    "Fixed",
    "tuners",
]
