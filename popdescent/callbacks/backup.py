"""`BackupAndRestore`: a killed `Population.fit` resumes at its last finished iteration and ends
bit-identical to a run that was never interrupted.

Keras' own `keras.callbacks.BackupAndRestore` cannot do this for a population: it saves the
weights only (not the strategies' random generators, the fitness or the lineage), and it writes
the weights file in place, then the epoch in a second file, so a kill in between leaves a
corrupt file or weights from one iteration labelled with another. This callback writes one
file per iteration, atomically, and reuses Keras' resume mechanism (`model._initial_epoch`,
which `fit` reads after `on_train_begin`); `Population.fit` starts its seeded batch stream at
the restored step.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib

import keras
import numpy as np

from popdescent.population.finished import finished_state, restore_finished
from popdescent.strategies.base import PopulationStrategy
from popdescent.validation import check_integer, is_population

__all__ = ["BackupAndRestore", "arrange_callbacks"]

BACKUP_FILE = "population_backup.npz"
_TEMPORARY_PREFIX = ".population_backup-"
_FORMAT = 1


def arrange_callbacks(callbacks) -> list:
    """`Population.fit`'s callback list, checked: strategies first, then the other callbacks,
    then any BackupAndRestore (each group in the order given).

    Keras calls `on_epoch_end` in list order. Strategies write each member's fitness, parent
    and hyperparameters into the epoch's logs, which callbacks such as TensorBoard, History,
    EarlyStopping or ReduceLROnPlateau (`monitor="best_fitness"`) read; the backup must see
    the iteration after every strategy has acted on it, and know the strategies whose state
    it keeps.
    """
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            f"callbacks must be a list of keras.callbacks.Callback, got {type(callbacks).__name__}"
        )
    for index, callback in enumerate(callbacks):
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(
                f"callbacks[{index}] must be a keras.callbacks.Callback, got "
                f"{type(callback).__name__}"
            )
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise ValueError(
                f"callbacks[{index}] is keras.callbacks.BackupAndRestore, which cannot resume a "
                "Population exactly (it keeps neither the strategies' random state, the fitness "
                "nor the lineage, and does not write atomically); use "
                "popdescent.BackupAndRestore(directory)"
            )
    backups = [c for c in callbacks if isinstance(c, BackupAndRestore)]
    if len(backups) > 1:
        raise ValueError(f"callbacks may hold one BackupAndRestore, got {len(backups)}")
    strategies = [c for c in callbacks if isinstance(c, PopulationStrategy)]
    others = [c for c in callbacks
              if not isinstance(c, (PopulationStrategy, BackupAndRestore))]
    for backup in backups:
        backup.set_strategies([c for c in strategies + others if keeps_state(c)])
    return strategies + others + backups


def keeps_state(callback) -> bool:
    """Whether a backup keeps `callback`'s state: every `PopulationStrategy`, and any other
    callback that defines both `get_state()` (JSON-serialisable) and `set_state(state)`."""
    return isinstance(callback, PopulationStrategy) or (
        callable(getattr(callback, "get_state", None))
        and callable(getattr(callback, "set_state", None))
    )


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the whole population after every iteration and resumes from it after a crash.

    After each finished iteration (once the strategies have acted) it writes, atomically, one
    file holding every member's weights and optimizer state, the live hyperparameters, the
    step counter, `population.fitness`, `population.lineage`, and every strategy callback's
    state (its random generator's `bit_generator.state`), as well as the state of any other
    callback that defines `get_state()` and `set_state(state)` (a learning curve, say, that
    must go on where it stopped), with the arrays of one that also defines `get_arrays()`
    (name -> array) and `set_arrays(arrays)` (the budget-aware survivor's best weights).
    When `fit` starts and a backup exists, it restores all of it and training continues at the next iteration, on the same
    batches: re-running a killed command gives a final population bit-identical to an
    uninterrupted run with the same seed, on the same machine and software.

    `Population.fit` runs this callback after all others wherever it sits in the list. Other
    callbacks' state (EarlyStopping's patience, History) is not kept, as with Keras' own.
    A callback's state is restored in this callback's `on_train_begin`, which runs after
    every other callback's.
    If every member becomes non-finite, it raises before writing, so the last good backup
    stays. The directory belongs to one run: another run's backup there is refused, not
    silently resumed.

    Args:
        directory: a directory for this run's backup (created if missing).
        every: back up after every `every`-th iteration (default 1). A backup holds every
            member's weights and optimizer slots: for the paper's FMNIST model (4.6M weights,
            Adam, 5 members) 262 MiB, written in ~3 s on a busy 2-core machine, so a larger
            `every` can pay off; a kill then loses up to `every` iterations of work.
        delete_checkpoint: remove the backup when `fit` completes (the default, as Keras
            does), so the same command run again trains afresh; the last iteration then
            writes none (a kill before `fit` returns redoes that iteration only); False keeps it, and the
            same command run again restores the finished population and trains no further.

    Example:
        >>> pop.fit(x, y, batch_size=64, epochs=50, steps_per_epoch=128,
        ...         validation_data=(x_val, y_val),
        ...         callbacks=[pd.PopDescent(), pd.BackupAndRestore("/tmp/run1")])
    """

    def __init__(self, directory, every=1, delete_checkpoint=True):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise ValueError(
                f"directory must be a non-empty path (str or os.PathLike), got {directory!r}"
            )
        self.every = check_integer("every", every, minimum=1)
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, BACKUP_FILE)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.strategies = None
        self.restored_epoch = None
        self._run = None

    def set_strategies(self, strategies) -> None:
        """The callbacks whose state the backup keeps (Population.fit calls it with the
        strategies and the other `keeps_state` callbacks)."""
        self.strategies = list(strategies)

    # --------------------------------------------------------------- Keras hooks
    def on_train_begin(self, logs=None):
        population = self.model
        if not is_population(population):
            raise TypeError(
                f"popdescent.BackupAndRestore runs on a popdescent.Population, got "
                f"{type(population).__name__}; use keras.callbacks.BackupAndRestore for a model"
            )
        if self.strategies is None:
            raise ValueError(
                "BackupAndRestore must be passed in the callbacks list of Population.fit"
            )
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.startswith(_TEMPORARY_PREFIX):  # a write the last run did not finish
                os.remove(os.path.join(self.directory, name))
        self.restored_epoch = None
        self._run = run_signature(population, self.strategies)
        if os.path.exists(self.path):
            arrays, meta = read_backup(self.path)
            self._check_compatible(meta)
            restore_state(population, self.strategies, arrays, meta)
            # The mechanism keras.callbacks.BackupAndRestore uses: fit reads it after
            # on_train_begin and starts its epoch loop (and our batch stream) there.
            population._initial_epoch = meta["epoch"]
            self.restored_epoch = meta["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        population = self.model
        if (epoch + 1) % self.every:
            return
        if population.nonfinite_members().all():
            raise FloatingPointError(
                f"every member of the population is non-finite (NaN or infinite weights or "
                f"optimizer state) after iteration {epoch}; the backup of the last good "
                f"iteration is kept in {self.path!r}"
            )
        if self.delete_checkpoint and (
            epoch + 1 == self.params.get("epochs") or population.stop_training
        ):
            return  # on_train_end would delete it at once
        write_backup(self.path, *collect_state(population, self.strategies, epoch + 1, self._run))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)
            _fsync_directory(self.directory)
            if not os.listdir(self.directory):
                os.rmdir(self.directory)

    # --------------------------------------------------------------- checks
    def _check_compatible(self, meta):
        for key, value in self._run.items():
            saved = meta["run"].get(key)
            if saved != value:
                raise ValueError(
                    f"the backup {self.path!r} was written by a different run: its {key} is "
                    f"{_short(saved)}, this fit's is {_short(value)}. Resume with the same "
                    "population, strategies, data and fit arguments, or delete the backup to "
                    "start over"
                )


def run_signature(population, strategies) -> dict:
    """What must not change between a run and its resumption (JSON-comparable)."""
    data = population.training_data
    return json.loads(json.dumps({
        "seed": population.seed,
        "size": population.size,
        "priors": {name: prior.get_config() for name, prior in population.priors.items()},
        "steps_per_epoch": data.steps_per_epoch,
        "batch_size": data.batch_size,
        "input": data.kind,
        # Arrays are fingerprinted; a streamed input only by its element structure (reading it
        # to fingerprint it would cost a pass over it).
        "examples": None if data.x is None else len(keras.tree.flatten(data.x)[0]),
        "element_spec": None if data.source is None else str(data.source.element_spec),
        "data_crc32": [
            zlib.crc32(np.ascontiguousarray(a))
            for a in keras.tree.flatten([data.x, data.y, data.sample_weight, data.validation])
            if a is not None
        ],
        "strategies": [type(s).__name__ for s in strategies],
        "strategy_configs": [_config_of(s) for s in strategies],
        "variables": [[list(v.shape), str(v.dtype)] for v in population.state_variables()],
    }, default=_json_default))


def _config_of(strategy):
    """A strategy's get_config() if it has a JSON-serialisable one, else None."""
    try:
        return json.loads(json.dumps(strategy.get_config(), default=_json_default))
    except (AttributeError, NotImplementedError, TypeError, ValueError):
        return None


def _short(value):
    text = repr(value)
    return text if len(text) < 120 else text[:117] + "..."


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a backup")


# ------------------------------------------------------------------- state <-> arrays
def collect_state(population, strategies, epoch, run):
    """The population's training state after `epoch` finished iterations: (arrays, meta)."""
    arrays = {
        f"variable_{i:05d}": np.asarray(keras.ops.convert_to_numpy(v.value))
        for i, v in enumerate(population.state_variables())
    }
    if population.fitness is not None:
        arrays["fitness"] = np.asarray(population.fitness, dtype=np.float64)
    meta = {
        "format": _FORMAT,
        "epoch": int(epoch),
        "run": run,
        "nonfinite": [bool(b) for b in population.nonfinite],
        "origins": [int(origin) for origin in population.origins],
        "origin_count": int(population.next_origin),
        "lineage": population.lineage,
        "strategy_states": [s.get_state() for s in strategies],
    }
    for index, strategy in enumerate(strategies):
        for name, value in callback_arrays(strategy).items():
            arrays[f"{_CALLBACK_ARRAY_PREFIX}{index:02d}_{name}"] = np.asarray(value)
    if population.finished_members:
        finished_arrays, meta["finished"] = finished_state(population.finished_members)
        arrays.update(finished_arrays)
    return arrays, meta


# A callback's arrays (weights it keeps, too large for JSON state) are stored beside the
# variables under this prefix, its position and the array's own name.
_CALLBACK_ARRAY_PREFIX = "callback_"


def callback_arrays(callback) -> dict:
    """The arrays a callback keeps beyond its JSON state: `get_arrays()` where it defines one
    (name -> array), else none."""
    get_arrays = getattr(callback, "get_arrays", None)
    return get_arrays() if callable(get_arrays) else {}


def restore_state(population, strategies, arrays, meta) -> None:
    """Puts `collect_state`'s output back into the population and the strategies; a
    population that had shrunk (`keep_members`) or grown (`add_members`) does so again
    first, and gets back the members it had finished."""
    origins = [int(origin) for origin in meta.get("origins", list(range(population.size)))]
    missing = [origin for origin in origins if origin not in population.origins]
    if missing:
        population.add_members(len(missing), template=0, origins=missing)
    if origins != population.origins:
        population.keep_members([population.origins.index(origin) for origin in origins])
    if origins != population.origins:
        raise ValueError(f"the backup's members {origins} cannot be put back in that order "
                         f"(got {population.origins})")
    population._origin_count = int(meta.get("origin_count", population.next_origin))
    population.set_finished(restore_finished(
        {name: a for name, a in arrays.items() if name.startswith("finished_")},
        meta.get("finished")))
    for i, variable in enumerate(population.state_variables()):
        variable.assign(arrays[f"variable_{i:05d}"])
    population.fitness = arrays["fitness"].copy() if "fitness" in arrays else None
    population.nonfinite = np.array(meta["nonfinite"], dtype=bool)
    population.lineage = meta["lineage"]
    for index, (strategy, state) in enumerate(zip(strategies, meta["strategy_states"],
                                                  strict=True)):
        strategy.set_state(state)
        if callable(getattr(strategy, "set_arrays", None)):
            prefix = f"{_CALLBACK_ARRAY_PREFIX}{index:02d}_"
            strategy.set_arrays({name[len(prefix):]: arrays[name] for name in arrays
                                 if name.startswith(prefix)})


# ------------------------------------------------------------------- files
def write_backup(path, arrays, meta) -> None:
    """Writes the backup atomically: a temporary file in the same directory, flushed and
    fsynced, renamed over the old backup (os.replace is atomic), then the directory fsynced
    so the rename itself survives a power cut. A kill at any point leaves either the old
    backup or the new one, never a mix."""
    directory = os.path.dirname(path) or "."
    descriptor, temporary = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as file:
            meta_text = json.dumps(meta, default=_json_default)
            np.savez(file, meta=np.array(meta_text), **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def read_backup(path):
    """Reads a backup written by `write_backup`: (arrays, meta). No pickled objects are
    accepted; a damaged file raises ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unknown backup format {meta.get('format')!r}")
    except Exception as error:
        raise ValueError(
            f"the backup {path!r} cannot be read ({type(error).__name__}: {error}); it is "
            "damaged or not a popdescent backup. Delete it to start the run over"
        ) from error
    return arrays, meta


def _fsync_directory(directory):
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a directory to fsync it
        return
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
