"""`GeneticSearch` in KerasTuner's own chief/worker mode: a chief and two workers on 127.0.0.1.

The processes talk through KerasTuner's gRPC oracle service (`KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`); only the loopback interface is used, every
wait is bounded, and all three processes are killed when the test ends.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[3]
BUDGET = 3 * 2 * 3  # population_size * islands * generations

JOB = textwrap.dedent(
    """
    import os, pathlib, sys, time

    import keras_tuner
    from popdescent.tuners import GeneticSearch

    directory = pathlib.Path(sys.argv[1])
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]

    def declare(hp):
        hp.Int("layers", 1, 5)
        hp.Int("units", 16, 128)
        hp.Choice("activation", ["relu", "elu", "tanh"])
        hp.Float("dropout", 0.0, 0.5)

    class Job(GeneticSearch):
        def run_trial(self, trial, *args, **kwargs):
            # Both workers must take part: the first trial of each waits (60 s at most)
            # until the other worker has started one too.
            (directory / f"started_{tuner_id}").touch()
            deadline = time.time() + 60
            while len(list(directory.glob("started_tuner*"))) < 2 and time.time() < deadline:
                time.sleep(0.1)
            with open(directory / f"ran_{tuner_id}.txt", "a") as log:
                log.write(trial.trial_id + "\\n")
            values = trial.hyperparameters.values
            return (values["layers"] - 2) ** 2 + abs(values["units"] - 90) / 16 + values["dropout"]

    tuner = Job(
        declare, keras_tuner.Objective("score", "min"), population_size=3, generations=3,
        tournament_size=2, islands=2, migration_interval=1, seed=5, idle_wait=0.1,
        directory=str(directory), project_name="distributed",
    )
    tuner.search(verbose=0)
    """
)


def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(script, directory, tuner_id, port):
    environment = dict(
        os.environ,
        KERASTUNER_TUNER_ID=tuner_id,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        PYTHONPATH=os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    output = open(directory / f"{tuner_id}.log", "w")
    return subprocess.Popen(
        [sys.executable, str(script), str(directory)],
        env=environment,
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=str(directory),
    )


def test_chief_and_two_workers_share_one_genetic_search(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    port = free_loopback_port()
    processes = {}
    try:
        processes["chief"] = start(script, tmp_path, "chief", port)
        for worker in ("tuner0", "tuner1"):
            processes[worker] = start(script, tmp_path, worker, port)
        for worker in ("tuner0", "tuner1"):
            try:
                code = processes[worker].wait(timeout=240)
            except subprocess.TimeoutExpired:
                log = (tmp_path / f"{worker}.log").read_text()
                pytest.fail(f"{worker} did not finish in 240 s:\n{log}")
            assert code == 0, (tmp_path / f"{worker}.log").read_text()
    finally:
        # The chief serves until every worker has been told to stop, then may sleep up to
        # 20 s in KerasTuner's exit loop; its state is on disk already, so it is killed here.
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    ran = {w: (tmp_path / f"ran_{w}.txt").read_text().split() for w in ("tuner0", "tuner1")}
    assert ran["tuner0"] and ran["tuner1"], "both workers evaluate trials"
    assert sorted(ran["tuner0"] + ran["tuner1"]) == sorted(set(ran["tuner0"] + ran["tuner1"]))
    assert len(ran["tuner0"]) + len(ran["tuner1"]) == BUDGET

    project = tmp_path / "distributed"
    state = json.loads((project / "oracle.json").read_text())["genetic"]
    assert sorted(r["generation"] for r in state["lineage"].values()) == [0] * 6 + [1] * 6 + [2] * 6
    assert {r["island"] for r in state["lineage"].values()} == {0, 1}
    assert [m["generation"] for m in state["migrations"]] == [1, 2]
    trial_files = project.glob("trial_*/trial.json")
    statuses = [json.loads(path.read_text())["status"] for path in trial_files]
    assert statuses == ["COMPLETED"] * BUDGET
