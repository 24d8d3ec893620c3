"""The live-regularization cost benchmark runs end to end and reports both populations side by
side (its figures are measurements, in docs/, never asserted here)."""

from experiments.live_regularization_cost import main


def test_the_benchmark_times_fixed_and_live_populations_side_by_side(tmp_path, capsys):
    result = main(["--model", "mlp", "--size", "2", "--steps", "2", "--repeats", "1",
                   "--json", str(tmp_path / "cost.json")])
    assert len(result["fixed"]) == len(result["live"]) == 1
    assert set(result["summary"]) == {"fixed", "live", "ratio"}
    assert "live / fixed" in capsys.readouterr().out
    assert (tmp_path / "cost.json").exists()
