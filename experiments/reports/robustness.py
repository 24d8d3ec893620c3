"""Renders the robustness study's records into `robustness.md` and `robustness_lr.png`.

    python -m experiments.robustness --render-only [--out results/robustness] [--docs docs]

Reads records only; the study's ranges and bounds come from `experiments.robustness`.

The table: test loss (mean ± sample std over seeds) of the model each method returned, one
column per starting range, one table per (scale, dataset); the learning rate each returned
model ended with; and PopDescent against every other method, range by range, called a win,
tie or loss by the rule stated in the document. The figure: the learning rate the returned
model's line of ancestors trained with, against gradient steps, for the online methods.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from experiments.reports.table1 import ALGORITHMS, DATASET_NAMES, mean_std

# Row and column orders; the ranges' values and the bounds are the caller's.
RANGE_ORDER = ("too-small", "too-large", "paper")
RANGE_LABELS = {"too-small": "too small", "too-large": "too large", "paper": "paper's"}
METHOD_ORDER = ("adam", "grid", "random", "hyperband", "bayesian", "optuna", "esgd", "pbt",
                "popdescent", "es-single", "pes", "truncated-es")
ONLINE = ("esgd", "pbt", "popdescent", "es-single", "pes", "truncated-es")
SCALE_ORDER = ("paper", "small", "quick", "smoke")
# A difference in mean test loss smaller than this, or than two standard errors of the
# difference when both sides have several seeds, is called a tie.
TIE_LOSS = 0.01


def _finite_losses(runs):
    return np.array([r["test_loss"] for r in runs if _ok(r)], dtype=np.float64)


def _ok(record):
    loss = record.get("test_loss")
    return loss is not None and math.isfinite(loss) and not record.get("failed")


def _cell(runs) -> str:
    if not runs:
        return "not run"
    losses = _finite_losses(runs)
    text = mean_std(losses) if len(losses) else "—"
    bad = len(runs) - len(losses)
    text += f" (n={len(losses)}" + (f", {bad} diverged" if bad else "") + ")"
    return text


def _rate_cell(runs) -> str:
    rates = [r["details"]["hyperparameters"]["learning_rate"] for r in runs
             if _ok(r) and "learning_rate" in r.get("details", {}).get("hyperparameters", {})]
    if not rates:
        return "—"
    rates = np.array(rates, dtype=np.float64)
    low, high = rates.min(), rates.max()
    return f"{low:.2g}" if low == high else f"{low:.2g} – {high:.2g}"


def verdict(popdescent, other):
    """("win" | "tie" | "loss", difference of means) of PopDescent's test losses against
    another method's; None when either has no finite run."""
    a, b = _finite_losses(popdescent), _finite_losses(other)
    if not len(a) or not len(b):
        return None
    difference = float(np.mean(a) - np.mean(b))
    margin = TIE_LOSS
    if len(a) > 1 and len(b) > 1:
        margin = max(margin, 2 * math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)))
    if abs(difference) <= margin:
        return "tie", difference
    return ("win" if difference < 0 else "loss"), difference


def _group(records):
    groups = {}
    for record in records:
        groups.setdefault((record["scale"], record["dataset"]), []).append(record)
    return sorted(groups.items(), key=lambda item: (
        SCALE_ORDER.index(item[0][0]) if item[0][0] in SCALE_ORDER else 9,
        item[0][1] != "fmnist"))


def _runs(records, method, range_name):
    return sorted((r for r in records if r["method"] == method and r["range"] == range_name),
                  key=lambda r: r["seed"])


def _label(method):
    return ALGORITHMS.get(method, method)


def write_markdown(records, path, ranges, bounds) -> str:
    """`ranges`: name -> (low, high) starting range; `bounds`: the online methods' bounds."""
    header = " | ".join(f"{RANGE_LABELS[name]} [{low:g}, {high:g}]"
                        for name, (low, high) in ranges.items())
    lines = [
        "# Robustness: every method started from a wrong learning-rate range",
        "",
        "Each method starts from one of three learning-rate ranges: too small, too large, "
        "and the paper's. `adam` (one model, the whole budget, best checkpoint on validation) "
        "trains at the range's geometric middle; grid search trains five rates spread "
        "log-uniformly across it; KerasTuner RandomSearch samples it, and Hyperband, "
        "BayesianOptimization and Optuna search it (each trial an adam-decay run); ESGD, PBT and "
        "PopDescent draw their members' initial rates from it and may move them within the "
        f"same wide bounds [{bounds[0]:g}, {bounds[1]:g}] for every range (ESGD only selects "
        "among its members' rates, it never mutates one). No regularization. Every method "
        "gets the budget of `experiments/core/contract.py` at the stated scale. Test loss: "
        "cross-entropy on the whole test half of the model each method chose on validation "
        "data only; mean ± sample std over the seeds that ran (n); a run counts as diverged "
        "when its whole population went non-finite or its returned model's test loss is.",
        "",
        f"Win / tie / loss: PopDescent's mean test loss against the other method's; a "
        f"difference within {TIE_LOSS} (or within two standard errors of the difference, "
        "when both have several seeds) is a tie.",
        "",
    ]
    for (scale, dataset), group in _group(records):
        name = group[0].get("dataset_label") or DATASET_NAMES.get(dataset, dataset)
        seeds = sorted({r["seed"] for r in group})
        budget = group[0].get("budget", {}).get("member_steps")
        lines += [
            f"## {name}, scale `{scale}`",
            "",
            f"Seeds {' '.join(map(str, seeds))}; budget {budget:,} member-steps per run."
            if budget else f"Seeds {' '.join(map(str, seeds))}.",
            "",
            "Test loss:",
            "",
            f"| Method | {header} |",
            "|---|" + "---|" * len(ranges),
        ]
        present = [m for m in METHOD_ORDER if any(r["method"] == m for r in group)]
        for method in METHOD_ORDER:  # every method, so that what has not run says so
            cells = [_cell(_runs(group, method, range_name)) for range_name in ranges]
            lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
        lines += ["", "Learning rate of the returned model (range over seeds):", "",
                  f"| Method | {header} |", "|---|" + "---|" * len(ranges)]
        for method in present:
            cells = [_rate_cell(_runs(group, method, range_name)) for range_name in ranges]
            lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
        if "popdescent" in present:
            lines += ["", "PopDescent against each method (difference of mean test loss, "
                      "negative = PopDescent lower):", "",
                      f"| Against | {header} |", "|---|" + "---|" * len(ranges)]
            for method in [m for m in present if m != "popdescent"]:
                cells = []
                for range_name in ranges:
                    result = verdict(_runs(group, "popdescent", range_name),
                                     _runs(group, method, range_name))
                    cells.append("—" if result is None else f"{result[0]} ({result[1]:+.3f})")
                lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
        lines.append("")
    machines = sorted({
        f"{r['machine'].get('cpu', '?')} ({r['machine'].get('cores', '?')} cores)"
        for r in records if r.get("machine")})
    if machines:
        lines += ["Machines: " + "; ".join(machines) + ".", ""]
    if not records:
        lines += ["No runs yet: `python -m experiments.robustness --dataset fmnist ...`.", ""]
    text = "\n".join(lines)
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return text


def write_lr_figure(records, path, ranges, bounds) -> None:
    """The returned model's lineage learning rate against gradient steps: one panel per
    (scale, dataset, range) and online method, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    online = [r for r in records if r["method"] in ONLINE and _ok(r)
              and r.get("details", {}).get("returned_learning_rates")]
    rows = sorted({(r["scale"], r["dataset"], r["range"]) for r in online}, key=lambda row: (
        SCALE_ORDER.index(row[0]) if row[0] in SCALE_ORDER else 9, row[1] != "fmnist",
        RANGE_ORDER.index(row[2]) if row[2] in RANGE_ORDER else 9))
    columns = [m for m in ONLINE if any(r["method"] == m for r in online)]
    figure, axes = plt.subplots(max(1, len(rows)), max(1, len(columns)),
                                figsize=(4.5 * max(1, len(columns)), 3.2 * max(1, len(rows))),
                                squeeze=False)
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no online-method runs yet", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for row, (scale, dataset, range_name) in enumerate(rows):
        low, high = ranges[range_name]
        for column, method in enumerate(columns):
            panel = axes[row, column]
            panel.axhspan(low, high, color="tab:gray", alpha=0.2, label="starting range")
            for bound in bounds:
                panel.axhline(bound, color="tab:gray", linestyle="--", linewidth=0.8)
            runs = sorted((r for r in online
                           if (r["scale"], r["dataset"], r["range"], r["method"]) ==
                           (scale, dataset, range_name, method)), key=lambda r: r["seed"])
            for record in runs:
                segments = record["details"]["returned_learning_rates"]
                steps = [s for start, end, _ in segments for s in (start, end)]
                rates = [rate for _, _, rate in segments for _ in range(2)]
                panel.plot(steps, rates, linewidth=1.2, label=f"seed {record['seed']}")
            if not runs:
                panel.text(0.5, 0.5, "not run", transform=panel.transAxes, ha="center",
                           va="center", color="tab:gray")
                panel.set_xticks([])
            panel.set_yscale("log")
            panel.set_ylim(bounds[0] / 3, bounds[1] * 3)
            panel.set_title(f"{_label(method)}: {DATASET_NAMES.get(dataset, dataset)}, "
                            f"{RANGE_LABELS[range_name]} [{low:g}, {high:g}], {scale}",
                            fontsize=9)
            panel.set_xlabel("gradient steps (member-steps)")
            panel.set_ylabel("learning rate")
            panel.grid(alpha=0.3)
            panel.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def render(records, docs, ranges, bounds) -> list:
    """Writes `robustness.md` and `robustness_lr.png` into `docs`; returns their paths.
    `ranges` (name -> starting range) and `bounds` are the study's (`experiments.robustness`)."""
    docs = pathlib.Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    markdown, figure = docs / "robustness.md", docs / "robustness_lr.png"
    write_markdown(records, markdown, ranges, bounds)
    write_lr_figure(records, figure, ranges, bounds)
    return [markdown, figure]
