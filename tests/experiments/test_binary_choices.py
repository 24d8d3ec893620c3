"""The binary-choices script (REINFORCE against ES over on/off switches, seed 000): a tiny run
writes the plot and the tables; bad sizes are refused naming the arguments."""

import pytest

from experiments import binary_choices
from tests.helpers.method_smoke import smoke_context

TINY = ["--seeds", "0", "--members", "4", "--epochs", "2", "--steps", "1", "--train", "128",
        "--validation", "64", "--cv-batch-size", "32", "--alphas", "1", "10", "--sigmas", "1",
        "--draws", "10"]


def test_tiny_run_writes_the_plot_and_a_row_per_estimator_and_setting(tmp_path):
    smoke_context("adam", tmp_path)  # skips when the Fashion-MNIST files are missing
    assert binary_choices.main([*TINY, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "binary_choices.png").stat().st_size > 0
    text = (tmp_path / "binary_choices.md").read_text()
    assert "| REINFORCE | 0 |" in text and "| ES | 0 |" in text  # part 1, seed 0
    for alpha in ("1", "10"):
        assert f"| REINFORCE | — | {alpha} |" in text and f"| ES | 1 | {alpha} |" in text
    assert text.count("| 0 | 1 | 1 |") == 1  # the reward table has a row per setting
    assert "python -m experiments.binary_choices --seeds 0" in text


def test_too_few_draws_are_refused():
    with pytest.raises(SystemExit):
        binary_choices.parse_args(["--draws", "1"])
