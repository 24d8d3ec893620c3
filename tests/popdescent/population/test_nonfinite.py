"""Non-finite members: fitness 0, always replaced, population size intact; all of them -> a
clear error, with the last good backup kept."""

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd
from popdescent.callbacks.backup import BACKUP_FILE, read_backup
from popdescent.strategies import plan_replacement

HUGE = 1e30  # Adam steps of 1e30 overflow float32 logits within one iteration


def population(size=5, seed=0):
    return pd.Population(make_model(), size=size, seed=seed, hyperparameters={
        "learning_rate": pd.LogUniform(1e-3, 1e-2, bounds=(1e-4, HUGE))})


def fit(pop, data, epochs=1, callbacks=()):
    x, y, x_val, y_val = data
    return pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=2, verbose=0,
                   validation_data=(x_val, y_val), callbacks=list(callbacks))


def finite(pop):
    return not pop.nonfinite_members().any()


class SetLearningRates(keras.callbacks.Callback):
    """Sets members' learning rates at the start of iteration `epoch`, as a user might."""

    def __init__(self, epoch, rates):
        super().__init__()
        self.epoch, self.rates = epoch, rates

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            for index, rate in self.rates.items():
                self.model.set_hyperparameters(index, {"learning_rate": rate})


class KeepEveryone(pd.PopulationStrategy):
    """A strategy that replaces nobody: the base class alone must remove diverged members."""

    def evolve(self, population, fitness, rng):
        return np.array([], dtype=int), np.array([], dtype=int)


def test_member_with_huge_learning_rate_gets_fitness_0_and_is_replaced(data):
    pop = population()
    fit(pop, data, callbacks=[SetLearningRates(0, {1: HUGE})])  # diverges, no strategy yet
    assert pop.nonfinite_members()[1] and pop.nonfinite_members().sum() == 1

    fit(pop, data, callbacks=[pd.PopDescent(elites=4, cv_batch_size=16)])
    record = pop.lineage[-1]["members"]
    assert record[1]["fitness"] == 0.0
    assert [i for i, member in enumerate(record) if member["replaced"]] == [1]
    assert record[1]["parent"] != 1
    assert pop.size == len(pop.members) == 5
    assert finite(pop)


def test_more_diverged_members_than_replacements_are_all_replaced(data):
    pop = population()
    fit(pop, data, callbacks=[SetLearningRates(0, {0: HUGE, 2: HUGE, 3: HUGE})])
    fit(pop, data, callbacks=[pd.PopDescent(elites=3, cv_batch_size=16)])
    replaced = [i for i, m in enumerate(pop.lineage[-1]["members"]) if m["replaced"]]
    assert replaced == [0, 2, 3]  # 3 diverged but elites=3 replaces only 2: all 3 still go
    assert pop.size == 5 and finite(pop)


def test_plan_never_keeps_a_diverged_member_as_an_elite():
    fitness = np.array([0.0, 0.5, 0.0, 0.0, 0.6])
    plan = plan_replacement(fitness, elites=3, rng=np.random.default_rng(0))
    assert list(plan.elites) == [1, 4]
    assert sorted(plan.replaced) == [0, 2, 3]
    assert set(plan.parents) <= {1, 4}


def test_base_strategy_replaces_diverged_members_a_strategy_kept(data):
    pop = population(size=4)
    fit(pop, data, callbacks=[SetLearningRates(0, {3: HUGE})])
    fit(pop, data, callbacks=[KeepEveryone(cv_batch_size=16)])
    record = pop.lineage[-1]["members"]
    assert [i for i, m in enumerate(record) if m["replaced"]] == [3]
    assert record[3]["parent"] in (0, 1, 2)
    assert finite(pop)


def test_nonfinite_optimizer_state_counts_even_when_the_loss_is_finite(data):
    pop = population(size=4)
    fit(pop, data)
    velocity = [v for v in pop.member(2).optimizer.variables if "velocity" in v.path][0]
    velocity.assign(np.full(velocity.shape, np.nan, dtype="float32"))
    x, y, x_val, y_val = data
    assert np.isfinite(pop.member_losses(x_val, y_val)).all()
    fitness = pop.evaluate_fitness(x_val, y_val)
    assert fitness[2] == 0.0 and (np.delete(fitness, 2) > 0).all()
    assert list(pop.nonfinite) == [False, False, True, False]


def test_every_member_nonfinite_stops_with_a_clear_error_and_keeps_the_good_backup(
        data, tmp_path):
    pop = population(size=3)
    everyone = SetLearningRates(2, {0: HUGE, 1: HUGE, 2: HUGE})
    with pytest.raises(FloatingPointError, match="every member of the population is non-finite"):
        fit(pop, data, epochs=4, callbacks=[
            pd.BackupAndRestore(tmp_path), pd.PopDescent(elites=1, cv_batch_size=16),
            everyone])
    arrays, meta = read_backup(tmp_path / BACKUP_FILE)
    assert meta["epoch"] == 2  # the last iteration before everyone diverged
    assert all(np.isfinite(a).all() for name, a in arrays.items() if a.dtype.kind == "f"
               and name != "fitness")


def test_backup_alone_refuses_to_save_an_all_nonfinite_population(data, tmp_path):
    pop = population(size=2)
    everyone = SetLearningRates(1, {0: HUGE, 1: HUGE})
    with pytest.raises(FloatingPointError, match="backup of the last good iteration is kept"):
        fit(pop, data, epochs=3, callbacks=[pd.BackupAndRestore(tmp_path), everyone])
    _, meta = read_backup(tmp_path / BACKUP_FILE)
    assert meta["epoch"] == 1


def test_one_diverged_member_leaves_the_logged_loss_finite_and_terminate_on_nan_idle(data):
    """The logged `loss` is over the finite members, so TerminateOnNaN lets PopDescent heal
    a diverged member instead of ending the run; the count of diverged members is logged."""
    pop = population(size=3)
    history = fit(pop, data, epochs=3, callbacks=[
        SetLearningRates(0, {1: HUGE}), keras.callbacks.TerminateOnNaN(),
        pd.PopDescent(elites=2, cv_batch_size=16)])
    assert len(history.history["loss"]) == 3  # not stopped
    first = {key: values[0] for key, values in history.history.items()}
    assert first["nonfinite_members"] == 1
    assert not np.isfinite(first["loss_1"])
    assert first["loss"] == pytest.approx((first["loss_0"] + first["loss_2"]) / 2, rel=1e-5)
    assert first["best_loss"] == pytest.approx(min(first["loss_0"], first["loss_2"]), rel=1e-5)
    assert pop.lineage[0]["members"][1]["replaced"]
    assert history.history["nonfinite_members"][-1] == 0  # healed by the replacement


def test_every_member_diverged_makes_the_logged_loss_nonfinite_and_terminate_on_nan_stop(
        data):
    pop = population(size=3)
    history = fit(pop, data, epochs=3, callbacks=[
        SetLearningRates(0, {0: HUGE, 1: HUGE, 2: HUGE}), keras.callbacks.TerminateOnNaN()])
    assert pop.stop_training
    assert len(history.history["loss"]) == 1
    assert not np.isfinite(history.history["loss"][0])
    assert history.history["nonfinite_members"][0] == 3
