"""The tuners' search space, defined once: what `random`, `hyperband`, `bayesian` and `optuna`
tune, how a trial's values become a model and a training loss, and the same space spelled for
KerasTuner (`keras_tuner_values`) and for Optuna (`optuna_values`). `random` keeps the paper's
model and its space (`paper_space`: the first two rows).

| dimension | range | sampling | when |
|---|---|---|---|
| `learning_rate` | `learning_rate_range(context)`: [1e-4, 1e-2] | log | always |
| `l2` (hidden Dense kernel) | [1e-6, 1e-1] (`L2_RANGE`) | log | `--regularization` |
| `dropout` (both Dropout layers) | [0, 0.9] | linear | `options["guess"]` |
| `augmentation` (x the guess's translation) | [0, 5], the factor clipped to 1 | linear | guess |
| `label_smoothing` (training loss only) | [0, 0.3] | linear | guess |

With a guess ("good" or "bad", `experiments.core.models.GUESSES`) the user's model carries
Dropout and RandomTranslation (and RandomFlip on CIFAR-10, not tuned): a tuner searches their
strengths beside the optimizer's. Validation and test losses stay the harness's plain
cross-entropy (`experiments.core.evaluation`); label smoothing changes only what the trial
trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from experiments.core.contract import (
    L2_RANGE,
    REGULARIZATION_BOUNDS,
    MethodContext,
    build_context_model,
    learning_rate_range,
    model_name,
    user_regularization,
)
from experiments.core.models import paper_loss
from popdescent import LabelSmoothedCrossentropy

__all__ = ["Dimension", "search_space", "paper_space", "keras_tuner_values", "optuna_values",
           "build_trial_model", "trial_loss", "DROPOUT_RANGE", "AUGMENTATION_RANGE",
           "LABEL_SMOOTHING_RANGE"]

# The tuners search what the population may reach by mutation (issue 38).
DROPOUT_RANGE = REGULARIZATION_BOUNDS["dropout"]
AUGMENTATION_RANGE = REGULARIZATION_BOUNDS["augmentation"]
LABEL_SMOOTHING_RANGE = REGULARIZATION_BOUNDS["label_smoothing"]


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter: its name (as records name it), its range and whether it is
    sampled uniformly on a log scale."""

    name: str
    low: float
    high: float
    log: bool = False


def search_space(context: MethodContext) -> tuple:
    """The `Dimension`s a tuner searches for `context` (see the module docstring), validated
    before any training: a bad `lr_range`, `guess` or `model` option raises a ValueError
    naming it, what is allowed and what it got."""
    model_name(context)
    space = paper_space(learning_rate_range(context), context.regularization)
    if user_regularization(context):
        space += (Dimension("dropout", *DROPOUT_RANGE),
                  Dimension("augmentation", *AUGMENTATION_RANGE),
                  Dimension("label_smoothing", *LABEL_SMOOTHING_RANGE))
    return space


def paper_space(learning_rate_range, regularization: bool) -> tuple:
    """The paper's space: the learning rate over `learning_rate_range` (log), and with
    `regularization` the L2 rate of the hidden Dense kernel over `L2_RANGE` (log)."""
    space = (Dimension("learning_rate", *(float(r) for r in learning_rate_range), log=True),)
    return space + ((Dimension("l2", *L2_RANGE, log=True),) if regularization else ())


def keras_tuner_values(hp, space) -> dict:
    """The trial's values, registering each dimension with KerasTuner's `hp` in order."""
    return {dimension.name: hp.Float(dimension.name, dimension.low, dimension.high,
                                     sampling="log" if dimension.log else "linear")
            for dimension in space}


def optuna_values(trial, space) -> dict:
    """The trial's values, suggested by an Optuna `trial` (its sampler decides)."""
    return {dimension.name: trial.suggest_float(dimension.name, dimension.low, dimension.high,
                                                log=dimension.log)
            for dimension in space}


def build_trial_model(context: MethodContext, values: dict) -> keras.Model:
    """The context's model (uncompiled) with the trial's L2 rate, dropout and translation;
    what `values` does not name keeps the user's guess."""
    overrides = {}
    if "dropout" in values:
        overrides["dropout"] = float(values["dropout"])
    if "augmentation" in values:
        guess = user_regularization(context)["translation"]
        overrides["translation"] = min(1.0, float(values["augmentation"]) * guess)
    if "l2" in values:
        return build_context_model(context, regularization="dense", l2=float(values["l2"]),
                                   **overrides)
    return build_context_model(context, **overrides)


def trial_loss(values: dict) -> keras.losses.Loss:
    """The training loss of a trial: the paper's, label-smoothed where `values` says so."""
    smoothing = float(values.get("label_smoothing", 0.0))
    if smoothing <= 0:
        return paper_loss()
    return LabelSmoothedCrossentropy(smoothing, sparse=True, from_logits=True)
