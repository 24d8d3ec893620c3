"""One local Ray instance for every Ray test (starting one costs seconds), on two CPUs."""

import pathlib

import pytest

try:
    import ray
except ImportError:  # each test module skips itself, with the reason
    ray = None

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def ray_session():
    """Ray on at most two CPUs; its workers import the tests' helpers from this checkout and
    run TensorFlow on one thread each, so two trials share the two cores."""
    if ray is None:
        pytest.skip("popdescent.ray needs Ray Tune: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "POPDESCENT_DOWNLOAD": "0",
            # A reused worker waits this long for the previous trial's training thread to
            # end, and errors the trial after it (2 s by default: too short on a loaded CI
            # machine, where a restarted island failed so).
            "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
        }})
    yield
    ray.shutdown()
