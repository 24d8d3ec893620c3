"""KerasTuner's Hyperband and BayesianOptimization as benchmark methods `hyperband` and
`bayesian`: `run_hyperband(context)`, `run_bayesian(context) -> MethodResult`.

The real `keras_tuner.Hyperband` and `keras_tuner.BayesianOptimization`, objective
`val_loss` (the harness's plain cross-entropy on the whole validation half, measured at every
check), over the shared search space (`experiments.methods.search_space`: the learning rate;
with --regularization an L2 rate; with `options["guess"]` dropout, augmentation magnitude and
label smoothing). Each trial trains with the single run's recipe (`experiments.methods.tuning`:
`adam-decay` over the trial's own steps, best check kept); KerasTuner keeps each trial's best
check (`SaveBestEpoch`), promotes from it (Hyperband) and returns it: the record's model is the
best trial's best check, with no retraining (every member-step goes to the search).

Budget (`experiments.methods.tuner_budget`; its docstring has the arithmetic):

- `hyperband`: factor 3, max_epochs R = 3^k, steps per epoch S with one iteration spending
  the budget and the longest trial (R·S) about the horizon one model can use where the budget
  allows. FMNIST: quick (3,200) R = 3, S = 290, 6 trials, 3,190 member-steps, longest trial
  870; middle (12,800) R = 3, S = 1,163, 6 trials, 12,793, longest 3,489; paper (32,000)
  R = 9, S = 426, 23 trials in 3 brackets, 31,950, longest 3,834. CIFAR-10 quick (2,560):
  R = 3, S = 232, 6 trials, 2,552.
- `bayesian`: trials of R checks, as many as the budget holds at Hyperband's longest trial,
  checks stretched to spend it; the search stops when the next trial would not fit in what
  is left. FMNIST quick 3 trials of 3 x 355 steps (3,195), middle 3 of 3 x 1,422 (12,798),
  paper 8 of 9 x 444 (31,968); CIFAR-10 quick 3 of 3 x 284 (2,556). Random initial points:
  KerasTuner's default (3 per dimension), at most half the planned trials.

Resume: KerasTuner's own project in the run's work directory (`keras_tuner/<method>`) and the
trial ledger beside it. Run again after a crash, the tuner reloads its trials and reruns the
one that was interrupted; the ledger keeps the finished trials' steps and seconds
(`MethodResult.resumed`).
"""

from __future__ import annotations

import time
import warnings

import keras
import keras_tuner

from experiments.core.contract import MethodContext, make_optimizer
from experiments.methods.search_space import (
    build_trial_model,
    keras_tuner_values,
    search_space,
    trial_loss,
)
from experiments.methods.tuner_budget import (
    horizon,
    plan_fixed_trials,
    plan_hyperband,
    startup_trials,
)
from experiments.methods.tuning import (
    LEDGER_FILE,
    TrialLedger,
    resumed_from,
    train_trial,
    trial_seed,
    tuner_result,
)

__all__ = ["run_hyperband", "run_bayesian", "TrialHyperModel", "LedgeredHyperband",
           "LedgeredBayesianOptimization"]

# What Hyperband adds to a trial's values -> the ledger's name for it.
HYPERBAND_KEYS = {"tuner/epochs": "epochs", "tuner/initial_epoch": "initial_epoch",
                  "tuner/bracket": "bracket", "tuner/round": "round",
                  "tuner/trial_id": "promoted_from"}


class TrialHyperModel(keras_tuner.HyperModel):
    """A trial's model from the shared search space, trained as one `adam-decay` trial of
    `epochs - initial_epoch` checks of `steps_per_epoch` steps (the epochs KerasTuner asks
    for); each trial's steps, checks and values go to `ledger`.

    Args:
        context: the run's `MethodContext`.
        space: its `search_space`.
        steps_per_epoch: gradient steps between checks.
        ledger: the run's `TrialLedger`.
        started: `time.perf_counter()` of the run's start (moved back by resumed seconds).
    """

    def __init__(self, context, space, steps_per_epoch, ledger, started):
        super().__init__(name="trial_model")
        self.context, self.space, self.ledger = context, space, ledger
        self.steps_per_epoch, self.started = int(steps_per_epoch), float(started)
        self.trial_id = None

    def begin(self, trial_id):
        """Called by the tuner before it builds trial `trial_id`."""
        self.trial_id = str(trial_id)

    def seed(self) -> int:
        return trial_seed(self.context.seed, int(self.trial_id or 0))

    def build(self, hp):
        values = keras_tuner_values(hp, self.space)
        keras.utils.set_random_seed(self.seed())
        model = build_trial_model(self.context, values)
        model.compile(optimizer=make_optimizer(values["learning_rate"]), loss=trial_loss(values))
        return model

    def fit(self, hp, model, *args, callbacks=(), epochs=1, initial_epoch=0, **kwargs):
        values = {dimension.name: hp.values[dimension.name] for dimension in self.space}
        single = train_trial(self.context, model, values, epochs - initial_epoch,
                             self.steps_per_epoch, self.seed(), self.started,
                             callbacks=list(callbacks))
        extra = {name: hp.values[key] for key, name in HYPERBAND_KEYS.items()
                 if key in hp.values}
        entry = self.ledger.record(self.trial_id, values, single, self.started, **extra)
        best = entry["best_validation_loss"]
        return {"val_loss": float("inf") if best is None else best}


class LedgeredTuner:
    """Mixed into a KerasTuner tuner: tells the hypermodel which trial it builds, so each
    trial has its own seed and ledger entry."""

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.begin(trial.trial_id)
        return super().run_trial(trial, *args, **kwargs)


class LedgeredHyperband(LedgeredTuner, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband`, its trials seeded and recorded by their id."""


class LedgeredBayesianOptimization(LedgeredTuner, keras_tuner.BayesianOptimization):
    """`keras_tuner.BayesianOptimization` that stops when the next trial of `trial_steps`
    would not fit in `member_steps` (counted by the hypermodel's ledger)."""

    def __init__(self, *args, trial_steps, member_steps, **kwargs):
        super().__init__(*args, **kwargs)
        self.trial_steps, self.member_steps = int(trial_steps), int(member_steps)

    def on_search_begin(self):
        super().on_search_begin()
        self.stop_when_full()  # a resumed search may be full already

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.stop_when_full()

    def stop_when_full(self):
        if self.hypermodel.ledger.gradient_steps + self.trial_steps > self.member_steps:
            # The oracle creates no trial past max_trials; a trial it must retry still runs.
            self.oracle.max_trials = len(self.oracle.trials)


def _search(context: MethodContext, make_tuner, steps_per_epoch, space, details, epochs=None):
    """Runs (or resumes) the tuner `make_tuner(hypermodel, directory, project_name)` made,
    and returns the record: the best trial's best check, the ledger's steps and curve."""
    started = time.perf_counter()
    ledger = TrialLedger(context.work_dir / f"{context.method}_{LEDGER_FILE}")
    hypermodel = TrialHyperModel(context, space, steps_per_epoch, ledger, started)
    tuner = make_tuner(hypermodel, str(context.work_dir / "keras_tuner"), context.method)
    ledger.keep(trial.trial_id for trial in tuner.oracle.trials.values()
                if trial.status == "COMPLETED")
    resumed = resumed_from(ledger)
    if resumed is not None:
        hypermodel.started = started - resumed["seconds_before"]
    with warnings.catch_warnings():
        # Checkpoints hold the optimizer's state too; a promoted trial and the returned model
        # load only the weights (a trial starts a fresh Adam on its own schedule), and Keras
        # warns about the state it skips at every load.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        tuner.search(**({} if epochs is None else {"epochs": epochs}),
                     verbose=context.verbose)
        best = ledger.best()
        if best is None:
            raise FloatingPointError(f"{context.method}: every trial diverged (no finite "
                                     "validation loss)")
        model = tuner.load_model(tuner.oracle.get_trial(best["key"]))
    return tuner_result(context, ledger, model, resumed, {
        **details, "horizon": horizon(context),
        "space": [dimension.__dict__ for dimension in space]})


def run_hyperband(context: MethodContext):
    """KerasTuner Hyperband over the shared space, within the budget's member-steps."""
    space = search_space(context)  # validates the options before any training
    plan = plan_hyperband(context.budget.member_steps, horizon(context))

    def make_tuner(hypermodel, directory, project_name):
        return LedgeredHyperband(
            hypermodel, objective="val_loss", max_epochs=plan.max_epochs, factor=plan.factor,
            hyperband_iterations=plan.iterations, seed=context.seed,
            # A trial that fails is a bug here: its steps would go uncounted.
            max_consecutive_failed_trials=1,
            directory=directory, project_name=project_name, overwrite=False)

    return _search(context, make_tuner, plan.steps_per_epoch, space,
                   {"tuner": "keras_tuner.Hyperband", **plan.as_dict()})


def run_bayesian(context: MethodContext):
    """KerasTuner BayesianOptimization over the shared space: trials of a fixed length until
    the next would not fit in the budget."""
    space = search_space(context)
    plan = plan_fixed_trials(context.budget.member_steps, horizon(context))
    initial = startup_trials(max(3 * len(space), 3), plan.trials)

    def make_tuner(hypermodel, directory, project_name):
        return LedgeredBayesianOptimization(
            hypermodel, objective="val_loss",
            # An upper bound (every trial runs at least one check); the ledger stops it.
            max_trials=context.budget.member_steps // plan.steps_per_epoch,
            num_initial_points=initial, seed=context.seed, max_consecutive_failed_trials=1,
            directory=directory, project_name=project_name, overwrite=False,
            trial_steps=plan.trial_steps, member_steps=context.budget.member_steps)

    return _search(context, make_tuner, plan.steps_per_epoch, space,
                   {"tuner": "keras_tuner.BayesianOptimization", "num_initial_points": initial,
                    **plan.as_dict()}, epochs=plan.epochs)
