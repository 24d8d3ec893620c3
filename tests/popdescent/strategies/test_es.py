"""EvolutionStrategies: the gradient estimators of seed 002 as a callback over a Population.

A tiny Dense(8) classifier; the hyperparameters are the members' learning rates (log space).
"""

import json

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.strategies.es import continuous_hyperparameters
from tests.helpers.callbacks import assert_resumes_bit_for_bit
from tests.helpers.models import make_model, toy_problem

SIZE = 4


@pytest.fixture(scope="module")
def problem():
    return toy_problem()


def population(size=SIZE, seed=0, hyperparameters=None):
    hyperparameters = hyperparameters or {
        "learning_rate": pd.LogUniform(1e-3, 1e-2, bounds=(1e-5, 1.0))}
    return pd.Population(make_model(), size=size, seed=seed, hyperparameters=hyperparameters)


def fit(pop, strategy, problem, epochs=4):
    x, y, x_val, y_val = problem
    return pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=3,
                   validation_data=(x_val, y_val), verbose=0, callbacks=[strategy])


@pytest.mark.parametrize("estimator", ["es_single", "pes", "truncated_es"])
def test_members_train_with_theta_plus_antithetic_perturbations(estimator, problem):
    pop = population()
    strategy = pd.EvolutionStrategies(estimator, sigma=0.2, learning_rate=0.1, cv_batch_size=32)
    fit(pop, strategy, problem)
    logs = np.log10([m["learning_rate"] for m in pop.hyperparameter_values()])
    theta = strategy.state.theta[0]
    np.testing.assert_allclose(logs - theta, strategy.state.perturbations[:, 0], atol=1e-5)
    np.testing.assert_allclose(logs[0::2] - theta, theta - logs[1::2], atol=1e-5)
    assert strategy.state.outer_step == 4


def test_theta_moves_by_the_outer_optimizer_and_is_logged(problem):
    pop = population()
    strategy = pd.EvolutionStrategies("es_single", sigma=0.2, learning_rate=0.1,
                                      outer_optimizer="sgd", cv_batch_size=32)
    start = np.mean(np.log10([m["learning_rate"] for m in pop.hyperparameter_values()]))
    history = fit(pop, strategy, problem)
    thetas = history.history["theta_learning_rate"]
    assert len(thetas) == 4 and thetas[-1] != pytest.approx(start)
    assert strategy.theta_values(pop)["learning_rate"] == pytest.approx(10 ** thetas[-1])


def test_es_single_keeps_perturbations_until_the_horizon_restarts_members(problem):
    pop = population()
    strategy = pd.EvolutionStrategies("es_single", sigma=0.2, horizon=2, cv_batch_size=32)
    x, y, x_val, y_val = problem
    seen, weights = [], []

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.initial = [v.numpy().copy() for v in pop.member(0).trainable_variables]

        def on_epoch_end(self, epoch, logs=None):
            seen.append(strategy.state.perturbations.copy())
            weights.append([v.numpy().copy() for v in pop.member(0).trainable_variables])

    watch = Watch()
    pop.fit(x, y, batch_size=16, epochs=4, steps_per_epoch=3, validation_data=(x_val, y_val),
            verbose=0, callbacks=[strategy, watch])
    # Epochs 0-1 are the first inner problem (ε drawn at the start, kept after epoch 0);
    # the end of epoch 1 restarts it: new ε for epochs 2-3, members back to their first weights.
    assert not np.allclose(seen[1], seen[0])
    np.testing.assert_array_equal(seen[1], seen[2])
    assert not np.allclose(seen[3], seen[2])
    for restarted, initial in zip(weights[1], watch.initial):
        np.testing.assert_array_equal(restarted, initial)
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], watch.initial))


def test_same_seed_same_theta(problem):
    thetas = []
    for _ in range(2):
        strategy = pd.EvolutionStrategies("pes", sigma=0.2, cv_batch_size=32, seed=3)
        fit(population(), strategy, problem, epochs=3)
        thetas.append(strategy.state.theta.copy())
    np.testing.assert_array_equal(thetas[0], thetas[1])


def test_state_round_trips_through_json(problem):
    strategy = pd.EvolutionStrategies("pes", sigma=0.2, cv_batch_size=32, seed=1)
    fit(population(), strategy, problem, epochs=2)
    restored = pd.EvolutionStrategies.from_config(strategy.get_config())
    restored.set_state(json.loads(json.dumps(strategy.get_state())))
    for field in ("theta", "perturbations", "accumulated"):
        np.testing.assert_array_equal(getattr(restored.state, field),
                                      getattr(strategy.state, field))
    assert restored.state.unroll == strategy.state.unroll
    for key, value in strategy.optimizer_state.items():
        np.testing.assert_array_equal(restored.optimizer_state[key], value)
    assert restored.rng.bit_generator.state == strategy.rng.bit_generator.state


def test_only_continuous_read_hyperparameters_are_estimated():
    priors = {"learning_rate": pd.LogUniform(1e-3, 1e-2), "l2": pd.Uniform(0.0, 0.1),
              "units": pd.Choice([8, 16]), "momentum": pd.Fixed(0.9),
              "unused": pd.Inert(pd.Uniform(0.0, 1.0))}
    assert continuous_hyperparameters(priors) == ["l2", "learning_rate"]


@pytest.mark.parametrize("arguments, message", [
    (dict(sigma=0.0), "sigma must be a finite number > 0, got 0.0"),
    (dict(estimator="cma"), r"estimator must be one of \(.*\), got .cma."),
    (dict(learning_rate=-1.0), "learning_rate must be a finite number > 0, got -1.0"),
    (dict(outer_optimizer="rmsprop"), "outer optimizer must be one of"),
    (dict(horizon=0), "horizon must be an integer >= 1, got 0"),
])
def test_bad_arguments_fail_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.EvolutionStrategies(**arguments)


def test_odd_size_with_antithetic_pairs_is_refused(problem):
    with pytest.raises(ValueError, match="antithetic=True needs an even population size"):
        fit(population(size=3), pd.EvolutionStrategies(cv_batch_size=32), problem, epochs=1)


def test_population_without_a_continuous_hyperparameter_is_refused(problem):
    pop = population(hyperparameters={"learning_rate": pd.Fixed(1e-3)})
    with pytest.raises(ValueError, match="needs at least one continuous hyperparameter"):
        fit(pop, pd.EvolutionStrategies(cv_batch_size=32), problem, epochs=1)


@pytest.mark.parametrize("estimator", ["es_single", "pes"])
def test_a_learning_rate_far_too_small_climbs(estimator, problem):
    """From learning rates ~1e-5 (θ ≈ -5 in log10) a larger rate lowers the validation loss
    after every unroll, so the estimate says "up": θ rises by more than 0.5 in 8 epochs."""
    pop = population(size=6, hyperparameters={
        "learning_rate": pd.LogUniform(8e-6, 1.2e-5, bounds=(1e-6, 1.0))})
    strategy = pd.EvolutionStrategies(estimator, sigma=0.3, learning_rate=0.1,
                                      cv_batch_size=64, seed=0)
    history = fit(pop, strategy, problem, epochs=8)
    thetas = history.history["theta_learning_rate"]
    assert thetas[-1] - np.log10(1e-5) > 0.5


@pytest.mark.parametrize("decay", [False, True], ids=["learning_rate", "with_decay"])
def test_an_interrupted_run_resumes_from_its_backup_bit_for_bit(decay, problem, tmp_path):
    """θ, the outer optimizer's state, each particle's ε and PES's sums survive a crash (and
    each member's tuned decay, with the (initial rate, decay) pair)."""
    x, y, x_val, y_val = problem
    hyperparameters = {"learning_rate": pd.LogUniform(1e-3, 1e-2, bounds=(1e-5, 1.0)),
                       "learning_rate_decay": pd.Uniform(0.8, 0.99)} if decay else None

    def run(directory, extra):
        pop = population(hyperparameters=hyperparameters)
        strategy = pd.EvolutionStrategies("pes", sigma=0.2, horizon=3, cv_batch_size=32, seed=2)
        pop.fit(x, y, batch_size=16, epochs=5, steps_per_epoch=3, validation_data=(x_val, y_val),
                verbose=0, callbacks=[pd.BackupAndRestore(directory), strategy, *extra])
        return pop, strategy

    assert_resumes_bit_for_bit(run, tmp_path)


def _member_weights(pop):
    return [np.concatenate([np.ravel(w) for w in member.get_weights()]) for member in pop.members]


@pytest.mark.parametrize("shared_start", [True, False])
def test_members_start_and_restart_from_member_zeros_weights_unless_told_not_to(
        shared_start, problem):
    """The seed's particles share one initial state s₀: the members' losses then differ by
    their perturbations only, not by their initialisations."""
    pop = population()
    initial = _member_weights(pop)
    assert not np.array_equal(initial[0], initial[1])  # the population draws its own
    strategy = pd.EvolutionStrategies("es_single", sigma=0.2, horizon=2, cv_batch_size=32,
                                      shared_start=shared_start)
    starts = []

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            starts.append(_member_weights(pop))

    x, y, x_val, y_val = problem
    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=3, validation_data=(x_val, y_val),
            verbose=0, callbacks=[strategy, Watch()])
    restarted = _member_weights(pop)  # the horizon ended with the last epoch
    for index in range(1, SIZE):
        assert np.array_equal(starts[0][index], starts[0][0]) == shared_start
        assert np.array_equal(restarted[index], restarted[0]) == shared_start
    np.testing.assert_array_equal(restarted[0], initial[0])


def decaying_population(decay_prior, size=2):
    return pd.Population(make_model(keras.optimizers.SGD(0.1)), size=size, seed=0,
                         hyperparameters={"learning_rate": pd.LogUniform(0.05, 0.2),
                                          "learning_rate_decay": decay_prior})


def test_a_tuned_learning_rate_decay_makes_each_members_rate_lr0_times_decay_to_the_t(problem):
    # Seed 002's schedule lr_t = lr0 * decay^t, t counted from the member optimizer's start:
    # the optimizer's own rate at its t-th update, read by a callback after each batch.
    x, y, _, _ = problem
    pop = decaying_population(pd.Uniform(0.5, 0.9))
    rates = []

    class Rates(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            rates.append([float(m.optimizer.learning_rate.numpy()) for m in pop.members])

    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=3, verbose=0, callbacks=[Rates()])
    values = pop.hyperparameter_values()
    for t, step_rates in enumerate(rates):
        for member, rate in zip(values, step_rates):
            # The rate set before update t (t = 0, 1, ...) is lr0 * decay^t.
            assert rate == pytest.approx(
                member["learning_rate"] * member["learning_rate_decay"] ** t, rel=1e-5)


def test_a_tuned_decay_survives_save_and_load(problem, tmp_path):
    x, y, _, _ = problem
    pop = decaying_population(pd.Uniform(0.5, 0.9))
    pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0)
    pop.save(tmp_path / "pop.keras")
    loaded = pd.load_population(tmp_path / "pop.keras")
    assert loaded.hyperparameter_values() == pop.hyperparameter_values()
    for saved, restored in zip(pop.members, loaded.members):
        assert float(restored.optimizer.learning_rate.numpy()) == pytest.approx(
            float(saved.optimizer.learning_rate.numpy()))


def test_a_restarted_member_starts_its_decay_again(problem):
    x, y, x_val, y_val = problem
    pop = decaying_population(pd.Uniform(0.5, 0.9))
    strategy = pd.EvolutionStrategies("es_single", sigma=0.05, learning_rate=0.01,
                                      horizon=1, cv_batch_size=32)
    first_updates = []

    class FirstUpdate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                first_updates.append((float(pop.member(0).optimizer.learning_rate.numpy()),
                                      pop.hyperparameter_values()[0]["learning_rate"]))

    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=3, validation_data=(x_val, y_val),
            verbose=0, callbacks=[strategy, FirstUpdate()])
    # horizon=1: every epoch is a new inner problem, whose first update runs at the member's
    # lr0 (decay^0), not at lr0 * decay^(3 * epoch).
    assert len(first_updates) == 3
    for rate, lr0 in first_updates:
        assert rate == pytest.approx(lr0, rel=1e-5)


def test_es_tunes_the_initial_rate_and_the_decay_as_two_outer_parameters(problem):
    pop = decaying_population(pd.Uniform(0.5, 0.99), size=4)
    strategy = pd.EvolutionStrategies("es_single", sigma=0.05, learning_rate=0.05,
                                      cv_batch_size=32)
    history = fit(pop, strategy, problem)
    assert set(strategy.theta_values(pop)) == {"learning_rate", "learning_rate_decay"}
    assert len(history.history["theta_learning_rate_decay"]) == 4
    decays = [m["learning_rate_decay"] for m in pop.hyperparameter_values()]
    assert len(set(np.round(decays, 6))) > 1  # every particle its own perturbed decay


@pytest.mark.parametrize("prior, reach", [(pd.Uniform(0.5, 1.5), "1.5"),
                                          (pd.Uniform(0.0, 0.9), "0.0")])
def test_a_decay_prior_outside_0_1_is_refused_naming_it(prior, reach):
    with pytest.raises(ValueError, match=r"learning_rate_decay.*\(0\.0, 1\.0\].*" + reach):
        decaying_population(prior)


def test_the_exported_schedule_refuses_a_tuned_decay_it_cannot_replay(problem):
    pop = decaying_population(pd.Uniform(0.5, 0.9), size=4)
    fit(pop, pd.EvolutionStrategies("es_single", sigma=0.05, cv_batch_size=32), problem,
        epochs=1)
    with pytest.raises(ValueError, match="cannot replay a tuned learning_rate_decay"):
        pop.exported_schedule()


def test_a_decay_needs_variable_learning_rates_and_says_so():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    with pytest.raises(ValueError, match=r"learning_rate_decay.*LearningRateSchedule"):
        pd.Population(make_model(keras.optimizers.SGD(schedule)), size=2, seed=0,
                      hyperparameters={"learning_rate_decay": pd.Uniform(0.5, 0.9)})
