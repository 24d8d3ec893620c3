"""What the population-based methods (PopDescent, ESGD, PBT, grid search) share: building the
paper's models into one `Population`, one `fit` over the budget, the curve of the best member,
and the result with its lineage.

Every method trains through the population's train step (the code base's one training loop)
and differs only in the callback passed to `train_population`.
"""

from __future__ import annotations

import math
import time

import keras

from experiments.core.contract import MethodContext, MethodResult, build_context_model
from experiments.core.evaluation import validation_loss
from experiments.core.models import HIDDEN_DENSE_NAME, paper_loss
from popdescent import BackupAndRestore, Population
from popdescent.returned.schedules import ancestry


class BestMemberCurve(keras.callbacks.Callback):
    """After the strategy's selection: the fittest member's loss on the whole validation
    half, one point (gradient steps so far, loss, seconds since `started`) per iteration.

    It must come after the strategy in the callback list, so it sees this iteration's fitness.
    Before a strategy has measured any fitness (a PBT interval > 1), the members are scored on
    the first `cv_batch_size` validation images. `started` is the `time.perf_counter()` the
    method's run began at (default: when this callback is made).

    A `popdescent.BackupAndRestore` keeps its points (`get_state`/`set_state`): a run resumed
    after a crash goes on with the points of the iterations the backup holds, and its clock
    with their seconds (work lost to the crash is not counted); `resumed` then says from
    where, else it is None.
    """

    def __init__(self, data, cv_batch_size=640, started=None):
        super().__init__()
        self.data = data
        self.cv_batch_size = int(cv_batch_size)
        self.started = time.perf_counter() if started is None else float(started)
        self.points = []
        self.resumed = None

    def get_state(self) -> dict:
        return {"points": [list(point) for point in self.points]}

    def set_state(self, state: dict) -> None:
        self.points = [(int(steps), float(loss), float(seconds))
                       for steps, loss, seconds in state["points"]]
        seconds_before = self.points[-1][2] if self.points else 0.0
        self.started = time.perf_counter() - seconds_before
        self.resumed = {"iteration": len(self.points), "seconds_before": seconds_before}

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
        model = build_context_model(context)
        model.compile(optimizer=make_optimizer(), loss=paper_loss())
        return model

    return Population(
        build,
        size=context.budget.population_size if size is None else size,
        hyperparameters=hyperparameters,
        seed=context.seed,
        l2_layers=[HIDDEN_DENSE_NAME] if "l2" in hyperparameters else None,
    )


BACKUPS_PER_RUN = 5  # a crash loses at most about a fifth of a run


def train_population(context: MethodContext, population: Population, callbacks,
                     iterations=None, steps_per_iteration=None) -> Population:
    """Trains `population` on the context's training data with `callbacks` (strategy first,
    curve last); by default for the budget's iterations of `steps_per_iteration` steps.

    A population smaller than the budget's (ES's even size) spends the budget's member-steps
    all the same, in iterations of `steps_per_iteration` steps and a last shorter one
    (`fit(member_steps=...)`), so that every method gets the same compute.

    A `popdescent.BackupAndRestore` in `context.work_dir` backs the run up about
    `BACKUPS_PER_RUN` times (every `iterations // BACKUPS_PER_RUN` iterations), so the harness,
    run again after a crash, resumes it bit for bit: the same model, curve losses and lineage
    as an uninterrupted run. A backup of the FMNIST population (5 members) is ~262 MiB and
    takes a few seconds, hence not every iteration."""
    budget, data = context.budget, context.data
    steps = budget.steps_per_iteration if steps_per_iteration is None else steps_per_iteration
    length = {}
    if iterations is None and population.size != budget.population_size:
        length["member_steps"] = budget.member_steps
        iterations = math.ceil(budget.member_steps / (population.size * steps))
    else:
        iterations = budget.iterations if iterations is None else iterations
        length["epochs"] = iterations
    backup = BackupAndRestore(context.work_dir / "backup",
                              every=max(1, iterations // BACKUPS_PER_RUN))
    population.fit(
        data.x_train,
        data.y_train,
        batch_size=budget.batch_size,
        **length,
        steps_per_epoch=steps,
        validation_data=(data.x_val, data.y_val),
        # Never reached, so Keras skips its all-member validation pass; the curve measures one.
        validation_freq=iterations + 1,
        callbacks=[*callbacks, backup],
        verbose=context.verbose,
    )
    return population


def train_and_summarize(context: MethodContext, population: Population, strategy,
                        started=None, **details) -> MethodResult:
    """Trains `population` with `strategy` (a `PopulationStrategy` callback) over the budget,
    measuring a `BestMemberCurve` from `started`; returns the fittest member, the steps that
    ran, the curve, and details: `details` plus the strategy's config, the returned member
    and its hyperparameters, the population's hyperparameters before and after, the lineage
    and (where the learning rate is a hyperparameter) the returned member's learning rates."""
    initial = population.hyperparameter_values()
    curve = BestMemberCurve(context.data, context.budget.cv_batch_size, started)
    train_population(context, population, [strategy, curve])
    best = population.best_index()
    lineage = lineage_summary(population)
    details = {
        **details,
        "strategy": strategy.get_config(),
        "best_member": best,
        "hyperparameters": population.hyperparameters_of(best),
        "initial_hyperparameters": initial,
        "population_hyperparameters": population.hyperparameter_values(),
        "priors": {name: prior.get_config() for name, prior in population.priors.items()},
        "l2_layers": population.l2_layers,  # None: every kernel
        # Fitness after the last selection; NaN (JSON null) marks freshly replaced members.
        "final_fitness": [float(value) for value in population.fitness],
        "replacements": sum(len(entry["replaced"]) for entry in lineage),
        "lineage": lineage,
        "train_step_traces": population.traces,
    }
    if "learning_rate" in population.priors:
        # [[global step at the iteration's start, at its end, learning rate], ...]
        details["returned_learning_rates"] = [
            [int(start), int(end), float(values["learning_rate"])]
            for start, end, _, values in ancestry(population, best)]
    return MethodResult(model=population.best_model(), gradient_steps=population.gradient_steps,
                        curve=list(curve.points), details=details,
                        candidates=list(population.members), resumed=curve.resumed)


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
        if "survivor_loss" in entry:  # budget-aware: the last member's checkpoint check
            iteration["survivor_loss"] = entry["survivor_loss"]
        summary.append(iteration)
    return summary
