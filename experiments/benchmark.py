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
where). `adam` and `random` start their run over. `--force` starts over too.
`python -m experiments.report OUT` makes the table and the figure.

Evaluation (the harness's, the same for every method): the returned model's cross-entropy and
accuracy on the whole test half, and its loss on a fixed 5,000-image training subset (seed 0).
`--protocol paper` adds, clearly labelled as `paper_protocol`, the reference code's
evaluation: every candidate model scored on 1,600 test-half images (numpy seed 0) and the one
with the lowest TEST loss reported, which is selection on test data.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from experiments import methods  # noqa: E402

RECORDS_FILE = "records.jsonl"
KEY_FIELDS = ("method", "dataset", "seed", "scale", "regularization")
PROTOCOLS = ("honest", "paper")
TRAIN_EVALUATION_IMAGES = 5000
# The reference code's evaluation subset: np.random.seed(0); np.random.choice(4999, 1600).
PAPER_PROTOCOL_IMAGES = 1600
PAPER_PROTOCOL_POOL = 4999


# --------------------------------------------------------------------------- records file
def record_key(record: dict) -> tuple:
    return tuple(record[name] for name in KEY_FIELDS)


def read_records(path) -> list:
    """The records of a JSON-lines file; a line that does not parse is skipped with a warning."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            warnings.warn(f"{path}:{number}: skipping a line that is not JSON ({error})")
    return records


def _json_safe(value):
    """Makes a value strict JSON: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_record(path, record: dict) -> None:
    """Adds `record` to the JSON-lines file at `path`, replacing any record with its key.

    The new content goes to a temporary file in the same directory, is fsynced and renamed
    over `path` (atomic on POSIX), under an exclusive lock so that concurrent benchmark
    processes do not lose each other's records. A crash leaves either the old file or the new
    one, never a half-written line; a leftover temporary file is ignored by readers.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_json_safe(record), allow_nan=False) + "\n"
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = []
        if path.exists():
            for old_line in path.read_text(encoding="utf-8").splitlines(keepends=True):
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    if record_key(json.loads(old_line)) == record_key(record):
                        continue
                kept.append(old_line if old_line.endswith("\n") else old_line + "\n")
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write("".join(kept) + line)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# --------------------------------------------------------------------------- evaluation
def _fixed_subset(count, size, seed=0):
    chosen = np.random.default_rng(seed).choice(count, size=min(size, count), replace=False)
    return np.sort(chosen)


def evaluate(model, data) -> dict:
    """The harness's honest evaluation of the returned model (test data seen only here)."""
    test_loss, test_accuracy = methods.loss_and_accuracy(model, data.x_test, data.y_test)
    val_loss, val_accuracy = methods.loss_and_accuracy(model, data.x_val, data.y_val)
    rows = _fixed_subset(len(data.x_train), TRAIN_EVALUATION_IMAGES)
    train_loss, train_accuracy = methods.loss_and_accuracy(
        model, data.x_train[rows], data.y_train[rows]
    )
    return {
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "validation_loss": val_loss,
        "validation_accuracy": val_accuracy,
        "test_images": len(data.x_test),
        "train_images_evaluated": len(rows),
    }


def evaluate_paper_protocol(result, data) -> dict:
    """The reference code's evaluation, for side-by-side comparison only: it selects on TEST."""
    candidates = list(result.candidates) or [result.model]
    state = np.random.RandomState(0)  # as np.random.seed(0) in the reference code
    pool = min(PAPER_PROTOCOL_POOL, len(data.x_test), len(data.x_train))
    rows = state.choice(pool, size=min(PAPER_PROTOCOL_IMAGES, pool), replace=False)
    scores = [
        methods.loss_and_accuracy(model, data.x_test[rows], data.y_test[rows])
        for model in candidates
    ]
    chosen = int(np.argmin([loss for loss, _ in scores]))
    train_loss, _ = methods.loss_and_accuracy(
        candidates[chosen], data.x_train[rows], data.y_train[rows]
    )
    return {
        "note": "reference-code protocol: the candidate with the lowest loss on a 1,600-image "
        "subset of the test half is reported (selection on test data)",
        "test_loss": scores[chosen][0],
        "test_accuracy": scores[chosen][1],
        "train_loss": train_loss,
        "chosen_candidate": chosen,
        "candidates": len(candidates),
        "test_images": len(rows),
    }


# --------------------------------------------------------------------------- one run
def machine() -> dict:
    """What the run ran on: CPU model, cores, library versions."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _git_commit():
    root = pathlib.Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        return commit or None
    return None


def curve_points(curve) -> list:
    """A method's curve as JSON lists: [steps, loss, seconds] where the method timed its
    points, [steps, loss] where it did not (older methods and records)."""
    return [[int(point[0]), float(point[1]), *([float(point[2])] if len(point) > 2 else [])]
            for point in curve]


def _check_result(name, result):
    if not isinstance(result, methods.MethodResult):
        raise TypeError(f"method {name!r} returned {type(result).__name__}, not a MethodResult")
    if not isinstance(result.model, keras.Model):
        raise TypeError(f"method {name!r}: result.model must be a keras.Model")
    if isinstance(result.gradient_steps, bool) or not isinstance(
        result.gradient_steps, (int, np.integer)
    ) or result.gradient_steps < 0:
        raise ValueError(
            f"method {name!r}: gradient_steps must be an int >= 0, got {result.gradient_steps!r}"
        )


def run_one(context, run, protocol, log, git_commit=None) -> dict:
    """Runs one method on one (dataset, seed) and returns its record.

    `git_commit` is the commit the code was loaded from (read once at start: others may
    commit while a long benchmark runs).
    """
    keras.utils.set_random_seed(context.seed)
    started = datetime.datetime.now(datetime.timezone.utc)
    start = time.perf_counter()
    result = run(context)
    wall_time = time.perf_counter() - start
    _check_result(context.method, result)
    if result.resumed is not None:
        log(f"  resumed from its backup after iteration {result.resumed['iteration']}")
        wall_time += result.resumed["seconds_before"]
    log(f"  trained in {wall_time:.1f} s ({result.gradient_steps} member-steps); evaluating")
    start = time.perf_counter()
    scores = evaluate(result.model, context.data)
    data = context.data
    record = {
        **{name: getattr(context, name) for name in KEY_FIELDS},
        "dataset_label": data.label,
        "protocol": protocol,
        "gradient_steps": int(result.gradient_steps),
        "budget": context.budget.as_dict(),
        "wall_time_s": wall_time,
        **scores,
        "curve": curve_points(result.curve),
        "details": result.details,
        "options": context.options,
        "data": {
            "source": data.source,
            "train": len(data.x_train),
            "validation": len(data.x_val),
            "test": len(data.x_test),
        },
        "member_steps_per_second": result.gradient_steps / wall_time if wall_time > 0 else None,
        "resumed": result.resumed,
        "machine": machine(),
        "git_commit": git_commit,
        "started_at": started.isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,
    }
    if result.extra_models:
        record["extras"] = {name: evaluate(model, data)
                            for name, model in result.extra_models.items()}
    if protocol == "paper":
        record["paper_protocol"] = evaluate_paper_protocol(result, data)
    record["evaluation_time_s"] = time.perf_counter() - start
    return record


# --------------------------------------------------------------------------- command line
def _option(text):
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"--option must look like NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0, got {text!r}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.benchmark", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", action="extend", nargs="+", required=True,
                        choices=methods.DATASETS, help="one or more datasets")
    parser.add_argument("--method", action="extend", nargs="+", required=True,
                        metavar="METHOD", help=f"one or more of {sorted(methods.METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=_seed, default=[methods.PAPER_SEEDS[0]],
                        help="seeds, one run each (default: 5; the paper's ten: "
                        f"{' '.join(map(str, methods.PAPER_SEEDS))})")
    parser.add_argument("--scale", choices=methods.SCALES, default="small",
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
    parser.add_argument("--option", type=_option, action="append", default=[],
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
            runs[name] = methods.get_method(name)
        except (ValueError, methods.MethodNotAvailableError) as error:
            parser.error(f"--method: {error}")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"--data-dir must be an existing directory, got {str(args.data_dir)!r}")
    return args, runs, parser


def _is_finished(record, protocol):
    return protocol == "honest" or "paper_protocol" in record


def main(argv=None) -> int:
    args, runs, parser = parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    records_path = args.out / RECORDS_FILE
    git_commit = _git_commit()
    finished = {record_key(r): r for r in read_records(records_path) if "method" in r}
    pending = [
        (dataset, name, seed)
        for dataset in args.dataset
        for name in args.method
        for seed in args.seeds
        if args.force
        or (name, dataset, seed, args.scale, args.regularization) not in finished
        or not _is_finished(finished[(name, dataset, seed, args.scale, args.regularization)],
                            args.protocol)
    ]
    skipped = len(args.dataset) * len(args.method) * len(args.seeds) - len(pending)
    if skipped:
        log(f"skipping {skipped} finished run(s) in {records_path} (--force reruns them)")
    splits = {}
    for dataset in dict.fromkeys(dataset for dataset, _, _ in pending):
        try:
            splits[dataset] = methods.load_splits(dataset, args.scale, data_dir=args.data_dir)
        except FileNotFoundError as error:
            parser.exit(2, f"{parser.prog}: error: --dataset {dataset}: {error}\n")
    for number, (dataset, name, seed) in enumerate(pending, start=1):
        regularization = "reg" if args.regularization else "no-reg"
        log(f"[{number}/{len(pending)}] {name} on {dataset} ({regularization}), seed {seed}, "
            f"scale {args.scale}: {methods.get_budget(dataset, args.scale).member_steps} "
            "member-steps budget")
        work_dir = methods.open_work_dir(
            args.out, f"{name}-{dataset}-{regularization}-{args.scale}-{seed}", fresh=args.force)
        context = methods.MethodContext(
            method=name, dataset=dataset, seed=seed, scale=args.scale,
            regularization=args.regularization, data=splits[dataset],
            budget=methods.get_budget(dataset, args.scale), work_dir=work_dir,
            verbose=verbose, options=args.options,
        )
        record = run_one(context, runs[name], args.protocol, log, git_commit)
        write_record(records_path, record)
        methods.close_work_dir(work_dir)
        log(f"  test loss {record['test_loss']:.4f}, accuracy {record['test_accuracy']:.4f}, "
            f"train loss {record['train_loss']:.4f}, {record['gradient_steps']} member-steps, "
            f"{record['wall_time_s']:.0f} s -> {records_path}")
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
