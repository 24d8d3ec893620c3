"""ESGD: offspring are the parents' mean plus decaying noise, (mu + lambda) m-elitist selection
keeps the population size, and the back-off keeps the best fitness from getting worse."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from baselines.esgd import (  # noqa: E402
    ESGD,
    assign_slots,
    back_off,
    mean_weights,
    plan_offspring,
    select_survivors,
)
from popdescent import Fixed, Population  # noqa: E402
from popdescent.population.selection import inverse_loss_fitness  # noqa: E402


# ----------------------------------------------------------------------------- plain arrays
def test_selection_keeps_the_population_size_and_the_elites():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(2, 9))
        elites = int(rng.integers(1, size + 1))
        fitness = rng.uniform(0.01, 1.0, size=size * 5)
        survivors = select_survivors(fitness, size, elites, rng)
        assert len(survivors) == size and len(set(survivors)) == size
        assert set(np.argsort(-fitness)[:elites]) <= set(survivors)


def test_non_elite_survivors_are_drawn_uniformly_from_the_rest():
    rng = np.random.default_rng(1)
    fitness = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.4, 0.5])  # elites: 0, 1, 2
    counts = np.zeros(8)
    for _ in range(5000):
        counts[select_survivors(fitness, 5, 3, rng)] += 1
    np.testing.assert_allclose(counts[3:] / 5000, 2 / 5, atol=0.03)  # 2 of the 5 others
    assert (counts[:3] == 5000).all()


def test_diverged_candidates_survive_only_when_nothing_else_is_left():
    rng = np.random.default_rng(2)
    fitness = np.array([0.9, 0.0, 0.0, 0.5, 0.0, 0.4])
    for _ in range(100):
        assert set(select_survivors(fitness, 3, 1, rng)) == {0, 3, 5}
    assert len(select_survivors(fitness, 5, 1, rng)) == 5


def test_offspring_parents_are_distinct_living_members_and_noise_decays_with_generation():
    rng = np.random.default_rng(3)
    fitness = np.array([0.5, np.nan, 0.6, 0.7, 0.2])
    plan = plan_offspring(fitness, 20, 3, generation=4, mutation_length=0.01, rng=rng)
    assert plan.parents.shape == (20, 3) and len(plan.seeds) == 20
    assert all(len(set(row)) == 3 for row in plan.parents)
    assert 1 not in plan.parents
    assert plan.stddev == pytest.approx(0.0025)


def test_back_off_restores_last_best_only_when_every_survivor_is_worse():
    fitness = np.array([0.5, 0.4, 0.3, 0.2, 0.6])  # candidate 4: last generation's best
    np.testing.assert_array_equal(back_off([0, 1, 2], fitness, 4), [4, 0, 1])
    fitness[4] = 0.45
    np.testing.assert_array_equal(back_off([0, 1, 2], fitness, 4), [0, 1, 2])
    np.testing.assert_array_equal(back_off([0, 1, 2], fitness, None), [0, 1, 2])


def test_surviving_members_keep_their_slots():
    np.testing.assert_array_equal(assign_slots([7, 2, 5, 0], 4), [0, 7, 2, 5])


def test_recombination_is_the_parents_mean():
    rng = np.random.default_rng(4)
    weights = [[rng.normal(size=(3, 2)), rng.normal(size=2)] for _ in range(3)]
    child = mean_weights(weights)
    for position in range(2):
        np.testing.assert_allclose(
            np.asarray(child[position]), np.mean([w[position] for w in weights], axis=0),
            rtol=1e-12)


@pytest.mark.parametrize("arguments, message", [
    ({"mixing_number": 0}, "mixing_number must be an integer >= 1, got 0"),
    ({"elites": 1.5}, "elites must be an integer >= 1, got 1.5"),
    ({"mutation_length": -1.0}, "mutation_length must be a finite number >= 0, got -1.0"),
])
def test_bad_arguments_raise_naming_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        ESGD(**arguments)


# ----------------------------------------------------------------------------- on a Population
def _tiny_model(index=0):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    return x[:64], y[:64], x[64:], y[64:]


def _trained(data, strategy, size=4):
    """A population after one ESGD generation; CV batch = the whole validation set, so every
    generation is scored on the same images and fitness values compare across generations."""
    x, y, x_val, y_val = data
    population = Population(_tiny_model, size=size, seed=0,
                            hyperparameters={"learning_rate": Fixed(1e-2)})
    population.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=4, verbose=0,
                   validation_data=(x_val, y_val), callbacks=[strategy])
    return population


def _fitness(population, data):
    return inverse_loss_fitness(population.member_losses(data[2], data[3]))


def _bad_generation(population, strategy):
    """A generation whose local step wrecked every member and whose offspring are worse still."""
    for index in range(population.size):
        population.perturb_weights(index, 3.0, seed=100 + index)
    strategy.mutation_length = 30.0
    strategy.on_epoch_end(1, {})


def test_backoff_keeps_the_best_fitness_through_a_bad_generation(data):
    strategy = ESGD(reproductive_factor=2, mixing_number=2, elites=2, cv_batch_size=10_000,
                    seed=0)
    population = _trained(data, strategy)
    best_before = _fitness(population, data).max()
    _bad_generation(population, strategy)
    assert strategy.last_plan["backed_off"]
    assert _fitness(population, data).max() >= best_before - 1e-6
    assert population.size == 4 and len(population.fitness) == 4


def test_without_backoff_a_bad_generation_lowers_the_best_fitness(data):
    strategy = ESGD(reproductive_factor=2, mixing_number=2, elites=2, cv_batch_size=10_000,
                    backoff=False, seed=0)
    population = _trained(data, strategy)
    best_before = _fitness(population, data).max()
    _bad_generation(population, strategy)
    assert _fitness(population, data).max() < best_before - 1e-3


def test_backoff_survives_a_backup_round_trip_of_the_strategy_state(data):
    strategy = ESGD(reproductive_factor=2, mixing_number=2, elites=2, cv_batch_size=10_000,
                    seed=0)
    population = _trained(data, strategy)
    best_before = _fitness(population, data).max()
    state = json.loads(json.dumps(strategy.get_state()))
    restored = ESGD(reproductive_factor=2, mixing_number=2, elites=2, cv_batch_size=10_000)
    restored.set_state(state)
    restored.set_model(population)
    restored.on_epoch_begin(1)
    assert restored.generation == 1
    _bad_generation(population, restored)
    assert restored.last_plan["backed_off"]
    assert _fitness(population, data).max() >= best_before - 1e-6


def test_selected_offspring_hold_their_parents_mean_and_fitness_is_current(data):
    strategy = ESGD(reproductive_factor=3, mixing_number=3, elites=1, mutation_length=0.0,
                    cv_batch_size=10_000, seed=1)
    population = _trained(data, strategy)
    before = [[np.asarray(v.value) for v in population.member(i).trainable_variables]
              for i in range(population.size)]
    strategy.on_epoch_end(1, {})
    plan, slots = strategy.last_plan["offspring"], strategy.last_plan["slots"]
    newcomers = [(slot, c) for slot, c in enumerate(slots) if c >= population.size]
    assert newcomers, "this seed selects at least one child"
    for slot, candidate in newcomers:
        parents = plan.parents[candidate - population.size]
        for position, variable in enumerate(population.member(slot).trainable_variables):
            np.testing.assert_allclose(
                np.asarray(variable.value),
                np.mean([before[int(p)][position] for p in parents], axis=0), rtol=1e-5,
                atol=1e-6)
    np.testing.assert_allclose(population.fitness, _fitness(population, data), rtol=1e-5)


# ----------------------------------------------------------------------------- the method
def test_esgd_method_runs_at_smoke_scale_and_returns_the_common_record(tmp_path):
    from experiments.methods.esgd import run
    from tests.helpers.method_smoke import check_common_record, smoke_context

    context = smoke_context("esgd", tmp_path)
    result = run(context)
    check_common_record(result, context)
    assert result.gradient_steps == context.budget.member_steps
    assert result.details["generations"] == context.budget.iterations
    assert result.details["optimizer"] == "adam"
    assert result.details["hyperparameters"]["learning_rate"] == pytest.approx(1e-3)


def test_esgd_method_rejects_an_unknown_optimizer_before_training(tmp_path):
    from experiments.methods.esgd import run
    from tests.helpers.method_smoke import smoke_context

    with pytest.raises(ValueError, match=r"esgd_optimizer must be one of \('adam', 'sgd'\), "
                                         r"got 'rmsprop'"):
        run(smoke_context("esgd", tmp_path, esgd_optimizer="rmsprop"))
