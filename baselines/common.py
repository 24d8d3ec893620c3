"""What the population-based baselines (ESGD, PBT, grid search) share: building the paper's
models into one `Population`, one `fit` over the budget, and the curve of the best member.

Every method trains through the population's train step (the code base's one training loop)
and differs only in the callback passed to `train_population`.
"""

from __future__ import annotations

import time

import keras

from experiments.methods import MethodContext, validation_loss
from experiments.models import HIDDEN_DENSE_NAME, build_model, paper_loss
from popdescent import Population


class BestMemberCurve(keras.callbacks.Callback):
    """After the strategy's selection: the fittest member's loss on the whole validation
    half, one point (gradient steps so far, loss, seconds since `started`) per iteration.

    It must come after the strategy in the callback list, so it sees this iteration's fitness.
    Before a strategy has measured any fitness (a PBT interval > 1), the members are scored on
    the first `cv_batch_size` validation images. `started` is the `time.perf_counter()` the
    method's run began at (default: when this callback is made).
    """

    def __init__(self, data, cv_batch_size=640, started=None):
        super().__init__()
        self.data = data
        self.cv_batch_size = int(cv_batch_size)
        self.started = time.perf_counter() if started is None else float(started)
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        population = self.model
        if population.fitness is None:
            population.evaluate_fitness(self.data.x_val[: self.cv_batch_size],
                                        self.data.y_val[: self.cv_batch_size])
        loss = validation_loss(population.member(population.best_index()), self.data)
        self.points.append((int(population.gradient_steps), float(loss),
                            time.perf_counter() - self.started))
        if logs is not None:
            logs["val_loss_best"] = loss


def build_population(context: MethodContext, hyperparameters: dict, make_optimizer,
                     size=None) -> Population:
    """A `Population` of the paper's model for `context.dataset`, each member compiled with
    `make_optimizer()` and `paper_loss()`; with regularization the population's live `l2`
    hyperparameter penalises the hidden Dense kernel (the "none" model variant, so evaluation
    losses stay pure cross-entropy)."""

    def build(index):
        model = build_model(context.dataset, regularization="none")
        model.compile(optimizer=make_optimizer(), loss=paper_loss())
        return model

    return Population(
        build,
        size=context.budget.population_size if size is None else size,
        hyperparameters=hyperparameters,
        seed=context.seed,
        l2_layers=[HIDDEN_DENSE_NAME] if "l2" in hyperparameters else None,
    )


def train_population(context: MethodContext, population: Population, callbacks,
                     iterations=None, steps_per_iteration=None) -> list:
    """Trains `population` on the context's training data with `callbacks` (strategy first,
    curve last); by default for the budget's iterations of `steps_per_iteration` steps."""
    budget, data = context.budget, context.data
    iterations = budget.iterations if iterations is None else iterations
    population.fit(
        data.x_train,
        data.y_train,
        batch_size=budget.batch_size,
        epochs=iterations,
        steps_per_epoch=(budget.steps_per_iteration if steps_per_iteration is None
                         else steps_per_iteration),
        validation_data=(data.x_val, data.y_val),
        # Never reached, so Keras skips its all-member validation pass; the curve measures one.
        validation_freq=iterations + 1,
        callbacks=list(callbacks),
        verbose=context.verbose,
    )
    return population


def lineage_summary(population: Population) -> list:
    """The population's lineage as JSON-friendly lists, one entry per iteration."""
    summary = []
    for entry in population.lineage:
        members = entry["members"]
        iteration = {
            "iteration": entry["epoch"] + 1,
            "gradient_steps": entry["gradient_steps"],
            "fitness": [member["fitness"] for member in members],
            "replaced": [i for i, member in enumerate(members) if member["replaced"]],
            "parents": [member["parent"] for member in members if member["replaced"]],
        }
        for name in population.priors:
            iteration[name] = [member["hyperparameters"][name] for member in members]
        summary.append(iteration)
    return summary


def returned_learning_rates(lineage: list, initial_hyperparameters: list, best: int) -> list:
    """The learning rate the returned member's line of ancestors trained with, iteration by
    iteration: [[gradient steps at the iteration's start, at its end, learning rate], ...].

    `lineage` is `lineage_summary(population)`, `initial_hyperparameters` the population's
    `hyperparameter_values()` before training, `best` the slot of the returned member after
    the last iteration. Walking back from it: a slot replaced at the end of iteration e held,
    while e trained, its parent's line; the rate a slot trained with during e is the one it
    was given at the end of e - 1 (or initially).
    """
    slot, rates = int(best), []
    for position in reversed(range(len(lineage))):
        entry = lineage[position]
        if slot in entry["replaced"]:
            slot = int(entry["parents"][entry["replaced"].index(slot)])
        if position > 0:
            rate = lineage[position - 1]["learning_rate"][slot]
        else:
            rate = initial_hyperparameters[slot]["learning_rate"]
        start = lineage[position - 1]["gradient_steps"] if position > 0 else 0
        rates.append([int(start), int(entry["gradient_steps"]), float(rate)])
    return rates[::-1]
