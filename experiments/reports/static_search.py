"""Renders `docs/static_search.md` and `docs/static_search.png` from static-search records.

Called by `python -m experiments.static_search` (also with `--render-only`). Means and sample
standard deviations (ddof=1) are over seeds; a "win" compares two methods seed by seed on the
same data, the same budget and the same seed.
"""

import datetime
import pathlib

import numpy as np

LABELS = {
    "random": "KerasTuner RandomSearch",
    "bayesian": "KerasTuner BayesianOptimization",
    "ga": "GeneticSearch",
    "ga_invasive": "GeneticSearch + invasive",
    "ga_islands": "GeneticSearch, 2 islands",
    "ga_islands_invasive": "GeneticSearch, 2 islands + invasive",
}
SHORT = {"random": "RS", "bayesian": "BO", "ga": "GA", "ga_invasive": "GA+inv",
         "ga_islands": "GA-2isl", "ga_islands_invasive": "GA-2isl+inv"}
TASK_TITLES = {"sinewave": "Sinewave regression (validation / test MSE, lower is better)",
               "fmnist": "Fashion-MNIST MLP (validation / test accuracy, higher is better)"}
MAXIMISED = {"sinewave": False, "fmnist": True}


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return values.mean(), std


def _fmt(value, task):
    return f"{value:.4f}" if MAXIMISED[task] else f"{value:.3g}"


def _cell(values, task):
    mean, std = _mean_std(values)
    return f"{_fmt(mean, task)} ± {_fmt(std, task)}"


def _by(records, task):
    runs = {}
    for record in records:
        if record["task"] == task:
            runs.setdefault(record["method"], []).append(record)
    return {m: sorted(runs[m], key=lambda r: r["seed"]) for m in LABELS if m in runs}


def _compare(task, runs, method, baseline, key):
    """'better on k/n seeds, mean difference d' for method vs baseline at the final trial."""
    mine = {r["seed"]: r[key][-1] for r in runs[method]}
    theirs = {r["seed"]: r[key][-1] for r in runs[baseline]}
    seeds = sorted(set(mine) & set(theirs))
    sign = 1 if MAXIMISED[task] else -1
    wins = sum(sign * (mine[s] - theirs[s]) > 0 for s in seeds)
    difference = np.mean([mine[s] - theirs[s] for s in seeds])
    return wins, len(seeds), difference


def _verdicts(task, runs):
    lines = []
    for method in (m for m in runs if m.startswith("ga")):
        for baseline in ("random", "bayesian"):
            if baseline not in runs:
                continue
            parts = []
            for key, what in (("best_val", "validation"), ("best_test", "test")):
                wins, seeds, difference = _compare(task, runs, method, baseline, key)
                parts.append(f"{what}: better on {wins}/{seeds} seeds, mean difference "
                             f"{difference:+.3g}")
            lines.append(f"- {LABELS[method]} vs {SHORT[baseline]}: " + "; ".join(parts))
    return lines


def _top_ten(task, runs):
    """Seed 004's 'top ten best models' table, over all methods of the first seed."""
    seed = min(r["seed"] for rs in runs.values() for r in rs)
    rows = []
    for method, records in runs.items():
        for record in records:
            if record["seed"] != seed:
                continue
            for index, trial in enumerate(record["trials"]):
                if trial["val"] is not None:
                    rows.append((trial["val"], f"{SHORT[method]}-{index}", trial))
    rows.sort(key=lambda row: -row[0] if MAXIMISED[task] else row[0])
    lines = [f"Top ten trials of seed {seed}, all methods (`GA-17` is the GA's 18th trial; "
             "origin `invasive` = proposed by the surrogate):", "",
             "| name | origin | dropout | units | layers | activation | validation |",
             "|---|---|---|---|---|---|---|"]
    for value, name, trial in rows[:10]:
        v = trial["values"]
        lines.append(f"| {name} | {trial['origin']} | {v['dropout']:.3f} | {v['units']} | "
                     f"{v['layers']} | {v['activation']} | {_fmt(value, task)} |")
    return lines


def _plot(tasks, records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(tasks), 2, figsize=(11, 3.8 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        runs = _by(records, task)
        for column, (key, what) in enumerate((("best_val", "validation"), ("best_test", "test"))):
            axis = axes[row][column]
            for method, method_runs in runs.items():
                curves = np.array([[np.nan if v is None else v for v in r[key]]
                                   for r in method_runs], dtype=float)
                mean = np.nanmean(curves, axis=0)
                trials = np.arange(1, len(mean) + 1)
                style = "-" if method.startswith("ga") else "--"
                axis.plot(trials, mean, style, label=LABELS[method])
                # Min-max over seeds: mean - std goes below zero on the log-scaled MSE axes.
                low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
                axis.fill_between(trials, low, high, alpha=0.12)
            if not MAXIMISED[task]:
                axis.set_yscale("log")
            axis.set_xlabel("trials")
            metric = "accuracy" if MAXIMISED[task] else "MSE"
            axis.set_ylabel(f"{what} {metric} of best-so-far")
            axis.set_title(f"{task}: {what}")
            axis.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def render(records, scale, config, docs):
    """Writes `static_search.md` and `static_search.png` into `docs`."""
    docs = pathlib.Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in TASK_TITLES if any(r["task"] == t for r in records)]
    if not tasks:
        raise SystemExit("no static-search records to render")
    budget = config["population_size"] * config["generations"]
    seeds = sorted({r["seed"] for r in records})
    lines = [
        "# Static search: GeneticSearch against random search and Bayesian optimisation",
        "",
        f"Generated by `python -m experiments.static_search --scale {scale}` "
        f"({datetime.date.today().isoformat()}); re-render with `--render-only`.",
        "",
        f"Budget {budget} trials per run (GA: population {config['population_size']} x "
        f"{config['generations']} generations; 2 islands: {config['population_size']} x 2 x "
        f"{config['generations'] // 2}, migration every {config['migration_interval']} "
        f"generation(s); invasive: {config['invasive']} surrogate member per island and "
        f"generation), seeds {seeds}; the same seed seeds every method and the global Keras "
        "RNG. Search space of seed 004: layers 1-5, units 16-128, activation of 6 (tree "
        "mutation over `ACTIVATION_TREE`, b = 2), dropout 0-0.5; GA mutation layers ±2, units "
        f"±16, dropout N(0, 0.075); tournament of {config['tournament_size']}, two-point "
        "crossover, one elite. BayesianOptimization starts from "
        f"{config['population_size']} random points (KerasTuner's default, 12, would leave "
        "it almost no guided trials at small budgets).",
        "",
        f"Data: sinewave {config['sine_samples']} samples (60/20/20 split), "
        f"{config['sine_epochs']} epochs, batch 32; Fashion-MNIST "
        f"{config['fmnist_train'] or 60000} training images, {config['fmnist_eval'] or 5000} "
        f"validation and test images, {config['fmnist_epochs']} epoch(s), batch 128. Test "
        "values are those of the best-so-far trial by validation, at the epoch KerasTuner "
        "scores it by. ± is the sample standard deviation over seeds.",
        "",
        "Figure: best-so-far validation and test objective against trials; lines are means "
        "over seeds, bands span the seeds' minimum to maximum.",
        "",
        "![best-so-far validation and test objective against trials](static_search.png)",
    ]
    expected = {(task, method, seed) for task in TASK_TITLES for method in config["methods"]
                for seed in range(1, 1 + config["seeds"])}
    missing = sorted(expected - {(r["task"], r["method"], r["seed"]) for r in records})
    if missing:
        listed = ", ".join(f"{task}/{method}/seed {seed}" for task, method, seed in missing)
        lines[-3:-3] = [f"**Incomplete:** {len(expected) - len(missing)} of {len(expected)} "
                        f"runs of this scale had finished when this page was rendered; "
                        f"missing: {listed}.", ""]
    for task in tasks:
        runs = _by(records, task)
        lines += ["", f"## {TASK_TITLES[task]}", "",
                  "| method | best validation | test of best-validation trial | "
                  "mean wall time (s) | runs |", "|---|---|---|---|---|"]
        for method, method_runs in runs.items():
            lines.append(
                f"| {LABELS[method]} | {_cell([r['best_val'][-1] for r in method_runs], task)} | "
                f"{_cell([r['best_test'][-1] for r in method_runs], task)} | "
                f"{np.mean([r['wall_s'] for r in method_runs]):.0f} | {len(method_runs)} |"
            )
        finals = {m: np.mean([r["best_val"][-1] for r in rs]) for m, rs in runs.items()}
        tests = {m: np.mean([r["best_test"][-1] for r in rs]) for m, rs in runs.items()}
        pick = max if MAXIMISED[task] else min
        best_val, best_test = pick(finals, key=finals.get), pick(tests, key=tests.get)
        lines += ["", f"Best mean validation: {LABELS[best_val]} ({_fmt(finals[best_val], task)});"
                  f" best mean test: {LABELS[best_test]} ({_fmt(tests[best_test], task)})."]
        lines += ["", "Seed-paired comparison at the end of the budget (difference = GA "
                  "variant minus baseline):", ""] + _verdicts(task, runs)
        lines += [""] + _top_ten(task, runs)
    (docs / "static_search.md").write_text("\n".join(lines) + "\n")
    _plot(tasks, records, docs / "static_search.png")
