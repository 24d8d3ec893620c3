"""The report: records in, the paper's Table 1 layout and Figure 1 out."""

import matplotlib.image
import numpy as np
import pytest

from experiments import report
from experiments.reports import table1
from experiments.core.records import RECORDS_FILE, write_record


def _record(method, seed, test_loss, train_loss, dataset="fmnist", regularization=False,
            scale="small", curve=((100, 1.0), (200, 0.5))):
    return {
        "method": method, "dataset": dataset, "seed": seed, "scale": scale,
        "regularization": regularization, "dataset_label": None, "gradient_steps": 200,
        "test_loss": test_loss, "test_accuracy": 0.9, "train_loss": train_loss,
        "wall_time_s": 60.0, "curve": [list(point) for point in curve],
        "machine": {"cpu": "Test CPU", "cores": 2, "tensorflow": "2.x"},
    }


@pytest.fixture
def results(tmp_path):
    path = tmp_path / RECORDS_FILE
    write_record(path, _record("popdescent", 5, 0.2, 0.1))
    write_record(
        path, _record("popdescent", 15, 0.3, 0.2, curve=((100, 2.0), (200, 1.0)))
    )
    write_record(
        path, _record("popdescent", 5, 0.1, 0.4, dataset="cifar10", regularization=True)
    )
    return tmp_path


def test_table_gives_mean_and_sample_std_over_seeds_beside_the_papers_numbers(results):
    assert report.main([str(results)]) == 0
    table = (results / "table1.md").read_text()
    row = next(
        line for line in table.splitlines() if line.startswith("| FMNIST no-reg | PopDescent")
    )
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "0.250 ± 0.071"  # mean 0.25, std (ddof=1) of 0.2 and 0.3
    assert cells[4] == "0.150 ± 0.071"
    assert cells[6] == "5 15"
    assert cells[8] == "3.3"  # member-steps per second: 200 steps in 60 s
    assert cells[9:] == ["0.249 ± 0.020", "0.124 ± 0.052", "32,000"]


def test_table_lists_the_papers_baselines_of_each_setting_even_when_not_run(results):
    report.main([str(results)])
    table = (results / "table1.md").read_text()
    assert "| FMNIST no-reg | Basic Grid Search | not run |" in table
    assert "| CIFAR-10 reg | PopDescent | 0.100 |" in table
    assert "| CIFAR-10 reg | ESGD |" not in table  # the paper ran ESGD without regularization only


def test_every_table_has_a_row_for_the_untuned_baseline(results):
    path = results / RECORDS_FILE
    write_record(path, _record("adam", 5, 0.18, 0.05))
    report.main([str(results)])
    table = (results / "table1.md").read_text()
    assert "| FMNIST no-reg | Adam, untuned (best checkpoint) | 0.180 |" in table
    assert "| CIFAR-10 reg | Adam, untuned (best checkpoint) | not run |" in table


def test_scales_are_never_averaged_together(results):
    path = results / RECORDS_FILE
    write_record(path, _record("popdescent", 5, 9.0, 9.0, scale="smoke"))
    report.main([str(results)])
    table = (results / "table1.md").read_text()
    assert "### Scale `small`" in table and "### Scale `smoke`" in table
    assert "0.250 ± 0.071" in table and "| FMNIST no-reg | PopDescent | 9.000 |" in table


def test_figure_is_a_png_written_where_asked(results, tmp_path):
    out = tmp_path / "docs"
    assert report.main([str(results), "--out", str(out)]) == 0
    image = matplotlib.image.imread(out / "figure1.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_wallclock_figure_plots_timed_curves_and_skips_untimed_points(results, tmp_path):
    path = results / RECORDS_FILE
    write_record(path, _record("adam", 5, 0.18, 0.05,
                                         curve=((100, 1.0, 20.0), (200, 0.5, 41.5))))
    out = tmp_path / "docs"
    assert report.main([str(results), "--out", str(out)]) == 0
    image = matplotlib.image.imread(out / "figure1_wallclock.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    timed = [[100, 1.0, 20.0], [200, 0.5, 41.5]]
    assert table1.curve_along(timed, "seconds") == [(20.0, 1.0), (41.5, 0.5)]
    assert table1.curve_along(timed, "steps") == [(100, 1.0), (200, 0.5)]
    assert table1.curve_along([[100, 1.0], [200, 0.5]], "seconds") == []  # older records
    titles = table1.write_figure(table1.latest_records(path), out / "wall.png", "seconds")
    assert any("no curve recorded for:" in title and "PopDescent" in title for title in titles)
    assert not any("Adam" in title for title in titles)


def test_mean_curve_interpolates_onto_the_union_of_steps_with_a_std_band():
    curves = [[(0, 1.0), (10, 0.0)], [(0, 3.0), (5, 2.0), (10, 1.0)]]
    steps, mean, deviation = table1.mean_curve(curves)
    np.testing.assert_array_equal(steps, [0, 5, 10])
    np.testing.assert_allclose(mean, [2.0, 1.25, 0.5])
    expected = np.std([[1.0, 0.5, 0.0], [3.0, 2.0, 1.0]], axis=0, ddof=1)
    np.testing.assert_allclose(deviation, expected)


def test_missing_results_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    assert "records.jsonl" in capsys.readouterr().err
