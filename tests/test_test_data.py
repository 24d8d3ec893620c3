"""Missing test data: a skip on a developer's machine, a failure under CI."""

import pytest

from tests.helpers.data import skip_without_data


def test_missing_data_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no files"):
        skip_without_data("no files")


def test_missing_data_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: missing test data fails the run"):
        skip_without_data("no files")
