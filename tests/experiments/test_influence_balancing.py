"""The influence-balancing script: a tiny run writes the plot and the table, and the estimators
move the way the seed says they do (truncated ES up, away from θ*; ES-Single and PES down)."""

import pytest

from experiments import influence_balancing


def test_tiny_run_writes_the_plot_and_a_row_per_estimator_and_particle_count(tmp_path):
    assert influence_balancing.main([
        "--out", str(tmp_path), "--outer-steps", "30", "--seeds", "0", "1",
        "--particles", "2", "10", "--variance-particles", "20", "--warmup", "5"]) == 0
    assert (tmp_path / "influence_balancing.png").stat().st_size > 0
    table = (tmp_path / "influence_balancing.md").read_text()
    for label in ("Truncated ES", "PES", "ES-Single"):
        for particles in (2, 10):
            assert f"| {label} | {particles} |" in table


def test_optimum_is_minus_one_sixth():
    assert influence_balancing.optimum() == pytest.approx(-1.0 / 6.0)


def test_truncated_es_moves_away_from_the_optimum_while_es_single_and_pes_approach_it():
    """300 outer steps with 100 particles from θ = 0.5 (θ* = -1/6)."""
    final = {kind: influence_balancing.train(kind, 100, seed=0, outer_steps=300)[0][-1]
             for kind in ("truncated_es", "es_single", "pes")}
    assert final["truncated_es"] > 0.5
    assert final["es_single"] < 0.2 and final["pes"] < 0.2


def test_too_few_variance_particles_is_refused():
    with pytest.raises(SystemExit):
        influence_balancing.parse_args(["--particles", "100", "--variance-particles", "10"])
