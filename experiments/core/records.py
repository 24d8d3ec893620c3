"""The records files: one JSON object per line, one per run, keyed by
(method, dataset, seed, scale, regularization). Read, write atomically, and what a record says
about where it ran (machine, git commit) and its curve."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import pathlib
import platform
import subprocess
import tempfile
import warnings

import keras
import numpy as np

__all__ = ["RECORDS_FILE", "KEY_FIELDS", "record_key", "read_records", "json_safe",
           "write_record", "machine", "git_commit", "curve_points"]

RECORDS_FILE = "records.jsonl"
KEY_FIELDS = ("method", "dataset", "seed", "scale", "regularization")


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


def json_safe(value):
    """Makes a value strict JSON: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
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
    line = json.dumps(json_safe(record), allow_nan=False) + "\n"
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = []
        if path.exists():
            for old_line in path.read_text(encoding="utf-8").splitlines(keepends=True):
                with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError):
                    if record_key(json.loads(old_line)) == record_key(record):
                        continue
                kept.append(old_line if old_line.endswith("\n") else old_line + "\n")
        atomic_write_text(path, "".join(kept) + line)


def atomic_write_text(path, text: str) -> None:
    """Writes `text` to `path` so that a crash leaves the old file or the new one, whole: a
    temporary file in the same directory, fsynced, renamed over `path`, directory fsynced."""
    path = pathlib.Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
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


def machine() -> dict:
    """What the run ran on: CPU model, cores, TensorFlow's thread settings (the intra-op count
    changes the numerics: a run is bit-identical only at the same count), library versions."""
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
        "tf_threads": {  # 0 or None: TensorFlow's default, one per core
            "intra_op": int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0)
            or tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": int(os.environ.get("TF_NUM_INTEROP_THREADS") or 0)
            or tf.config.threading.get_inter_op_parallelism_threads()},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit():
    """The commit HEAD of the repository this code was loaded from, or None (not a clone,
    no git)."""
    root = pathlib.Path(__file__).resolve().parents[2]
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
