"""The one job runner of the harness: every experiment (benchmark, ablation, sensitivity,
robustness) lists its runs as `Job`s and hands them to `run_jobs`, which skips finished ones,
runs the rest through `run_one` (seed, time, evaluate) and writes one record per run
atomically. A run in progress keeps its directory under `<out>/work/` (`open_work_dir`), where
the population methods keep the backup a rerun resumes from."""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import keras

from experiments.core.contract import Budget, MethodContext, MethodResult
from experiments.core.evaluation import evaluate, evaluate_paper_protocol
from experiments.core.records import (
    KEY_FIELDS,
    curve_points,
    git_commit as current_commit,
    machine,
    read_records,
    record_key,
    write_record,
)
from experiments.core.validation import is_integer

__all__ = ["Job", "run_jobs", "run_one", "failed_record", "open_work_dir", "close_work_dir",
           "check_result"]


def open_work_dir(out, name: str, fresh: bool = False) -> pathlib.Path:
    """The private directory of run `name` under `out/work`, created if missing. What a crash
    left there (a population's backup) is kept so that the run resumes; `fresh` (the
    scripts' `--force`) empties it first. `close_work_dir` removes it once the record is
    written."""
    path = pathlib.Path(out) / "work" / name
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def close_work_dir(path) -> None:
    """Removes a finished run's directory, and `work` above it once it is empty."""
    path = pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # other runs' directories are still there
        path.parent.rmdir()


def check_result(name, result):
    """A method's `MethodResult`, checked before the harness evaluates it."""
    if not isinstance(result, MethodResult):
        raise TypeError(f"method {name!r} returned {type(result).__name__}, not a MethodResult")
    if not isinstance(result.model, keras.Model):
        raise TypeError(f"method {name!r}: result.model must be a keras.Model")
    if not is_integer(result.gradient_steps) or result.gradient_steps < 0:
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
    check_result(context.method, result)
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


def failed_record(context, error, wall_time, git_commit) -> dict:
    """The record of a run that stopped with `error` (a population that diverged entirely)."""
    return {
        **{name: getattr(context, name) for name in KEY_FIELDS},
        "dataset_label": context.data.label,
        "protocol": "honest",
        "failed": f"{type(error).__name__}: {error}",
        "test_loss": None,
        "gradient_steps": None,
        "budget": context.budget.as_dict(),
        "wall_time_s": wall_time,
        "options": context.options,
        "machine": machine(),
        "git_commit": git_commit,
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_id": uuid.uuid4().hex,
    }


@dataclass(frozen=True)
class Job:
    """One run: the record's identity (method, dataset, seed, scale, regularization), the
    method's `run`, its budget and options, where its record goes (`records`, a JSON-lines
    file) and where its work directory lives (`out/work/<work_name>`).

    `label` is the run's log line, `record_fields` are added to its record (the ablation's
    `variant`, the robustness study's `robustness_range`), `protocol` is the benchmark's
    ("honest" or "paper").
    """

    method: str
    dataset: str
    seed: int
    scale: str
    regularization: bool
    budget: Budget
    run: Callable[[MethodContext], MethodResult]
    records: pathlib.Path
    out: pathlib.Path
    work_name: str
    options: dict = field(default_factory=dict)
    label: str = ""
    record_fields: dict = field(default_factory=dict)
    protocol: str = "honest"

    def key(self) -> tuple:
        return (self.method, self.dataset, self.seed, self.scale, self.regularization)


def _finished(job, records_by_file) -> bool:
    """Whether `job` has its record already. A record of the same run made with other
    options (`--option`) is an error, not a finished run: a record's key has no options, so
    skipping would silently report the other variant's result for this one."""
    if job.records not in records_by_file:
        records_by_file[job.records] = {record_key(record): record
                                        for record in read_records(job.records)
                                        if "method" in record}
    record = records_by_file[job.records].get(job.key())
    if record is None:
        return False
    wanted = json.loads(json.dumps(dict(job.options)))
    if (record.get("options") or {}) != wanted:
        raise ValueError(
            f"{job.records} already holds {job.label} run with options "
            f"{record.get('options') or {}}, not {wanted}: give this variant its own --out "
            f"(or --force to replace that run)")
    return job.protocol == "honest" or "paper_protocol" in record


def run_jobs(jobs, load_data, *, name="", force=False, log=print, verbose=0,
             tolerate=()) -> list:
    """Runs each job not finished yet (every job with `force`, which also empties its work
    directory); returns the jobs that ran.

    `load_data(dataset)` gives a dataset's splits; every dataset the pending jobs need is
    loaded before the first run, so a missing file stops the experiment before it trains.
    A run that raises one of `tolerate` (the robustness study's `FloatingPointError`: a
    population that diverged entirely) gets a `failed_record` instead of stopping the rest.
    The git commit is read once, at the start: others may commit while a long run goes on.
    """
    prefix = f"{name}: " if name else ""
    seen = {}
    pending = [job for job in jobs if force or not _finished(job, seen)]
    if len(pending) < len(jobs):
        places = sorted({str(job.records) for job in jobs if job not in pending})
        where = places[0] if len(places) == 1 else str(pathlib.Path(places[0]).parent)
        log(f"{prefix}skipping {len(jobs) - len(pending)} finished run(s) in {where} "
            "(--force reruns them)")
    commit = current_commit()
    data = {dataset: load_data(dataset) for dataset in dict.fromkeys(j.dataset for j in pending)}
    for number, job in enumerate(pending, start=1):
        log(f"{prefix}[{number}/{len(pending)}] {job.label}: {job.budget.member_steps} "
            "member-steps budget")
        work_dir = open_work_dir(job.out, job.work_name, fresh=force)
        context = MethodContext(
            method=job.method, dataset=job.dataset, seed=job.seed, scale=job.scale,
            regularization=job.regularization, data=data[job.dataset], budget=job.budget,
            work_dir=work_dir, verbose=verbose, options=dict(job.options),
        )
        start = time.perf_counter()
        try:
            record = run_one(context, job.run, job.protocol, log, commit)
        except tolerate as error:
            log(f"  failed: {error}")
            record = failed_record(context, error, time.perf_counter() - start, commit)
        record.update(job.record_fields)
        write_record(job.records, record)
        close_work_dir(work_dir)
        if record.get("test_loss") is None:
            log(f"  failed after {record['wall_time_s']:.0f} s -> {job.records}")
        else:
            log(f"  test loss {record['test_loss']:.4f}, accuracy {record['test_accuracy']:.4f}"
                f", train loss {record['train_loss']:.4f}, {record['gradient_steps']} "
                f"member-steps, {record['wall_time_s']:.0f} s -> {job.records}")
        keras.backend.clear_session()
    return pending
