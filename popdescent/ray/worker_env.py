"""The environment Ray Tune workers get on a shared CPU machine."""

from __future__ import annotations

import os

__all__ = ["cpu_worker_env"]


def cpu_worker_env(pythonpath=None) -> dict:
    """Environment variables for `ray.init(runtime_env={"env_vars": ...})` when trials share
    a few CPU cores.

    Each worker runs TensorFlow on one thread (so `num_cpus` concurrent trials share that
    many cores instead of each starting a thread per core), TensorFlow's start-up chatter is
    off, and a reused worker waits up to 60 s, not Ray Tune's default 2 s
    (`TUNE_FUNCTION_THREAD_TIMEOUT_S`), for the previous trial's training thread to end: on a
    loaded machine the 2 s ran out and the restarted trial errored with "Trainable runner
    reuse requires reset_config()". `pythonpath` (a directory) lets the workers import code
    that is not installed, such as a clone's `experiments`.
    """
    env = {
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
    }
    if pythonpath is not None:
        if not isinstance(pythonpath, (str, os.PathLike)):
            raise TypeError(f"pythonpath must be a directory path (str or os.PathLike) or None, "
                            f"got {pythonpath!r}")
        env["PYTHONPATH"] = os.fspath(pythonpath)
    return env
