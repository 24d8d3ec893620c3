"""Tables 3-4: how much PopDescent's and ESGD's final test loss moves with the learning rate
and with the number of iterations (CIFAR-10, no regularization).

    python -m experiments.sensitivity --scale smoke|small|paper [--methods popdescent esgd] \\
        [--seeds 34] [--learning-rates 0.01 0.05 0.001] [--lr-iterations N] \\
        [--iteration-counts A B C] [--esgd-optimizer adam|sgd] [--out results/sensitivity] \\
        [--data-dir D] [--model cnn|mlp] [--force] [--quiet]

Two rows per method, as in the paper: "LR only" varies the learning rate over {0.01, 0.05,
0.001} at a fixed number of iterations; "Iterations only" varies the iterations at lr 0.001.
Each row reports the mean test loss over its runs, their sample std (ddof 1) and the std as a
percentage of the mean. The setting both rows share (lr 0.001 at the fixed iteration count) is
run once. Learning rate means, for PopDescent, the rate every member starts at (then tuned
within [1e-4, 1e-2] widened to contain it); for ESGD, the fixed rate of every member's
optimizer (Adam by default, as every method here; `--esgd-optimizer sgd` is the plain SGD the
paper's ESGD ran). Both methods get the same budget per setting: population 5, m = 3, batch
64, the same iterations of the same local steps (the paper ran ESGD for 1/3/5 full-epoch
generations at batch 8 instead).

Scales (steps per iteration; iterations of the LR row; iteration counts):
    paper: 256 (128 batches x 2 passes, the reference's); 30; 10 30 50; seed 34
    small:  64 (a quarter);                             3;  1  3  5 (a tenth); seed 34
    smoke:   2, population 3, m 2, CV batch 64, the harness's smoke data, learning rates
             0.01 and 0.001 only; 1; 1 2 (a pipeline check: 3 runs per method)
Records go to OUT/<method>-lr<rate>-it<iterations>.jsonl through the benchmark harness
(atomic, resumable). `python -m experiments.report results/` renders table3_4.md.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from experiments.core import contract  # noqa: E402
from experiments.core.data import load_splits  # noqa: E402
from experiments.methods import variants  # noqa: E402

EXPERIMENT = "sensitivity"
METHODS = ("popdescent", "esgd")
LEARNING_RATES = (0.01, 0.05, 0.001)
ITERATION_LEARNING_RATE = 0.001
SCALES = {
    "paper": {"steps": 256, "lr_iterations": 30, "iteration_counts": (10, 30, 50)},
    "small": {"steps": 64, "lr_iterations": 3, "iteration_counts": (1, 3, 5)},
    "smoke": {"steps": 2, "lr_iterations": 1, "iteration_counts": (1, 2),
              "learning_rates": (0.01, 0.001)},
}
DEFAULT_SEEDS = (34,)  # the reference code's sensitivity seed
METHOD_NAMES = {"popdescent": "PopDescent", "esgd": "ESGD"}
# (method, row) -> (test mean, test std, std as % of mean) of the paper's Tables 3 and 4.
PAPER = {
    ("popdescent", "lr"): (1.049, 0.172, 16.35),
    ("popdescent", "iterations"): (0.958, 0.191, 19.94),
    ("esgd", "lr"): (1.325, 0.582, 43.95),
    ("esgd", "iterations"): (1.159, 0.455, 39.22),
}
PAPER_SETTINGS = {
    ("popdescent", "lr"): "lr 0.01 / 0.05 / 0.001, 30 iterations",
    ("popdescent", "iterations"): "10 / 30 / 50 iterations, lr 0.001",
    ("esgd", "lr"): "lr 0.01 / 0.05 / 0.001, 3 generations",
    ("esgd", "iterations"): "1 / 3 / 5 generations, lr 0.001",
}


def budget(scale, iterations) -> contract.Budget:
    if scale == "smoke":
        return contract.Budget(iterations=iterations, steps_per_iteration=SCALES["smoke"]["steps"],
                              batch_size=64, population_size=3, elites=2, cv_batch_size=64)
    return contract.Budget(iterations=iterations, steps_per_iteration=SCALES[scale]["steps"],
                          batch_size=64, population_size=5, elites=3, cv_batch_size=640)


def settings(learning_rates, lr_iterations, iteration_counts) -> dict:
    """Row -> its (learning rate, iterations) settings."""
    return {
        "lr": [(float(rate), int(lr_iterations)) for rate in learning_rates],
        "iterations": [(ITERATION_LEARNING_RATE, int(count)) for count in iteration_counts],
    }


def variant_name(method, rate, iterations) -> str:
    return f"{method}-lr{rate:g}-it{iterations}"


def jobs(scale, seeds, methods_=METHODS, rows=None, esgd_optimizer="adam", model="cnn"):
    """One job per (method, distinct setting, seed); `rows` defaults to the scale's."""
    rows = rows or settings(SCALES[scale].get("learning_rates", LEARNING_RATES),
                            SCALES[scale]["lr_iterations"], SCALES[scale]["iteration_counts"])
    unique = list(dict.fromkeys(setting for row in rows.values() for setting in row))
    chosen = []
    for method in methods_:
        for rate, iterations in unique:
            if method == "popdescent":
                options = {"initial_learning_rate": rate}
            else:
                options = {"learning_rate": rate, "esgd_optimizer": esgd_optimizer}
            if model == "mlp":
                options["model"] = "mlp"
            chosen += [variants.Variant(variant=variant_name(method, rate, iterations),
                                    method=method, dataset="cifar10", seed=seed,
                                    regularization=False, budget=budget(scale, iterations),
                                    options=options) for seed in seeds]
    return chosen


# ----------------------------------------------------------------------------- Tables 3-4
def _row_runs(records, method, row_settings):
    wanted = {variant_name(method, rate, iterations) for rate, iterations in row_settings}
    return [r for r in records if r.get("variant") in wanted]


def _setting_of(record):
    rate = record["options"].get("initial_learning_rate", record["options"].get("learning_rate"))
    return f"lr {rate:g}, {record['budget']['iterations']} it."


def spread(values) -> tuple:
    """(mean, sample std, std as % of mean) of `values`; std is NaN for one value."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return mean, std, 100.0 * std / mean if mean else float("nan")


def write_table3_4(records, path) -> str:
    """Writes Tables 3 and 4 (Markdown) of the sensitivity `records`; returns the text."""
    lines = [
        "# Tables 3-4: sensitivity to the learning rate and to the number of iterations "
        "(CIFAR-10, no regularization)",
        "",
        "Ours: per row, mean ± sample std (ddof 1) over its runs (settings × seeds) of the "
        "returned member's cross-entropy on the whole test half, and the std as % of the "
        "mean; every run and its test loss are listed. Paper: Tables 3 and 4 of Pomalapally "
        "et al. (2023), one seed per setting, reference code's evaluation.",
        "",
    ]
    for scale in sorted({r["scale"] for r in records},
                        key=lambda s: ("paper", "small", "smoke").index(s)):
        at_scale = [r for r in records if r["scale"] == scale]
        rows = _rows_seen(at_scale)
        lines += [
            f"### Scale `{scale}`", "",
            "| Method | Varied | Runs (setting: test loss) | Test loss (ours) | Std % (ours) "
            "| Member-steps | Paper setting | Test loss (paper) | Std % (paper) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        stds = {}
        for method in METHODS:
            for row, label in (("lr", "LR only"), ("iterations", "Iterations only")):
                runs = sorted(_row_runs(at_scale, method, rows[row]),
                              key=lambda r: (r["budget"]["iterations"], r["seed"]))
                paper = PAPER[(method, row)]
                if runs:
                    mean, std, percent = spread([r["test_loss"] for r in runs])
                    stds[(method, row)] = std
                    ours = f"{mean:.3f} ± {std:.3f}" if len(runs) > 1 else f"{mean:.3f}"
                    ours_percent = f"{percent:.2f}%" if len(runs) > 1 else "—"
                else:
                    ours, ours_percent = "not run", "—"
                listed = "; ".join(f"{_setting_of(r)}, seed {r['seed']}: {r['test_loss']:.3f}"
                                   for r in runs) or "—"
                steps = " / ".join(f"{s:,}" for s in sorted({r["gradient_steps"] for r in runs}))
                lines.append("| " + " | ".join([
                    METHOD_NAMES[method], label, listed, ours, ours_percent, steps or "—",
                    PAPER_SETTINGS[(method, row)], f"{paper[0]:.3f} ± {paper[1]:.3f}",
                    f"{paper[2]:.2f}%",
                ]) + " |")
        lines += [""] + _std_comparison(stds) + [""]
    text = "\n".join(lines)
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return text


def _rows_seen(records):
    """The rows' settings as run: the LR row's iteration count and the iteration counts are
    read from the records (the ones at the iteration row's learning rate)."""
    popdescent_or_esgd = [r for r in records if r.get("variant")]
    lrs = sorted({_rate(r) for r in popdescent_or_esgd})
    iteration_counts = sorted({r["budget"]["iterations"] for r in popdescent_or_esgd
                               if _rate(r) == ITERATION_LEARNING_RATE})
    other_rate = [r["budget"]["iterations"] for r in popdescent_or_esgd
                  if _rate(r) != ITERATION_LEARNING_RATE]
    lr_iterations = max(set(other_rate), key=other_rate.count) if other_rate else (
        iteration_counts[len(iteration_counts) // 2] if iteration_counts else 0)
    return settings(lrs, lr_iterations, iteration_counts)


def _rate(record):
    options = record.get("options", {})
    return float(options.get("initial_learning_rate", options.get("learning_rate", 0.0)))


def _std_comparison(stds):
    lines = []
    for row, label in (("lr", "learning rate"), ("iterations", "iterations")):
        ours = (stds.get(("esgd", row)), stds.get(("popdescent", row)))
        if None in ours or not all(np.isfinite(ours)) or ours[1] == 0:
            continue
        paper = PAPER[("esgd", row)][1] / PAPER[("popdescent", row)][1]
        lines.append(f"Varying the {label}: ESGD's std is {ours[0] / ours[1]:.2f}× "
                     f"PopDescent's (paper: {paper:.2f}×).")
    return lines


# ----------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.sensitivity",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=contract.SCALES, default="small")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--learning-rates", nargs="+", type=float, default=None,
                        help="learning rates of the LR row (default 0.01 0.05 0.001; smoke: "
                        "0.01 0.001)")
    parser.add_argument("--lr-iterations", type=int, default=None,
                        help="iterations of the LR row (default: the scale's)")
    parser.add_argument("--iteration-counts", nargs="+", type=int, default=None,
                        help="iterations of the iterations row (default: the scale's)")
    parser.add_argument("--esgd-optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path("results/sensitivity"))
    parser.add_argument("--data-dir", type=pathlib.Path, default=None)
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn",
                        help="cnn: the paper's CIFAR-10 CNN; mlp: a tiny stand-in for tests")
    parser.add_argument("--force", action="store_true", help="rerun finished records")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    args.lr_iterations = args.lr_iterations or scale["lr_iterations"]
    args.iteration_counts = args.iteration_counts or list(scale["iteration_counts"])
    args.learning_rates = args.learning_rates or list(scale.get("learning_rates",
                                                                LEARNING_RATES))
    if any(rate <= 0 or not np.isfinite(rate) for rate in args.learning_rates):
        parser.error(f"--learning-rates must be finite numbers > 0, got {args.learning_rates}")
    if args.lr_iterations < 1 or any(count < 1 for count in args.iteration_counts):
        parser.error("--lr-iterations and --iteration-counts must be integers >= 1, got "
                     f"{args.lr_iterations} and {args.iteration_counts}")
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be integers >= 0, got {args.seeds}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = settings(args.learning_rates, args.lr_iterations, args.iteration_counts)
    chosen = jobs(args.scale, args.seeds, args.methods, rows, args.esgd_optimizer, args.model)
    return variants.run_from_command_line(
        EXPERIMENT, chosen, args,
        lambda dataset: load_splits(dataset, args.scale, args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
