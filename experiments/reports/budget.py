"""Renders issue 19's evidence: `budget_aware.md` and `budget_aware.png`.

    python -m experiments.budget_report [--results results] [--robustness results/robustness]
        [--scale quick] [--docs docs] [--variants DIR ...] [--name STEM] [--title TEXT]

writes docs/budget_aware.{md,png} and budget_aware_bias.png for the quick scale, and
docs/budget_aware_<scale>.* for another (the paper scale's 32,000-step FMNIST runs), or
docs/<STEM>.* with --name.

Reads the `quick`-scale records of `experiments.benchmark` (the paper's learning-rate range)
and of `experiments.robustness` (the too-small and too-large ranges) and writes, per dataset,
the test loss (mean ± sample std over seeds, n) of every method from every range, the
ensemble of PopDescent's final elites as its own row, the targets of issue 19 checked on the
means, what the budget-aware runs chose, and a figure of the validation loss of the model each
method would return against member-steps (mean over seeds), with the final test losses.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np

from experiments.reports.table1 import DATASET_NAMES, latest_records, mean_curve, mean_std
from popdescent.strategies.budget_aware import BudgetAwareness, default_rungs

METHODS = ("adam", "adam-decay", "adam-decay-rt", "adam-decay-ensemble", "pbt", "popdescent",
           "popdescent:ensemble", "es-single", "pes", "truncated-es", "popdescent-budget",
           "popdescent-budget-rt", "popdescent-budget-rt:ensemble", "popdescent-budget-rt:soup", "hyperband", "bayesian",
           "optuna")
LABELS = {
    "adam": "Adam, constant rate",
    "adam-decay": "Adam + budget schedule",
    "adam-decay-rt": "Adam + budget schedule, given the population's range test",
    "adam-decay-ensemble": "independent Adam + budget schedule runs, averaged",
    "pbt": "PBT",
    "popdescent": "PopDescent (paper)",
    "popdescent:ensemble": "PopDescent (paper), ensemble of final elites",
    "es-single": "ES-Single",
    "pes": "PES",
    "truncated-es": "truncated ES",
    "popdescent-budget": "PopDescent, budget-aware, range_test=False",
    "popdescent-budget-rt": "**PopDescent, budget-aware (default: + range test)**",
    "popdescent-budget-rt:ensemble": "PopDescent, budget-aware: its ensemble_model()",
    "popdescent-budget-rt:soup": "PopDescent, budget-aware: its soup_model()",
    "hyperband": "KerasTuner Hyperband (best trial, each an adam-decay run)",
    "bayesian": "KerasTuner BayesianOptimization (best trial, each an adam-decay run)",
    "optuna": "Optuna TPE + Hyperband pruner (best trial, each an adam-decay run)",
}
BUDGET_AWARE = ("popdescent-budget", "popdescent-budget-rt")
RANGES = ("paper", "too-small", "too-large")
RANGE_LABELS = {"paper": "paper's [1e-4, 1e-2]", "too-small": "too small [1e-6, 1e-5]",
                "too-large": "too large [0.05, 0.5]"}


def _losses(records, method):
    name, _, extra = method.partition(":")
    values = []
    for record in records:
        if record["method"] != name or record.get("failed"):
            continue
        if extra and extra not in record.get("extras", {}):
            continue  # a run without that row (e.g. an ensemble it did not record)
        loss = record["extras"][extra]["test_loss"] if extra else record.get("test_loss")
        if loss is not None and math.isfinite(loss):
            values.append((record["seed"], float(loss)))
    return sorted(values)


def _cell(records, method):
    values = _losses(records, method)
    if not values:
        return "not run"
    seeds = ",".join(str(seed) for seed, _ in values)
    return f"{mean_std([v for _, v in values])} (n={len(values)}: {seeds})"


# Options every run of the robustness study has: they name the range, not a variant.
STUDY_OPTIONS = ("lr_range", "lr_bounds")
# Today's default rungs for the harness's population of 5.
DEFAULT_RUNGS = [list(pair) for pair in default_rungs(5)]


# Today's default of each budget-aware setting a run records in details.strategy.budget
# (a run made before a setting existed has none recorded and ran as its default then).
# What a run that did not record a setting ran as (the switch did not exist yet: off).
BEFORE_SWITCHES = {"commit_early": False, "restore_best_weights": False,
                   "cooldown_patience": None, "width": None}
DEFAULT_BUDGET = {"rungs": DEFAULT_RUNGS,
                  **{name: BudgetAwareness().get_config()[name] for name in BEFORE_SWITCHES}}


def variant_name(record) -> str:
    """The row a budget-aware record belongs to: its method, plus what made it differ from
    today's default. The rungs and the switches of `DEFAULT_BUDGET` (off where a run did
    not record them: they did not exist yet) are read from what the run used
    (`details`), not from its command line, so a run made with an earlier default is a
    variant row of its own, and one given today's default as an option is a default run;
    other options (`--option`) name a variant too (`width` only where a survivor cooled down:
    before, a run is the same under every width). Variants are never averaged with the
    default runs."""
    options = {name: value for name, value in (record.get("options") or {}).items()
               if name not in STUDY_OPTIONS + tuple(DEFAULT_BUDGET)}
    budget = record.get("details", {}).get("strategy", {}).get("budget") or {}
    rungs = budget.get("rungs")
    if rungs is not None and [list(pair) for pair in rungs] != DEFAULT_RUNGS:
        options["rungs"] = rungs
    for switch, before in BEFORE_SWITCHES.items():
        default = DEFAULT_BUDGET[switch]
        if switch == "cooldown_patience" and not budget.get("restore_best_weights", False):
            default = None  # no cool-down without the checkpoint: the library's default then
        if switch == "width" and not record.get("details", {}).get("cooldown"):
            continue  # no survivor cooled down: the run is the same under every width
        if budget.get(switch, before) != default:
            options[switch] = budget.get(switch, before)
    return named_with_options(record["method"], options)


def named_with_options(method, options) -> str:
    """`method`, then its `options` as `name=value` (JSON values, sorted): a row's name."""
    if not options:
        return method
    return method + " " + ", ".join(
        f"{name}={json.dumps(value)}" for name, value in sorted(options.items()))


def load(results, robustness, scale, variants=()):
    """{(dataset, range): [records]} at `scale`, budget-aware records under `variant_name`:
    from `results` (benchmark, paper range), `robustness`/<range>, and each directory in
    `variants` (a benchmark `--out` for runs with options; one directory or several) and its
    robustness/<range>."""
    groups = {}
    sources = [("paper", pathlib.Path(results))] + [
        (name, pathlib.Path(robustness) / name) for name in RANGES[1:]]
    if isinstance(variants, (str, pathlib.Path)):
        variants = [variants]
    for directory in variants or ():
        sources += [("paper", pathlib.Path(directory))] + [
            (name, pathlib.Path(directory) / "robustness" / name) for name in RANGES[1:]]
    for range_name, path in sources:
        if not (path / "records.jsonl").exists():
            continue
        for record in latest_records(path):
            if record.get("scale") != scale or record.get("regularization"):
                continue
            if record["method"] in BUDGET_AWARE:
                record = {**record, "method": variant_name(record)}
            group = groups.setdefault((record["dataset"], range_name), [])
            # One run per row and seed: a later source (the variants) wins.
            group[:] = [r for r in group
                        if (r["method"], r["seed"]) != (record["method"], record["seed"])]
            group.append(record)
    return groups


def budget_aware_methods(records) -> list:
    """The budget-aware methods among `records` (records or method names): the two modes,
    then any variants."""
    names = {r if isinstance(r, str) else r["method"] for r in records}
    variants = sorted(names - set(METHODS) - {"adam", "adam-decay"})
    return list(BUDGET_AWARE) + [v for v in variants
                                 if v.split(" ", 1)[0] in BUDGET_AWARE]


def _label(method) -> str:
    return LABELS.get(method, f"{method} (variant)")


def _mean(records, method):
    values = [v for _, v in _losses(records, method)]
    return float(np.mean(values)) if values else math.nan


def targets(groups, dataset) -> list:
    """Issue 19's targets for each budget-aware variant, checked on the means, as lines of
    text. A wrong range is compared with the variant's own paper-range result (the plain
    mode's where the variant has none)."""
    lines = []
    paper = groups.get((dataset, "paper"), [])
    singles = [v for v in (_mean(paper, "adam"), _mean(paper, "adam-decay")) if math.isfinite(v)]
    single = min(singles) if singles else math.nan
    own_paper = {variant: _mean(paper, variant) for variant in budget_aware_methods(paper)}
    for variant in own_paper:
        ours = own_paper[variant]
        if not (math.isfinite(ours) and math.isfinite(single)):
            continue
        label = _label(variant).strip("*")
        lines.append(f"- paper range, {label}: {ours:.3f} vs the better single run "
                     f"{single:.3f}: {'met' if ours <= single else 'missed'}"
                     f" ({ours - single:+.4f})")
        for other in ("pbt", "popdescent"):
            value = _mean(paper, other)
            if math.isfinite(value):
                lines.append(f"- paper range, {label}: below {LABELS[other]} ({value:.3f}): "
                             f"{'met' if ours < value else 'missed'}")
    for range_name in RANGES[1:]:
        records = groups.get((dataset, range_name), [])
        others = {m: _mean(records, m) for m in METHODS
                  if m.split(":")[0] not in BUDGET_AWARE}
        beaten = [m for m, v in others.items() if math.isfinite(v)]
        for variant in budget_aware_methods(records):
            wrong = _mean(records, variant)
            reference = own_paper.get(variant, math.nan)
            if not math.isfinite(reference):
                reference = own_paper["popdescent-budget"]
            if not math.isfinite(wrong) or not math.isfinite(reference):
                continue
            within = wrong <= 1.1 * reference
            below = all(wrong < others[m] for m in beaten)
            lines.append(
                f"- {RANGE_LABELS[range_name]}, {_label(variant).strip('*')}: {wrong:.3f}, "
                f"within 10 % of the paper-range {reference:.3f}: "
                f"{'met' if within else 'missed'}; "
                f"below {', '.join(LABELS[m] for m in beaten) or 'no other method run'}: "
                f"{'met' if below and beaten else 'missed' if beaten else 'n/a'}")
    return lines


def single_run_at(groups, dataset, seed, steps) -> float:
    """The validation loss the constant-rate Adam run of `seed` (paper range) had after
    `steps` of its own steps, interpolated on its curve; NaN without that run."""
    for record in groups.get((dataset, "paper"), []):
        if record["method"] == "adam" and record["seed"] == seed and record.get("curve"):
            curve = np.asarray(record["curve"], dtype=np.float64)
            if curve[0, 0] <= steps <= curve[-1, 0]:
                return float(np.interp(steps, curve[:, 0], curve[:, 1]))
    return math.nan


def choices(groups, dataset) -> list:
    """What each budget-aware run chose, lines of a table. The two last columns show the cost
    of depth: the returned member's validation loss beside the constant-rate Adam run's
    after as many of its own steps. "weights from" is the member-step of the survivor
    checkpoint it returned ("end" for its final weights, "no checkpoint" for a run made
    before there was one); "cool-down" the member-steps over which the survivor cooled down
    (the run ended with it) or "none"."""
    lines = ["| range | method | seed | test loss | returned member (origin) | its base rate | "
             "own steps | restarts | weights from | cool-down | code | validation loss | "
             "Adam's at those own steps |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for range_name in RANGES:
        records = groups.get((dataset, range_name), [])
        methods = budget_aware_methods(records)
        for record in sorted(records, key=lambda r: (methods.index(r["method"])
                                                      if r["method"] in methods else -1,
                                                      r["seed"])):
            if record["method"] not in methods or record.get("failed"):
                continue
            details = record["details"]
            own_steps = details["own_gradient_steps"]
            origin = details["best_member_origin"]
            label = f"{origin} (protected, compiled rate)" if origin == 0 else str(origin)
            lines.append(
                f"| {range_name} | {record['method']} | {record['seed']} | "
                f"{record['test_loss']:.3f} | {label} | "
                f"{details['hyperparameters']['learning_rate']:.2e} | "
                f"{details['own_gradient_steps']} | {details['restarts']} | "
                f"{_weights_from(record)} | {_cooldown(record)} | "
                f"{record.get('git_commit', '')[:7]} | {record['validation_loss']:.3f} | "
                f"{single_run_at(groups, dataset, record['seed'], own_steps):.3f} |")
    return lines


def _weights_from(record) -> str:
    """Where the returned weights come from: the survivor checkpoint's member-step."""
    details = record["details"]
    if "restored_best" not in details:
        return "no checkpoint"
    restored = details["restored_best"]
    if restored is None or restored["gradient_steps"] >= record["gradient_steps"]:
        return "end"
    return str(restored["gradient_steps"])


def _cooldown(record) -> str:
    cooldown = record["details"].get("cooldown")
    if not cooldown:
        return "none"
    start = cooldown["gradient_steps"]
    return f"{start}-{start + cooldown['length']}"


def write_markdown(groups, path, scale, title=None) -> str:
    datasets = sorted({dataset for dataset, _ in groups})
    title = title or f"Budget-aware PopDescent: evidence at the `{scale}` scale"
    lines = [f"# {title}", "",
             "Test loss of the model each method returned (chosen on validation data), mean ± "
             "sample std over seeds (n and the seeds in brackets). Every method has the same "
             "member-step budget (a run that cools down stops before spending it: "
             "`gradient_steps` in its record). Rendered by `python -m experiments.budget_report` from the "
             "records of `experiments.benchmark` (paper range) and `experiments.robustness` "
             "(wrong ranges, mutation bounds [1e-7, 1]).", ""]
    for dataset in datasets:
        lines += [f"## {DATASET_NAMES.get(dataset, dataset)}", "",
                  "| method | " + " | ".join(RANGE_LABELS[r] for r in RANGES) + " |",
                  "|---|" + "---|" * len(RANGES)]
        present = {r["method"] for key, records in groups.items() if key[0] == dataset
                   for r in records}
        variants = [m for m in budget_aware_methods(present)
                    if m not in METHODS]
        for method in list(METHODS) + variants:
            cells = [_cell(groups.get((dataset, r), []), method) for r in RANGES]
            if all(cell == "not run" for cell in cells):
                continue
            lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
        lines += ["", "Targets of issue 19 (on the means):", ""] + (
            targets(groups, dataset) or ["- not enough runs yet"])
        lines += ["", "What the budget-aware runs returned:", ""] + choices(groups, dataset)
        lines.append("")
    text = "\n".join(lines)
    pathlib.Path(path).write_text(text, encoding="utf-8")
    return text


def returned_model_curve(record) -> list:
    """The record's curve as the validation loss of the model the run would return at each
    point. A budget-aware run with a survivor checkpoint recorded its survivor's current
    loss; from its last shrink on it would return the best checkpoint so far, so those
    points become the running minimum (as `adam`'s curve is its best so far)."""
    details = record.get("details", {})
    curve = [list(point) for point in record["curve"]]
    if not details.get("restored_best") or not details.get("shrinks"):
        return curve
    alone_from = details["shrinks"][-1]["gradient_steps"]
    best = math.inf
    for point in curve:
        if point[0] >= alone_from:
            best = min(best, point[1])
            point[1] = best
    return curve


def write_figure(groups, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(groups, key=lambda key: (key[0], RANGES.index(key[1])))
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (dataset, range_name) in zip(axes[0], panels):
        records = groups[(dataset, range_name)]
        for method in [m for m in METHODS if ":" not in m]:
            runs = [r for r in records if r["method"] == method and not r.get("failed")]
            if not runs:
                continue
            steps, mean, _ = mean_curve([returned_model_curve(r) for r in runs])
            line, = axis.plot(steps, mean, label=LABELS[method].strip("*"))
            final = np.mean([r["test_loss"] for r in runs])
            axis.plot([steps[-1]], [final], marker="o", color=line.get_color())
        axis.set_title(f"{DATASET_NAMES.get(dataset, dataset)}, {RANGE_LABELS[range_name]}")
        axis.set_xlabel("member-steps")
        axis.set_ylabel("validation loss of the returned model (dot: final test loss)")
        axis.set_ylim(top=min(axis.get_ylim()[1], 2.5))
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _sweep(sweep_dir, dataset, scale):
    """{learning rate: record} of the single-run sweep (`adam-decay` at fixed rates)."""
    runs = {}
    root = pathlib.Path(sweep_dir)
    for path in sorted(root.glob("*/records.jsonl")) if root.is_dir() else []:
        for record in latest_records(path.parent):
            if record["dataset"] == dataset and record.get("scale") == scale:
                runs[record["details"]["hyperparameters"]["learning_rate"]] = record
    return runs


def write_bias_figure(groups, sweep_dir, scale, path, dataset="fmnist") -> bool:
    """Short-horizon bias and the remedy in one figure: left, the learning rate of the fittest
    member at each selection of the budget-aware runs (what a selection at that horizon
    would keep) and the rate each run returned, against member-steps; right, single runs at
    fixed rates, their loss early (first curve point) and at the end of the budget, which
    shows the rate a full run prefers. False when there is nothing to draw."""
    paper = groups.get((dataset, "paper"), [])
    # The default's runs; without them the first budget-aware method (or variant) that ran.
    drawn = next((m for m in ["popdescent-budget-rt"] + budget_aware_methods(paper)
                  if any(r["method"] == m for r in paper)), None)
    runs = [r for r in paper if r["method"] == drawn]
    sweep = _sweep(sweep_dir, dataset, scale)
    for record in groups.get((dataset, "paper"), []):
        if record["method"] == "adam-decay":
            sweep.setdefault(record["details"]["hyperparameters"]["learning_rate"], record)
    if not runs and not sweep:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for record in sorted(runs, key=lambda r: r["seed"]):
        steps, rates = [], []
        for entry in record["details"]["lineage"]:
            fitness = np.array([np.nan if f is None else f for f in entry["fitness"]])
            if np.isfinite(fitness).any() and len(fitness) > 1:
                steps.append(entry["gradient_steps"])
                rates.append(entry["learning_rate"][int(np.nanargmax(fitness))])
        line, = left.plot(steps, rates, marker=".",
                          label=f"seed {record['seed']}: fittest on the selection batch")
        left.plot([record["gradient_steps"]], [record["details"]["hyperparameters"]
                                               ["learning_rate"]],
                  marker="*", markersize=12, color=line.get_color())
    if sweep:
        best = min(sweep, key=lambda rate: sweep[rate]["test_loss"])
        left.axhline(best, color="black", linestyle="--", label="best single full run")
        rates = sorted(sweep)
        right.plot(rates, [sweep[r]["curve"][0][1] for r in rates], marker="o",
                   label=f"after {sweep[rates[0]]['curve'][0][0]} steps (validation)")
        right.plot(rates, [sweep[r]["test_loss"] for r in rates], marker="o",
                   label="after the whole budget (test)")
        right.set_xscale("log")
        right.set_xlabel("learning rate (Adam + budget schedule, seed 5)")
        right.set_ylabel("loss")
        right.legend(fontsize=8)
    left.set_yscale("log")
    left.set_xlabel("member-steps")
    left.set_ylabel("learning rate (star: returned member,\n"
                    "last rung ranked on the validation half)")
    left.set_title(f"{drawn or 'budget-aware PopDescent'}: whom selection keeps", fontsize=9)
    left.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.budget_report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--robustness", default="results/robustness")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--docs", default="docs")
    parser.add_argument("--variants", nargs="*",
                        default=["results/early_rungs", "results/commit_early"],
                        help="directories of budget-aware runs with --option (rows of their "
                             "own; a run's options are not part of its record key, so each "
                             "variant needs its own --out)")
    parser.add_argument("--sweep", default="results/lr_sweep",
                        help="single runs at fixed rates (benchmark --out DIR/<rate>)")
    parser.add_argument("--name", default=None,
                        help="file stem of the page and figures (default budget_aware, or "
                             "budget_aware_<scale> for another scale): a table from other "
                             "records, e.g. the tuners against the population, leaves the "
                             "committed pages alone")
    parser.add_argument("--title", default=None, help="the page's title (default: the "
                        "budget-aware evidence at the scale)")
    args = parser.parse_args(argv)
    groups = load(args.results, args.robustness, args.scale, args.variants)
    docs = pathlib.Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    # The quick scale is the main table; another scale gets files of its own.
    stem = args.name or ("budget_aware" if args.scale == "quick"
                         else f"budget_aware_{args.scale}")
    print(write_markdown(groups, docs / f"{stem}.md", args.scale, args.title))
    write_figure(groups, docs / f"{stem}.png")
    if args.name is None:  # the bias figure is the budget-aware page's own evidence
        write_bias_figure(groups, args.sweep, args.scale, docs / f"{stem}_bias.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
