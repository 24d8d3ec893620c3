"""The attribution controls of issue 38, both single runs of the user's model.

`adam-replay`: one fresh model trained with the schedule of every hyperparameter that a
population's returned member trained with. `adam-constant`: one `adam-decay` run with the
returned member's final regularization values held from step 0.

Population Based Augmentation (Ho et al., 2019) and Self-Tuning Networks (MacKay et al.,
2019) found that what a population discovers is a *schedule*, which one fresh run replays. If
this control matches the population, the population's share is that schedule (a product in
itself); if it does not, the surviving weights carry what selection found.

`options["replay_from"]` names a records file holding a `popdescent-budget` record of the
same dataset, scale, seed and guess whose details hold `exported_hyperparameters` (the
returned member's value of each tuned hyperparameter at each of its own gradient steps,
run-length coded). The fresh model, initialised and shuffled from the run's seed, is the
user's model at the guess; its Dropout and augmentation layers are bound to variables
(`popdescent.population.live_regularization.bind`) and its loss smooths labels by a variable, which a
callback sets to the exported values before each step; its learning rate is the exported
one, step by step. It trains as many steps as the member's weights hold and keeps its best
check on validation at the harness's cadence, as `adam` does. `options["constant_from"]`
names the records for `adam-constant` the same way.
"""

from __future__ import annotations

import json
import pathlib
import time

import keras

from experiments.core.contract import MethodContext, MethodResult, build_context_model
from experiments.methods.adam import compiled_learning_rate, cooldown_option, train_model
from experiments.methods.search_space import build_trial_model, trial_loss
from popdescent import BudgetSchedule, LabelSmoothedCrossentropy, StepwiseSchedule
from popdescent.population.live_regularization import bind

__all__ = ["run", "run_constant", "exported_values", "population_record"]

REPLAYED_METHOD = "popdescent-budget"


def population_record(context: MethodContext, option="replay_from") -> dict:
    """The population record `options[option]` points at for this run's dataset, scale,
    seed and guess; refused before training when there is none."""
    if option not in context.options:
        raise ValueError(f"options[{option!r}] must name a records file holding the "
                         f"{REPLAYED_METHOD} run to take the values from")
    path = pathlib.Path(context.options[option])
    if not path.is_file():
        raise ValueError(f"options[{option!r}] = {str(path)!r} is not a file")
    guess = context.options.get("guess")
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if (record["method"] == REPLAYED_METHOD and record["dataset"] == context.dataset
                and record["scale"] == context.scale and record["seed"] == context.seed
                and (record.get("options") or {}).get("guess") == guess
                and (record.get("options") or {}).get("selection", "fitness") == "fitness"):
            return record
    raise ValueError(f"options[{option!r}] = {str(path)!r} holds no {REPLAYED_METHOD} record "
                     f"of {context.dataset} {context.scale} seed {context.seed} guess {guess!r}")


def exported_values(record) -> dict:
    """Name -> per-step values, decoded from the record's run-length coded export."""
    exported = record["details"].get("exported_hyperparameters")
    if not exported:
        raise ValueError("the population record exports no per-step values (its returned "
                         "member finished in a width phase, or the record predates the export)")
    return {name: [value for value, count in runs for _ in range(int(count))]
            for name, runs in exported.items()}


class ReplayValues(keras.callbacks.Callback):
    """Before each step t, sets each variable to its series' value at t (the last value once
    the series ends)."""

    def __init__(self, variables, series):
        super().__init__()
        self.variables, self.series = variables, series

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        for name, variable in self.variables.items():
            values = self.series[name]
            variable.assign(values[min(step, len(values) - 1)])


def run(context: MethodContext) -> MethodResult:
    """Trains one fresh model on the population's exported schedules (see the module)."""
    started = time.perf_counter()
    series = exported_values(population_record(context))
    steps = len(series["learning_rate"])
    keras.utils.set_random_seed(context.seed)
    model = build_context_model(context)
    variables = {name: keras.Variable(series[name][0], trainable=False, name=name)
                 for name in ("dropout", "augmentation", "label_smoothing") if name in series}
    for name in ("dropout", "augmentation"):
        if name in variables:
            bind(model, name, variables[name])
    loss = LabelSmoothedCrossentropy(variables.get("label_smoothing", 0.0), sparse=True,
                                     from_logits=True)
    optimizer = keras.optimizers.Adam(StepwiseSchedule(series["learning_rate"]))
    single = train_model(model, context, series["learning_rate"][0], steps, context.seed,
                         started=started, loss=loss, optimizer=optimizer,
                         callbacks=[ReplayValues(variables, series)])
    return MethodResult(
        model=single.model, gradient_steps=single.gradient_steps,
        curve=single.checkpoint.points,
        details={"replayed_steps": steps, "best_checkpoint_steps": single.checkpoint.best_steps,
                 "final_hyperparameters": {name: values[-1] for name, values in series.items()}})


def run_constant(context: MethodContext) -> MethodResult:
    """`adam-constant`: one `adam-decay` run (its rate, schedule and cool-down, the whole
    budget) with the population's returned member's final dropout, augmentation and label
    smoothing held from step 0 (`options["constant_from"]` names the population's records)."""
    started = time.perf_counter()
    tuned = population_record(context, "constant_from")["details"]["hyperparameters"]
    values = {name: tuned[name] for name in ("dropout", "augmentation", "label_smoothing")
              if name in tuned}
    keras.utils.set_random_seed(context.seed)
    model = build_trial_model(context, values)
    single = train_model(model, context, compiled_learning_rate(context),
                         context.budget.member_steps, context.seed, BudgetSchedule(),
                         cooldown_option(context), started, loss=trial_loss(values))
    return MethodResult(
        model=single.model, gradient_steps=single.gradient_steps,
        curve=single.checkpoint.points,
        details={"hyperparameters": {"learning_rate": single.learning_rate, **values},
                 "best_checkpoint_steps": single.checkpoint.best_steps})
