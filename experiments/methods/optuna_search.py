"""Optuna as the benchmark method `optuna`: `run(context) -> MethodResult`. Needs the
`[optuna]` extra (optuna, optuna-integration).

The real Optuna study: `TPESampler` (seeded from the run's seed) proposing the shared search
space (`experiments.methods.search_space`), `HyperbandPruner` (min_resource 1, max_resource the
trial's checks, reduction factor 3, as KerasTuner's Hyperband) deciding from the validation loss
reported at every check, through optuna-integration's `KerasPruningCallback`. That callback
raises `TrialPruned` inside `fit`, which would lose the trial's best check and its step count;
`StopWhenPruned` is the same callback with the exception turned into `stop_training`, and the
objective raises `TrialPruned` after the trial is recorded, so Optuna still marks it PRUNED.
Each trial trains with the single run's recipe (`experiments.methods.tuning`: `adam-decay` over
the trial's steps, its best check kept); the record's model is the best check of all trials,
pruned ones included (it is what the curve's best-so-far measured), with no retraining.

Budget (`experiments.methods.tuner_budget.plan_fixed_trials`, the same as `bayesian`'s):
trials of R checks of S steps (FMNIST quick: 3 x 355; middle 3 x 1,422; paper 9 x 444;
CIFAR-10 quick 3 x 284), one trial after another until the next would not fit in what is left;
pruned trials stop early and leave room for more. TPE's random start: its default (10) trials,
at most half of those the budget holds at full length.

Resume: the study lives in a journal file in the run's work directory (`optuna.log`), the
sampler is pickled after every trial, each finished trial's best check is kept as a weights
file until a better one replaces it, and the trial ledger sits beside them. Run again after a
crash, the study is loaded, a trial left RUNNING is marked FAIL (its steps are the work the
crash lost), and the search goes on with the sampler as it was.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time

import keras

from experiments.core.contract import MethodContext, make_optimizer
from experiments.methods import MethodNotAvailableError
from experiments.methods.search_space import (
    build_trial_model,
    optuna_values,
    search_space,
    trial_loss,
)
from experiments.methods.tuner_budget import (
    HYPERBAND_FACTOR,
    horizon,
    plan_fixed_trials,
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

try:
    import optuna
    from optuna_integration import KerasPruningCallback
except ImportError as error:  # this method is unavailable, nothing else is
    raise MethodNotAvailableError(
        f"method 'optuna' needs the [optuna] extra: pip install -e '.[optuna]' ({error})"
    ) from error

__all__ = ["run", "StopWhenPruned", "make_pruner", "TPE_STARTUP_TRIALS"]

TPE_STARTUP_TRIALS = 10  # TPESampler's default n_startup_trials
STUDY_NAME = "optuna"


class StopWhenPruned(KerasPruningCallback):
    """optuna-integration's `KerasPruningCallback`, which reports `val_loss` and asks the
    pruner at every epoch's end, but ends `fit` with `stop_training` instead of raising inside
    it; `pruned` holds the `TrialPruned` to raise once the trial is recorded."""

    def __init__(self, trial, monitor="val_loss", interval=1):
        super().__init__(trial, monitor, interval)
        self.pruned = None

    def on_epoch_end(self, epoch, logs=None):
        try:
            super().on_epoch_end(epoch, logs)
        except optuna.TrialPruned as pruned:
            self.pruned = pruned
            self.model.stop_training = True


def make_pruner(plan):
    """Optuna's Hyperband over a trial's checks, with KerasTuner Hyperband's factor."""
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=plan.epochs,
                                          reduction_factor=HYPERBAND_FACTOR)


def _weights_path(context, key):
    return context.work_dir / f"optuna_trial_{key}.weights.h5"


def _save_sampler(study, path):
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as stream:
        pickle.dump(study.sampler, stream)
    os.replace(temporary, path)


def _open_study(context, plan, space):
    """The run's study: loaded from its journal when a crash left one, else created."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(context.work_dir / "optuna.log")))
    sampler_path = context.work_dir / "optuna_sampler.pkl"
    if sampler_path.exists():
        with open(sampler_path, "rb") as stream:
            sampler = pickle.load(stream)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=context.seed, n_startup_trials=startup_trials(TPE_STARTUP_TRIALS, plan.trials))
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=make_pruner(plan),
                                study_name=STUDY_NAME, direction="minimize",
                                load_if_exists=True)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Left RUNNING by a crash. TPE's constant liar would keep scoring it as the worst
        # value; storages key trials by their internal id (FrozenTrial has no public one).
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study, sampler_path


def run(context: MethodContext):
    """An Optuna study (TPE, Hyperband pruning) over the shared space, within the budget."""
    space = search_space(context)  # validates the options before any training
    budget = context.budget.member_steps
    plan = plan_fixed_trials(budget, horizon(context))
    started = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.INFO if context.verbose else
                                 optuna.logging.WARNING)
    study, sampler_path = _open_study(context, plan, space)
    ledger = TrialLedger(context.work_dir / f"{context.method}_{LEDGER_FILE}")
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ledger.keep(t.number for t in study.get_trials(deepcopy=False, states=finished))
    resumed = resumed_from(ledger)
    if resumed is not None:
        started -= resumed["seconds_before"]

    def objective(trial):
        values = optuna_values(trial, space)
        seed = trial_seed(context.seed, len(ledger))
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build_trial_model(context, values)
        pruning = StopWhenPruned(trial)
        single = train_trial(context, model, values, plan.epochs, plan.steps_per_epoch, seed,
                             started, callbacks=[pruning])
        single.model.save_weights(_weights_path(context, trial.number))
        entry = ledger.record(trial.number, values, single, started,
                              "pruned" if pruning.pruned else "complete")
        trial.set_user_attr("gradient_steps", entry["gradient_steps"])
        if pruning.pruned is not None:
            raise pruning.pruned
        best = entry["best_validation_loss"]
        return float("inf") if best is None else best

    while ledger.gradient_steps + plan.trial_steps <= budget:
        study.optimize(objective, n_trials=1)
        _save_sampler(study, sampler_path)
        _keep_best_weights(context, ledger)

    best = ledger.best()
    if best is None:
        raise FloatingPointError("optuna: every trial diverged (no finite validation loss)")
    model = build_trial_model(context, best["values"])
    model.load_weights(_weights_path(context, best["key"]))
    model.compile(optimizer=make_optimizer(best["values"]["learning_rate"]),
                  loss=trial_loss(best["values"]))
    return tuner_result(context, ledger, model, resumed, {
        "tuner": "optuna.samplers.TPESampler + optuna.pruners.HyperbandPruner",
        "n_startup_trials": startup_trials(TPE_STARTUP_TRIALS, plan.trials), **plan.as_dict(),
        "pruned_trials": sum(entry["status"] == "pruned" for entry in ledger.entries),
        "horizon": horizon(context), "space": [dimension.__dict__ for dimension in space]})


def _keep_best_weights(context, ledger):
    """Deletes every trial's weights file but the best finished trial's."""
    best = ledger.best()
    for entry in ledger.entries:
        if best is None or entry["key"] != best["key"]:
            with contextlib.suppress(FileNotFoundError):
                _weights_path(context, entry["key"]).unlink()
