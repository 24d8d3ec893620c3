"""Table 1 (Markdown) and Figure 1 (PNG) from benchmark records: the renderer behind
`python -m experiments.report` (see there). Reads records only.

One table and one row of plots per scale: runs of different budgets are never averaged
together. The untuned baseline (`adam`: one model, the whole budget, best checkpoint) has a row
in every table, "not run" until it ran. Losses are mean ± sample standard deviation (ddof=1)
over seeds; the paper's Table 1 numbers (reference code, ten seeds, its own evaluation
protocol: see docs of `experiments.benchmark`) stand beside ours.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from experiments.core.records import RECORDS_FILE, read_records, record_key

ALGORITHMS = {  # method -> the name in the paper's Table 1, in its row order
    "adam": "Adam, untuned (best checkpoint)",
    "adam-decay": "Adam + budget schedule (best checkpoint)",
    "grid": "Basic Grid Search",
    "random": "KT RandomSearch",
    "hyperband": "KT Hyperband (best trial)",
    "bayesian": "KT BayesianOptimization (best trial)",
    "optuna": "Optuna TPE + Hyperband pruner (best trial)",
    "esgd": "ESGD",
    "pbt": "PBT",
    "popdescent": "PopDescent",
    "popdescent-budget": "PopDescent, budget-aware",
    "es-single": "ES-Single",
    "pes": "PES",
    "truncated-es": "Truncated ES",
}
DATASET_NAMES = {"fmnist": "FMNIST", "cifar10": "CIFAR-10"}
# The paper's Table 1: (test mean, test std, train mean, train std, gradient steps).
PAPER_TABLE1 = {
    ("fmnist", False, "grid"): (0.251, 0.010, 0.037, 0.006, 64_000),
    ("fmnist", False, "random"): (0.277, 0.023, 0.112, 0.034, 46_800),
    ("fmnist", False, "esgd"): (0.276, 0.009, 0.114, 0.007, 46_800),
    ("fmnist", False, "popdescent"): (0.249, 0.020, 0.124, 0.052, 32_000),
    ("fmnist", True, "grid"): (0.309, 0.009, 0.251, 0.007, 160_000),
    ("fmnist", True, "random"): (0.400, 0.061, 0.295, 0.077, 46_800),
    ("fmnist", True, "popdescent"): (0.262, 0.019, 0.152, 0.033, 32_000),
    ("cifar10", False, "grid"): (1.176, 0.182, 1.052, 0.250, 19_200),
    ("cifar10", False, "random"): (1.512, 0.275, 1.343, 0.296, 39_000),
    ("cifar10", False, "esgd"): (0.998, 0.025, 0.966, 0.033, 93_750),
    ("cifar10", False, "popdescent"): (0.863, 0.014, 0.577, 0.060, 25_600),
    ("cifar10", True, "grid"): (0.970, 0.027, 0.770, 0.043, 96_000),
    ("cifar10", True, "random"): (1.195, 0.209, 1.030, 0.249, 39_000),
    ("cifar10", True, "popdescent"): (0.843, 0.030, 0.555, 0.070, 25_600),
}
SCALE_ORDER = ("paper", "small", "quick", "smoke")
UNTUNED_BASELINE = "adam"
# What a figure's x axis is: a curve point is [gradient steps, loss] or [steps, loss, seconds].
CURVE_AXES = {
    "steps": (0, "gradient steps (member-steps)"),
    "seconds": (2, "wall-clock seconds since the run began"),
}


def records_path(path):
    path = pathlib.Path(path)
    return path / RECORDS_FILE if path.is_dir() else path


def latest_records(path) -> list:
    """The records of `path`, one per key (the last one written wins)."""
    by_key = {}
    for record in read_records(records_path(path)):
        by_key[record_key(record)] = record
    return list(by_key.values())


def _values(records, *fields):
    values = []
    for record in records:
        value = record
        for name in fields:
            value = value.get(name) if isinstance(value, dict) else None
        values.append(np.nan if value is None else float(value))
    return np.array(values, dtype=np.float64)


def mean_std(values, digits=3) -> str:
    """"mean ± std" (sample std); "mean" alone for one value; "—" for none."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _speed(runs) -> str:
    """Mean member-steps per second of training (gradient steps / the run's wall time)."""
    speeds = [r["gradient_steps"] / r["wall_time_s"] for r in runs
              if r.get("wall_time_s") and r.get("gradient_steps") is not None]
    return f"{np.mean(speeds):.1f}" if speeds else "—"


def curve_along(curve, axis="steps") -> list:
    """A record's curve as [(x, loss), ...] with x the gradient steps or the seconds; points
    without seconds (records written before curves were timed) are left out of "seconds"."""
    column = CURVE_AXES[axis][0]
    return [(point[column], point[1]) for point in curve or [] if len(point) > column]


def _setting(dataset, regularization, label=None):
    name = label or DATASET_NAMES.get(dataset, dataset)
    return f"{name} {'reg' if regularization else 'no-reg'}"


def _method_order(methods):
    known = [m for m in ALGORITHMS if m in methods]
    return known + sorted(set(methods) - set(ALGORITHMS))


def _table(records, scale, protocol):
    lines = [
        f"### Scale `{scale}`"
        + (" — paper protocol (selection on test data)" if protocol else ""),
        "",
        "| Setting | Algorithm | Test loss (ours) | Test accuracy (ours) | Train loss (ours) "
        "| Gradient steps (ours) | Seeds | Wall time per run | Member-steps per second "
        "| Test loss (paper) | Train loss (paper) | Gradient steps (paper) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    source = ("paper_protocol",) if protocol else ()
    settings = sorted(
        {(r["dataset"], r["regularization"]) for r in records},
        key=lambda s: (list(DATASET_NAMES).index(s[0]) if s[0] in DATASET_NAMES else 9, s[1]),
    )
    for dataset, regularization in settings:
        group = [
            r for r in records if (r["dataset"], r["regularization"]) == (dataset, regularization)
        ]
        label = _setting(dataset, regularization, group[0].get("dataset_label"))
        paper_methods = [m for (d, g, m) in PAPER_TABLE1 if (d, g) == (dataset, regularization)]
        listed = {r["method"] for r in group} | set(paper_methods) | {UNTUNED_BASELINE}
        for method in _method_order(listed):
            runs = sorted((r for r in group if r["method"] == method), key=lambda r: r["seed"])
            paper = PAPER_TABLE1.get((dataset, regularization, method))
            steps = sorted({r["gradient_steps"] for r in runs})
            row = [
                label,
                ALGORITHMS.get(method, method),
                mean_std(_values(runs, *source, "test_loss")) if runs else "not run",
                mean_std(_values(runs, *source, "test_accuracy")) if runs else "—",
                mean_std(_values(runs, *source, "train_loss")) if runs else "—",
                " / ".join(f"{s:,}" for s in steps) if steps else "—",
                " ".join(str(r["seed"]) for r in runs) or "—",
                f"{np.mean(_values(runs, 'wall_time_s')) / 60:.1f} min" if runs else "—",
                _speed(runs),
                f"{paper[0]:.3f} ± {paper[1]:.3f}" if paper else "—",
                f"{paper[2]:.3f} ± {paper[3]:.3f}" if paper else "—",
                f"{paper[4]:,}" if paper else "—",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def write_table(records, path) -> str:
    """Writes the Markdown Table 1 of `records` to `path` and returns its text."""
    lines = [
        "# Table 1: test and train loss, and gradient steps",
        "",
        "Ours: mean ± sample std over seeds of the cross-entropy of the model each method "
        "returned (chosen on validation data only) on the whole test half (last 5,000 official "
        "test images) and on a fixed 5,000-image training subset; accuracy on the test half. "
        "Gradient steps are member-steps that actually ran. Paper: Table 1 of Pomalapally et "
        "al. (2023), ten seeds, measured by the reference code on 1,600 test images with the "
        "population's best member chosen on test loss, so the columns are not one protocol. "
        "`smoke` and `small` runs have a fraction of the paper's budget (see "
        "`experiments/core/contract.py`).",
        "",
    ]
    for scale in sorted({r["scale"] for r in records}, key=_scale_rank):
        at_scale = [r for r in records if r["scale"] == scale]
        lines += _table(at_scale, scale, protocol=False) + [""]
        with_paper_protocol = [r for r in at_scale if "paper_protocol" in r]
        if with_paper_protocol:
            lines += _table(with_paper_protocol, scale, protocol=True) + [""]
    machines = sorted({_machine(r) for r in records})
    lines += ["Machines: " + "; ".join(machines) + "."] if machines else []
    text = "\n".join(lines) + "\n"
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return text


def _machine(record):
    machine = record.get("machine") or {}
    return (f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), "
            f"TensorFlow {machine.get('tensorflow', '?')}")


def _scale_rank(scale):
    return SCALE_ORDER.index(scale) if scale in SCALE_ORDER else len(SCALE_ORDER)


def mean_curve(curves):
    """Mean and std of curves [(x, loss), ...] on the union of their x positions.

    Each curve is interpolated linearly inside its own range and missing outside it, so a
    seed that stopped early does not drag the mean."""
    curves = [np.asarray([point[:2] for point in c], dtype=np.float64).reshape(-1, 2)
              for c in curves if len(c)]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    steps = np.unique(np.concatenate([c[:, 0] for c in curves]))
    table = np.full((len(curves), len(steps)), np.nan)
    for row, curve in enumerate(curves):
        order = np.argsort(curve[:, 0], kind="stable")
        x, y = curve[order, 0], curve[order, 1]
        inside = (steps >= x[0]) & (steps <= x[-1])
        table[row, inside] = np.interp(steps[inside], x, y)
    counts = np.sum(np.isfinite(table), axis=0)
    mean = np.nanmean(table, axis=0)
    deviation = np.zeros_like(mean)
    several = counts > 1
    deviation[several] = np.nanstd(table[:, several], axis=0, ddof=1)
    return steps, mean, deviation


def write_figure(records, path, axis="steps") -> list:
    """Figure 1: best validation loss vs gradient steps (`axis="steps"`) or wall-clock
    seconds (`axis="seconds"`), mean line and ±1 std band per method, one panel per (scale,
    dataset, regularization). A panel's title names the methods whose records hold no curve
    along `axis`. Returns the panels' titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(
        {(r["scale"], r["dataset"], r["regularization"]) for r in records},
        key=lambda p: (_scale_rank(p[0]), p[1] != "fmnist", p[2]),
    )
    columns = max(1, min(len(panels), 2))
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    for panel in axes.flat[len(panels):]:
        panel.set_visible(False)
    for panel, (scale, dataset, regularization) in zip(axes.flat, panels):
        group = [r for r in records if (r["scale"], r["dataset"], r["regularization"])
                 == (scale, dataset, regularization)]
        without_curve = []  # records written before the curve kept this axis
        for method in _method_order({r["method"] for r in group}):
            runs = [r for r in group if r["method"] == method]
            steps, mean, deviation = mean_curve([curve_along(r.get("curve"), axis)
                                                 for r in runs])
            if len(steps) == 0:
                without_curve.append(ALGORITHMS.get(method, method))
                continue
            label = f"{ALGORITHMS.get(method, method)} (n={len(runs)})"
            (line,) = panel.plot(steps, mean, marker="o" if len(steps) < 30 else None,
                                 markersize=3, label=label)
            panel.fill_between(steps, mean - deviation, mean + deviation,
                               color=line.get_color(), alpha=0.2, linewidth=0)
        title = f"{_setting(dataset, regularization, group[0].get('dataset_label'))}, scale {scale}"
        if without_curve:
            title += f"\nno curve recorded for: {', '.join(without_curve)}"
        panel.set_title(title, fontsize=10 if without_curve else None)
        panel.set_xlabel(CURVE_AXES[axis][1])
        panel.set_ylabel("best validation loss")
        panel.grid(alpha=0.3)
        if panel.get_legend_handles_labels()[0]:
            panel.legend(fontsize=8, framealpha=0.6)  # the curves stay visible below it
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    titles = [panel.get_title() for panel in axes.flat[:len(panels)]]
    plt.close(figure)
    return titles
