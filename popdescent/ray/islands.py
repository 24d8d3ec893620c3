"""Islands: each Ray trial trains a whole fused `Population` with `PopDescent` inside it, and
every few reports the fittest members migrate between islands.

The fused step keeps one device busy with a whole population; Ray runs one island per device
or node and moves members between them. Migration is a ring: island i (in trial-id order)
receives the fittest member of island i-1 into its weakest slot, weights, optimizer state
and hyperparameters. With two islands that is an exchange of their best members.

An island's checkpoint is its `popdescent.BackupAndRestore` backup, so a restarted island
resumes exactly (batch stream, strategy generators, lineage) and Ray's `FailureConfig`
restarts a dead one from it.
"""

from __future__ import annotations

import json
import os
import tempfile

import keras
import numpy as np
from ray import tune

from popdescent.callbacks.backup import BACKUP_FILE, BackupAndRestore, read_backup
from popdescent.population.population import Population
from popdescent.ray.barrier import SynchronousSelection
from popdescent.ray.trainable import trial_seed
from popdescent.strategies.popdescent import PopDescent
from popdescent.validation import check_integer

__all__ = ["IslandMigration", "island_trainable", "plan_migration", "MIGRATION_KEY"]

# The config entry telling an island which member to take in, from which checkpoint.
MIGRATION_KEY = "popdescent_migration"
ISLAND_FILE = "island.json"


def plan_migration(member_losses) -> list:
    """The ring migration on plain arrays: `member_losses[i]` holds island i's members'
    losses. Returns one (destination, slot, source, member) per island: island i's weakest
    slot receives island i-1's fittest member. A non-finite loss counts as the weakest."""
    losses = [np.where(np.isfinite(np.asarray(l, float)), np.asarray(l, float), np.inf)
              for l in member_losses]
    if len(losses) < 2:
        raise ValueError(f"migration needs at least 2 islands, got {len(losses)}")
    return [(i, int(np.argmax(losses[i])), (i - 1) % len(losses),
             int(np.argmin(losses[(i - 1) % len(losses)]))) for i in range(len(losses))]


def read_member(directory, member, variables_per_member) -> list:
    """Member `member`'s variables (its model's, then its optimizer's) from the backup in
    `directory`: a population's state variables list each member's in turn."""
    arrays, _ = read_backup(os.path.join(directory, BACKUP_FILE))
    first = member * variables_per_member
    return [arrays[f"variable_{i:05d}"] for i in range(first, first + variables_per_member)]


class IslandMigration(SynchronousSelection):
    """Every `every` reports, the fittest member of each island replaces the weakest of the
    next (`plan_migration`); each island restarts from its own checkpoint and takes the
    migrant in. Islands report `member_losses` (`island_trainable` does).

    Args:
        every: reports between two migrations, >= 1.
        metric: what the experiment ranks islands by; default "val_loss".
        mode: "min" (default) or "max".

    Example:
        >>> tune.Tuner(island_trainable(build, data, size=3), tune_config=tune.TuneConfig(
        ...     scheduler=IslandMigration(every=2), num_samples=2, reuse_actors=True)).fit()
    """

    def __init__(self, every=1, metric="val_loss", mode="min",
                 time_attr="training_iteration"):
        super().__init__(metric=metric, mode=mode, every=every, time_attr=time_attr)
        self._migrations = 0

    def check_size(self, size):
        if size < 2:
            raise ValueError(f"IslandMigration needs at least 2 islands (trials), got {size}")

    def select(self, tune_controller, trials):
        results = [self.result_of(t) for t in trials]
        for trial, result in zip(trials, results):
            if "member_losses" not in result:
                raise RuntimeError(
                    f"IslandMigration needs 'member_losses' in every result; trial "
                    f"{trial.trial_id} reported {sorted(result)}: use island_trainable"
                )
        self._migrations += 1
        record = {"iteration": int(results[0][self._time_attr]), "migrations": []}
        for destination, slot, source, member in plan_migration(
                [r["member_losses"] for r in results]):
            trial = trials[destination]
            migration = {
                "id": self._migrations, "slot": slot, "member": member,
                "source": trials[source].trial_id,
                "source_checkpoint": self.checkpoint_of(trials[source]).path,
                "hyperparameters": results[source]["member_hyperparameters"][member],
            }
            record["migrations"].append({"island": trial.trial_id, **migration})
            config = {k: v for k, v in trial.config.items() if k != MIGRATION_KEY}
            self.restart(tune_controller, trial, trial, {**config, MIGRATION_KEY: migration})
        return record


class _IslandReport(BackupAndRestore):
    """The island's link to Tune: restores the backup Ray handed over, takes in a planned
    migrant once, and after each iteration reports with the backup as the checkpoint."""

    def __init__(self, directory, config, validation, batch_size):
        super().__init__(directory, delete_checkpoint=False)
        self.config, self.validation, self.batch_size = config, validation, batch_size

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        migration = self.config.get(MIGRATION_KEY)
        island_path = os.path.join(self.directory, ISLAND_FILE)
        applied = None
        if os.path.exists(island_path):
            with open(island_path, encoding="utf-8") as file:
                applied = json.load(file).get("migration")
        if migration is not None and migration["id"] != applied:
            self._take_in(migration)
            with open(island_path, "w", encoding="utf-8") as file:
                json.dump({"migration": migration["id"]}, file)

    def _take_in(self, migration):
        population, slot = self.model, migration["slot"]
        variables = (list(population.members[slot].variables)
                     + list(population.members[slot].optimizer.variables))
        with tune.Checkpoint(migration["source_checkpoint"]).as_directory() as source:
            values = read_member(source, migration["member"], len(variables))
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        population.set_hyperparameters(slot, migration["hyperparameters"])

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        population = self.model
        losses = population.member_losses(*self.validation, self.batch_size)
        finite = np.where(np.isfinite(losses), losses, np.inf)
        metrics = {
            "val_loss": float(finite.min()),
            "member_losses": [float(v) for v in losses],
            "best_member": int(np.argmin(finite)),
            "member_hyperparameters": population.hyperparameter_values(),
            "member_steps": population.gradient_steps,
        }
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(self.directory))


def train_island(config, build, data, size, hyperparameters, strategy, steps_per_report,
                 batch_size, seed):
    """The body of one island trial (see `island_trainable`)."""
    x, y, x_val, y_val = data
    keras.utils.set_random_seed(trial_seed(seed))
    population = Population(build(config), size=size, hyperparameters=hyperparameters,
                            seed=trial_seed(seed))
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(directory)
        population.fit(
            x, y, batch_size=batch_size, epochs=2**31 - 1, steps_per_epoch=steps_per_report,
            validation_data=(x_val, y_val), validation_freq=2**31 - 1, verbose=0,
            callbacks=[PopDescent(**strategy),
                       _IslandReport(directory, config, (x_val, y_val), batch_size)])


def island_trainable(build, data, size=5, hyperparameters=None, popdescent=None,
                     steps_per_report=100, batch_size=64, seed=0):
    """A Ray Tune trainable whose trial is an island: a fused `Population` of `size` clones
    of `build(config)` trained with `PopDescent(**popdescent)`, one iteration (one PopDescent
    step) per report. Reports `val_loss` (the best member's), `member_losses`,
    `best_member`, `member_hyperparameters`, `member_steps` (every member's steps), and the
    island's backup as the checkpoint. Pair it with `IslandMigration`.

    Args:
        build: `build(config) -> compiled keras.Model`, the members' template.
        data: ((x, y), (x_val, y_val)) numpy arrays.
        size: members per island, >= 2.
        hyperparameters: the Population's priors (default: around the compiled rate).
        popdescent: keyword arguments of the island's `PopDescent` (default: its defaults,
            elites at most size - 1).
        steps_per_report: steps per iteration, >= 1.
        batch_size: >= 1.
        seed: with the trial id, seeds each island's population.
    """
    (x, y), (x_val, y_val) = data
    size = check_integer("size", size, minimum=2)
    strategy = dict(popdescent or {})
    strategy.setdefault("elites", min(3, size - 1))
    PopDescent(**strategy)  # bad arguments fail here, not in every trial
    arrays = [np.asarray(a) for a in (x, y, x_val, y_val)]

    def popdescent_island(config, data):
        train_island(config, build, data, size, hyperparameters, strategy,
                     check_integer("steps_per_report", steps_per_report, minimum=1),
                     check_integer("batch_size", batch_size, minimum=1), seed)

    return tune.with_parameters(popdescent_island, data=arrays)
