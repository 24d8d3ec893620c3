"""experiments.ray_scale at smoke size: the three methods run on Fashion-MNIST's MLP stand-in
and their figures come out; speed itself is never asserted."""

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="experiments.ray_scale needs Ray Tune: pip install -e '.[ray]'")

from experiments import ray_scale  # noqa: E402
from tests.helpers.data import skip_without_data  # noqa: E402


def test_smoke_run_writes_member_steps_per_second_and_test_loss(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        skip_without_data("apt-get install dataset-fashion-mnist")
    path = tmp_path / "ray_scale.json"
    ray_scale.main(["--scale", "smoke", "--model", "mlp", "--storage", str(tmp_path / "ray"),
                    "--json", str(path)])
    result = json.loads(path.read_text())
    assert result["budget"] == 5 * 4 * 2
    methods = result["methods"]
    assert set(methods) == {"in_process", "scheduler", "islands"}
    assert methods["in_process"]["member_steps"] == methods["scheduler"]["member_steps"] == 40
    assert methods["islands"]["member_steps"] == 2 * 3 * 4 * math.ceil(40 / 24)
    for figures in methods.values():
        assert figures["member_steps_per_second"] > 0 and math.isfinite(figures["test_loss"])


@pytest.mark.parametrize("arguments, message", [
    (["--scale", "huge"], "invalid choice: 'huge'"),
    (["--cpus", "0"], "--cpus must be an integer >= 1, got 0"),
])
def test_bad_arguments_are_refused_before_anything_runs(arguments, message, capsys):
    with pytest.raises(SystemExit):
        ray_scale.parse_args(arguments)
    assert message in capsys.readouterr().err
