"""The LR-schedule meta-optimisation script (seed 002's second experiment): a tiny run writes the
plot and a row per estimator; the inner problem's schedule and batch stream behave as stated."""

import numpy as np
import pytest

from experiments import lr_schedule
from tests.helpers.method_smoke import smoke_context

TINY = ["--train", "256", "--validation", "64", "--grid", "3", "--horizon", "4", "--unroll",
        "2", "--outer-steps", "3", "--seeds", "0", "--particles", "2"]


def test_tiny_run_writes_the_plot_and_a_row_per_estimator(tmp_path):
    smoke_context("adam", tmp_path)  # skips when the Fashion-MNIST files are missing
    assert lr_schedule.main([*TINY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "lr_schedule.png").stat().st_size > 0
    text = (tmp_path / "lr_schedule.md").read_text()
    for label in ("Truncated ES", "PES", "ES-Single"):
        assert f"| {label} | 0 |" in text


def test_a_zero_learning_rate_leaves_the_network_and_a_larger_one_lowers_the_loss(tmp_path):
    smoke_context("adam", tmp_path)
    data = lr_schedule.load(512, 256)
    problem = lr_schedule.InnerProblem(data, horizon=20, unroll=20, batch_size=32)
    start = lr_schedule.initial_weights(2)
    # log10 lr₀ = -30 (nothing moves) against -1 with no decay to speak of.
    weights, losses = problem.run(start, [[-30.0, -6.0], [-1.0, -6.0]], start_step=0)
    np.testing.assert_allclose(weights[0][0], start[0][0], atol=1e-12)
    assert losses[1] < losses[0] - 0.1


def test_horizon_must_be_a_multiple_of_the_unroll():
    with pytest.raises(SystemExit):
        lr_schedule.parse_args(["--horizon", "10", "--unroll", "3"])
