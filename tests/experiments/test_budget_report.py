"""The budget-aware evidence report (`python -m experiments.budget_report`): it reads the
benchmark's and the robustness study's records and states the table, the targets and what the
budget-aware runs returned, as docs/budget_aware.md says them."""

import json

import pytest

from experiments.reports import budget


def _record(method, seed, loss, *, origin=0, rate=1e-3, extras=None, options=None,
            rungs=None, commit_early=None, restore_best_weights=None, cooldown_patience=None):
    record = {"method": method, "dataset": "fmnist", "seed": seed, "scale": "quick",
              "regularization": False, "test_loss": loss, "validation_loss": loss + 0.01,
              "gradient_steps": 3200, "options": options or {},
              "git_commit": "abcdef1234", "curve": [[640, loss + 0.1], [3200, loss]],
              "details": {"hyperparameters": {"learning_rate": rate},
                          "best_member_origin": origin, "own_gradient_steps": 2624,
                          "restarts": 0, "lineage": []}}
    if method in budget.BUDGET_AWARE:  # a run records the settings it used: today's defaults
        rungs = budget.DEFAULT_RUNGS if rungs is None else rungs
        commit_early = (budget.DEFAULT_BUDGET["commit_early"] if commit_early is None
                        else commit_early)
        if restore_best_weights is None:
            restore_best_weights = budget.DEFAULT_BUDGET["restore_best_weights"]
        elif restore_best_weights == "not recorded":
            restore_best_weights = None
        if cooldown_patience is None and restore_best_weights:
            cooldown_patience = budget.DEFAULT_BUDGET["cooldown_patience"]
        elif cooldown_patience == "not recorded":
            cooldown_patience = None
        width = budget.DEFAULT_BUDGET["width"] if cooldown_patience is not None else None
    else:
        width = None
    used = {name: value for name, value in (("rungs", rungs), ("commit_early", commit_early),
                                            ("restore_best_weights", restore_best_weights),
                                            ("cooldown_patience", cooldown_patience),
                                            ("width", width))
            if value is not None}
    if used:
        record["details"]["strategy"] = {"budget": used}
    if extras:
        record["extras"] = extras
    return record


def _write(path, records):
    path.mkdir(parents=True, exist_ok=True)
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def results(tmp_path):
    paper = [_record("adam", s, 0.25) for s in (5, 15, 24)]
    paper += [_record("adam-decay", s, v) for s, v in ((5, 0.22), (15, 0.22), (24, 0.23))]
    paper += [_record("popdescent", s, 0.36, extras={"ensemble": {"test_loss": 0.33}})
              for s in (5, 15, 24)]
    paper += [_record("popdescent-budget", s, v, origin=o)
              for s, v, o in ((5, 0.23, 0), (15, 0.22, 0), (24, 0.28, 2))]
    _write(tmp_path / "results", paper)
    _write(tmp_path / "robustness" / "too-small",
           [_record("adam-decay", 5, 0.68), _record("popdescent-budget", 5, 0.43),
            _record("popdescent-budget-rt", 5, 0.26)])
    _write(tmp_path / "robustness" / "too-large",
           [_record("adam-decay", 5, 2.30), _record("popdescent-budget", 5, 0.24)])
    return tmp_path


def test_the_report_states_mean_std_seeds_and_the_ensemble_row(results):
    groups = budget.load(results / "results", results / "robustness", "quick")
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    assert "| Adam + budget schedule | 0.223 ± 0.006 (n=3: 5,15,24) | 0.680 (n=1: 5) | " \
           "2.300 (n=1: 5) |" in text
    assert "| PopDescent (paper), ensemble of final elites | 0.330 ± 0.000 (n=3: 5,15,24) |" \
        in text
    assert "| **PopDescent, budget-aware (default: + range test)** | not run | 0.260 (n=1: 5) | " \
           "not run |" in text


def test_the_targets_are_checked_on_the_means(results):
    groups = budget.load(results / "results", results / "robustness", "quick")
    lines = budget.targets(groups, "fmnist")
    # 0.2433 vs the better single run, adam-decay's 0.2233
    assert lines[0] == ("- paper range, PopDescent, budget-aware, range_test=False: 0.243 vs "
                        "the better single run 0.223: missed (+0.0200)")
    assert ("- paper range, PopDescent, budget-aware, range_test=False: below PopDescent "
            "(paper) (0.360): met") in lines
    small = [line for line in lines if line.startswith("- too small")]
    # the range test's 0.26 is within 10 % of 0.243 x 1.1 = 0.268 (it has no paper-range run
    # of its own here, so the plain mode's stands in); the plain mode's 0.43 not
    assert "range test): 0.260, within 10 % of the paper-range 0.243: met" in small[1]
    assert "range_test=False: 0.430, within 10 % of the paper-range 0.243: missed" in small[0]
    assert all("below Adam + budget schedule: met" in line for line in small)


def test_each_variant_is_held_to_its_own_paper_range_result(results):
    paper = results / "results" / "records.jsonl"
    with open(paper, "a") as stream:
        for seed in (5, 15, 24):
            stream.write(json.dumps(_record("popdescent-budget-rt", seed, 0.20)) + "\n")
    groups = budget.load(results / "results", results / "robustness", "quick")
    lines = budget.targets(groups, "fmnist")
    assert ("- paper range, PopDescent, budget-aware (default: + range test): 0.200 vs the "
            "better single run 0.223: met (-0.0233)") in lines
    # 0.26 > 1.1 x 0.20: missed against its own paper-range result, not the plain mode's
    assert any("range test): 0.260, within 10 % of the paper-range 0.200: missed" in line
               for line in lines)


def test_the_choices_table_names_each_budget_aware_run_and_its_code(results):
    groups = budget.load(results / "results", results / "robustness", "quick")
    rows = budget.choices(groups, "fmnist")
    # Adam's curve of seed 24 runs from 0.35 at 640 steps to 0.25 at 3,200: 0.2725 at the
    # survivor's 2,624 own steps (0.2725 in binary is just below, printed 0.272), beside
    # the survivor's own validation loss (0.290)
    assert ("| paper | popdescent-budget | 24 | 0.280 | 2 | 1.00e-03 | 2624 | 0 | no checkpoint "
            "| none | abcdef1 | "
            "0.290 | 0.272 |") in rows
    assert sum("| too-small | popdescent-budget-rt | 5 |" in row for row in rows) == 1


def test_runs_with_other_rungs_than_todays_default_are_a_variant_row_never_averaged_in(
        results):
    earlier = [[0.1, 2], [0.3, 1]]
    assert budget.DEFAULT_RUNGS != earlier
    _write(results / "variants", [
        _record("popdescent-budget-rt", 5, 0.21, options={"rungs": budget.DEFAULT_RUNGS},
                rungs=budget.DEFAULT_RUNGS),
        _record("popdescent-budget-rt", 15, 0.23, rungs=earlier)])
    groups = budget.load(results / "results", results / "robustness", "quick",
                         results / "variants")
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    # given today's default as an option: a default run; run with the earlier rungs: a variant
    assert "| **PopDescent, budget-aware (default: + range test)** | 0.210 (n=1: 5) |" in text
    assert ("| popdescent-budget-rt rungs=[[0.1, 2], [0.3, 1]] (variant) | 0.230 (n=1: 15) "
            "| not run | not run |") in text
    assert ("- paper range, popdescent-budget-rt rungs=[[0.1, 2], [0.3, 1]] (variant): 0.230 "
            "vs the better single run 0.223: missed (+0.0067)") in budget.targets(groups,
                                                                                   "fmnist")


def test_a_variant_from_a_wrong_range_is_held_to_its_own_paper_range_result(results):
    earlier = [[0.1, 2], [0.3, 1]]
    _write(results / "variants", [_record("popdescent-budget-rt", 5, 0.21, rungs=earlier)])
    study = {"lr_range": [1e-6, 1e-5], "lr_bounds": [1e-7, 1.0]}
    _write(results / "variants" / "robustness" / "too-small",
           [_record("popdescent-budget-rt", 5, 0.24, options=study, rungs=earlier)])
    groups = budget.load(results / "results", results / "robustness", "quick",
                         results / "variants")
    lines = budget.targets(groups, "fmnist")
    # 0.24 > 1.1 x 0.21 = 0.231: missed against the variant's own 0.21, named without the
    # study's range options
    assert ("- too small [1e-6, 1e-5], popdescent-budget-rt rungs=[[0.1, 2], [0.3, 1]] "
            "(variant): 0.240, within 10 % of the paper-range 0.210: missed; below Adam + "
            "budget schedule: met") in lines


def test_a_run_that_committed_early_against_todays_default_is_a_variant_row(results):
    default = budget.DEFAULT_BUDGET["commit_early"]
    # each variant in its own --out (a record's key has no options), read together
    _write(results / "committing", [
        _record("popdescent-budget-rt", 5, 0.21, rungs=budget.DEFAULT_RUNGS,
                commit_early=not default, options={"commit_early": not default})])
    _write(results / "variants", [
        _record("popdescent-budget-rt", 15, 0.22, rungs=budget.DEFAULT_RUNGS,
                commit_early=default, options={"commit_early": default})])
    groups = budget.load(results / "results", results / "robustness", "quick",
                         [results / "variants", results / "committing"])
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    assert "| **PopDescent, budget-aware (default: + range test)** | 0.220 (n=1: 15) |" in text
    assert (f"| popdescent-budget-rt commit_early={str(not default).lower()} (variant) | "
            f"0.210 (n=1: 5) | not run | not run |") in text


def test_a_run_made_before_the_survivor_checkpoint_existed_is_a_variant_row(results):
    # it recorded no restore_best_weights: it returned its final weights
    _write(results / "older", [_record("popdescent-budget-rt", 5, 0.878,
                                       restore_best_weights="not recorded")])
    guarded = _record("popdescent-budget-rt", 15, 0.22)
    guarded["details"]["restored_best"] = {"gradient_steps": 640, "loss": 0.23}
    _write(results / "variants", [guarded])
    groups = budget.load(results / "results", results / "robustness", "quick",
                         [results / "variants", results / "older"])
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    assert "| **PopDescent, budget-aware (default: + range test)** | 0.220 (n=1: 15) |" in text
    assert ("| popdescent-budget-rt restore_best_weights=false (variant) | 0.878 (n=1: 5) |"
            in text)
    # which weights each returned: a checkpoint's member-step, or none for the older run
    assert "| paper | popdescent-budget-rt | 15 | 0.220 | 0 (protected, compiled rate) | " \
           "1.00e-03 | 2624 | 0 | 640 |" in text
    assert "| 2624 | 0 | no checkpoint | none |" in text


def test_a_run_made_before_the_cool_down_is_a_variant_row_and_a_cooled_run_shows_its_span(
        results):
    _write(results / "older", [_record("popdescent-budget-rt", 5, 0.26,
                                       cooldown_patience="not recorded")])
    cooled = _record("popdescent-budget-rt", 15, 0.22)
    cooled["gradient_steps"] = 2400
    cooled["details"]["restored_best"] = {"gradient_steps": 1280, "loss": 0.23}
    cooled["details"]["cooldown"] = {"gradient_steps": 1920, "length": 480,
                                     "from_multiplier": 1.0}
    _write(results / "variants", [cooled])
    groups = budget.load(results / "results", results / "robustness", "quick",
                         [results / "variants", results / "older"])
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    assert "| **PopDescent, budget-aware (default: + range test)** | 0.220 (n=1: 15) |" in text
    assert "| popdescent-budget-rt cooldown_patience=null (variant) | 0.260 (n=1: 5) |" in text
    assert "| 2624 | 0 | 1280 | 1920-2400 |" in text


def test_another_scale_is_rendered_to_files_of_its_own(tmp_path):
    """The 32,000-step runs (scale "paper") get docs/budget_aware_paper.*, and leave the
    quick-scale table in docs/budget_aware.md as it was."""
    long_runs = [{**_record(method, 5, loss), "scale": "paper"}
                 for method, loss in (("adam", 0.248), ("popdescent", 0.244))]
    _write(tmp_path / "results", long_runs + [_record("adam", 5, 0.25)])
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "budget_aware.md").write_text("the quick-scale table")
    budget.main(["--results", str(tmp_path / "results"), "--robustness",
                 str(tmp_path / "robustness"), "--variants", "--sweep", str(tmp_path / "none"),
                 "--scale", "paper", "--docs", str(docs)])
    text = (docs / "budget_aware_paper.md").read_text()
    assert "evidence at the `paper` scale" in text
    assert "| Adam, constant rate | 0.248 (n=1: 5) |" in text
    assert "| PopDescent (paper) | 0.244 (n=1: 5) |" in text
    assert (docs / "budget_aware_paper.png").exists()
    assert (docs / "budget_aware.md").read_text() == "the quick-scale table"


def test_a_named_table_leaves_the_committed_page_alone(tmp_path):
    """--name renders other records (the tuners beside the population) to a page of their own."""
    _write(tmp_path / "results", [_record("adam-decay", 5, 0.224)])
    _write(tmp_path / "tuners", [_record("hyperband", 5, 0.231)])
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "budget_aware.md").write_text("the quick-scale table")
    budget.main(["--results", str(tmp_path / "results"), "--robustness",
                 str(tmp_path / "robustness"), "--variants", str(tmp_path / "tuners"),
                 "--sweep", str(tmp_path / "none"), "--docs", str(docs),
                 "--name", "tuners_quick", "--title", "The tuners beside one model"])
    text = (docs / "tuners_quick.md").read_text()
    assert text.startswith("# The tuners beside one model\n")
    assert (docs / "tuners_quick.png").exists() and not (docs / "tuners_quick_bias.png").exists()
    assert f"| {budget.LABELS['hyperband']} | 0.231 (n=1: 5) |" in text
    assert (docs / "budget_aware.md").read_text() == "the quick-scale table"


def test_the_figure_draws_the_loss_of_the_model_a_guarded_run_would_return():
    record = _record("popdescent-budget-rt", 5, 0.26)
    record["curve"] = [[640, 0.5], [1280, 0.30], [1920, 0.28], [2560, 0.40], [3200, 0.28]]
    # before the last shrink the fittest member; from it on the survivor's best so far
    record["details"].update(shrinks=[{"gradient_steps": 1280}],
                             restored_best={"gradient_steps": 1920, "loss": 0.28})
    assert [p[1] for p in budget.returned_model_curve(record)] == [0.5, 0.30, 0.28, 0.28, 0.28]
    record["details"]["restored_best"] = None  # restore_best_weights=False: as recorded
    assert budget.returned_model_curve(record) == record["curve"]


def test_the_width_names_a_variant_only_where_a_survivor_cooled_down():
    used = {"rungs": budget.DEFAULT_RUNGS, "commit_early": True, "restore_best_weights": True,
            "cooldown_patience": 3, "width": "other-than-default"}
    record = {"method": "popdescent-budget-rt", "options": {},
              "details": {"strategy": {"budget": used}, "cooldown": None}}
    assert budget.variant_name(record) == "popdescent-budget-rt"  # never reached the width
    record["details"]["cooldown"] = {"gradient_steps": 9600, "length": 640}
    assert budget.variant_name(record) == 'popdescent-budget-rt width="other-than-default"'


@pytest.mark.parametrize("runs, rows", [
    ((("es-single", 0.30), ("pes", 0.31)),
     ("| ES-Single | 0.300 (n=1: 5) | not run | not run |",
      "| PES | 0.310 (n=1: 5) | not run | not run |")),
    ((("hyperband", 0.26), ("optuna", 0.27)),
     ("| KerasTuner Hyperband (best trial, each an adam-decay run) | 0.260 (n=1: 5) | not run | "
      "not run |",
      "| Optuna TPE + Hyperband pruner (best trial, each an adam-decay run) | 0.270 (n=1: 5) |")),
], ids=["gradient-estimating strategies", "tuners Keras users pick"])
def test_other_methods_have_rows_of_their_own_and_unrun_ones_none(results, runs, rows):
    with open(results / "results" / "records.jsonl", "a") as stream:
        for method, loss in runs:
            stream.write(json.dumps(_record(method, 5, loss)) + "\n")
    groups = budget.load(results / "results", results / "robustness", "quick")
    text = budget.write_markdown(groups, results / "budget_aware.md", "quick")
    for row in rows:
        assert row in text
    assert "BayesianOptimization" not in text  # nobody ran it: no row
