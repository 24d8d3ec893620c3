"""experiments.static_search end to end at smoke scale on the sinewave task (seconds): one
record per (task, method, seed) with the whole trial budget, best-so-far curves that only
improve, the report written, and a rerun that trains nothing."""

import json

import pytest

from experiments import static_search

METHODS = ["random", "ga"]
CONFIG = static_search.SCALES["smoke"]
BUDGET = CONFIG["population_size"] * CONFIG["generations"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("static_search")
    argv = ["--scale", "smoke", "--tasks", "sinewave", "--methods", *METHODS,
            "--results", str(root / "results"), "--docs", str(root / "docs")]
    static_search.main(argv)
    return root, argv


def records(root):
    path = root / "results" / "smoke" / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_record_per_method_with_the_whole_trial_budget(searched):
    root, _ = searched
    found = records(root)
    assert sorted(r["method"] for r in found) == sorted(METHODS)
    for record in found:
        assert (record["task"], record["seed"], record["scale"]) == ("sinewave", 1, "smoke")
        assert record["budget"] == len(record["trials"]) == BUDGET
        assert len(record["best_val"]) == len(record["best_test"]) == BUDGET


def test_best_so_far_validation_only_improves_and_reports_the_best_trials_test(searched):
    root, _ = searched
    for record in records(root):
        curve = [value for value in record["best_val"] if value is not None]
        assert curve and curve == sorted(curve, reverse=True)  # MSE: lower is better
        scored = [t for t in record["trials"] if t["val"] is not None]
        best = min(scored, key=lambda trial: trial["val"])
        assert record["best_val"][-1] == best["val"]
        assert record["best_test"][-1] == best["test"]


def test_the_report_is_rendered_from_the_records(searched):
    root, _ = searched
    text = (root / "docs" / "static_search.md").read_text()
    assert "GeneticSearch against random search" in text and f"Budget {BUDGET} trials" in text
    assert (root / "docs" / "static_search.png").stat().st_size > 0


def test_a_rerun_skips_finished_runs(searched):
    root, argv = searched
    before = (root / "results" / "smoke" / "records.jsonl").read_text()
    static_search.main(argv)
    assert (root / "results" / "smoke" / "records.jsonl").read_text() == before
