"""`cpu_worker_env`: the workers' environment for trials sharing a few CPU cores."""

import pytest

pytest.importorskip("ray")

from popdescent.ray import cpu_worker_env  # noqa: E402


def test_workers_get_the_directory_to_import_from_and_a_long_reuse_wait(tmp_path):
    env = cpu_worker_env(pythonpath=tmp_path)
    assert env["PYTHONPATH"] == str(tmp_path)
    assert float(env["TUNE_FUNCTION_THREAD_TIMEOUT_S"]) >= 60


def test_a_pythonpath_that_is_not_a_path_is_refused_naming_it():
    with pytest.raises(TypeError, match="pythonpath"):
        cpu_worker_env(pythonpath=3)
