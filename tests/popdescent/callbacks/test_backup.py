"""BackupAndRestore: a killed run resumes bit-identically; backups are atomic and checked."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.helpers.models import make_model

import popdescent as pd
from popdescent.callbacks.backup import BACKUP_FILE, arrange_callbacks, read_backup
from tests.helpers.callbacks import Interrupt

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCRIPT = os.path.join(REPO_ROOT, "tests", "helpers", "backup_run.py")
EPOCHS = 12  # backup_run.EPOCHS


def start_run(directory, output, *extra):
    # The script imports popdescent from this checkout, as the test process does.
    path = os.pathsep.join([REPO_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=path)
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(directory), str(output), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output.decode(errors="replace")[-3000:]


def assert_bit_identical(reference_path, resumed_path):
    reference, resumed = np.load(reference_path), np.load(resumed_path)
    assert sorted(reference.files) == sorted(resumed.files)
    different = [
        name for name in reference.files
        if name != "epochs_run" and (
            reference[name].dtype != resumed[name].dtype
            or reference[name].shape != resumed[name].shape
            or reference[name].tobytes() != resumed[name].tobytes()
        )
    ]
    assert different == []
    return reference, resumed


@pytest.mark.slow  # four subprocesses, each importing TensorFlow: ~30 s on an idle machine
@pytest.mark.parametrize("data_input", ["arrays", "tf.data"])
def test_run_killed_twice_resumes_bit_identical(data_input, tmp_path):
    """SIGKILLed from outside after its first backup, then killing itself halfway through
    writing a backup, the run, started a third time, ends exactly like an uninterrupted one;
    fed by arrays or by a tf.data pipeline that the resumed process re-reads and skips."""
    started = time.monotonic()
    directory = tmp_path / "backup"
    backup = directory / BACKUP_FILE
    arguments = ("--input", data_input)
    reference = start_run(tmp_path / "reference_backup", tmp_path / "reference.npz", *arguments)
    killed = start_run(directory, tmp_path / "killed.npz", *arguments)
    while not backup.exists() and killed.poll() is None:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    code, log = finish(killed)
    assert code == -signal.SIGKILL, log
    code, log = finish(reference)
    assert code == 0, log
    epoch = read_backup(backup)[1]["epoch"]
    assert 1 <= epoch <= EPOCHS - 3  # killed mid-run, with room for the second kill

    # Second start: restores `epoch`, backs up epoch + 1, dies writing epoch + 2.
    code, log = finish(start_run(directory, tmp_path / "torn.npz", "--kill-during-backup", "2",
                                 *arguments))
    assert code == -signal.SIGKILL, log
    assert len([name for name in os.listdir(directory) if name != BACKUP_FILE]) == 1  # torn
    assert read_backup(backup)[1]["epoch"] == epoch + 1  # the previous backup, intact

    code, log = finish(start_run(directory, tmp_path / "resumed.npz", *arguments))
    assert code == 0, log
    _, resumed = assert_bit_identical(tmp_path / "reference.npz", tmp_path / "resumed.npz")
    assert list(resumed["epochs_run"]) == list(range(epoch + 1, EPOCHS))  # it resumed
    assert not directory.exists()  # backup deleted once fit completed
    print(f"\nresume test: first kill after iteration {epoch}; reference and killed runs "
          f"(concurrent), torn run and final run took {time.monotonic() - started:.1f} s")


# ------------------------------------------------------------------ in-process checks


def fit(pop, data, directory, epochs=4, extra=(), **kwargs):
    x, y, _, _ = data
    strategy = pd.PopDescent(elites=1, cv_batch_size=16, cross_validation=False)
    callbacks = [pd.BackupAndRestore(directory, **kwargs), strategy, *extra]
    pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=2, verbose=0,
            callbacks=callbacks)
    return strategy


def state_bytes(pop):
    return [keras.ops.convert_to_numpy(v).tobytes() for v in pop.state_variables()]


def test_interrupted_fit_resumes_in_process_and_ignores_a_stray_partial_file(data, tmp_path):
    reference = pd.Population(make_model(), size=3, seed=5)
    reference_strategy = fit(reference, data, tmp_path / "reference")

    pop = pd.Population(make_model(), size=3, seed=5)
    with pytest.raises(KeyboardInterrupt):
        fit(pop, data, tmp_path / "run", extra=[Interrupt(2)])
    (tmp_path / "run" / ".population_backup-partial").write_bytes(b"PK\x03\x04 torn")
    fresh = pd.Population(make_model(), size=3, seed=5)  # a new process would rebuild it
    strategy = fit(fresh, data, tmp_path / "run")

    assert state_bytes(fresh) == state_bytes(reference)
    assert fresh.lineage == reference.lineage
    np.testing.assert_array_equal(fresh.fitness, reference.fitness)
    assert strategy.rng.bit_generator.state == reference_strategy.rng.bit_generator.state
    assert not (tmp_path / "run").exists()


class ShuffledBatches(keras.utils.PyDataset):
    """4 batches of 16, in an order a pure function of (seed, pass), as a user would seed it."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 4

    def __getitem__(self, index):
        order = np.random.default_rng([3, index // 4]).permutation(len(self.x))
        rows = order[(index % 4) * 16:(index % 4 + 1) * 16]
        return self.x[rows], self.y[rows]


def seeded_generator(x, y):
    """An endless generator whose passes are seeded shuffles: a fresh one replays them."""
    for epoch in range(10**6):
        order = np.random.default_rng([3, epoch]).permutation(len(x))
        for start in range(0, 64, 16):
            rows = order[start:start + 16]
            yield x[rows], y[rows]


PIPELINES = {
    "tf.data": lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
        len(x), seed=3).batch(16),
    "generator": seeded_generator,
    "PyDataset": ShuffledBatches,
}


def fit_pipeline(kind, pop, data, directory, extra=()):
    """Four iterations of 3 steps on a pipeline of 4 batches per pass, reshuffled by a seeded
    shuffle on every pass: resuming must re-read it and skip across pass ends."""
    x, y, x_val, y_val = data
    strategy = pd.PopDescent(elites=1, cv_batch_size=16)
    pop.fit(PIPELINES[kind](x[:64], y[:64]), epochs=4, steps_per_epoch=3, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.BackupAndRestore(directory), strategy, *extra])
    return strategy


@pytest.mark.parametrize("kind", sorted(PIPELINES))
def test_interrupted_fit_on_a_pipeline_resumes_bit_identical(kind, data, tmp_path):
    reference = pd.Population(make_model(), size=3, seed=5)
    reference_strategy = fit_pipeline(kind, reference, data, tmp_path / "reference")
    pop = pd.Population(make_model(), size=3, seed=5)
    with pytest.raises(KeyboardInterrupt):
        fit_pipeline(kind, pop, data, tmp_path / "run", extra=[Interrupt(2)])
    fresh = pd.Population(make_model(), size=3, seed=5)
    strategy = fit_pipeline(kind, fresh, data, tmp_path / "run")
    assert state_bytes(fresh) == state_bytes(reference)
    assert fresh.lineage == reference.lineage
    assert strategy.rng.bit_generator.state == reference_strategy.rng.bit_generator.state


def test_backup_every_second_iteration_resumes_from_the_last_one_written(data, tmp_path):
    reference = pd.Population(make_model(), size=3, seed=5)
    fit(reference, data, tmp_path / "reference", epochs=5)
    pop = pd.Population(make_model(), size=3, seed=5)
    with pytest.raises(KeyboardInterrupt):
        fit(pop, data, tmp_path / "run", epochs=5, every=2, extra=[Interrupt(3)])
    assert read_backup(tmp_path / "run" / BACKUP_FILE)[1]["epoch"] == 2
    fresh = pd.Population(make_model(), size=3, seed=5)
    fit(fresh, data, tmp_path / "run", epochs=5, every=2)
    assert state_bytes(fresh) == state_bytes(reference)
    assert fresh.lineage == reference.lineage


def test_damaged_backup_is_refused_naming_the_file_before_training(data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=5)
    fit(pop, data, tmp_path, epochs=2, delete_checkpoint=False)
    path = tmp_path / BACKUP_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fresh = pd.Population(make_model(), size=3, seed=5)
    with pytest.raises(ValueError, match=f"the backup '{path}' cannot be read.*damaged"):
        fit(fresh, data, tmp_path, epochs=3)
    assert fresh.gradient_steps == 0


@pytest.mark.parametrize("change, message", [
    ("seed", "its seed is 5, this fit's is 6"),
    ("elites", "its strategy_configs is"),
    ("data", "its data_crc32 is"),
])
def test_backup_of_a_different_run_is_refused(change, message, data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=5)
    fit(pop, data, tmp_path, epochs=2, delete_checkpoint=False)
    other = pd.Population(make_model(), size=3, seed=6 if change == "seed" else 5)
    x, y, x_val, y_val = data
    changed = (x + 1.0, y, x_val, y_val) if change == "data" else data
    strategy = pd.PopDescent(elites=2 if change == "elites" else 1, cv_batch_size=16,
                             cross_validation=False)
    with pytest.raises(ValueError, match=f"written by a different run: {message}"):
        other.fit(changed[0], changed[1], batch_size=16, epochs=3, steps_per_epoch=2, verbose=0,
                  callbacks=[pd.BackupAndRestore(tmp_path), strategy])
    assert other.gradient_steps == 0


def test_kept_backup_makes_a_finished_command_a_no_op(data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=5)
    fit(pop, data, tmp_path, epochs=2, delete_checkpoint=False)
    again = pd.Population(make_model(), size=3, seed=5)
    fit(again, data, tmp_path, epochs=2, delete_checkpoint=False)
    assert again.gradient_steps == pop.gradient_steps == 2 * 2 * 3
    assert state_bytes(again) == state_bytes(pop)


class EpochLog(keras.callbacks.Callback):
    """A callback with state of its own: the iterations it saw, kept by get/set_state."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = list(state["seen"])


def test_a_callback_with_get_and_set_state_goes_on_where_it_stopped(data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=5)
    with pytest.raises(KeyboardInterrupt):
        fit(pop, data, tmp_path / "run", extra=[EpochLog(), Interrupt(3)])
    resumed_log = EpochLog()
    fit(pd.Population(make_model(), size=3, seed=5), data, tmp_path / "run", extra=[resumed_log])
    assert resumed_log.seen == [0, 1, 2, 3]  # 0-2 restored from the backup, 3 run after it


def test_backup_runs_after_the_strategies_wherever_it_is_listed(tmp_path):
    backup, strategy, other = pd.BackupAndRestore(tmp_path), pd.PopDescent(), Interrupt(9)
    assert arrange_callbacks([backup, strategy, other]) == [strategy, other, backup]
    assert backup.strategies == [strategy]  # Interrupt has no state to keep


@pytest.mark.parametrize("callbacks, error, message", [
    ("not a list", TypeError, "callbacks must be a list"),
    ([object()], TypeError, r"callbacks\[0\] must be a keras.callbacks.Callback"),
    ([keras.callbacks.BackupAndRestore("/tmp/x")], ValueError, "use popdescent.BackupAndRestore"),
    ([pd.BackupAndRestore("/tmp/a"), pd.BackupAndRestore("/tmp/b")], ValueError, "one Backup"),
])
def test_bad_callback_lists_are_rejected(callbacks, error, message):
    with pytest.raises(error, match=message):
        arrange_callbacks(callbacks)


@pytest.mark.parametrize("arguments, message", [
    ({"directory": ""}, "directory must be a non-empty path"),
    ({"directory": None}, "directory must be a non-empty path"),
    ({"directory": "/tmp/x", "every": 0}, "every must be an integer >= 1, got 0"),
])
def test_bad_backup_arguments_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.BackupAndRestore(**arguments)
