"""Promises of the library that earlier tests only touched: the L2 penalty's exact coverage,
saving against the original, the lineage in History, selection on training data, and the
batch stream's documented formula."""

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.inputs.training_data import batch_indices
from tests.helpers.models import fast_model, toy_problem


@pytest.fixture
def problem():
    return toy_problem()


def test_l2_penalises_exactly_the_named_layers_kernels(problem):
    x, y, _, _ = problem
    pop = pd.Population(fast_model(keras.optimizers.SGD(1e-3)), size=2, seed=0,
                        l2_layers=["hidden"],
                        hyperparameters={"learning_rate": pd.Fixed(1e-3), "l2": pd.Fixed(0.5)})
    member = pop.member(0)
    hidden = member.get_layer("hidden").kernel.numpy()
    batch = batch_indices(len(x), 16, int(pop.data_seed), 0, 1)[0]
    data_loss = float(member.compute_loss(x=x[batch], y=y[batch],
                                          y_pred=member(x[batch], training=True)))
    history = pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=1, verbose=0)
    logged = history.history["loss_0"][0]
    assert logged == pytest.approx(data_loss + 0.5 * float(np.sum(hidden ** 2)), rel=1e-5)
    logits = member.get_layer("logits").kernel.numpy()
    assert abs(logged - data_loss - 0.5 * float(np.sum(logits ** 2))) > 1e-3


def test_a_loaded_population_trains_on_exactly_like_the_original(problem, tmp_path):
    x, y, x_val, y_val = problem
    pop = pd.Population(fast_model(), size=3, seed=4)
    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=3, verbose=0,
            validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=2, cv_batch_size=32)])
    pop.save(tmp_path / "population.keras")
    loaded = pd.load_population(tmp_path / "population.keras")
    for population in (pop, loaded):
        population.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=3, verbose=0)
    for a, b in zip(pop.state_variables(), loaded.state_variables(), strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_history_holds_the_lineage_values(problem):
    x, y, x_val, y_val = problem
    pop = pd.Population(fast_model(), size=4, seed=0)
    history = pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=2, verbose=0,
                      validation_data=(x_val, y_val),
                      callbacks=[pd.PopDescent(elites=2, cv_batch_size=32)])
    for epoch, entry in enumerate(pop.lineage):
        for index, member in enumerate(entry["members"]):
            assert history.history[f"fitness_{index}"][epoch] == member["fitness"]
            assert history.history[f"parent_{index}"][epoch] == member["parent"]
            assert history.history[f"replaced_{index}"][epoch] == int(member["replaced"])
            assert (history.history[f"learning_rate_{index}"][epoch]
                    == member["hyperparameters"]["learning_rate"])


def test_cross_validation_false_measures_fitness_on_training_data(problem):
    x, y, x_val, _ = problem
    garbage = (np.argmax(x_val[:, :3], axis=1) + 1).astype("int32") % 3  # every label wrong
    pop = pd.Population(fast_model(), size=3, seed=0)
    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=4, verbose=0,
            validation_data=(x_val, garbage),
            callbacks=[pd.PopDescent(elites=2, cross_validation=False, cv_batch_size=96)])
    recorded = np.array([m["fitness"] for m in pop.lineage[-1]["members"]])
    on_training = 2.0 / (2.0 + pop.member_losses(x, y))
    on_validation = 2.0 / (2.0 + pop.member_losses(x_val, garbage))
    kept = ~np.array([m["replaced"] for m in pop.lineage[-1]["members"]])
    np.testing.assert_allclose(recorded[kept], on_training[kept], rtol=1e-5)
    assert np.all(recorded[kept] > on_validation[kept])


def test_the_batch_stream_is_the_documented_permutation_per_pass():
    count, batch_size, seed = 10, 4, 7
    documented = np.concatenate([np.random.default_rng((seed, p)).permutation(count)
                                 for p in range(3)])
    steps = batch_indices(count, batch_size, seed, start_step=1, steps=5)
    np.testing.assert_array_equal(steps.ravel(), documented[4:24])
