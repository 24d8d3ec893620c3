"""The inference-cost benchmark runs and states each returned model's size beside one
model's (an ensemble of k holds k times the parameters)."""

from experiments import inference_cost


def test_the_benchmark_prints_sizes_and_ratios(capsys):
    inference_cost.main(["--model", "mlp", "--members", "3", "--images", "500",
                         "--repeats", "1"])
    out = capsys.readouterr().out
    assert "one model (best_model, soup_model): 50,890 parameters" in out
    assert "ensemble of 3 (ensemble_model): 152,670 parameters" in out
    assert out.count(" ms per 1,000 images, x") == 2
