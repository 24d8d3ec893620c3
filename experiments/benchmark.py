"""Runs methods on the paper's benchmarks and appends one JSON record per run.

    python -m experiments.benchmark --dataset fmnist --method popdescent --seeds 5 15 24 \\
        --scale small [--regularization] [--data-dir D] [--out results/] [--force] [--quiet] \\
        [--protocol honest|paper] [--option NAME=VALUE ...]

`--dataset` and `--method` take several values (or repeat). Records go to `OUT/records.jsonl`,
one per (method, dataset, seed, scale, regularization); a finished record is skipped unless
`--force`, which replaces it. Each record is written atomically (the whole file is rewritten
to a temporary file, fsynced and renamed over the old one, under a lock). A run in progress
keeps its directory in `OUT/work/`: the population methods (PopDescent, PBT, ESGD, grid) back
up there about five times a run, so the same command run again after a crash resumes the run
from its last backup, to the record an uninterrupted run would have written (its wall time
counts the restored iterations' seconds, not the work the crash lost; `resumed` says from
where). The tuners `hyperband`, `bayesian` and `optuna` resume from their own storage there
(KerasTuner's project, Optuna's journal), each finished trial counted once. `adam` and
`random` start their run over. `--force` starts over too.
`python -m experiments.report OUT` makes the table and the figure. `--option model=mlp` trains a
tiny MLP instead of the paper's CNNs (the harness's own tests; records keep the option).

Evaluation (the harness's, the same for every method): the returned model's cross-entropy and
accuracy on the whole test half, and its loss on a fixed 5,000-image training subset (seed 0).
`--protocol paper` adds, clearly labelled as `paper_protocol`, the reference code's
evaluation: every candidate model scored on 1,600 test-half images (numpy seed 0) and the one
with the lowest TEST loss reported, which is selection on test data.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from experiments.core.contract import DATASETS, PAPER_SEEDS, SCALES, get_budget  # noqa: E402
from experiments.core.data import load_splits  # noqa: E402
from experiments.core.records import RECORDS_FILE  # noqa: E402
from experiments.core.runner import Job, run_jobs  # noqa: E402
from experiments.core.validation import option_argument, seed_argument  # noqa: E402
from experiments.methods import METHODS, MethodNotAvailableError, get_method  # noqa: E402

PROTOCOLS = ("honest", "paper")


# --------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", action="extend", nargs="+", required=True,
                        choices=DATASETS, help="one or more datasets")
    parser.add_argument("--method", action="extend", nargs="+", required=True,
                        metavar="METHOD", help=f"one or more of {sorted(METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=seed_argument, default=[PAPER_SEEDS[0]],
                        help="seeds, one run each (default: 5; the paper's ten: "
                        f"{' '.join(map(str, PAPER_SEEDS))})")
    parser.add_argument("--scale", choices=SCALES, default="small",
                        help="budget: smoke (seconds), quick (a few min a run on 2 cores), small "
                        "(~10 min), paper")
    parser.add_argument("--regularization", action="store_true",
                        help="also tune an L2 rate on the hidden Dense kernel")
    parser.add_argument("--data-dir", type=pathlib.Path, default=None,
                        help="directory holding the dataset files (default: see datasets.py)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results"),
                        help="output directory (default: results/)")
    parser.add_argument("--force", action="store_true", help="rerun finished records")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no log lines")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="honest",
                        help="honest (default); paper adds the reference code's test-selected "
                        "evaluation beside the honest one")
    parser.add_argument("--option", type=option_argument, action="append", default=[],
                        metavar="NAME=VALUE", help="method-specific option (JSON value)")
    parser.add_argument("--esgd-optimizer", choices=("adam", "sgd"), default=None,
                        help="ESGD's local optimizer: adam (default, like every method) or sgd "
                        "(the ESGD paper's setting); same as --option esgd_optimizer=...")
    args = parser.parse_args(argv)
    args.dataset = list(dict.fromkeys(args.dataset))
    args.method = list(dict.fromkeys(args.method))
    args.seeds = list(dict.fromkeys(args.seeds))
    args.options = dict(args.option)
    if args.esgd_optimizer is not None:
        args.options["esgd_optimizer"] = args.esgd_optimizer
    runs = {}
    for name in args.method:
        try:
            runs[name] = get_method(name)
        except (ValueError, MethodNotAvailableError) as error:
            parser.error(f"--method: {error}")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir must be an existing directory, got {str(args.data_dir)!r}")
    return args, runs, parser


def main(argv=None) -> int:
    args, runs, parser = parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    records_path = args.out / RECORDS_FILE
    regularization = "reg" if args.regularization else "no-reg"
    jobs = [
        Job(method=name, dataset=dataset, seed=seed, scale=args.scale,
            regularization=args.regularization, budget=get_budget(dataset, args.scale),
            run=runs[name], records=records_path, out=args.out,
            work_name=f"{name}-{dataset}-{regularization}-{args.scale}-{seed}",
            options=args.options, protocol=args.protocol,
            label=f"{name} on {dataset} ({regularization}), seed {seed}, scale {args.scale}")
        for dataset in args.dataset for name in args.method for seed in args.seeds
    ]

    def load_data(dataset):
        try:
            return load_splits(dataset, args.scale, data_dir=args.data_dir)
        except FileNotFoundError as error:
            parser.exit(2, f"{parser.prog}: error: --dataset {dataset}: {error}\n")

    run_jobs(jobs, load_data, force=args.force, log=log, verbose=verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
