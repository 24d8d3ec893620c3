"""Islands of fused populations on a local Ray: the fittest members migrate between them."""

import json
import os

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="popdescent.ray needs Ray Tune: pip install -e '.[ray]'")

import popdescent  # noqa: E402
from popdescent.ray.barrier import LINEAGE_FILE  # noqa: E402
from popdescent.ray.islands import (  # noqa: E402
    IslandMigration,
    island_trainable,
    plan_migration,
    read_member,
)
from tests.helpers.digits import build_mlp, digits  # noqa: E402
from tests.helpers.ray_runs import CheckpointRecorder, KillOnce, run_experiment  # noqa: E402

# Dense(64->16) and Dense(16->10): kernel and bias each; Adam: iteration, learning rate and
# two slots per weight.
WEIGHTS, VARIABLES_PER_MEMBER = 4, 4 + 2 + 2 * 4


def test_each_island_takes_the_previous_islands_fittest_into_its_weakest_slot():
    losses = [[0.5, 0.2, 0.9], [0.3, 0.8, 0.1], [np.nan, 0.4, 0.6]]
    assert plan_migration(losses) == [(0, 2, 2, 1), (1, 1, 0, 1), (2, 0, 1, 2)]


def test_two_islands_exchange_their_best_members():
    assert plan_migration([[0.1, 0.7], [0.9, 0.2]]) == [(0, 1, 1, 1), (1, 0, 0, 0)]


def test_one_island_cannot_migrate():
    with pytest.raises(ValueError, match="at least 2 islands, got 1"):
        plan_migration([[0.1, 0.2]])


@pytest.fixture(scope="module")
def island_run(ray_session, tmp_path_factory):
    """Two islands of 3 members, 3 reports, a migration every 2 reports. The island's own
    PopDescent acts every 100 iterations (never here) and the learning rate is ~1e-9, so
    only a migration changes a member's weights."""
    train, validation, _ = digits()
    trainable = island_trainable(
        build_mlp, (train, validation), size=3,
        hyperparameters={"learning_rate": popdescent.LogUniform(1e-9, 2e-9)},
        popdescent={"elites": 2, "every": 100}, steps_per_report=10, batch_size=32)
    recorder = CheckpointRecorder(copy=True)
    grid = run_experiment(trainable, IslandMigration(every=2), tmp_path_factory.mktemp("ray"),
                          "islands", num_samples=2, reports=3, callbacks=[recorder])
    with open(os.path.join(grid.experiment_path, LINEAGE_FILE), encoding="utf-8") as file:
        records = [json.loads(line) for line in file]
    return grid, records, recorder


def members(directory):
    return [read_member(directory, m, VARIABLES_PER_MEMBER)[:WEIGHTS] for m in range(3)]


def same(a, b):
    return all(np.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


def test_islands_migrate_only_at_the_stated_interval(island_run):
    grid, records, recorder = island_run
    copies = recorder.copies
    assert [result.error for result in grid] == [None, None]
    assert [record["iteration"] for record in records] == [2]
    for island in copies:
        first, second = members(copies[island][0]), members(copies[island][1])
        assert all(same(a, b) for a, b in zip(first, second))


def test_two_islands_exchange_their_best_member_into_their_weakest_slot(island_run):
    _, records, recorder = island_run
    copies = recorder.copies
    migrations = records[0]["migrations"]
    assert {m["island"] for m in migrations} == set(copies)
    for migration in migrations:
        island, source = migration["island"], migration["source"]
        before, after = members(copies[island][1]), members(copies[island][2])
        migrant = members(copies[source][1])[migration["member"]]
        assert migration["member"] == int(np.argmin(reported_losses(recorder, source)))
        assert migration["slot"] == int(np.argmax(reported_losses(recorder, island)))
        assert same(after[migration["slot"]], migrant)
        kept = [m for m in range(3) if m != migration["slot"]]
        assert all(same(after[m], before[m]) for m in kept)


def reported_losses(recorder, trial_id):
    """The member losses `trial_id` reported at its second report (the migration's)."""
    result = next(r for r in recorder.results[trial_id] if r["training_iteration"] == 2)
    return [float(v) for v in result["member_losses"]]


def test_every_member_step_of_each_island_is_counted(island_run):
    grid, _, _ = island_run
    assert [result.metrics["member_steps"] for result in grid] == [3 * 10 * 3] * 2


def final_members(grid):
    """{trial number: the members' weights in its last checkpoint}."""
    finals = {}
    for result in grid:
        with result.checkpoint.as_directory() as directory:
            finals[int(result.metrics["trial_id"].rsplit("_", 1)[-1])] = members(directory)
    return finals


def test_a_killed_island_restarts_from_its_backup_and_ends_as_if_uninterrupted(
        ray_session, tmp_path):
    # Real learning rates: every step changes the weights, so a replayed or skipped step shows.
    train, validation, _ = digits()

    def run(name, callbacks):
        trainable = island_trainable(
            build_mlp, (train, validation), size=3,
            hyperparameters={"learning_rate": popdescent.LogUniform(1e-3, 1e-2)},
            popdescent={"elites": 2, "every": 1}, steps_per_report=10, batch_size=32)
        return run_experiment(trainable, IslandMigration(every=2), tmp_path, name,
                              num_samples=2, reports=3, callbacks=callbacks, max_failures=2)

    killer = KillOnce(iteration=2)
    killed = run("killed", [killer])
    assert killer.killed is not None
    assert [result.error for result in killed] == [None, None]
    assert [result.metrics["member_steps"] for result in killed] == [3 * 10 * 3] * 2
    whole = final_members(run("whole", []))
    for number, weights in final_members(killed).items():
        assert all(np.allclose(a, b, atol=1e-6) for member, other in zip(weights, whole[number])
                   for a, b in zip(member, other))
