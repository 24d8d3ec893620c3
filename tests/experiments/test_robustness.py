"""The robustness study: every method started from a wrong learning-rate range.

A smoke run of two methods from two ranges through the CLI, records and report; each method
honouring `options["lr_range"]` and `options["lr_bounds"]`; a `Population` whose prior starts
in one range and mutates within wider bounds; the lineage learning rate of the returned model.
"""

import importlib.util

import keras_tuner
import matplotlib.image
import numpy as np
import pytest
from tests.helpers.models import make_model
from tests.helpers.method_smoke import smoke_context

import popdescent as pd
from experiments import robustness
from experiments.methods import get_method
from experiments.methods.grid import grid_learning_rates
from experiments.methods.random import PaperHyperModel
from experiments.reports import robustness as robustness_report
from experiments.core.records import read_records

SMOKE = ["--dataset", "fmnist", "--seeds", "5", "--scale", "smoke", "--quiet", "--model", "mlp",
         "--method", "adam", "popdescent", "--range", "too-small", "too-large"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("robustness")
    smoke_context("adam", out)  # skips when the Fashion-MNIST files are missing
    assert robustness.main([*SMOKE, "--out", str(out), "--docs", str(out / "docs")]) == 0
    return out


def _records(out, range_name):
    return {r["method"]: r for r in
            read_records(robustness.records_path(out, range_name))}


def test_each_range_gets_its_own_records_with_the_range_in_the_options(study):
    for range_name in ("too-small", "too-large"):
        records = _records(study, range_name)
        assert sorted(records) == ["adam", "popdescent"]
        low, high = robustness.RANGES[range_name]
        assert records["adam"]["options"] == {"lr_range": [low, high], "model": "mlp"}
        assert records["popdescent"]["options"] == {"lr_range": [low, high],
                                                    "lr_bounds": list(robustness.BOUNDS),
                                                    "model": "mlp"}
        assert all(r["robustness_range"] == range_name and r["scale"] == "smoke"
                   for r in records.values())
    assert not robustness.records_path(study, "paper").exists()


def test_adam_trains_at_the_ranges_geometric_middle(study):
    for range_name in ("too-small", "too-large"):
        low, high = robustness.RANGES[range_name]
        rate = _records(study, range_name)["adam"]["details"]["hyperparameters"]["learning_rate"]
        assert rate == pytest.approx(np.sqrt(low * high))


def test_popdescent_starts_in_the_range_and_stays_within_the_wide_bounds(study):
    for range_name in ("too-small", "too-large"):
        low, high = robustness.RANGES[range_name]
        details = _records(study, range_name)["popdescent"]["details"]
        initial = [h["learning_rate"] for h in details["initial_hyperparameters"]]
        assert all(low * (1 - 1e-6) <= rate <= high * (1 + 1e-6) for rate in initial)
        rates = [rate for entry in details["lineage"] for rate in entry["learning_rate"]]
        assert all(1e-7 * (1 - 1e-6) <= rate <= 1.0 for rate in rates)
        lineage_rates = details["returned_learning_rates"]
        assert [segment[1] for segment in lineage_rates] == [
            entry["gradient_steps"] for entry in details["lineage"]]
        assert lineage_rates[0][2] in initial


def test_report_has_a_column_per_range_and_the_lineage_figure(study):
    text = (study / "docs" / "robustness.md").read_text()
    assert "| Method | too small [1e-06, 1e-05] | too large [0.05, 0.5] | paper's" in text
    # Three tables (test loss, returned learning rate, PopDescent against each method).
    assert text.count("| Adam, untuned (best checkpoint) | ") == 3
    assert text.count("| PopDescent | ") == 2
    image = matplotlib.image.imread(study / "docs" / "robustness_lr.png")
    assert image.ndim == 3 and image.shape[0] > 100


def test_rerun_skips_finished_records(study):
    before = {name: _records(study, name) for name in ("too-small", "too-large")}
    assert robustness.main([*SMOKE, "--out", str(study), "--docs", str(study / "docs")]) == 0
    after = {name: _records(study, name) for name in ("too-small", "too-large")}
    assert {n: {m: r["run_id"] for m, r in v.items()} for n, v in before.items()} == \
        {n: {m: r["run_id"] for m, r in v.items()} for n, v in after.items()}


def test_cli_defaults_to_every_method_and_range():
    args, _ = robustness.parse_args(["--dataset", "fmnist", "cifar10", "--scale", "smoke"])
    assert args.method == list(robustness.STUDY_METHODS)
    assert args.ranges == ["too-small", "too-large", "paper"]
    assert args.dataset == ["fmnist", "cifar10"] and args.seeds == [5]
    assert set(robustness.STUDY_METHODS) == {"adam", "adam-decay", "adam-decay-rt", "grid",
                                             "random", "hyperband", "bayesian", "optuna",
                                             "esgd", "pbt", "popdescent", "popdescent-budget",
                                             "popdescent-budget-rt", "es-single", "pes",
                                             "truncated-es"}


def test_cli_rejects_an_unknown_range_naming_the_argument(capsys):
    with pytest.raises(SystemExit) as exit_info:
        robustness.parse_args(["--dataset", "fmnist", "--range", "huge"])
    assert exit_info.value.code == 2
    assert "--range" in capsys.readouterr().err


@pytest.mark.parametrize("method", robustness.STUDY_METHODS)
def test_every_method_rejects_a_bad_lr_range_before_training(method, tmp_path):
    if method == "optuna" and importlib.util.find_spec("optuna") is None:
        pytest.skip("the optuna method needs the [optuna] extra (CI installs it)")
    context = smoke_context(method, tmp_path, lr_range=[1e-2, 1e-4])
    with pytest.raises(ValueError, match=r"options\['lr_range'\] must be a pair .*got \[0.01"):
        get_method(method)(context)


@pytest.mark.parametrize("method", robustness.ONLINE_METHODS)
def test_online_methods_reject_bounds_that_do_not_contain_the_range(method, tmp_path):
    context = smoke_context(method, tmp_path, lr_range=[0.05, 0.5], lr_bounds=[1e-7, 0.1])
    with pytest.raises(ValueError, match=r"options\['lr_bounds'\] must contain"):
        get_method(method)(context)


def test_grid_spreads_its_five_rates_log_uniformly_across_the_range(tmp_path):
    rates = grid_learning_rates(smoke_context("grid", tmp_path, lr_range=[1e-6, 1e-2]))
    np.testing.assert_allclose(rates, [1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    assert grid_learning_rates(smoke_context("grid", tmp_path)) == (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def test_random_search_samples_the_range(tmp_path):
    context = smoke_context("random", tmp_path)
    hypermodel = PaperHyperModel("fmnist", False, context.data, learning_rate_range=(0.05, 0.5))
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    space = {h.name: h for h in hp.space}["learning_rate"]
    assert (space.min_value, space.max_value, space.sampling) == (0.05, 0.5, "log")


def test_a_population_starts_in_its_range_and_mutation_leaves_it_within_the_bounds(data):
    x, y, x_val, y_val = data
    prior = pd.LogUniform(1e-6, 1e-5, bounds=(1e-7, 1.0))
    assert pd.LogUniform(1e-6, 1e-5).bounds == (1e-6, 1e-5)  # default bounds: the range
    pop = pd.Population(make_model(), size=4, seed=0, hyperparameters={"learning_rate": prior})
    initial = [h["learning_rate"] for h in pop.hyperparameter_values()]
    assert all(1e-6 * (1 - 1e-6) <= rate <= 1e-5 * (1 + 1e-6) for rate in initial)
    pop.fit(x, y, batch_size=16, epochs=5, steps_per_epoch=1, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.PopDescent(elites=1, hyperparameter_noise=3.0, cv_batch_size=16)])
    rates = [m["hyperparameters"]["learning_rate"] for e in pop.lineage for m in e["members"]]
    assert max(rates) > 1e-5 * 1.01  # mutation walked out of the starting range
    assert all(1e-7 * (1 - 1e-6) <= rate <= 1.0 for rate in rates)


def _fake(method, range_name, seed, loss):
    return {"method": method, "dataset": "fmnist", "seed": seed, "scale": "small",
            "regularization": False, "range": range_name, "test_loss": loss,
            "details": {"hyperparameters": {"learning_rate": 1e-3}}}


def test_report_counts_diverged_runs_and_calls_wins_ties_and_losses(tmp_path):
    records = [
        _fake("popdescent", "too-large", 5, 0.40), _fake("popdescent", "too-large", 15, 0.42),
        _fake("adam", "too-large", 5, 2.30), _fake("adam", "too-large", 15, None),
        _fake("popdescent", "paper", 5, 0.300), _fake("adam", "paper", 5, 0.305),
        _fake("pbt", "paper", 5, 0.250),
    ]
    text = robustness_report.write_markdown(records, tmp_path / "robustness.md",
                                           robustness.RANGES, robustness.BOUNDS)
    assert "| Adam, untuned (best checkpoint) | not run | 2.300 (n=1, 1 diverged) | 0.305 (n=1) |" \
        in text
    assert "| PopDescent | not run | 0.410 ± 0.014 (n=2) | 0.300 (n=1) |" in text
    assert "| Adam, untuned (best checkpoint) | — | win (-1.890) | tie (-0.005) |" in text
    assert "| PBT | — | — | loss (+0.050) |" in text


def test_report_lists_methods_that_have_not_run(tmp_path):
    records = [_fake("popdescent", "paper", 5, 0.300), _fake("adam", "paper", 5, 0.305)]
    text = robustness_report.write_markdown(records, tmp_path / "robustness.md",
                                           robustness.RANGES, robustness.BOUNDS)
    assert "| ESGD | not run | not run | not run |" in text
    assert "| KT RandomSearch | not run | not run | not run |" in text


def test_an_option_reaches_the_method_and_its_record(tmp_path):
    smoke_context("adam", tmp_path)  # skips when the Fashion-MNIST files are missing
    rungs = [[0.3, 2], [0.6, 1]]
    assert robustness.main([
        "--dataset", "fmnist", "--seeds", "5", "--scale", "smoke", "--quiet", "--model", "mlp",
        "--method", "popdescent-budget", "--range", "too-small",
        "--option", "rungs=[[0.3,2],[0.6,1]]", "--out", str(tmp_path)]) == 0
    record = _records(tmp_path, "too-small")["popdescent-budget"]
    assert record["options"]["rungs"] == rungs
    assert record["details"]["strategy"]["budget"]["rungs"] == rungs
