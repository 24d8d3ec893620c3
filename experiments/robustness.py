"""Robustness to a wrong starting range: every method started from three learning-rate ranges.

    python -m experiments.robustness --dataset fmnist cifar10 --seeds 5 15 24 \\
        --scale smoke|small [--method adam pbt ...] [--range too-small ...] \\
        [--out results/robustness] [--docs DIR] [--data-dir D] [--model cnn|mlp] \\
        [--option NAME=VALUE ...] [--force] [--quiet] [--render-only]

Ranges (`RANGES`): too small [1e-6, 1e-5], too large [0.05, 0.5] and the paper's [1e-4, 1e-2].
Each method gets the range through `MethodContext.options["lr_range"]` and honours it: `adam`
trains at its geometric middle, grid search spreads its five rates log-uniformly across it,
random search and the tuners (`hyperband`, `bayesian`, `optuna`) search it, and the population methods draw their members' initial rates from
it. The online methods (ESGD, PBT, PopDescent, ES-Single, PES, truncated ES) also get
`options["lr_bounds"]` = [1e-7, 1], the same wide bounds for all three ranges, so they may walk
out of a bad range; PBT and PopDescent mutate rates, the three ES methods follow an estimated
gradient of the validation loss in log10 of the rate, ESGD only selects among its members'
initial draws.

Records: one JSON line per (method, dataset, seed, scale) in `OUT/<range>/records.jsonl`,
written atomically by the harness's runner (`experiments.core.runner`: the same evaluation:
test loss on the whole test half of the model each method chose on validation data), so an
interrupted study resumes where it stopped; `--force` reruns finished records. A run whose
population diverges entirely (every member non-finite) is recorded as failed, with its error.
After the runs, `experiments.reports.robustness` writes `robustness.md` and `robustness_lr.png`
into `--docs` (default: OUT). No regularization: the study is about the learning rate.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from experiments.core.contract import DATASETS, MODELS, SCALES, get_budget  # noqa: E402
from experiments.core.data import load_splits  # noqa: E402
from experiments.core.records import RECORDS_FILE, read_records, record_key  # noqa: E402
from experiments.core.runner import Job, run_jobs  # noqa: E402
from experiments.core.validation import option_argument, seed_argument  # noqa: E402
from experiments.methods import get_method  # noqa: E402
from experiments.reports import robustness as robustness_report  # noqa: E402

RANGES = {  # name -> the learning-rate range every method starts from
    "too-small": (1e-6, 1e-5),
    "too-large": (0.05, 0.5),
    "paper": (1e-4, 1e-2),
}
BOUNDS = (1e-7, 1.0)  # how far the online methods may move a learning rate, for every range
STUDY_METHODS = ("adam", "adam-decay", "adam-decay-rt", "grid", "random", "hyperband", "bayesian",
                 "optuna", "esgd", "pbt", "popdescent", "popdescent-budget",
                 "popdescent-budget-rt", "es-single", "pes", "truncated-es")
ONLINE_METHODS = ("adam-decay-rt", "esgd", "pbt", "popdescent", "popdescent-budget", "popdescent-budget-rt",
                  "es-single", "pes", "truncated-es")
RESULTS = pathlib.Path("results/robustness")


def method_options(method: str, range_name: str) -> dict:
    """The options a method gets in the study: the range, and the wide bounds if online."""
    options = {"lr_range": list(RANGES[range_name])}
    if method in ONLINE_METHODS:
        options["lr_bounds"] = list(BOUNDS)
    return options


def records_path(out, range_name) -> pathlib.Path:
    return pathlib.Path(out) / range_name / RECORDS_FILE


def read_study(out) -> list:
    """Every range's records (the last one per key), each tagged with its "range"."""
    found = []
    for range_name in RANGES:
        by_key = {}
        for record in read_records(records_path(out, range_name)):
            if "method" in record:
                by_key[record_key(record)] = {**record, "range": range_name}
        found.extend(by_key.values())
    return found


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.robustness",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", action="extend", nargs="+", required=True,
                        choices=DATASETS, help="one or more datasets")
    parser.add_argument("--seeds", nargs="+", type=seed_argument, default=[5],
                        help="seeds, one run each per method and range (default: 5)")
    parser.add_argument("--scale", choices=SCALES, default="small",
                        help="budget: smoke (seconds) or small (~10-40 min a run on 2 cores)")
    parser.add_argument("--method", action="extend", nargs="+", choices=STUDY_METHODS,
                        default=None, help=f"methods (default: all of {list(STUDY_METHODS)})")
    parser.add_argument("--range", action="extend", nargs="+", choices=list(RANGES),
                        default=None, dest="ranges",
                        help=f"learning-rate ranges (default: all of {list(RANGES)})")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS,
                        help=f"records directory (default: {RESULTS})")
    parser.add_argument("--docs", type=pathlib.Path, default=None,
                        help="where robustness.md and robustness_lr.png go (default: --out)")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="directory holding the dataset files (default: see datasets.py)")
    parser.add_argument("--model", choices=MODELS, default="cnn",
                        help="cnn: the paper's CNNs; mlp: a tiny stand-in for fast tests")
    parser.add_argument("--option", type=option_argument, action="append", default=[],
                        metavar="NAME=VALUE",
                        help="method-specific option (JSON value), e.g. rungs=[[0.05,2],[0.2,1]]"
                        " for popdescent-budget; records are keyed without options, so give "
                        "a variant its own --out")
    parser.add_argument("--force", action="store_true", help="rerun finished records")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no log lines")
    parser.add_argument("--render-only", action="store_true",
                        help="run nothing; write the report from the records there are")
    args = parser.parse_args(argv)
    args.dataset = list(dict.fromkeys(args.dataset))
    args.seeds = list(dict.fromkeys(args.seeds))
    args.method = list(dict.fromkeys(args.method or STUDY_METHODS))
    args.ranges = list(dict.fromkeys(args.ranges or RANGES))
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir must be an existing directory, got {str(args.data_dir)!r}")
    return args, parser


def main(argv=None) -> int:
    args, parser = parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    if not args.render_only:
        runs = {name: get_method(name) for name in args.method}
        run_pending(args, parser, runs, log)
    docs = args.docs or args.out
    written = robustness_report.render(read_study(args.out), docs, RANGES, BOUNDS)
    log("wrote " + " and ".join(str(path) for path in written))
    return 0


def run_pending(args, parser, runs, log) -> None:
    """The study's runs not finished yet, through the harness's runner; a population that
    diverges entirely (`FloatingPointError`) is recorded as failed."""
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    jobs = []
    for range_name in args.ranges:
        for dataset in args.dataset:
            for seed in args.seeds:
                for name in args.method:
                    options = {**method_options(name, range_name), **dict(args.option)}
                    if args.model != "cnn":
                        options["model"] = args.model
                    jobs.append(Job(
                        method=name, dataset=dataset, seed=seed, scale=args.scale,
                        regularization=False, budget=get_budget(dataset, args.scale),
                        run=runs[name], records=records_path(args.out, range_name),
                        out=args.out,
                        work_name=f"{range_name}-{name}-{dataset}-{args.scale}-{seed}",
                        options=options, record_fields={"robustness_range": range_name},
                        label=f"{name} on {dataset}, seed {seed}, scale {args.scale}, "
                        f"learning rates {range_name} {options}"))

    def load_data(dataset):
        try:
            return load_splits(dataset, args.scale, data_dir=args.data_dir)
        except FileNotFoundError as error:
            parser.exit(2, f"{parser.prog}: error: --dataset {dataset}: {error}\n")

    run_jobs(jobs, load_data, force=args.force, log=log, verbose=verbose,
             tolerate=(FloatingPointError,))


if __name__ == "__main__":
    sys.exit(main())
