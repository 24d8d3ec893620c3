"""The regularized benchmark's page: cells are means over the seeds that ran, rows nobody ran
are left out, the rung and early-ranking measurements read the records they claim to."""

import json

import pytest

from experiments.reports import regularization as report


def record(method, seed, loss, guess=None, **fields):
    return {"method": method, "dataset": "fmnist", "seed": seed, "scale": "quick",
            "regularization": False, "options": {"guess": guess} if guess else {},
            "test_loss": loss, "gradient_steps": 3200, **fields}


def write(directory, *records):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def population(seed, loss, dropout, kept, left):
    lineage = [{"gradient_steps": 160, "dropout": dropout, "augmentation": [1.0] * len(dropout)}]
    details = {"lineage": lineage, "shrinks": [{"gradient_steps": 160, "kept": kept,
                                                "left": left}],
               "exported_hyperparameters": {"dropout": [[0.6, 3], [0.5, 2]],
                                            "learning_rate": [[1e-3, 5]]}}
    return record("popdescent-budget", seed, loss, "bad", details=details,
                  extras={"ensemble": {"test_loss": loss - 0.01}})


@pytest.fixture
def records(tmp_path):
    curve = lambda first, last: [[320, first, 1.0], [3200, last, 9.0]]  # noqa: E731
    write(tmp_path / "reference", record("adam-decay", 5, 0.22, curve=curve(0.5, 0.22)),
          record("adam-decay", 15, 0.24, curve=curve(0.5, 0.24)))
    write(tmp_path / "regularization" / "quick_bad",
          record("adam-decay", 5, 0.40, "bad", curve=curve(0.7, 0.43)),
          record("adam-decay", 15, 0.44, "bad", curve=curve(0.4, 0.20)),
          population(5, 0.30, [0.2, 0.8, 0.5], kept=[0], left=[1, 2]),
          population(15, 0.34, [0.4, 0.6, 0.9], kept=[0, 1], left=[7]))  # left: origins
    return tmp_path


def test_cells_are_means_over_the_seeds_that_ran_and_unrun_rows_are_left_out(records):
    lines = report.table(records / "regularization", records / "reference")
    text = "\n".join(lines)
    assert "| one model, no dropout or augmentation (`adam-decay`) | 0.230 ± 0.014 (2; 3,200)" in text
    guess_row = next(line for line in lines if line.startswith("| one model at the guess"))
    assert guess_row.endswith("| not run | 0.420 ± 0.028 (2; 3,200) |")
    assert not any("Hyperband" in line for line in lines)  # nobody ran it


def test_the_rungs_kept_and_culled_regularization_is_read_from_the_lineage(records):
    bias = report.rung_bias(report.load(records / "regularization" / "quick_bad"))
    assert bias["shrinks"] == 2
    assert bias["kept_dropout"] == pytest.approx((0.2 + 0.4 + 0.6) / 3)
    assert bias["culled_dropout"] == pytest.approx((0.8 + 0.5 + 0.9) / 3)


def test_single_runs_are_ranked_at_the_first_check_and_at_the_end(records):
    runs = {name: {r["seed"]: r for r in report.load(records / directory)
                   if r["method"] == "adam-decay"}
            for name, directory in (("none", "reference"), ("bad", "regularization/quick_bad"))}
    rows = report.early_and_final_ranks(runs)
    assert [row["seed"] for row in rows] == [5, 15]
    assert rows[1]["early"] == ["bad", "none"] and rows[1]["final"] == ["bad", "none"]
    assert rows[0]["early"] == ["none", "bad"]


def test_the_page_and_its_schedule_figure_are_written(records, tmp_path):
    out = tmp_path / "page.md"
    text = report.render(records / "regularization", records / "reference", out)
    assert out.read_text() == text
    assert (tmp_path / "page.png").exists() and "![schedules](page.png)" in text


def test_the_middle_table_reads_ensemble_and_soup_from_extras_and_names_unrun_rows(tmp_path):
    middle = lambda method, seed, loss, **fields: dict(  # noqa: E731
        record(method, seed, loss, "good", **fields), scale="middle", gradient_steps=12800)
    write(tmp_path / "middle_good", middle("adam-decay", 5, 0.25),
          middle("popdescent-budget", 5, 0.24, details={"own_gradient_steps": 9000,
                                                         "hyperparameters": {"dropout": 0.2}},
                 extras={"ensemble": {"test_loss": 0.20}, "soup": {"test_loss": 0.22}}),
          middle("popdescent-budget", 15, 0.26, details={"cooldown": {"gradient_steps": 7000}},
                 extras={"ensemble": {"test_loss": 0.22}, "soup": {"test_loss": 0.24}}))
    lines = report.middle_table(tmp_path, tmp_path / "no-reference")
    row = {line.split(" | ")[0][2:]: line.split(" | ")[1].rstrip(" |") for line in lines[2:]}
    assert row["population: `best_model()`"] == "0.250 ± 0.014 (2; 12,800)"
    assert row["population: `ensemble_model()`"] == "0.210 ± 0.014 (2; 12,800)"
    assert row["population: `soup_model()`"] == "0.230 ± 0.014 (2; 12,800)"
    assert row["control: random selection"] == "not run"
    assert row["one model, no dropout or augmentation (`adam-decay`)"] == "not run"
    rows = report.survivors(report.load(tmp_path / "middle_good"))
    assert [(r["seed"], r["cooled_at"], r["own_steps"]) for r in rows] == [
        (5, None, 9000), (15, 7000, None)]


def test_ranks_at_a_horizon_use_the_last_check_before_it():
    runs = {"none": {5: {"curve": [[640, 0.40, 0], [2560, 0.30, 0], [6400, 0.26, 0]]}},
            "good": {5: {"curve": [[640, 0.50, 0], [2560, 0.33, 0], [12800, 0.22, 0]]}}}
    [row] = report.ranks_at(runs, (1000, 2560, None))
    assert [[name for name, _ in order] for order in row["orders"]] == [
        ["none", "good"], ["none", "good"], ["good", "none"]]
    assert row["orders"][2][0] == ("good", 0.22)


def test_the_annealed_order_is_by_mean_test_loss_over_seeds():
    runs = {"none": {5: {"test_loss": 0.22}, 15: {"test_loss": 0.23}},
            "good guess": {5: {"test_loss": 0.20}, 15: {"test_loss": 0.30}},
            "bad guess": {}}
    assert report.annealed_order(runs) == [("none", 0.225), ("good guess", 0.25)]


def test_the_cifar_table_reads_its_own_directories_and_shows_the_rows_the_issue_asks(records):
    write(records / "regularization" / "cifar_quick_good",
          dict(record("adam-decay", 5, 0.90, "good"), dataset="cifar10", gradient_steps=2560))
    lines = report.table(records / "regularization", records / "reference", "quick", "cifar10",
                         report.CIFAR_REQUIRED)
    assert lines[0].startswith("| returned model (CIFAR-10,")
    rows = {line.split(" | ")[0][2:]: line for line in lines[2:]}
    assert rows["one model at the guess (`adam-decay`: schedule, cool-down)"].endswith(
        "| 0.900 (1; 2,560) | not run |")
    assert rows["control: random selection, narrow prior"].endswith("| not run | not run |")
    assert "Bayesian optimization, same space (best trial)" not in rows  # not required
    assert "0.220" not in rows["one model, no dropout or augmentation (`adam-decay`)"]  # FMNIST's


def test_without_a_measured_horizon_the_independent_ensemble_is_said_to_be_one_run(tmp_path):
    write(tmp_path / "middle_good", dict(record("popdescent-budget", 5, 0.22, "good",
                                                details={}), scale="middle"))
    lines = report.middle_table(tmp_path, tmp_path / "no-reference")
    row = next(line for line in lines if "independent ensemble" in line)
    assert "none measured a horizon" in row
    write(tmp_path / "middle_good", dict(record("popdescent-budget", 5, 0.22, "good",
                                                details={"cooldown": {"gradient_steps": 7000}}),
                                         scale="middle"))
    row = next(line for line in report.middle_table(tmp_path, tmp_path / "no-reference")
               if "independent ensemble" in line)
    assert row.endswith("| not run |")
