"""The ablation (Table 2), the sensitivity (Tables 3-4) and the one-command reproduction, at
smoke scale on tiny budgets (the ablation and sensitivity on the "mlp" stand-in, Table 1 on
the paper's CNN): the rows really switch PopDescent's behaviour, the sensitivity table gives
the std as % of the mean, results.md is rendered, and a rerun skips every finished record."""

import json
import shutil

import keras
import numpy as np
import pytest

from experiments import ablation, reproduce, sensitivity
from experiments.core.models import build_model
from experiments.methods import variants
from experiments.core import contract
from experiments.core.data import SMOKE_DATA, load_splits
from popdescent import Population
from popdescent.population import members as members_lib
from tests.helpers.data import skip_without_data

ARGUMENTS = ["--scale", "smoke", "--methods", "popdescent", "--datasets", "fmnist",
             "--model", "mlp"]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    for dataset in contract.DATASETS:
        try:
            load_splits(dataset, "smoke")
        except FileNotFoundError as error:
            skip_without_data(f"{dataset} files not found: {error}")
    out = tmp_path_factory.mktemp("reproduce")
    assert reproduce.main([*ARGUMENTS, "--out", str(out), "--quiet"]) == 0
    return out


def by_variant(directory):
    return {record["variant"]: record for record in variants.read_experiment(directory)}


def test_results_md_has_every_table_with_the_papers_numbers_and_the_figures(reproduced):
    docs = reproduced / "docs"
    text = (docs / "results.md").read_text()
    for heading in ("## Table 1", "## Table 2", "## Tables 3-4", "## Figures",
                    "## Ordering of methods"):
        assert heading in text
    assert "Not run yet" not in text
    assert "0.249 ± 0.020" in text  # Table 1, PopDescent FMNIST, paper
    assert "0.345 ± 0.006" in text and "16.35%" in text  # Tables 2 and 3, paper
    assert "![figure1](figure1.png)" in text and (docs / "figure1.png").stat().st_size > 0
    assert not (reproduced / "ablation" / "work").exists()


def test_ablation_rows_switch_randomization_cv_selection_regularization_and_preset(reproduced):
    records = by_variant(reproduced / "ablation")
    assert set(records) == set(ablation.ROW_NAMES)
    for row in ablation.ROWS:
        record = records[row.name]
        strategy = record["details"]["strategy"]
        assert strategy["mutate"] is row.randomization
        assert strategy["cross_validation"] is row.cross_validation
        assert record["regularization"] is row.regularization
        assert ("l2" in record["details"]["priors"]) is row.regularization
        assert record["details"]["l2_layers"] is None  # L2 on every layer's kernel
        assert record["budget"]["population_size"] == 4 and record["budget"]["elites"] == 2
        assert record["data"]["train"] == SMOKE_DATA["train"]
    reference = records["reference-preset"]["details"]
    assert set(reference["priors"]) == {"loss_scale", "reg_constant", "l2"}
    assert reference["priors"]["reg_constant"]["class_name"] == "Inert"
    assert reference["strategy"]["weight_noise_mode"] == "scalar"
    assert reference["strategy"]["hyperparameter_noise_base"] == 2.0
    assert records["full"]["details"]["strategy"]["weight_noise_mode"] == "per_weight"


def test_no_randomization_leaves_every_hyperparameter_at_its_initial_rate(reproduced):
    records = by_variant(reproduced / "ablation")
    frozen = records["no-randomization"]["details"]
    assert frozen["replacements"] > 0  # selection still copies members
    for entry in frozen["lineage"]:
        np.testing.assert_allclose(entry["learning_rate"], 1e-3, rtol=1e-6)
        np.testing.assert_allclose(entry["l2"], 1e-3, rtol=1e-6)
    mutated = records["full"]["details"]["lineage"]
    rates = np.concatenate([entry["learning_rate"] for entry in mutated])
    assert np.abs(np.log10(rates) + 3).max() > 1e-3  # mutation moved the rates


def test_ablation_penalty_is_build_models_all_layer_l2():
    model = build_model("mlp", regularization="all", l2=1e-3, seed=0)
    penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    model.compile(optimizer="adam", loss="mse")
    kernels = members_lib.kernel_variables(model)  # what Population(l2_layers=None) covers
    ours = 1e-3 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert len(kernels) == 2 and ours == pytest.approx(penalty, rel=1e-5)
    assert isinstance(Population, type)


def test_sensitivity_rows_give_mean_std_and_std_as_percent_of_the_mean(reproduced):
    records = variants.read_experiment(reproduced / "sensitivity")
    text = (reproduced / "docs" / "table3_4.md").read_text()
    for method in sensitivity.METHODS:
        lr_row = [r for r in records if r["method"] == method and r["budget"]["iterations"] == 1]
        losses = [r["test_loss"] for r in lr_row]
        assert len(losses) == 2
        mean, std = np.mean(losses), np.std(losses, ddof=1)
        assert f"{mean:.3f} ± {std:.3f} | {100 * std / mean:.2f}%" in text
    assert "43.95%" in text and "ESGD's std is" in text


def test_sensitivity_runs_use_the_stated_rates_and_budgets(reproduced):
    records = by_variant(reproduced / "sensitivity")
    assert set(records) == {f"{m}-lr{rate}-it{its}" for m in sensitivity.METHODS
                            for rate, its in ((0.01, 1), (0.001, 1), (0.001, 2))}
    for name, record in records.items():
        budget = record["budget"]
        assert record["gradient_steps"] == budget["iterations"] * 2 * 3
        rate = float(name.split("-lr")[1].split("-it")[0])
        if record["method"] == "esgd":
            assert record["details"]["hyperparameters"]["learning_rate"] == pytest.approx(rate)
            assert record["details"]["generations"] == budget["iterations"]
        else:
            initial = record["details"]["initial_hyperparameters"]
            assert [h["learning_rate"] for h in initial] == [pytest.approx(rate)] * 3


def test_report_renders_table2_and_table3_4_beside_table1(reproduced, tmp_path):
    from experiments import report

    assert report.main([str(reproduced), "--out", str(tmp_path)]) == 0
    assert {"table1.md", "table2.md", "table3_4.md"} <= {p.name for p in tmp_path.iterdir()}


def test_rerun_skips_every_finished_record(reproduced, capsys):
    def run_ids():
        paths = [reproduced / "records.jsonl", *(reproduced / "ablation").glob("*.jsonl"),
                 *(reproduced / "sensitivity").glob("*.jsonl")]
        return sorted(json.loads(line)["run_id"] for path in paths
                      for line in path.read_text().splitlines())

    before = run_ids()
    assert reproduce.main([*ARGUMENTS, "--out", str(reproduced)]) == 0
    output = capsys.readouterr().out
    assert run_ids() == before and len(before) == 2 + 5 + 6
    assert "skipping 1 finished run(s)" in output  # Table 1, no-reg and reg
    assert "ablation: skipping 5 finished" in output
    assert "sensitivity: skipping 6 finished" in output


def test_render_only_runs_nothing_and_links_the_reports_beyond_the_paper(reproduced, tmp_path):
    # Table 1's record removed: a run would train it again, a render must not.
    out = tmp_path / "out"
    shutil.copytree(reproduced, out)
    (out / "records.jsonl").unlink()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "robustness.md").write_text("# Robustness\n")
    assert reproduce.main([*ARGUMENTS, "--out", str(out), "--docs", str(docs),
                           "--render-only", "--quiet"]) == 0
    assert not (out / "records.jsonl").exists()
    text = (docs / "results.md").read_text()
    assert "0.345 ± 0.006" in text  # Table 2, rendered from the ablation records
    assert "](robustness.md)" in text and "](throughput.md)" not in text


@pytest.mark.parametrize("options, message", [
    ({"preset": "authors"}, "options\\['preset'\\] must be one of"),
    ({"mutate": "no"}, "options\\['mutate'\\] must be true or false"),
    ({"initial_learning_rate": -1}, "initial_learning_rate'\\] must be a finite number > 0"),
    ({"learning_rat": 0.1}, "options must be among"),
])
def test_bad_variant_options_fail_before_any_training(tmp_path, options, message):
    variant = variants.Variant("bad", "popdescent", "fmnist", 5, False,
                               ablation.BUDGETS["smoke"], options)
    with pytest.raises(ValueError, match=message):
        variants.run_variants("ablation", [variant], tmp_path, "smoke", load_data=None)
    assert not list(tmp_path.iterdir())


def test_ordering_says_where_ours_agrees_or_disagrees_with_the_paper():
    def record(method, loss, dataset="fmnist", regularization=False):
        return {"method": method, "dataset": dataset, "regularization": regularization,
                "test_loss": loss}

    agreeing = reproduce.table1_ordering([record("grid", 0.30), record("popdescent", 0.25)])
    assert agreeing == ["- FMNIST no-reg: ours PopDescent < Basic Grid Search; paper "
                        "PopDescent < Basic Grid Search (agrees)"]
    disagreeing = reproduce.table1_ordering([record("esgd", 0.9, "cifar10"),
                                             record("popdescent", 1.2, "cifar10")])
    assert disagreeing[0].endswith("(disagrees)") and "ours ESGD < PopDescent" in disagreeing[0]
    rows = [{"variant": "full", "test_loss": 0.5}, {"variant": "no-randomization",
                                                    "test_loss": 0.4}]
    assert reproduce.table2_ordering(rows)[0].endswith("(disagrees)")
