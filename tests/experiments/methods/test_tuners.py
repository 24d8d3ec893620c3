"""KerasTuner Hyperband, BayesianOptimization and Optuna on the harness, end to end on the tiny
MLP at the smoke scale: every gradient step that ran is in the record (counted here by a
callback on every `fit`), no run passes its budget, a killed run resumes from the tuner's own
storage, and a bad budget or space is refused before anything trains."""

import contextlib
import importlib
import importlib.util
import sys

import keras
import pytest

from experiments.core.contract import Budget
from experiments.core.evaluation import validation_loss
from experiments.methods import MethodNotAvailableError, get_method
from experiments.methods.tuner_budget import plan_fixed_trials, plan_hyperband
from tests.helpers.method_smoke import check_common_record, smoke_context

HAS_OPTUNA = all(importlib.util.find_spec(name) for name in ("optuna", "optuna_integration"))
needs_optuna = pytest.mark.skipif(not HAS_OPTUNA, reason="the optuna method needs the [optuna] "
                                  "extra (pip install -e '.[optuna]')")
TUNERS = ["hyperband", "bayesian", pytest.param("optuna", marks=needs_optuna)]
MODULES = {"hyperband": "experiments.methods.keras_tuners",
           "bayesian": "experiments.methods.keras_tuners",
           "optuna": "experiments.methods.optuna_search"}


class StepCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


@contextlib.contextmanager
def counting_fits():
    """Every `keras.Model.fit` in the block gets a `StepCounter`; yields the running totals."""
    totals = {"steps": 0, "fits": 0}
    original = keras.Model.fit

    def fit(self, *args, callbacks=None, **kwargs):
        counter = StepCounter()
        try:
            return original(self, *args, callbacks=[*(callbacks or []), counter], **kwargs)
        finally:
            totals["steps"] += counter.steps
            totals["fits"] += 1

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", fit)
        yield totals


def tune(name, work_dir, **options):
    context = smoke_context(name, work_dir, **{"model": "mlp", **options})
    keras.backend.clear_session()
    keras.utils.set_random_seed(context.seed)
    with counting_fits() as totals:
        result = get_method(name)(context)
    return result, context, totals


@pytest.fixture(scope="module", params=TUNERS)
def tuned(request, tmp_path_factory):
    return tune(request.param, tmp_path_factory.mktemp(request.param))


def test_member_steps_in_the_record_are_the_steps_that_ran(tuned):
    result, context, totals = tuned
    check_common_record(result, context)
    assert result.gradient_steps == totals["steps"]
    assert totals["fits"] == result.details["trials_run"] == len(result.details["trials"])
    assert result.gradient_steps == sum(t["gradient_steps"] for t in result.details["trials"])
    assert result.gradient_steps <= context.budget.member_steps
    assert result.details["unspent_member_steps"] == (context.budget.member_steps
                                                      - result.gradient_steps)


def test_every_trial_trains_the_steps_its_plan_gives_it(tuned):
    result, context, _ = tuned
    budget = context.budget.member_steps
    trials = result.details["trials"]
    if context.method == "hyperband":
        plan = plan_hyperband(budget, 3840)
        assert [t["gradient_steps"] for t in trials] == [
            (t["epochs"] - t["initial_epoch"]) * plan.steps_per_epoch for t in trials]
        assert len(trials) == plan.trials and result.gradient_steps == plan.member_steps
        assert sum(1 for t in trials if t["initial_epoch"] > 0) == 1  # one promotion
    else:
        plan = plan_fixed_trials(budget, 3840)
        complete = [t for t in trials if t["status"] == "complete"]
        assert all(t["gradient_steps"] == plan.trial_steps for t in complete)
        # Stopped when the next trial would not fit.
        assert budget - result.gradient_steps < plan.trial_steps


def test_the_returned_model_is_the_best_trials_best_check(tuned):
    result, context, _ = tuned
    best = min(t["best_validation_loss"] for t in result.details["trials"])
    assert result.details["best_validation_loss"] == best == result.curve[-1][1]
    assert validation_loss(result.model, context.data) == pytest.approx(best, rel=1e-5)
    assert float(keras.ops.convert_to_numpy(result.model.optimizer.learning_rate)) == \
        pytest.approx(result.details["hyperparameters"]["learning_rate"], rel=1e-6)


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so no tuner catches it."""


def test_a_killed_run_resumes_from_the_tuners_storage(tuned, tmp_path, monkeypatch):
    uninterrupted, name = tuned[0], tuned[1].method
    module = importlib.import_module(MODULES[name])
    original, calls = module.train_trial, []

    def dies_in_the_third_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_trial", dies_in_the_third_trial)
    with pytest.raises(Killed):
        tune(name, tmp_path)
    monkeypatch.setattr(module, "train_trial", original)
    result, context, totals = tune(name, tmp_path)

    assert result.resumed["iteration"] == 2 and result.resumed["seconds_before"] > 0
    assert totals["steps"] == result.gradient_steps - sum(
        t["gradient_steps"] for t in result.details["trials"][:2])
    assert [(t["values"], t["gradient_steps"]) for t in result.details["trials"]] == [
        (t["values"], t["gradient_steps"]) for t in uninterrupted.details["trials"]]
    assert result.gradient_steps == uninterrupted.gradient_steps
    check_common_record(result, context)
    seconds = [point[2] for point in result.curve]
    assert seconds == sorted(seconds)


@pytest.mark.parametrize("name", TUNERS)
def test_a_budget_below_one_hyperband_iteration_is_refused_before_training(name, tmp_path):
    context = smoke_context(name, tmp_path, model="mlp")
    small = Budget(iterations=2, steps_per_iteration=1, batch_size=16, population_size=3,
                   elites=2, cv_batch_size=32)
    context = type(context)(**{**context.__dict__, "budget": small})
    with counting_fits() as totals, pytest.raises(
            ValueError, match=r"budget.member_steps must be >= 11 .* got 6"):
        get_method(name)(context)
    assert totals["fits"] == 0


@pytest.mark.parametrize("name", TUNERS)
@pytest.mark.parametrize("options, match", [
    ({"lr_range": [0, 1e-2]}, r"options\['lr_range'\] must be a pair .* got \[0, 0.01\]"),
    ({"guess": "ugly"}, r"guess must be one of \('good', 'bad'\), got 'ugly'"),
    ({"horizon": 0}, r"options\['horizon'\] must be an integer >= 1, got 0"),
])
def test_a_bad_space_or_option_is_refused_before_training(name, options, match, tmp_path):
    with counting_fits() as totals, pytest.raises(ValueError, match=match):
        get_method(name)(smoke_context(name, tmp_path, model="mlp", **options))
    assert totals["fits"] == 0


@pytest.mark.parametrize("name", ["bayesian", pytest.param("optuna", marks=needs_optuna)])
def test_with_a_guess_the_returned_model_carries_the_best_trials_regularization(name,
                                                                               tmp_path):
    result, context, _ = tune(name, tmp_path, guess="good")
    values = result.details["hyperparameters"]
    assert set(values) == {"learning_rate", "dropout", "augmentation", "label_smoothing"}
    dropout = [layer.rate for layer in result.model.layers
               if isinstance(layer, keras.layers.Dropout)]
    translation = [layer.height_factor for layer in result.model.layers
                   if isinstance(layer, keras.layers.RandomTranslation)]
    assert dropout == [pytest.approx(values["dropout"])] * 2
    assert translation == [pytest.approx(min(1.0, values["augmentation"] * 0.1))]
    assert result.gradient_steps <= context.budget.member_steps


@needs_optuna
def test_pruned_trials_count_only_the_steps_they_ran_and_leave_room_for_more(tmp_path,
                                                                             monkeypatch):
    import optuna

    from experiments.methods import optuna_search

    # A pruner that stops every trial at its first check (one step at the smoke scale).
    monkeypatch.setattr(optuna_search, "make_pruner",
                        lambda plan: optuna.pruners.ThresholdPruner(upper=0.0))
    result, context, totals = tune("optuna", tmp_path)
    trials = result.details["trials"]
    assert all(t["status"] == "pruned" and t["gradient_steps"] == 1 for t in trials)
    # Trials run while a full one (3 steps) still fits in the 12: ten of one step.
    assert len(trials) == 10 and result.gradient_steps == totals["steps"] == 10
    assert result.details["pruned_trials"] == 10
    check_common_record(result, context)


def test_without_the_extra_the_optuna_method_names_the_extra_it_needs(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "experiments.methods.optuna_search", raising=False)
    with pytest.raises(MethodNotAvailableError, match=r"needs the \[optuna\] extra"):
        get_method("optuna")
