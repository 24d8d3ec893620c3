"""Budget-aware PopDescent as a benchmark method (`popdescent-budget`, issue 19).

The same population as `popdescent` (the paper's model, Adam per member, learning rate drawn
log-uniformly from the method's range and mutated within its bounds), compiled at the rate a
user would have picked, the geometric middle of the range (1e-3 for [1e-4, 1e-2], `adam`'s
rate), and trained with `PopDescent(budget_aware=True)` by `fit(member_steps=...)`: exactly
the budget's member-steps, in iterations of a quarter of the budget's `steps_per_iteration`
(at the quick scale the first shrink comes after 2 iterations); the members' rates follow
`BudgetSchedule()`; the population shrinks 5 -> 2 -> 1 at 5 % and 20 % of the budget; the
compiled-rate member is protected until the last rung; stuck members are rescued.
`options["rungs"]` replaces the default rungs (e.g. `[[0.1, 2], [0.3, 1]]`, the default
before 2026-11-30), `options["commit_early"]` (true/false) the library's `commit_early` and
`options["restore_best_weights"]` (true/false) its `restore_best_weights` and
`options["cooldown_patience"]` (an integer, or null for none) its `cooldown_patience`,
`options["width"]` ("children", "fresh" or null) and `options["width_members"]` its width
phase's; `options["selection"]="random"` is the control that keeps and copies members at
random; `options["tune"]="regularization"` leaves the learning rate at the compiled one (the
rungs then compare regularization alone). With `options["guess"]` the user's model carries dropout and augmentation, and the
population tunes them and label smoothing too (`regularization_priors`). The survivor's
checkpoint is checked at `adam`'s cadence (`restore_best_every` = one check per
`steps_per_iteration * population_size` member-steps), so both choose among as many
checkpoints on the same validation half. Records made before 2026-12-01 returned the final
weights (there was no checkpoint); those made before 2026-12-02 had no cool-down. A run that
cools down without a width phase ends before the budget is spent, and its record counts the
member-steps that ran. With a width phase, `extras` holds the population's ensemble
(`ensemble_model()`, greedy selection on the validation half) and soup (`soup_model()`): rows
of their own at no extra training.

The curve has a point every `steps_per_iteration * population_size` member-steps (where
`adam`'s checks fall) and at the end: the validation loss of the fittest member's current
weights. Once one member is left that is the survivor's, not its best checkpoint's (which is
what the run returns, and `adam`'s curve shows its best so far); the last point, taken after
the checkpoint is restored, is the returned model's.
"""

from __future__ import annotations

import time

import keras

from experiments.core.contract import (
    L2_RANGE,
    MethodContext,
    MethodResult,
    build_context_model,
    geometric_middle,
    learning_rate_prior,
    learning_rate_range,
    make_optimizer,
    regularization_priors,
)
from experiments.core.models import HIDDEN_DENSE_NAME, paper_loss
from experiments.methods.population import BestMemberCurve, lineage_summary
from experiments.methods.random_selection import RandomSelectionFitness
from popdescent import BackupAndRestore, LogUniform, Population, PopDescent

# The harness options that reach `PopDescent(budget_aware=True)` as its own arguments.
BUDGET_OPTIONS = ("rungs", "commit_early", "restore_best_weights", "cooldown_patience",
                  "width", "width_members")
ITERATION_SHARE = 4  # iterations are steps_per_iteration // 4 steps long
BACKUPS_PER_RUN = 5


class SparseCurve(BestMemberCurve):
    """`BestMemberCurve` measured only every `every` member-steps and at the budget's end:
    a budget-aware run has many short iterations, and a curve point costs a validation pass."""

    def __init__(self, data, cv_batch_size, started, every):
        super().__init__(data, cv_batch_size, started)
        self.every = int(every)

    def on_epoch_end(self, epoch, logs=None):
        population = self.model
        due = (population.gradient_steps // self.every
               > (self.points[-1][0] // self.every if self.points else 0))
        if due or population.progress >= 1.0 or population.stop_training:
            super().on_epoch_end(epoch, logs)


def run(context: MethodContext) -> MethodResult:
    """Trains a budget-aware PopDescent population without the range test
    (`range_test=False`); returns its surviving member."""
    return _run(context, range_test=False)


def run_with_range_test(context: MethodContext) -> MethodResult:
    """`run` with the learning-rate range test in the first iteration
    (`popdescent-budget-rt`): the library's default, `PopDescent(budget_aware=True)`."""
    return _run(context, range_test=True)


def _run(context: MethodContext, range_test: bool) -> MethodResult:
    started = time.perf_counter()
    budget, data = context.budget, context.data
    hyperparameters = {"learning_rate": learning_rate_prior(context)}  # validates options
    if context.regularization:
        hyperparameters["l2"] = LogUniform(*L2_RANGE)
    hyperparameters.update(regularization_priors(context))
    tune = context.options.get("tune", "all")
    if tune not in ("all", "regularization"):
        raise ValueError(f"options['tune'] must be 'all' or 'regularization', got {tune!r}")
    if tune == "regularization":  # the rate stays the compiled one (on the schedule)
        if len(hyperparameters) == 1:
            raise ValueError("options['tune']='regularization' needs options['guess'] (a model "
                             "with dropout and augmentation to tune)")
        del hyperparameters["learning_rate"]
    compiled_rate = geometric_middle(*learning_rate_range(context))
    keras.utils.set_random_seed(context.seed)

    def build(index):
        model = build_context_model(context)
        model.compile(optimizer=make_optimizer(compiled_rate), loss=paper_loss())
        return model

    population = Population(
        build, size=budget.population_size, hyperparameters=hyperparameters, seed=context.seed,
        l2_layers=[HIDDEN_DENSE_NAME] if "l2" in hyperparameters else None)
    initial = population.hyperparameter_values()
    # options["rungs"]: (progress, members kept) pairs instead of the default 5 -> 2 -> 1 at
    # 5 % and 20 %; options["commit_early"]: see PopDescent (it checks both before training).
    variant = {name: context.options[name] for name in BUDGET_OPTIONS if name in context.options}
    variant.update(selection_option(context))
    strategy = PopDescent(elites=budget.elites, cv_batch_size=budget.cv_batch_size,
                          budget_aware=True, range_test=range_test,
                          restore_best_every=budget.steps_per_iteration * budget.population_size,
                          **variant)
    steps = max(1, budget.steps_per_iteration // ITERATION_SHARE)
    iterations = strategy.planned_iterations(budget.member_steps, budget.population_size, steps)
    curve = SparseCurve(data, budget.cv_batch_size, started,
                        every=budget.steps_per_iteration * budget.population_size)
    backup = BackupAndRestore(context.work_dir / "backup",
                              every=max(1, iterations // BACKUPS_PER_RUN))
    population.fit(
        data.x_train, data.y_train, batch_size=budget.batch_size,
        member_steps=budget.member_steps, steps_per_epoch=steps,
        validation_data=(data.x_val, data.y_val), validation_freq=iterations + 1,
        callbacks=[strategy, curve, backup], verbose=context.verbose,
    )
    details = {
        "strategy": strategy.get_config(),
        "compiled_learning_rate": compiled_rate,
        **returned_member(population),
        "initial_hyperparameters": initial,
        "steps_per_iteration": steps,
        "iterations": len(population.lineage),
        "lineage": lineage_summary(population),
        "shrinks": [{"iteration": e["epoch"] + 1, "gradient_steps": e["gradient_steps"],
                     "kept": e["kept"], "left": e["left"], "rung_losses": e["rung_losses"]}
                    for e in population.lineage if "kept" in e],
        "restored_best": next((e["restored_best"] for e in reversed(population.lineage)
                               if "restored_best" in e), None),
        "cooldown": next((dict(e["cooldown"], gradient_steps=e["gradient_steps"])
                          for e in population.lineage if "cooldown" in e), None),
        "restarts": sum(bool(m.get("restarted")) for e in population.lineage
                        for m in e["members"]),
        "train_step_traces": population.traces,
        "width": next((e["width"] for e in population.lineage if "width" in e), None),
        "finished": [entry.info() for entry in population.finished_members],
    }
    validation = (data.x_val, data.y_val)
    ensemble = population.ensemble_model(validation_data=validation)
    soup = population.soup_model(validation_data=validation)
    details["ensemble"] = {"members_chosen": ensemble.members_chosen,
                           "member_weights": ensemble.member_weights}
    details["soup"] = {"members_chosen": soup.members_chosen}
    return MethodResult(model=population.best_model(), gradient_steps=population.gradient_steps,
                        curve=list(curve.points), details=details, resumed=curve.resumed,
                        extra_models={"ensemble": ensemble, "soup": soup})


SELECTIONS = ("fitness", "random")


def selection_option(context: MethodContext) -> dict:
    """`options["selection"]`: "fitness" (default) or "random", the control that keeps and
    copies members at random (`RandomSelectionFitness`, seeded by the run's seed)."""
    selection = context.options.get("selection", "fitness")
    if selection not in SELECTIONS:
        raise ValueError(f"options['selection'] must be one of {list(SELECTIONS)}, got "
                         f"{selection!r}")
    return {} if selection == "fitness" else {"fitness": RandomSelectionFitness(context.seed)}


def returned_member(population) -> dict:
    """Who `best_model()` returns: its origin and hyperparameters, how many own steps its
    weights hold and (for a member of the depth phase) its learning rate every 64th of them
    (the full per-step schedule is `population.exported_schedule`; before 2026-12-02 it also
    counted the steps after a restored checkpoint), and every tuned hyperparameter's value at
    each of those steps (`exported_hyperparameters`, run-length coded: what the replay control
    trains one fresh model with). After a width phase it is the finished
    member with the lowest validation loss, whose schedule is its wave's line."""
    if population.finished_members:
        best = min(population.finished_members, key=lambda entry: entry.loss)
        return {"best_member_origin": best.origin, "hyperparameters": best.hyperparameters,
                "returned_start": best.start, "exported_schedule_sample": None,
                "own_gradient_steps": best.own_steps}
    best = population.best_index()
    values = population.exported_hyperparameters(best)
    rates = values["learning_rate"]
    return {"best_member_origin": population.origins[best],
            "hyperparameters": population.hyperparameters_of(best),
            "exported_schedule_sample": rates[:: max(1, len(rates) // 64)],
            "exported_hyperparameters": {name: run_lengths(series)
                                         for name, series in values.items()},
            "own_gradient_steps": len(rates)}


def run_lengths(series) -> list:
    """[[value, count], ...]: `series` with each run of equal values written once (a
    replay's schedule of a few thousand steps changes at a few dozen)."""
    runs = []
    for value in series:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([float(value), 1])
    return runs
