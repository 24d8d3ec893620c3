"""The benchmark harness end to end: smoke-scale PopDescent on the real FMNIST and CIFAR-10
files through the CLI entry point, the record it writes, resuming, --force, atomic writes."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import benchmark, methods, report
from experiments.core import contract, records as records_module
from experiments.core.data import SMOKE_DATA
from experiments.core.records import RECORDS_FILE, read_records, write_record
from tests.helpers.data import skip_without_data

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("POPDESCENT_DATA") or REPO_ROOT.parent / "shared" / "datasets")
# The harness's own tests train the tiny MLP (`--option model=mlp`), not the paper's CNNs.
TINY = ["--option", "model=mlp"]
SMOKE = ["--method", "popdescent", "--seeds", "5", "--scale", "smoke", "--quiet", *TINY]


def _with_data(monkeypatch):
    if not (SHARED_DATA / "cifar-10-batches-py").is_dir():
        skip_without_data(f"CIFAR-10 not found under {SHARED_DATA}: set POPDESCENT_DATA")
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        skip_without_data("apt-get install dataset-fashion-mnist")
    monkeypatch.setenv("POPDESCENT_DATA", str(SHARED_DATA))


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory):
    """One smoke run of PopDescent on both datasets, paper protocol included."""
    out = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _with_data(monkeypatch)
        argv = ["--dataset", "fmnist", "cifar10", *SMOKE, "--protocol", "paper", "--out", str(out)]
        assert benchmark.main(argv) == 0
    return out


def _records(out):
    return {r["dataset"]: r for r in read_records(out / RECORDS_FILE)}


def test_smoke_writes_one_record_per_dataset_with_the_contract_fields(smoke_out):
    records = _records(smoke_out)
    assert sorted(records) == ["cifar10", "fmnist"]
    budget = contract.get_budget("fmnist", "smoke")
    for dataset, record in records.items():
        assert (record["method"], record["seed"], record["scale"]) == ("popdescent", 5, "smoke")
        assert record["regularization"] is False
        assert record["gradient_steps"] == budget.member_steps == record["budget"]["member_steps"]
        assert record["wall_time_s"] > 0 and record["member_steps_per_second"] > 0
        assert np.isfinite([record["test_loss"], record["train_loss"]]).all()
        assert 0 <= record["test_accuracy"] <= 1
        assert record["test_images"] == SMOKE_DATA["test"]
        assert record["machine"]["tensorflow"] and record["machine"]["cpu"]
    assert records["cifar10"]["dataset_label"] == "CIFAR-10 (JPEG copy)"


def test_curve_has_one_point_per_iteration_at_the_steps_taken_so_far(smoke_out):
    budget = contract.get_budget("fmnist", "smoke")
    per_iteration = budget.steps_per_iteration * budget.population_size
    for record in _records(smoke_out).values():
        steps = [point[0] for point in record["curve"]]
        assert steps == [per_iteration * (i + 1) for i in range(budget.iterations)]


def test_returned_model_is_the_member_the_last_curve_point_measured(smoke_out):
    # The last curve point is the validation loss of the fittest member after the last
    # selection; the harness measures the returned model on the same validation half.
    for record in _records(smoke_out).values():
        assert record["curve"][-1][1] == pytest.approx(record["validation_loss"], rel=1e-5)
        final_fitness = record["details"]["final_fitness"]
        fitness = np.array([np.nan if f is None else f for f in final_fitness])
        assert record["details"]["best_member"] == int(np.nanargmax(fitness))


def test_paper_protocol_is_labelled_and_kept_beside_the_honest_numbers(smoke_out):
    for record in _records(smoke_out).values():
        paper = record["paper_protocol"]
        assert "selection on test data" in paper["note"]
        assert paper["candidates"] == contract.get_budget("fmnist", "smoke").population_size
        assert np.isfinite(record["test_loss"]) and np.isfinite(paper["test_loss"])


def test_rerun_skips_finished_records(smoke_out, monkeypatch, capsys):
    _with_data(monkeypatch)
    before = (smoke_out / RECORDS_FILE).read_bytes()
    argv = ["--dataset", "fmnist", "cifar10", "--method", "popdescent", "--seeds", "5",
            "--scale", "smoke", "--out", str(smoke_out)]
    assert benchmark.main(argv + TINY) == 0
    assert "skipping 2 finished run(s)" in capsys.readouterr().out
    assert (smoke_out / RECORDS_FILE).read_bytes() == before
    # The same runs with other options are another variant, not finished ones: refused
    # before any training rather than skipped with the first variant's result.
    with pytest.raises(ValueError, match=r"options \{'model': 'mlp'\}, not \{\}: give this "
                                         r"variant its own --out"):
        benchmark.main(argv)
    assert (smoke_out / RECORDS_FILE).read_bytes() == before


def test_force_reruns_and_replaces_the_record(smoke_out, monkeypatch):
    _with_data(monkeypatch)
    old = _records(smoke_out)
    assert benchmark.main(["--dataset", "fmnist", *SMOKE, "--force", "--out", str(smoke_out)]) == 0
    new = _records(smoke_out)
    assert len(read_records(smoke_out / RECORDS_FILE)) == 2
    assert new["fmnist"]["run_id"] != old["fmnist"]["run_id"]
    assert new["cifar10"]["run_id"] == old["cifar10"]["run_id"]


def test_regularization_tunes_an_l2_rate_within_its_range(tmp_path, monkeypatch):
    _with_data(monkeypatch)
    argv = ["--dataset", "fmnist", *SMOKE, "--regularization", "--out", str(tmp_path)]
    assert benchmark.main(argv) == 0
    (record,) = read_records(tmp_path / RECORDS_FILE)
    assert record["regularization"] is True
    for member in record["details"]["population_hyperparameters"]:
        assert contract.L2_RANGE[0] <= member["l2"] <= contract.L2_RANGE[1]
        assert contract.LEARNING_RATE_RANGE[0] <= member["learning_rate"] <= 1e-2


def test_report_turns_smoke_output_into_a_table_and_a_png(smoke_out, tmp_path):
    assert report.main([str(smoke_out), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "table1.md").read_text()
    assert "| Fashion-MNIST no-reg | PopDescent |" in table
    assert "| CIFAR-10 (JPEG copy) no-reg | PopDescent |" in table
    assert (tmp_path / "figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- bad input
def test_unknown_method_is_a_clear_error_before_any_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--dataset", "fmnist", "--method", "nosuch", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--method" in error and "'nosuch'" in error and "popdescent" in error
    assert not (tmp_path / RECORDS_FILE).exists()


def test_registered_but_unwritten_method_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(methods.METHODS, "future", "baselines.not_written_yet:run")
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--dataset", "fmnist", "--method", "popdescent", "future",
                        "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "'future'" in error and "does not exist" in error
    assert "baselines.not_written_yet" in error


def test_budget_rejects_an_unknown_scale_naming_the_argument():
    with pytest.raises(ValueError, match=r"scale must be one of .*'smoke'.*got 'huge'"):
        contract.get_budget("fmnist", "huge")


def test_paper_budgets_are_the_papers_member_steps():
    assert contract.get_budget("fmnist", "paper").member_steps == 32_000
    assert contract.get_budget("cifar10", "paper").member_steps == 25_600
    for dataset in contract.DATASETS:
        small, paper = contract.get_budget(dataset, "small"), contract.get_budget(dataset, "paper")
        assert small.member_steps < paper.member_steps
        assert (small.population_size, small.elites, small.batch_size, small.cv_batch_size) == (
            5, 3, 64, 640)


# ----------------------------------------------------------------------------- atomic writes
def _record(seed, test_loss=0.5):
    return {"method": "popdescent", "dataset": "fmnist", "seed": seed, "scale": "smoke",
            "regularization": False, "test_loss": test_loss}


def test_interrupted_write_leaves_the_old_records_intact(tmp_path, monkeypatch):
    path = tmp_path / RECORDS_FILE
    write_record(path, _record(5))
    before = path.read_bytes()

    def crash(source, destination):
        raise OSError("killed before the rename")

    monkeypatch.setattr(records_module.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        write_record(path, _record(15))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".lock"]


def test_leftover_partial_temp_file_does_not_corrupt_results(tmp_path):
    path = tmp_path / RECORDS_FILE
    write_record(path, _record(5))
    (tmp_path / f".{path.name}.crashed.tmp").write_text('{"method": "popdesc')
    write_record(path, _record(15))
    assert [r["seed"] for r in read_records(path)] == [5, 15]


def test_write_record_replaces_the_record_with_the_same_key(tmp_path):
    path = tmp_path / RECORDS_FILE
    write_record(path, _record(5, test_loss=0.5))
    write_record(path, _record(15))
    write_record(path, _record(5, test_loss=0.25))
    records = read_records(path)
    assert [(r["seed"], r["test_loss"]) for r in records] == [(15, 0.5), (5, 0.25)]


def test_records_are_strict_json_with_non_finite_losses_as_null(tmp_path):
    path = tmp_path / RECORDS_FILE
    write_record(path, _record(5, test_loss=float("nan")))
    line = path.read_text().strip()
    assert json.loads(line, parse_constant=lambda name: pytest.fail(name))["test_loss"] is None


@pytest.mark.parametrize("method", ["popdescent", "esgd", "pes"])
def test_run_killed_mid_training_resumes_from_its_backup_to_the_same_record(
        method, tmp_path, monkeypatch):
    # Smoke scale has 2 iterations and backs up after each: killed after the first backup,
    # the same command run again restores iteration 1 and trains only iteration 2.
    _with_data(monkeypatch)
    argv = ["--dataset", "fmnist", "--method", method, "--seeds", "5", "--scale", "smoke",
            "--quiet", *TINY]
    crashed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "helpers" / "crash_after_backup.py"), "1",
         "experiments.benchmark", *argv, "--out", str(tmp_path / "resumed")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        # A script's own folder heads sys.path; `experiments` is found from the clone's root.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))},
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert not (tmp_path / "resumed" / RECORDS_FILE).exists()
    assert benchmark.main([*argv, "--out", str(tmp_path / "resumed")]) == 0
    assert benchmark.main([*argv, "--out", str(tmp_path / "uninterrupted")]) == 0

    resumed, = read_records(tmp_path / "resumed" / RECORDS_FILE)
    uninterrupted, = read_records(tmp_path / "uninterrupted" / RECORDS_FILE)
    assert resumed["resumed"]["iteration"] == 1 and resumed["resumed"]["seconds_before"] > 0
    assert uninterrupted["resumed"] is None
    for field in ("test_loss", "validation_loss", "gradient_steps"):
        assert resumed[field] == uninterrupted[field]
    assert [p[:2] for p in resumed["curve"]] == [p[:2] for p in uninterrupted["curve"]]
    assert resumed["details"]["lineage"] == uninterrupted["details"]["lineage"]
    assert resumed["wall_time_s"] >= resumed["resumed"]["seconds_before"]
    assert not (tmp_path / "resumed" / "work").exists()  # removed once the record is written
