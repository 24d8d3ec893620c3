"""The regularized benchmark's page (issue 38): docs/regularization.md and the figure of the
schedules the populations discovered, from the committed records.

    python -m experiments.regularization_report [--records docs/records/regularization]
        [--reference docs/records/benchmark] [--out docs/regularization.md]

`--records` holds one benchmark `--out` per variant, named `<scale>_<guess>[_<variant>]`
(`quick_bad`, `quick_bad_wide`, `quick_bad_wide_random`, `quick_bad_replay`, ...); the
reference directory holds the unregularized `adam-decay` runs of the same scale. Every cell is
the test loss mean ± std over the seeds that ran (their count in brackets), with the member-
steps that ran; a row no record fills says "not run". Two measurements follow the table:
who each rung of the budget-aware populations kept (their regularization against the members
it culled: the short-horizon bias), and how the single runs at the two guesses and without
regularization rank at the first check against the end (the same bias, on runs left alone).
Where `middle_good` holds records, a second table shows the good guess at 12,800 member-steps
(every row the issue asks for, "not run" included; the population's ensemble and soup read
from the records' extras), with each population's survivor: its own steps, when it cooled
down, how many members its width phase finished, its final values. Where `horizon_bias` holds
`experiments.horizon_bias` probes, each scale gets their section
(`experiments.reports.horizon_bias`): the orders a fitness would see at the rungs' horizons,
plain, after a cool-down branch and by improvement rate, against the order at the end.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from experiments.reports.horizon_bias import probe_section
from experiments.reports.table1 import latest_records, mean_std

__all__ = ["ROWS", "MIDDLE_ROWS", "CIFAR_REQUIRED", "GUESSES", "table", "middle_table", "survivors", "rung_bias",
           "early_and_final_ranks", "ranks_at", "write_figure", "render", "main"]

GUESSES = ("good", "bad")
DATASET_LABELS = {"fmnist": "FMNIST", "cifar10": "CIFAR-10"}
TUNED = ("learning_rate", "dropout", "augmentation", "label_smoothing")
RAMP_LABEL = ("one model, dropout and augmentation ramped from 0 to the guess over half the "
              "budget (`adam-ramp`)")
# (label, directory suffix after "<scale>_<guess>", method)
ROWS = (
    ("one model at the guess (`adam-decay`: schedule, cool-down)", "", "adam-decay"),
    (RAMP_LABEL, "_ramp", "adam-ramp"),
    ("Hyperband over rate, dropout, augmentation, smoothing (best trial)", "", "hyperband"),
    ("Bayesian optimization, same space (best trial)", "", "bayesian"),
    ("Optuna TPE + Hyperband pruner, same space (best trial)", "", "optuna"),
    ("population, narrow prior: `best_model()`", "", "popdescent-budget"),
    ("control: random selection, narrow prior", "_random", "popdescent-budget"),
    ("population, wide prior: `best_model()`", "_wide", "popdescent-budget"),
    ("control: random selection, wide prior", "_wide_random", "popdescent-budget"),
    ("population, wide prior, rate fixed (rungs compare regularization alone)",
     "_wide_rate_fixed", "popdescent-budget"),
    ("control: replay of the population's schedules (narrow prior)", "_replay", "adam-replay"),
    ("control: the population's final values held constant (narrow prior)", "_constant",
     "adam-constant"),
    ("control: replay of the population's schedules (wide prior)", "_wide_replay",
     "adam-replay"),
    ("control: the population's final values held constant (wide prior)", "_wide_constant",
     "adam-constant"),
)

# The CIFAR-10 rows the issue asks for at 2,560 member-steps (both guesses).
CIFAR_REQUIRED = ("one model at the guess (`adam-decay`: schedule, cool-down)",
                  "Hyperband over rate, dropout, augmentation, smoothing (best trial)",
                  "population, narrow prior: `best_model()`",
                  "control: random selection, narrow prior")
# The 12,800-step rows (good guess only, as the issue asks): (label, directory suffix after
# "middle_good", method, the extra model of the record read instead of the returned one).
MIDDLE_ROWS = (
    ("one model at the guess (`adam-decay`: schedule, cool-down)", "", "adam-decay", None),
    (RAMP_LABEL, "_ramp", "adam-ramp", None),
    ("population: `best_model()`", "", "popdescent-budget", None),
    ("population: `ensemble_model()`", "", "popdescent-budget", "ensemble"),
    ("population: `soup_model()`", "", "popdescent-budget", "soup"),
    ("control: independent ensemble at the population's horizon", "_ensemble",
     "independent-ensemble", None),
    ("control: random selection", "_random", "popdescent-budget", None),
)


def load(directory) -> list:
    path = pathlib.Path(directory)
    return latest_records(path) if (path / "records.jsonl").exists() else []


def cell(records, method, extra=None) -> str:
    """The test loss of `method`'s records (of their `extras[extra]` model where given):
    mean ± std (seeds; member-steps that ran), or "not run"."""
    runs = [r for r in records if r["method"] == method
            and (extra is None or extra in (r.get("extras") or {}))]
    if not runs:
        return "not run"
    steps = sorted({int(r["gradient_steps"]) for r in runs})
    spent = (f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}–{steps[-1]:,}")
    losses = [float(r["test_loss"] if extra is None else r["extras"][extra]["test_loss"])
              for r in runs]
    return f"{mean_std(losses)} ({len(runs)}; {spent})"


def unregularized(reference, scale, dataset="fmnist") -> list:
    """The plain runs of `dataset` at `scale` in `reference` (no options, no L2)."""
    return [r for r in load(reference)
            if r.get("scale") == scale and r["dataset"] == dataset
            and not r.get("regularization") and not r.get("options")]


def table(records_root, reference, scale="quick", dataset="fmnist", required=()) -> list:
    """Markdown lines of the test-loss table of `dataset` at `scale`, one column per guess:
    the rows somebody ran, and the rows labelled in `required` even where nobody did. Its
    directories are `<scale>_<guess>[_variant]` (FMNIST) or `cifar_<scale>_<guess>[...]`."""
    root = pathlib.Path(records_root)
    prefix = scale if dataset == "fmnist" else f"cifar_{scale}"
    name = DATASET_LABELS[dataset]
    translation = "translation 0.1" if dataset == "fmnist" else "translation 0.1, flip"
    lines = [f"| returned model ({name}, member-steps as run) | good guess (dropout 0.3, "
             f"{translation}) | bad guess (dropout 0.6, translation 0.3) |",
             "|---|---|---|",
             f"| one model, no dropout or augmentation (`adam-decay`) | "
             f"{cell(unregularized(reference, scale, dataset), 'adam-decay')} | (the same) |"]
    for label, suffix, method in ROWS:
        cells = [cell(load(root / f"{prefix}_{guess}{suffix}"), method)
                 for guess in GUESSES]
        if any(c != "not run" for c in cells) or label in required:
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return lines


def middle_table(records_root, reference, scale="middle") -> list:
    """Markdown lines of the good guess's table at `scale`: every row the issue asks for,
    "not run" where no record fills it."""
    root = pathlib.Path(records_root)
    lines = ["| returned model (FMNIST, good guess) | test loss (seeds; member-steps as run) |",
             "|---|---|",
             f"| one model, no dropout or augmentation (`adam-decay`) | "
             f"{cell(unregularized(reference, scale), 'adam-decay')} |"]
    populations = survivors(load(root / f"{scale}_good"))
    for label, suffix, method, extra in MIDDLE_ROWS:
        value = cell(load(root / f"{scale}_good{suffix}"), method, extra)
        if (method == "independent-ensemble" and value == "not run" and populations
                and all(row["cooled_at"] is None for row in populations)):
            # `adam-decay-ensemble`'s first run is `adam-decay`'s; with no horizon measured
            # it gets the whole budget, and no second run fits.
            value = ("no population cooled down, so none measured a horizon: the "
                     "independent ensemble is one run, the row `adam-decay` above")
        lines.append(f"| {label} | {value} |")
    return lines


def survivors(records) -> list:
    """Per budget-aware population: its seed, the returned member's own steps and final
    values, the member-steps at which its survivor cooled down (None: it never did) and how
    many finished members its width phase left."""
    rows = []
    for record in sorted(records, key=lambda r: r["seed"]):
        if record["method"] != "popdescent-budget":
            continue
        details = record["details"]
        rows.append({"seed": record["seed"], "own_steps": details.get("own_gradient_steps"),
                     "hyperparameters": details.get("hyperparameters") or {},
                     "cooled_at": (details.get("cooldown") or {}).get("gradient_steps"),
                     "finished": len(details.get("finished") or [])})
    return rows


def rung_bias(records) -> dict:
    """Over the budget-aware populations' rungs: how many shrinks, and the mean dropout,
    augmentation and learning rate of the members each kept against those it culled."""
    kept = {"dropout": [], "augmentation": [], "learning_rate": []}
    culled = {"dropout": [], "augmentation": [], "learning_rate": []}
    shrinks = 0
    for record in records:
        if record["method"] != "popdescent-budget":
            continue
        lineage = record["details"]["lineage"]
        for shrink in record["details"]["shrinks"]:
            entry = next(e for e in lineage if e["gradient_steps"] == shrink["gradient_steps"])
            shrinks += 1
            for name in kept:
                values = entry.get(name)
                if values is None:
                    continue
                # `kept` numbers the iteration's slots (`left` names origins): the culled
                # members are the other slots.
                kept[name].extend(values[i] for i in shrink["kept"])
                culled[name].extend(value for i, value in enumerate(values)
                                    if i not in shrink["kept"])
    return {"shrinks": shrinks,
            **{f"kept_{name}": float(np.mean(v)) if v else None for name, v in kept.items()},
            **{f"culled_{name}": float(np.mean(v)) if v else None
               for name, v in culled.items()}}


def early_and_final_ranks(by_setting) -> list:
    """Per seed: the settings ({name: adam-decay record}) ordered by validation loss at the
    first check and at the end (the curve's first and last points)."""
    seeds = sorted(set.intersection(*[set(runs) for runs in by_setting.values()]))
    rows = []
    for seed in seeds:
        runs = {name: by_setting[name][seed] for name in by_setting}
        early = sorted(runs, key=lambda name: runs[name]["curve"][0][1])
        final = sorted(runs, key=lambda name: runs[name]["curve"][-1][1])
        rows.append({"seed": seed, "first_check_steps": runs[early[0]]["curve"][0][0],
                     "early": early, "final": final})
    return rows


def ranks_at(by_setting, steps) -> list:
    """Per seed: the settings ({name: {seed: adam-decay record}}) ordered by their validation
    loss at the last check at or before each of `steps` (None: the run's last check), with
    the losses: where the order at a rung's horizon differs from the order at the end, a
    selection at that horizon picks the setting that finishes worse."""
    seeds = sorted(set.intersection(*[set(runs) for runs in by_setting.values()]))
    rows = []
    for seed in seeds:
        orders = []
        for step in steps:
            losses = {}
            for name, runs in by_setting.items():
                points = [p for p in runs[seed]["curve"] if step is None or p[0] <= step]
                losses[name] = points[-1][1] if points else float("nan")
            orders.append(sorted(losses.items(), key=lambda item: item[1]))
        rows.append({"seed": seed, "orders": orders})
    return rows


def annealed_order(by_setting) -> list:
    """The settings ({name: {seed: adam-decay record}}) ordered by their mean test loss, with
    it: runs whose rate was decayed to zero over their own (short) budget, so the order a
    fitness scored after a cool-down would see at that horizon."""
    means = {name: float(np.mean([r["test_loss"] for r in runs.values()]))
             for name, runs in by_setting.items() if runs}
    return sorted(means.items(), key=lambda item: item[1])


def exported_series(record) -> dict:
    exported = record["details"].get("exported_hyperparameters") or {}
    return {name: [value for value, count in runs for _ in range(int(count))]
            for name, runs in exported.items()}


def write_figure(populations, path) -> bool:
    """One panel per tuned hyperparameter: each returned member's value at each of its own
    steps, per (variant, seed). False (no figure) when no record exports its schedules."""
    lines = [(label, record["seed"], exported_series(record)) for label, record in populations]
    lines = [line for line in lines if line[2]]
    if not lines:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(TUNED), figsize=(4 * len(TUNED), 3.4))
    colors = {}
    for label, seed, series in lines:
        color = colors.setdefault(label, f"C{len(colors)}")
        for axis, name in zip(axes, TUNED):
            if name in series:
                axis.plot(np.arange(len(series[name])), series[name], color=color, alpha=0.8,
                          label=label if seed == min(s for lab, s, _ in lines if lab == label)
                          else None)
    for axis, name in zip(axes, TUNED):
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("own gradient steps of the returned member")
    axes[0].set_yscale("log")
    labelled = [axis for axis in axes if axis.get_legend_handles_labels()[0]]
    if labelled:
        labelled[-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def render(records_root, reference, out, scale="quick",
           middle_reference="docs/records/width") -> str:
    root = pathlib.Path(records_root)
    populations, by_setting = [], {}
    for guess in GUESSES:
        for suffix, label in (("", f"{guess} guess, narrow prior"),
                              ("_wide", f"{guess} guess, wide prior"),
                              ("_wide_rate_fixed", f"{guess} guess, wide prior, rate fixed")):
            populations += [(label, r) for r in load(root / f"{scale}_{guess}{suffix}")
                            if r["method"] == "popdescent-budget"]
        by_setting[f"{guess} guess"] = {r["seed"]: r for r in load(root / f"{scale}_{guess}")
                                        if r["method"] == "adam-decay"}
    populations += [("good guess, 12,800 member-steps", r) for r in load(root / "middle_good")
                    if r["method"] == "popdescent-budget"]
    by_setting["none"] = {r["seed"]: r for r in load(reference)
                          if r["method"] == "adam-decay" and r.get("scale") == scale
                          and r["dataset"] == "fmnist" and not r.get("options")}
    figure = pathlib.Path(out).with_suffix(".png")
    has_figure = write_figure(populations, figure)
    lines = ["# Tuning what one run cannot: dropout, augmentation, label smoothing", "",
             f"Rendered by `python -m experiments.regularization_report` from "
             f"`{root}` (one directory per variant) and the unregularized runs in "
             f"`{reference}`. Cells: test loss mean ± std (seeds; member-steps that ran).", ""]
    lines += table(root, reference, scale)
    lines += ["", "At 3,200 member-steps no survivor cools down, so there is no width phase: a "
              "population's `ensemble_model()` and `soup_model()` are its best member (the records "
              "hold both as extras)."]
    lines += ["", "## Who the rungs kept", ""]
    lines += ["| setting | shrinks | dropout kept / culled | augmentation kept / culled | "
              "learning rate kept / culled |", "|---|---|---|---|---|"]
    for guess in GUESSES:
        for suffix in ("", "_wide", "_wide_random", "_wide_rate_fixed"):
            bias = rung_bias(load(root / f"{scale}_{guess}{suffix}"))
            if bias["shrinks"]:
                lines.append(
                    f"| {guess}{suffix.replace('_rate_fixed', ', rate fixed').replace('_', ', ')} | "
                    f"{bias['shrinks']} | "
                    f"{bias['kept_dropout']:.2f} / {bias['culled_dropout']:.2f} | "
                    f"{bias['kept_augmentation']:.2f} / {bias['culled_augmentation']:.2f} | "
                    + (f"{bias['kept_learning_rate']:.1e} / {bias['culled_learning_rate']:.1e} |"
                       if bias["kept_learning_rate"] is not None else "not tuned |"))
    lines += ["", "## Single runs left alone: ranked at the first check and at the end", "",
              "| seed | first check (steps) | best → worst at the first check | "
              "best → worst at the end |", "|---|---|---|---|"]
    for row in early_and_final_ranks({k: v for k, v in by_setting.items() if v}):
        lines.append(f"| {row['seed']} | {row['first_check_steps']:,} | "
                     f"{' < '.join(row['early'])} | {' < '.join(row['final'])} |")
    lines += probe_section([r for r in load(root / "horizon_bias") if r.get("scale") == scale],
                           {k: v for k, v in by_setting.items() if v})
    if any(root.glob(f"cifar_{scale}_*/records.jsonl")):
        lines += ["", "## CIFAR-10, 2,560 member-steps", "",
                  "The unregularized one model's CIFAR-10 records at this scale were not "
                  "committed; docs/budget_aware.md renders them: 0.967 ± 0.020 (seeds 5, 15, "
                  "24).", ""]
        lines += table(root, reference, scale, "cifar10", CIFAR_REQUIRED)
    middle = load(root / "middle_good")
    if middle:
        lines += ["", "## 12,800 member-steps, good guess", "",
                  f"The unregularized row: `{middle_reference}` (the width study's runs).", ""]
        lines += middle_table(root, middle_reference)
        lines += ["", "| seed | returned member's own steps | survivor cooled down at "
                  "(member-steps) | finished members | returned member's values |",
                  "|---|---|---|---|---|"]
        for row in survivors(middle):
            values = ", ".join(f"{name} {value:.3g}"
                               for name, value in row["hyperparameters"].items())
            cooled = f"{row['cooled_at']:,}" if row["cooled_at"] is not None else "never"
            own = f"{row['own_steps']:,}" if row["own_steps"] is not None else "?"
            lines.append(f"| {row['seed']} | {own} | {cooled} | {row['finished']} | "
                         f"{values} |")
        probe_lines = []
        singles = {"good guess": {r["seed"]: r for r in middle if r["method"] == "adam-decay"},
                   "none": {r["seed"]: r for r in unregularized(middle_reference, "middle")
                            if r["method"] == "adam-decay"}}
        if all(singles.values()):
            horizons = (640, 2560, None)  # the rungs' horizons (5 % and 20 %), the end
            lines += ["", "Single runs left alone, ranked by validation loss where the rungs "
                      "decide (5 % and 20 % of the budget) and at their last check:", "",
                      "| seed | at 640 member-steps | at 2,560 | at the end |", "|---|---|---|---|"]
            for row in ranks_at(singles, horizons):
                lines.append(f"| {row['seed']} | " + " | ".join(
                    " < ".join(f"{name} {loss:.3f}" for name, loss in order)
                    for order in row["orders"]) + " |")
            probes = [r for r in load(root / "horizon_bias") if r.get("scale") == "middle"]
            annealed = annealed_order(by_setting)
            if len(annealed) > 1 and not probes:
                spent = max(int(r["gradient_steps"]) for runs in by_setting.values()
                            for r in runs.values())
                lines += ["", f"Annealed over {spent:,} member-steps "
                          "(the single runs of the first table, their rate decayed to zero), "
                          "the order on the means is the one the rungs see: "
                          + " < ".join(f"{name} {loss:.3f}" for name, loss in annealed)
                          + ". So scoring members after a cool-down at the rungs' horizons "
                          "(at most 2,560 here) is not expected to reverse it (inferred from "
                          "these runs; that remedy was not built)."]
            probe_lines = probe_section(probes, singles)
        bias = rung_bias(middle)
        if bias["shrinks"]:
            lines += ["", f"Its {bias['shrinks']} shrinks kept dropout "
                      f"{bias['kept_dropout']:.2f} and augmentation "
                      f"{bias['kept_augmentation']:.2f} against {bias['culled_dropout']:.2f} "
                      f"and {bias['culled_augmentation']:.2f} culled (learning rate "
                      f"{bias['kept_learning_rate']:.1e} against "
                      f"{bias['culled_learning_rate']:.1e})."]
        lines += probe_lines
    if has_figure:
        lines += ["", "## The schedules the populations found", "",
                  f"![schedules]({figure.name})"]
    text = "\n".join(lines) + "\n"
    pathlib.Path(out).write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.regularization_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="docs/records/regularization")
    parser.add_argument("--reference", default="docs/records/benchmark")
    parser.add_argument("--out", default="docs/regularization.md")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--middle-reference", default="docs/records/width",
                        help="the unregularized adam-decay runs at 12,800 member-steps")
    args = parser.parse_args(argv)
    print(render(args.records, args.reference, args.out, args.scale, args.middle_reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
