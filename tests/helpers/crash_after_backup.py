"""Runs an experiment script's `main` as its command line would, and SIGKILLs this process
right after the K-th population backup is written: a crash in the middle of a run, at a
known point. Tests run the same command again and compare with an uninterrupted run.

    python tests/helpers/crash_after_backup.py K MODULE [ARGUMENTS ...]
"""

import importlib
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from popdescent.callbacks import backup  # noqa: E402


def crash_after_backup(number):
    """Makes this process SIGKILL itself once its `number`-th backup file is complete."""
    write_backup = backup.write_backup
    written = [0]

    def write_then_crash(path, arrays, meta):
        write_backup(path, arrays, meta)
        written[0] += 1
        if written[0] == number:
            os.kill(os.getpid(), signal.SIGKILL)

    backup.write_backup = write_then_crash


if __name__ == "__main__":
    crash_after_backup(int(sys.argv[1]))
    sys.exit(importlib.import_module(sys.argv[2]).main(sys.argv[3:]))
