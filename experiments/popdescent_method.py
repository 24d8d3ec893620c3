"""PopDescent as a benchmark method: `run(context) -> MethodResult` (see `experiments.methods`).

One `popdescent.Population` of `budget.population_size` paper models, each with its own Adam
whose learning rate is a live hyperparameter drawn log-uniformly from [1e-4, 1e-2] (or from
`options["lr_range"]`, mutated within `options["lr_bounds"]`); with
`regularization`, also a live L2 rate drawn log-uniformly from [1e-6, 1e-1] on the hidden Dense
kernel (the "none" model variant, so the population, not a fixed Keras regularizer, owns the
penalty). `PopDescent(elites=budget.elites)` selects and mutates at the end of every iteration
on a freshly sampled `budget.cv_batch_size`-image batch of the validation half.

The curve has one point per iteration: the validation loss, on the whole 5,000-image
validation half, of the member PopDescent would return at that moment (the fittest by its CV
fitness). Measuring one member instead of all five keeps the cost at ~1.2 s (FMNIST) / ~6 s
(CIFAR-10) per iteration; Keras' own validation pass over all members would cost five times
that, so it is switched off
(`validation_freq` beyond the last iteration). The returned model is
`population.best_model()`: chosen by validation fitness only.
"""

from __future__ import annotations

import time

import keras

from baselines.common import lineage_summary, returned_learning_rates
from experiments.methods import (
    L2_RANGE,
    MethodContext,
    MethodResult,
    learning_rate_prior,
    make_optimizer,
    validation_loss,
)
from experiments.models import HIDDEN_DENSE_NAME, build_model, paper_loss
from popdescent import LogUniform, PopDescent, Population


class _BestMemberValidationCurve(keras.callbacks.Callback):
    """After PopDescent's selection: the fittest member's loss on the whole validation half,
    one point (gradient steps, loss, seconds since `started`) per iteration."""

    def __init__(self, data, started):
        super().__init__()
        self.data = data
        self.started = float(started)
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        population = self.model
        loss = validation_loss(population.member(population.best_index()), self.data)
        self.points.append((population.gradient_steps, loss,
                            time.perf_counter() - self.started))
        if logs is not None:
            logs["val_loss_best"] = loss


def _search_space(context):
    hyperparameters = {"learning_rate": learning_rate_prior(context)}
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    return hyperparameters


def run(context: MethodContext) -> MethodResult:
    """Trains a PopDescent population within `context.budget`; returns its fittest member."""
    started = time.perf_counter()
    hyperparameters = _search_space(context)  # validates lr options before training
    keras.utils.set_random_seed(context.seed)
    budget = context.budget
    data = context.data

    def build(index):
        model = build_model(context.dataset, regularization="none")
        model.compile(optimizer=make_optimizer(), loss=paper_loss())
        return model

    population = Population(
        build,
        size=budget.population_size,
        hyperparameters=hyperparameters,
        seed=context.seed,
        l2_layers=[HIDDEN_DENSE_NAME] if context.regularization else None,
    )
    initial = population.hyperparameter_values()
    curve = _BestMemberValidationCurve(data, started)
    population.fit(
        data.x_train,
        data.y_train,
        batch_size=budget.batch_size,
        epochs=budget.iterations,
        steps_per_epoch=budget.steps_per_iteration,
        validation_data=(data.x_val, data.y_val),
        # Never reached, so Keras skips its all-member validation pass; the curve measures one.
        validation_freq=budget.iterations + 1,
        callbacks=[PopDescent(elites=budget.elites, cv_batch_size=budget.cv_batch_size), curve],
        verbose=context.verbose,
    )
    best = population.best_index()
    lineage = lineage_summary(population)
    details = {
        "best_member": best,
        "hyperparameters": population.hyperparameters_of(best),
        "population_hyperparameters": population.hyperparameter_values(),
        # Fitness after the last selection; NaN (JSON null) marks the freshly replaced members.
        "final_fitness": [float(value) for value in population.fitness],
        "replacements": sum(len(entry["replaced"]) for entry in lineage),
        "lineage": lineage,
        "initial_hyperparameters": initial,
        "returned_learning_rates": returned_learning_rates(lineage, initial, best),
        "train_step_traces": population.traces,
    }
    return MethodResult(
        model=population.best_model(),
        gradient_steps=population.gradient_steps,
        curve=[(int(steps), float(loss), float(seconds))
               for steps, loss, seconds in curve.points],
        details=details,
        candidates=list(population.members),
    )
