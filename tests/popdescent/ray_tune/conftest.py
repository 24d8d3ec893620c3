"""One local Ray instance for every Ray test (starting one costs seconds), on two CPUs."""

import pathlib

import pytest

try:
    import ray

    from popdescent.ray import cpu_worker_env
except ImportError:  # each test module skips itself, with the reason
    ray = None

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def ray_session():
    """Ray on at most two CPUs; its workers import the tests' helpers from this checkout and
    run TensorFlow on one thread each, so two trials share the two cores (`cpu_worker_env`,
    which also gives a reused worker 60 s for the last trial's thread to end)."""
    if ray is None:
        pytest.skip("popdescent.ray needs Ray Tune: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={
        "env_vars": {**cpu_worker_env(pythonpath=ROOT),
                     "CUDA_VISIBLE_DEVICES": "", "POPDESCENT_DOWNLOAD": "0"}})
    yield
    ray.shutdown()
