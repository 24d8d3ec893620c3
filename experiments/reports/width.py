"""Renders issue 29's evidence, "spend the whole budget": `docs/width.md` and `docs/width.png`.

    python -m experiments.width_report [--results results/width] [--variants DIR ...]
        [--controls DIR ...] [--robustness results/robustness] [--docs docs]

Reads FMNIST records of `experiments.benchmark` at the `quick`, `middle` and `paper` scales
(3,200, 12,800 and 32,000 member-steps) and writes, per budget, the test loss (mean ± sample
std over seeds, and each seed's) of what each method returns: one model (`adam-decay`), the
independent ensemble (`adam-decay-ensemble`: its plain average, the same runs by greedy
selection, its best single run), the tuners' best trial where a `--variants` directory holds
their runs (`hyperband`, `bayesian`, `optuna`), and the budget-aware population's best model,
ensemble and soup for every width kind recorded (budget-aware records are named by
`experiments.reports.budget.variant_name`, so a run of another width than today's default is a
row of its own); the targets of issue 29 checked on the means; the independent ensembles given
options (`--controls`: e.g. `run_steps`, every run given the horizon the population measured),
rows of their own, and the population's ensemble against each on the same seeds; the wrong
ranges with the single run given the range test (`adam-decay-rt`) beside the mode; and a figure
of test loss against member-steps.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np

from experiments.reports.budget import LABELS, load, named_with_options, variant_name
from experiments.reports.table1 import latest_records, mean_std

__all__ = ["BUDGETS", "rows", "main"]

BUDGETS = (("quick", 3200), ("middle", 12800), ("paper", 32000))
SINGLE, INDEPENDENT = "adam-decay", "adam-decay-ensemble"
POPULATION = "popdescent-budget-rt"
TUNERS = ("hyperband", "bayesian", "optuna")  # one model each: the best trial
WRONG_RANGES = ("too-small", "too-large")


def rows(records) -> list:
    """(label, method, extra) of every row the records hold: the single run, the independent
    ensemble's three, the tuners' best trials (issue 37), then each budget-aware variant's
    best model, ensemble and soup."""
    names = sorted({r["method"] for r in records if r["method"].startswith(POPULATION)},
                   key=lambda name: (name != POPULATION, name))
    table = [("one model: Adam + schedule + cool-down (`adam-decay`)", SINGLE, None),
             ("independent ensemble, probabilities averaged (`adam-decay-ensemble`)",
              INDEPENDENT, None),
             ("the same runs, greedy selection on validation", INDEPENDENT, "greedy"),
             ("the same runs, the best single one on validation", INDEPENDENT, "best")]
    for name in sorted({r["method"] for r in records
                        if r["method"].startswith(INDEPENDENT + " ")}):
        table += [(f"independent ensemble given {name[len(INDEPENDENT) + 1:]}, probabilities "
                   "averaged", name, None),
                  ("the same runs, greedy selection on validation", name, "greedy")]
    present = {r["method"] for r in records}
    table += [(f"{LABELS[name]} (`{name}`)", name, None) for name in TUNERS if name in present]
    for name in names:
        label = "budget-aware population" + ("" if name == POPULATION
                                              else f" ({name[len(POPULATION) + 1:]})")
        table += [(f"{label}: best model", name, None),
                  (f"{label}: ensemble (`ensemble_model()`)", name, "ensemble"),
                  (f"{label}: soup (`soup_model()`)", name, "soup")]
    return table


def losses(records, method, extra=None) -> dict:
    """seed -> test loss of `method` (its `extra` model's when given)."""
    found = {}
    for record in records:
        if record["method"] != method or record.get("failed"):
            continue
        if extra is not None:
            if extra not in record.get("extras", {}):
                continue
            found[record["seed"]] = float(record["extras"][extra]["test_loss"])
        else:
            found[record["seed"]] = float(record["test_loss"])
    return found


def spent(records, method) -> str:
    values = sorted({int(r["gradient_steps"]) for r in records if r["method"] == method})
    return " / ".join(f"{v:,}" for v in values)


def _cell(values: dict) -> str:
    if not values:
        return "not run"
    seeds = ",".join(str(s) for s in sorted(values))
    return f"{mean_std(list(values.values()))} (n={len(values)}: {seeds})"


def budget_table(records_by_scale) -> list:
    """One row per method and returned model, one column per budget."""
    present = [scale for scale, _ in BUDGETS if records_by_scale.get(scale)]
    every = [r for scale in present for r in records_by_scale[scale]]
    lines = ["| returned model | " + " | ".join(f"{dict(BUDGETS)[s]:,} member-steps"
                                               for s in present) + " |",
             "|---|" + "---|" * len(present)]
    for label, method, extra in rows(every):
        cells = [_cell(losses(records_by_scale[s], method, extra)) for s in present]
        if any(cell != "not run" for cell in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def seed_table(records, scale) -> list:
    """Each seed's test loss at one budget, and the member-steps each method ran."""
    seeds = sorted({r["seed"] for r in records})
    lines = [f"| {scale}: returned model | " + " | ".join(f"seed {s}" for s in seeds)
             + " | member-steps run |", "|---|" + "---|" * (len(seeds) + 1)]
    for label, method, extra in rows(records):
        values = losses(records, method, extra)
        if not values:
            continue
        cells = [f"{values[s]:.4f}" if s in values else "" for s in seeds]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {spent(records, method)} |")
    return lines


def _mean(values: dict) -> float:
    return float(np.mean(list(values.values()))) if values else math.nan


def paired_means(ours: dict, theirs: dict):
    """(our mean, their mean, seeds) over the seeds both have; None when they share none."""
    common = sorted(set(ours) & set(theirs))
    if not common:
        return None
    return (float(np.mean([ours[s] for s in common])),
            float(np.mean([theirs[s] for s in common])), common)


def targets(records) -> list:
    """Issue 29's targets at the long budget, on the means over the seeds both have."""
    lines = []
    plain = losses(records, INDEPENDENT)
    greedy = losses(records, INDEPENDENT, "greedy")
    single = losses(records, SINGLE)
    names = sorted({r["method"] for r in records if r["method"].startswith(POPULATION)})
    for name in names:
        ensemble = losses(records, name, "ensemble")
        if not ensemble:
            continue
        for reference, what in ((plain, "the independent ensemble (averaged)"),
                                (greedy, "the independent ensemble (greedy)")):
            paired = paired_means(ensemble, reference)
            if paired:
                ours, theirs, common = paired
                lines.append(f"- {name} ensemble {ours:.4f} vs {what} {theirs:.4f} "
                             f"(seeds {common}): {'met' if ours <= theirs else 'missed'}")
        ours = _mean(ensemble)
        lines.append(f"- {name} ensemble {ours:.4f} at or below 0.20: "
                     f"{'met' if ours <= 0.20 else 'missed'}")
        best_single = min((_mean(losses(records, name, extra)) for extra in (None, "soup")),
                          default=math.nan)
        if single:
            lines.append(f"- {name} soup or best model {best_single:.4f} at or below the "
                         f"single run {_mean(single):.4f}: "
                         f"{'met' if best_single <= _mean(single) else 'missed'}")
    return lines


def control_share(records) -> list:
    """Each population ensemble against each controlled independent ensemble (greedy, the
    population's own rule) on the seeds both have: what is left to the population once the
    single runs are given the same component."""
    lines = []
    controls = sorted({r["method"] for r in records if r["method"].startswith(INDEPENDENT + " ")})
    populations = sorted({r["method"] for r in records if r["method"].startswith(POPULATION)})
    for control in controls:
        theirs = losses(records, control, "greedy")
        for name in populations:
            paired = paired_means(losses(records, name, "ensemble"), theirs)
            if paired:
                mine, other, common = paired
                lines.append(f"- {name} ensemble {mine:.4f} vs {control} (greedy) {other:.4f} "
                             f"(seeds {common}): the population's share {other - mine:+.4f}")
    return lines


def wrong_range_table(robustness) -> list:
    """FMNIST quick: the single run, the single run given the range test, and the mode."""
    methods = (("Adam + schedule (`adam-decay`)", SINGLE),
               ("the same, given the population's range test (`adam-decay-rt`)",
                "adam-decay-rt"),
               ("budget-aware population (default)", POPULATION))
    ranges = [r for r in ("paper",) + WRONG_RANGES if r in robustness]  # the ranges run
    lines = ["| method | " + " | ".join(ranges) + " |", "|---|" + "---|" * len(ranges)]
    for label, method in methods:
        cells = [_cell(losses(robustness.get(r, []), method)) for r in ranges]
        if any(cell != "not run" for cell in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_figure(records_by_scale, path) -> bool:
    """Test loss against the member-step budget (mean ± std over seeds) of one model, the
    independent ensemble, and each population variant's best model, ensemble and soup."""
    present = [(scale, steps) for scale, steps in BUDGETS if records_by_scale.get(scale)]
    if not present:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4.5))
    every = [r for scale, _ in present for r in records_by_scale[scale]]
    for index, (label, method, extra) in enumerate(rows(every)):
        points = [(steps, list(losses(records_by_scale[scale], method, extra).values()))
                  for scale, steps in present]
        points = [(steps, values) for steps, values in points if values]
        if not points:
            continue
        x = [steps for steps, _ in points]
        y = [np.mean(values) for _, values in points]
        error = [np.std(values, ddof=1) if len(values) > 1 else 0.0 for _, values in points]
        style = "--" if method == SINGLE or (method == INDEPENDENT and extra == "best") else "-"
        marker = "os^D"[index // 10 % 4]  # the colour cycle has ten: the marker tells them apart
        axis.errorbar(x, y, yerr=error, marker=marker, linestyle=style, capsize=3,
                      label=label.replace("`", ""))
    axis.set_xscale("log")
    axis.set_xticks([steps for _, steps in present], [f"{s:,}" for _, s in present])
    axis.set_xticks([], minor=True)  # the log scale's own ticks would overprint the budgets
    axis.set_xlabel("member-step budget (FMNIST)")
    axis.set_ylabel("test loss (mean ± std over seeds)")
    axis.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the lines
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def load_scales(results, variants, controls=()) -> dict:
    """{scale: FMNIST records, paper range}, budget-aware ones under their variant names, and
    the independent ensembles of each `controls` directory under their options."""
    by_scale = {}
    for scale, _ in BUDGETS:
        groups = load(results, pathlib.Path(results) / "none", scale, variants)
        by_scale[scale] = groups.get(("fmnist", "paper"), [])
        for directory in controls or ():
            if (pathlib.Path(directory) / "records.jsonl").exists():
                by_scale[scale] += [
                    {**r, "method": control_name(r)} for r in latest_records(directory)
                    if r["method"] == INDEPENDENT and r.get("scale") == scale
                    and r["dataset"] == "fmnist" and not r.get("regularization")
                    and control_name(r) != INDEPENDENT]
    return by_scale


def control_name(record) -> str:
    """`adam-decay-ensemble` plus the options it was given (`run_steps=3840`)."""
    return named_with_options(record["method"], record.get("options") or {})


def load_robustness(directory) -> dict:
    """{range: quick-scale FMNIST records} of `experiments.robustness`' `--out`."""
    found = {}
    for range_name in ("paper",) + WRONG_RANGES:
        path = pathlib.Path(directory) / range_name
        if (path / "records.jsonl").exists():
            found[range_name] = [
                {**r, "method": variant_name(r) if r["method"].startswith(POPULATION)
                 else r["method"]}
                for r in latest_records(path)
                if r.get("scale") == "quick" and r["dataset"] == "fmnist"]
    return found


def write_markdown(by_scale, robustness, path, figure=None) -> str:
    """Writes the page; `figure`, the name of the rendered figure beside it, is shown under the
    budget table when given."""
    lines = ["# Spending the whole budget: width past the horizon (FMNIST)", "",
             "Test loss of what each method returns (chosen on validation data; the test "
             "half is read only here), mean ± sample std over seeds. Every method has the "
             "same member-step budget; `member-steps run` says what each spent (a single run "
             "cools down and stops when it stalls; the independent ensemble stops when what "
             "is left holds no further run). Rendered by `python -m "
             "experiments.width_report` from the records of `experiments.benchmark` and "
             "`experiments.robustness`.", "", "## Test loss against the budget", ""]
    lines += budget_table(by_scale)
    if figure:
        lines += ["", f"![Test loss against the member-step budget]({figure})"]
    for scale, _ in BUDGETS:
        if by_scale.get(scale):
            lines += ["", f"### Each seed at the `{scale}` scale", ""]
            lines += seed_table(by_scale[scale], scale)
    if by_scale.get("paper"):
        lines += ["", "## Targets of issue 29 (32,000 member-steps)", ""]
        lines += targets(by_scale["paper"]) or ["- not enough runs yet"]
        share = control_share(by_scale["paper"])
        if share:
            lines += ["", "## The population's share, single runs given the same component "
                      "(32,000 member-steps)", ""] + share
    if robustness:
        lines += ["", "## From a wrong range (quick scale): the range test's share", ""]
        lines += wrong_range_table(robustness)
    text = "\n".join(lines) + "\n"
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.width_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results/width",
                        help="benchmark records: the baselines and the default runs")
    parser.add_argument("--variants", nargs="*",
                        default=["results/width_children", "results/width_fresh"],
                        help="benchmark --out directories of budget-aware runs with options")
    parser.add_argument("--controls", nargs="*", default=["results/width_horizon"],
                        help="benchmark --out directories of adam-decay-ensemble runs with "
                             "options (run_steps)")
    parser.add_argument("--robustness", default="results/robustness")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args(argv)
    docs = pathlib.Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    by_scale = load_scales(args.results, args.variants, args.controls)
    drawn = write_figure(by_scale, docs / "width.png")
    print(write_markdown(by_scale, load_robustness(args.robustness), docs / "width.md",
                         figure="width.png" if drawn else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
