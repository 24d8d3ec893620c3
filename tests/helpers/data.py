"""Where a test needs the real data files: skip without them on a developer's machine, FAIL
under CI (`CI=true`), where a missing dataset means the run tested less than it says."""

import os

import pytest


def skip_without_data(message: str):
    """Skips the calling test (or fixture) for missing data; under `CI=true` fails it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: missing test data fails the run)", pytrace=False)
    pytest.skip(message)
