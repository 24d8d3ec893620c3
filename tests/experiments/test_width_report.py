"""The width report (`python -m experiments.width_report`): per budget, one model, the
independent ensemble and each population variant's best model, ensemble and soup, and issue
29's targets checked on the means, from the records alone."""

import json

from experiments.reports import width
from experiments.reports.budget import DEFAULT_BUDGET


def _record(method, seed, loss, scale="paper", extras=None, options=None, budget=None):
    record = {"method": method, "dataset": "fmnist", "seed": seed, "scale": scale,
              "regularization": False, "test_loss": loss, "gradient_steps": 32000,
              "options": options or {}, "curve": [[640, loss]], "details": {}}
    if budget is not None:
        record["details"]["strategy"] = {"budget": budget}
    if extras:
        record["extras"] = {name: {"test_loss": value} for name, value in extras.items()}
    return record


def _write(path, records):
    path.mkdir(parents=True, exist_ok=True)
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _population(seed, best, ensemble, soup, kind):
    budget = {"rungs": [[0.05, 2], [0.2, 1]], "commit_early": True,
              "restore_best_weights": True, "cooldown_patience": 3, "width": kind}
    record = _record("popdescent-budget-rt", seed, best, options={"width": kind},
                     budget=budget, extras={"ensemble": ensemble, "soup": soup})
    record["details"]["cooldown"] = {"gradient_steps": 9600, "length": 640}  # it widened
    return record


def test_the_report_tables_every_returned_model_and_checks_the_targets(tmp_path):
    _write(tmp_path / "width", [
        _record("adam-decay", 5, 0.225), _record("adam-decay", 15, 0.223),
        _record("adam-decay-ensemble", 5, 0.221, extras={"greedy": 0.215, "best": 0.221}),
        _record("adam-decay-ensemble", 15, 0.219, extras={"greedy": 0.214, "best": 0.22}),
        _record("adam-decay", 5, 0.226, scale="middle")])
    _write(tmp_path / "children", [_population(5, 0.222, 0.210, 0.215, "children"),
                                   _population(15, 0.220, 0.208, 0.214, "children")])
    _write(tmp_path / "fresh", [_population(5, 0.222, 0.223, 0.222, "fresh")])
    # the control: independent runs each given the population's horizon
    _write(tmp_path / "horizon", [_record("adam-decay-ensemble", 5, 0.212, options={
        "run_steps": 3840}, extras={"greedy": 0.205, "best": 0.22})])
    width.main(["--results", str(tmp_path / "width"), "--variants", str(tmp_path / "children"),
                str(tmp_path / "fresh"), "--controls", str(tmp_path / "horizon"),
                "--robustness", str(tmp_path / "none"), "--docs", str(tmp_path / "docs")])
    text = (tmp_path / "docs" / "width.md").read_text()
    assert "| 12,800 member-steps | 32,000 member-steps |" in text
    assert "![Test loss against the member-step budget](width.png)" in text  # the figure, shown
    assert (tmp_path / "docs" / "width.png").stat().st_size > 0
    assert ('| budget-aware population (width="children"): ensemble (`ensemble_model()`) | '
            "not run | 0.209 ± 0.001 (n=2: 5,15) |") in text
    assert "| independent ensemble, probabilities averaged (`adam-decay-ensemble`) | not run " \
        "| 0.220 ± 0.001 (n=2: 5,15) |" in text
    # the targets, on the means over the seeds both have
    assert ('popdescent-budget-rt width="children" ensemble 0.2090 vs the independent '
            "ensemble (greedy) 0.2145 (seeds [5, 15]): met") in text
    # fresh members are the default width: their rows carry no label
    assert "popdescent-budget-rt ensemble 0.2230 vs the independent ensemble " \
        "(averaged) 0.2210 (seeds [5]): missed" in text
    assert 'width="children" ensemble 0.2090 at or below 0.20: missed' in text
    assert 'width="children" soup or best model 0.2145 at or below the single run 0.2240: met' \
        in text
    assert (tmp_path / "docs" / "width.png").stat().st_size > 10_000
    # the control is a row of its own and does not replace the plain independent ensemble
    assert ("| independent ensemble given run_steps=3840, probabilities averaged | not run | "
            "0.212 (n=1: 5) |") in text
    assert "| independent ensemble, probabilities averaged (`adam-decay-ensemble`) | not run " \
        "| 0.220 ± 0.001 (n=2: 5,15) |" in text
    assert ('popdescent-budget-rt width="children" ensemble 0.2100 vs adam-decay-ensemble '
            "run_steps=3840 (greedy) 0.2050 (seeds [5]): the population's share -0.0050") in text


def test_the_wrong_range_table_sets_the_range_tested_single_run_beside_the_mode(tmp_path):
    def quick(method, seed, loss):  # the mode's run with today's defaults
        used = dict(DEFAULT_BUDGET) if method == "popdescent-budget-rt" else None
        return _record(method, seed, loss, scale="quick", budget=used)

    _write(tmp_path / "robustness" / "too-small", [
        quick("adam-decay", 5, 0.683), quick("adam-decay-rt", 5, 0.220),
        quick("adam-decay-rt", 15, 0.222), quick("popdescent-budget-rt", 5, 0.221)])
    width.main(["--results", str(tmp_path / "none"), "--variants", "--controls", "--robustness",
                str(tmp_path / "robustness"), "--docs", str(tmp_path / "docs")])
    text = (tmp_path / "docs" / "width.md").read_text()
    assert "| method | too-small |" in text  # only the ranges that were run
    assert "| Adam + schedule (`adam-decay`) | 0.683 (n=1: 5) |" in text
    assert ("| the same, given the population's range test (`adam-decay-rt`) | "
            "0.221 ± 0.001 (n=2: 5,15) |") in text
    assert "| budget-aware population (default) | 0.221 (n=1: 5) |" in text


def test_the_tuners_best_trials_are_rows_beside_one_model(tmp_path):
    _write(tmp_path / "width", [_record("adam-decay", 5, 0.226, scale="middle")])
    _write(tmp_path / "tuners", [
        _record("hyperband", 5, 0.231, scale="middle"),
        _record("hyperband", 15, 0.229, scale="middle"),
        _record("optuna", 5, 0.240, scale="middle")])
    width.main(["--results", str(tmp_path / "width"), "--variants", str(tmp_path / "tuners"),
                "--controls", "--robustness", str(tmp_path / "none"),
                "--docs", str(tmp_path / "docs")])
    text = (tmp_path / "docs" / "width.md").read_text()
    assert ("| KerasTuner Hyperband (best trial, each an adam-decay run) (`hyperband`) | "
            "0.230 ± 0.001 (n=2: 5,15) |") in text
    assert "| Optuna TPE + Hyperband pruner (best trial, each an adam-decay run) (`optuna`) | " \
        "0.240 (n=1: 5) |" in text
    assert "BayesianOptimization" not in text  # only the tuners that ran
    assert "| middle: returned model | seed 5 | seed 15 |" in text
