"""The throughput benchmark runs end to end at a tiny size and writes its figures as JSON.

Speed itself is never asserted: timings depend on the machine and its load.
"""

import json
import math

import keras
import pytest

from experiments import throughput

KEYS = ("a_ms_per_step", "b_ms_per_member_step", "c_ms_per_member_step", "d_ms",
        "d_percent_of_iteration", "d_selection_mutation_ms", "ratio")


def test_tiny_run_writes_every_figure_as_json(tmp_path, capsys):
    path = tmp_path / "throughput.json"
    throughput.main(["--model", "mlp", "--steps", "3", "--size", "2", "--repeats", "1",
                     "--json", str(path)])
    result = json.loads(path.read_text())
    for key in KEYS:
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["ratio"] == pytest.approx(
        result["b_ms_per_member_step"] / result["c_ms_per_member_step"])
    assert result["d_percent_of_iteration"] == pytest.approx(
        100 * result["d_ms"] / (128 * 2 * result["c_ms_per_member_step"]))
    assert (result["model"], result["size"], result["steps"], result["batch_size"]) == (
        "mlp", 2, 3, 64)
    assert len(result["repeats_ms"]["c"]) == 1
    printed = capsys.readouterr().out
    assert "(b)/(c)" in printed and "(d)" in printed


@pytest.mark.parametrize("arguments, message", [
    (["--size", "1"], "--size must be an integer >= 2, got 1"),
    (["--steps", "0"], "--steps must be an integer >= 1, got 0"),
    (["--model", "resnet"], "invalid choice: 'resnet'"),
    (["--precision", "float8"], "invalid choice: 'float8'"),
    (["--precision", "float32", "float32"], "--precision names a policy twice"),
])
def test_bad_arguments_are_refused_before_anything_trains(arguments, message, capsys):
    with pytest.raises(SystemExit):
        throughput.parse_args(arguments)
    assert message in capsys.readouterr().err


def test_bfloat16_is_measured_beside_float32_in_one_run(tmp_path, capsys):
    path = tmp_path / "throughput.json"
    throughput.main(["--model", "mlp", "--steps", "2", "--size", "2", "--repeats", "1",
                     "--precision", "float32", "mixed_bfloat16", "--json", str(path)])
    results = json.loads(path.read_text())
    assert set(results) == {"float32", "mixed_bfloat16"}
    assert results["float32"]["compute_dtype"] == "float32"
    assert results["mixed_bfloat16"]["compute_dtype"] == "bfloat16"
    bf16, float32 = results["mixed_bfloat16"], results["float32"]
    assert bf16["vs_float32"]["c_ms_per_member_step"] == pytest.approx(
        bf16["c_ms_per_member_step"] / float32["c_ms_per_member_step"])
    assert isinstance(bf16["cpu_reduced_precision_flags"], list)
    # The policy was only set while the models were built: the process is back in float32.
    assert keras.config.dtype_policy().name == "float32"
    assert "mixed_bfloat16 / float32 time" in capsys.readouterr().out


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert throughput.cpu_reduced_precision_flags(cpuinfo) == ["avx512_bf16", "avx512f"]
    assert throughput.cpu_reduced_precision_flags(tmp_path / "missing") == []
