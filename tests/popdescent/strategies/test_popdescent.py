"""PopDescent: one selection/mutation step, its plan, its switches, and bad arguments."""

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd
from popdescent.strategies import plan_replacement


def wide_model():
    """Enough weights (32x64 kernel) to measure a noise standard deviation."""
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64), keras.layers.Dense(3)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def one_step(pop, strategy, epoch=0):
    """Runs the strategy's end-of-iteration work the way Keras' fit calls it."""
    strategy.set_model(pop)
    strategy.on_train_begin()
    logs = {}
    strategy.on_epoch_end(epoch, logs)
    return logs


@pytest.fixture
def trained_population():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 32)).astype("float32")
    y = rng.integers(0, 3, size=128).astype("int32")
    pop = pd.Population(wide_model(), size=5, seed=3, hyperparameters={
        "learning_rate": pd.LogUniform(1e-4, 1e-2), "l2": pd.LogUniform(1e-6, 1e-1)})
    pop.fit(x[:96], y[:96], batch_size=32, epochs=1, steps_per_epoch=2, verbose=0,
            validation_data=(x[96:], y[96:]))
    return pop


def test_one_step_keeps_elites_and_replaces_the_rest_with_noisy_parent_copies(trained_population):
    pop = trained_population
    before = [[np.array(w) for w in m.get_weights()] for m in pop.members]
    hyper_before = pop.hyperparameter_values()
    strategy = pd.PopDescent(elites=3, weight_noise=0.1)
    logs = one_step(pop, strategy)
    record = pop.lineage[-1]["members"]
    fitness = np.array([member["fitness"] for member in record])
    elites = np.argsort(-fitness, kind="stable")[:3]

    assert pop.size == len(pop.members) == 5
    changed = [i for i in range(5) if any(
        not np.array_equal(a, b) for a, b in zip(before[i], pop.member(i).get_weights()))]
    assert sorted(changed) == sorted(set(range(5)) - set(elites))
    assert sorted(i for i in range(5) if record[i]["replaced"]) == changed
    for index in elites:
        assert pop.hyperparameters_of(index) == hyper_before[index]
    for index in changed:
        parent = record[index]["parent"]
        noise = pop.member(index).get_weights()[0] - before[parent][0]
        expected_std = 0.1 * (1.0 - fitness[parent])
        assert np.std(noise) == pytest.approx(expected_std, rel=0.05)
        assert abs(np.mean(noise)) < 3 * expected_std / np.sqrt(noise.size)
        assert logs[f"parent_{index}"] == parent and logs[f"replaced_{index}"] == 1


def test_mutate_false_copies_parents_exactly(trained_population):
    pop = trained_population
    before = [[np.array(w) for w in m.get_weights()] for m in pop.members]
    hyper_before = pop.hyperparameter_values()
    one_step(pop, pd.PopDescent(elites=2, mutate=False))
    for index, member in enumerate(pop.lineage[-1]["members"]):
        source = member["parent"]
        for a, b in zip(before[source], pop.member(index).get_weights()):
            np.testing.assert_array_equal(a, b)
        assert pop.hyperparameters_of(index) == hyper_before[source]


def test_hyperparameters_mutate_within_bounds(trained_population):
    pop = trained_population
    for epoch in range(20):
        one_step(pop, pd.PopDescent(elites=1, hyperparameter_noise=5.0, seed=epoch), epoch)
        for row in pop.hyperparameter_values():
            assert 1e-4 <= row["learning_rate"] <= 1e-2 + 1e-12
            assert 1e-6 <= row["l2"] <= 1e-1 + 1e-12


def test_cross_validation_false_selects_on_training_data(data):
    x, y, _, _ = data
    pop = pd.Population(make_model(), size=3, seed=0)
    pop.fit(x, y, batch_size=16, epochs=2, verbose=0,
            callbacks=[pd.PopDescent(elites=1, cross_validation=False)])
    assert pop.validation_data is None and len(pop.lineage) == 2
    assert all(np.isfinite(m["fitness"]) for m in pop.lineage[-1]["members"])
    assert sum(m["replaced"] for m in pop.lineage[-1]["members"]) == 2


def test_every_acts_only_on_matching_iterations(data):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=3, seed=0)
    history = pop.fit(x, y, batch_size=16, epochs=4, verbose=0, validation_data=(x_val, y_val),
                      callbacks=[pd.PopDescent(elites=2, every=2)])
    replaced = [sum(history.history[f"replaced_{i}"][epoch] for i in range(3)) for epoch in range(4)]
    assert replaced == [0, 1, 0, 1]


def test_history_records_lineage_for_every_member(data):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=4, seed=0)
    history = pop.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_data=(x_val, y_val),
                      callbacks=[pd.PopDescent(elites=2)])
    for index in range(4):
        for key in ("fitness", "parent", "replaced", "learning_rate"):
            assert len(history.history[f"{key}_{index}"]) == 3
    assert len(pop.lineage) == 3
    assert pop.best_index() == history.history["best_member"][-1]


def test_plan_replaces_the_weakest_and_draws_parents_by_fitness():
    fitness = np.array([0.9, 0.1, 0.5, 0.3, 0.7])
    plan = plan_replacement(fitness, elites=3, rng=np.random.default_rng(0))
    assert list(plan.elites) == [0, 2, 4]
    assert sorted(plan.replaced) == [1, 3]
    draws = np.concatenate([
        plan_replacement(fitness, 3, np.random.default_rng(seed)).parents for seed in range(4000)])
    frequencies = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(frequencies, fitness / fitness.sum(), atol=0.015)
    np.testing.assert_allclose(plan.magnitudes, 1.0 - fitness[plan.parents])


def test_plan_never_draws_a_diverged_member():
    fitness = np.array([0.8, 0.0, 0.6, 0.0])
    draws = np.concatenate([
        plan_replacement(fitness, 1, np.random.default_rng(seed)).parents for seed in range(500)])
    assert not np.isin(draws, [1, 3]).any()


@pytest.mark.parametrize("arguments, message", [
    ({"elites": 0}, "elites must be an integer >= 1"),
    ({"weight_noise": -0.1}, "weight_noise must be a finite number >= 0"),
    ({"hyperparameter_noise": -1.0}, "hyperparameter_noise must be a finite number >= 0"),
    ({"every": 0}, "every must be an integer >= 1"),
])
def test_bad_strategy_arguments_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.PopDescent(**arguments)


def test_elites_at_least_size_is_rejected_before_training(model, data):
    x, y, x_val, y_val = data
    pop = pd.Population(model, size=3, seed=0)
    with pytest.raises(ValueError, match=r"elites must be in \[1, size-1\] = \[1, 2\], got 3"):
        pop.fit(x, y, batch_size=16, epochs=1, validation_data=(x_val, y_val), verbose=0,
                callbacks=[pd.PopDescent(elites=3)])
    assert pop.gradient_steps == 0


def test_missing_validation_data_is_rejected_before_training(model, data):
    x, y, _, _ = data
    pop = pd.Population(model, size=3, seed=0)
    with pytest.raises(ValueError, match="needs validation data"):
        pop.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[pd.PopDescent(elites=1)])
    assert pop.gradient_steps == 0


@pytest.mark.parametrize("build, message", [
    (lambda model: pd.Population(model, size=1), "size must be an integer >= 2"),
    (lambda model: pd.Population(model, size=3, hyperparameters={"momentum": 0.9}),
     "unknown or untunable hyperparameter 'momentum'"),
    (lambda model: pd.Population(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                                 size=2), "must be compiled"),
    (lambda model: pd.LogUniform(1e-2, 1e-3), "low < high"),
    (lambda model: pd.LogUniform(0.0, 1.0), "positive low"),
    (lambda model: pd.Uniform(1.0, 1.0), "low < high"),
    (lambda model: pd.LogUniform(1e-3, 1e-2, bounds=(1e-2, 1.0)), "must contain the initial"),
])
def test_bad_population_arguments_are_rejected(model, build, message):
    with pytest.raises(ValueError, match=message):
        build(model)
