"""Regenerates the paper's evaluation end to end: Table 1, Table 2 and Tables 3-4, then
`results.md` with every table and figure.

    python -m experiments.reproduce --scale smoke|small|paper [--out results/] [--docs DIR] \\
        [--tables table1 table2 table3_4] [--methods adam grid random esgd pbt popdescent] \\
        [--datasets fmnist cifar10] [--model cnn|mlp] [--data-dir D] [--quiet] [--render-only]

Runs, in this order (each resumable: a record already in OUT is skipped, so an interrupted
reproduction continues where it stopped, and a finished one only renders again):
  table1    python -m experiments.benchmark --dataset fmnist cifar10 \\
                --method adam grid random esgd pbt popdescent --seeds 5 --scale S --out OUT
            and the same with --regularization, without esgd (the paper ran none); at paper
            scale the paper's ten seeds. The paper's four methods plus PBT (its reviewers'
            request) and `adam`, one untuned model with the whole budget (what a Keras user
            does first)
  table2    python -m experiments.ablation --scale S --out OUT/ablation
  table3_4  python -m experiments.sensitivity --scale S --out OUT/sensitivity
and after each of them `python -m experiments.report` on this scale's records into DOCS
(default `docs/`; `OUT/docs/` at smoke scale, so that a smoke run never overwrites the
committed results) and DOCS/results.md: what ran, the training wall time of each table, every table with the
paper's numbers beside ours, every figure, and where our ordering of methods agrees or
disagrees with the paper's. `--model mlp` runs the ablation and the sensitivity on a tiny
stand-in model (for tests); Table 1 always uses the paper's CNNs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from experiments import ablation, benchmark, report, sensitivity  # noqa: E402
from experiments.core import contract  # noqa: E402
from experiments.core.records import RECORDS_FILE, git_commit, write_record  # noqa: E402
from experiments.methods import variants  # noqa: E402
from experiments.reports import table1 as table1_report  # noqa: E402

TABLES = ("table1", "table2", "table3_4")
TABLE1_METHODS = ("adam", "grid", "random", "esgd", "pbt", "popdescent")
REGULARIZED_METHODS = ("adam", "grid", "random", "pbt", "popdescent")  # the paper ran no ESGD reg
TABLE1_SEEDS = {"smoke": (5,), "small": (5,), "paper": contract.PAPER_SEEDS}
# Reports of the other experiment scripts, linked from results.md when they sit in DOCS.
BEYOND_THE_PAPER = (
    ("robustness.md", "Robustness to a wrong starting learning rate (experiments.robustness)"),
    ("throughput.md", "Throughput of the fused population (experiments.throughput)"),
    ("static_search.md", "GeneticSearch against random search and Bayesian optimisation "
                         "(experiments.static_search)"),
)
TITLES = {"table1": "Table 1 (benchmark)", "table2": "Table 2 (ablation)",
          "table3_4": "Tables 3-4 (sensitivity)"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=contract.SCALES, default="small")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results"),
                        help="where the records go (default results/)")
    parser.add_argument("--docs", type=pathlib.Path, default=None,
                        help="where results.md, the tables and figures go (default docs/; "
                        "OUT/docs at smoke scale)")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    parser.add_argument("--methods", nargs="+", choices=TABLE1_METHODS,
                        default=list(TABLE1_METHODS), help="Table 1's methods")
    parser.add_argument("--datasets", nargs="+", choices=contract.DATASETS,
                        default=list(contract.DATASETS), help="Table 1's datasets")
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn",
                        help="model of the ablation and the sensitivity (mlp: for tests)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing; render results.md from the records there are")
    args = parser.parse_args(argv)
    if args.docs is None:
        args.docs = args.out / "docs" if args.scale == "smoke" else pathlib.Path("docs")
    return args


def stage_commands(args) -> dict:
    """Table -> the argument lists of the command-line scripts that produce it."""
    common = ["--scale", args.scale] + (["--quiet"] if args.quiet else [])
    data = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    seeds = [str(seed) for seed in TABLE1_SEEDS[args.scale]]
    table1 = [["--dataset", *args.datasets, "--method", *args.methods, "--seeds", *seeds,
               "--out", str(args.out), *common, *data]]
    regularized = [m for m in args.methods if m in REGULARIZED_METHODS]
    if regularized:
        table1.append(["--dataset", *args.datasets, "--method", *regularized, "--seeds",
                       *seeds, "--regularization", "--out", str(args.out), *common, *data])
    model = ["--model", args.model]
    return {
        "table1": [(benchmark.main, argv) for argv in table1],
        "table2": [(ablation.main, ["--out", str(args.out / "ablation"), *model, *common,
                                    *data])],
        "table3_4": [(sensitivity.main, ["--out", str(args.out / "sensitivity"), *model,
                                         *common, *data])],
    }


def records_at_scale(out, scale) -> dict:
    """Table -> this scale's records in `out` (the last one written per key)."""
    table1 = [r for r in table1_report.latest_records(out) if r["scale"] == scale] if (
        out / RECORDS_FILE).is_file() else []
    return {
        "table1": table1,
        "table2": [r for r in variants.read_experiment(out / "ablation") if r["scale"] == scale],
        "table3_4": [r for r in variants.read_experiment(out / "sensitivity")
                     if r["scale"] == scale],
    }


def render(records, docs) -> list:
    """Runs `experiments.report` on `records` only (one scale), into `docs`; returns the
    figures it wrote."""
    docs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        for record in records["table1"]:
            write_record(scratch / RECORDS_FILE, record)
        for name, table in (("ablation", "table2"), ("sensitivity", "table3_4")):
            for record in records[table]:
                write_record(variants.records_path(scratch / name, record["variant"]),
                                       record)
        if any(records.values()):
            report.main([str(scratch), "--out", str(docs)])
    return sorted(path for path in docs.glob("*.png") if path.stat().st_mtime >= started - 1)


# ----------------------------------------------------------------------------- results.md
def _mean_test(runs):
    return float(np.mean([r["test_loss"] for r in runs]))


def table1_ordering(records) -> list:
    """Per (dataset, regularization): our ranking of the methods run by mean test loss, and
    the paper's ranking of the same methods."""
    lines = []
    for dataset, regularization in sorted({(r["dataset"], r["regularization"]) for r in records}):
        group = [r for r in records if (r["dataset"], r["regularization"]) ==
                 (dataset, regularization)]
        ours = {m: _mean_test([r for r in group if r["method"] == m])
                for m in {r["method"] for r in group}}
        paper = {m: table1_report.PAPER_TABLE1[(dataset, regularization, m)][0] for m in ours
                 if (dataset, regularization, m) in table1_report.PAPER_TABLE1}
        if len(paper) < 2:
            continue
        our_order = sorted(paper, key=ours.get)
        paper_order = sorted(paper, key=paper.get)
        names = table1_report.ALGORITHMS
        verdict = "agrees" if our_order == paper_order else "disagrees"
        lines.append(
            f"- {table1_report.DATASET_NAMES.get(dataset, dataset)} "
            f"{'reg' if regularization else 'no-reg'}: ours "
            f"{' < '.join(names.get(m, m) for m in our_order)}; paper "
            f"{' < '.join(names.get(m, m) for m in paper_order)} ({verdict})"
        )
    return lines


def table2_ordering(records) -> list:
    ours = {row.name: [r for r in records if r.get("variant") == row.name]
            for row in ablation.ROWS if row.paper}
    ours = {name: _mean_test(runs) for name, runs in ours.items() if runs}
    if len(ours) < 2:
        return []
    paper = {row.name: row.paper[0] for row in ablation.ROWS if row.name in ours}
    our_order, paper_order = sorted(ours, key=ours.get), sorted(paper, key=paper.get)
    verdict = "agrees" if our_order == paper_order else "disagrees"
    lines = [f"- Ablation rows by test loss: ours {' < '.join(our_order)}; paper "
             f"{' < '.join(paper_order)} ({verdict})"]
    preset = [r for r in records if r.get("variant") == "reference-preset"]
    full = [r for r in records if r.get("variant") == "full"]
    if preset and full:
        lines.append(f"- Reference preset vs paper-faithful default at the same budget: "
                     f"{_mean_test(preset):.3f} vs {_mean_test(full):.3f} test loss")
    return lines


def _machine(record):
    machine = record.get("machine") or {}
    return (f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), "
            f"TensorFlow {machine.get('tensorflow', '?')}")


def write_results(args, records, figures, elapsed) -> pathlib.Path:
    """DOCS/results.md: what ran, wall times, the tables, the figures, the orderings."""
    docs = args.docs
    machines = sorted({_machine(r) for table in records.values() for r in table})
    lines = [
        f"# Reproduction at scale `{args.scale}`", "",
        f"Rendered {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by "
        f"`python -m experiments.reproduce --scale {args.scale}` from the records in "
        f"`{args.out}` (commit {git_commit() or 'unknown'}). Budgets: "
        "`experiments/core/contract.py` (Table 1), `experiments/ablation.py` (Table 2), "
        "`experiments/sensitivity.py` (Tables 3-4). Machines: "
        + ("; ".join(machines) or "—") + ".", "",
        "| Part | Runs recorded | Training wall time (sum over runs) | This invocation |",
        "|---|---|---|---|",
    ]
    for table in TABLES:
        runs = records[table]
        total = sum(r.get("wall_time_s") or 0.0 for r in runs)
        this = f"{elapsed[table] / 60:.1f} min" if table in elapsed else "—"
        lines.append(f"| {TITLES[table]} | {len(runs)} | {total / 60:.1f} min | {this} |")
    lines.append("")
    for table, file_name in (("table1", "table1.md"), ("table2", "table2.md"),
                             ("table3_4", "table3_4.md")):
        path = docs / file_name
        lines += [f"## {TITLES[table]}", ""]
        if records[table] and path.is_file():
            body = path.read_text(encoding="utf-8").splitlines()
            lines += [line for line in body if not line.startswith("# ")] + [""]
        else:
            lines += ["Not run yet at this scale.", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{path.stem}]({path.name})" for path in figures] + [""]
    beyond = [(name, title) for name, title in BEYOND_THE_PAPER if (docs / name).is_file()]
    if beyond:
        lines += ["## Beyond the paper", ""]
        lines += [f"- [{title}]({name})" for name, title in beyond] + [""]
    ordering = table1_ordering(records["table1"]) + table2_ordering(records["table2"])
    lines += ["## Ordering of methods: ours vs the paper's", ""]
    lines += ordering or ["Not enough runs yet to compare orderings."]
    path = docs / "results.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def render_results(args, elapsed) -> pathlib.Path:
    """Renders this scale's records in OUT into DOCS: the tables, figures and results.md."""
    records = records_at_scale(args.out, args.scale)
    return write_results(args, records, render(records, args.docs), elapsed)


def main(argv=None) -> int:
    args = parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda m: print(m, flush=True))
    elapsed = {}
    if args.render_only:
        log(f"wrote {render_results(args, elapsed)}")
        return 0
    commands = stage_commands(args)
    for table in args.tables:
        started = time.perf_counter()
        for run, arguments in commands[table]:
            log(f"== {TITLES[table]}: {run.__module__} {' '.join(arguments)}")
            status = run(arguments)
            if status:
                return status
        elapsed[table] = time.perf_counter() - started
        # Rendered after every table, so a long reproduction shows what has finished so far.
        log(f"wrote {render_results(args, elapsed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
