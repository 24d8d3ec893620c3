"""BernoulliPolicy: REINFORCE or ES over on/off switches (seed 000) as a callback.

A tiny Dense(8) classifier (`tests.helpers.models`); the switches are `Bernoulli`
hyperparameters the population's train step reads (the L2 penalty, the learning rate).
"""

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.strategies import binary_estimators as be
from tests.helpers.callbacks import assert_resumes_bit_for_bit
from tests.helpers.models import fast_model, toy_problem

SWITCHES = {"l2": pd.Bernoulli(0.0, 0.5), "learning_rate": pd.Bernoulli(1e-3, 3e-2)}


@pytest.fixture(scope="module")
def problem():
    return toy_problem()


def population(size=4, seed=0, hyperparameters=None):
    return pd.Population(fast_model(), size=size, seed=seed,
                         hyperparameters=hyperparameters or SWITCHES)


def fit(pop, strategy, problem, epochs=3, steps=3, extra=()):
    x, y, x_val, y_val = problem
    return pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=steps,
                   validation_data=(x_val, y_val), verbose=0, callbacks=[strategy, *extra])


def test_each_switch_changes_what_a_member_trains_to(problem):
    """Four members with the same initial weights, one per setting of two switches, trained on
    the same batches: L2 on shrinks the kernels, the high learning rate moves them further."""
    x, y, x_val, y_val = problem
    template = fast_model()
    members = []
    for _ in range(4):
        member = fast_model()
        member.set_weights(template.get_weights())
        members.append(member)
    pop = pd.Population(members, seed=0, hyperparameters=SWITCHES)
    settings = [(0, 0), (1, 0), (0, 1), (1, 1)]  # (l2 on, high learning rate on)
    for index, (l2_on, fast_on) in enumerate(settings):
        pop.set_hyperparameters(index, {"l2": SWITCHES["l2"].value(l2_on),
                                        "learning_rate": SWITCHES["learning_rate"].value(fast_on)})
    start = [np.concatenate([w.ravel() for w in template.get_weights()])]
    pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=20, verbose=0)
    kernels = [sum(float(np.sum(m.get_layer(n).kernel.numpy() ** 2)) for n in ("hidden", "logits"))
               for m in pop.members]
    moved = [np.linalg.norm(np.concatenate([w.ravel() for w in m.get_weights()]) - start[0])
             for m in pop.members]
    assert kernels[1] < kernels[0] and kernels[3] < kernels[2]      # L2 on shrinks
    assert moved[2] > 2 * moved[0] and moved[3] > 2 * moved[1]      # high rate moves further


@pytest.mark.parametrize("estimator", ["reinforce", "es"])
def test_members_train_with_the_switches_drawn_from_the_policy(estimator, problem):
    pop = population()
    strategy = pd.BernoulliPolicy(estimator, learning_rate=1.0, cv_batch_size=32, seed=1)
    history = fit(pop, strategy, problem)
    for index, member in enumerate(pop.hyperparameter_values()):
        for position, name in enumerate(strategy.names):
            assert member[name] == pytest.approx(
                SWITCHES[name].value(strategy.state.actions[index, position]))
    assert len(history.history["theta_l2"]) == 3
    assert history.history["theta_l2"][-1] == strategy.state.theta[0]


def test_theta_takes_the_seeds_step_along_the_estimate(problem):
    """θ ← θ + α ĝ with ĝ recomputed from the rewards the population measured."""
    pop = population()
    strategy = pd.BernoulliPolicy("reinforce", learning_rate=2.0, cv_batch_size=32, seed=2)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(strategy.state)

        def on_epoch_end(self, epoch, logs=None):
            seen.append(-np.asarray(pop.last_losses))

    fit(pop, strategy, problem, epochs=2, extra=[Watch()])
    before, rewards = seen[0], seen[1]
    expected = before.theta + 2.0 * be.estimate_gradient("reinforce", before, rewards, 1.0)
    np.testing.assert_allclose(seen[2].theta, expected)


def test_reinforce_learns_to_switch_off_a_crippling_penalty(problem):
    """L2 of 10 stops the tiny model learning; after 8 unrolls of 10 steps the policy's
    probability of it is below 0.3 (from 0.5; it reached 0.09 and 0.19 with seeds 0 and 1)."""
    pop = population(size=8, hyperparameters={"l2": pd.Bernoulli(0.0, 10.0)})
    strategy = pd.BernoulliPolicy("reinforce", learning_rate=10.0, cv_batch_size=64, seed=0)
    fit(pop, strategy, problem, epochs=8, steps=10)
    assert strategy.probabilities["l2"] < 0.3


def test_same_seed_same_policy(problem):
    thetas = []
    for _ in range(2):
        strategy = pd.BernoulliPolicy("es", sigma=0.5, cv_batch_size=32, seed=3)
        fit(population(), strategy, problem)
        thetas.append(strategy.state.theta.copy())
    np.testing.assert_array_equal(thetas[0], thetas[1])


@pytest.mark.parametrize("arguments, message", [
    (dict(sigma=0.0), "sigma must be a finite number > 0.0, got 0.0"),
    (dict(sigma=-1.0), "sigma must be a finite number > 0.0, got -1.0"),
    (dict(learning_rate=0.0), "learning_rate must be a finite number > 0, got 0.0"),
    (dict(estimator="ppo"), r"estimator must be one of \('reinforce', 'es'\), got 'ppo'"),
    (dict(outer_optimizer="rmsprop"), "outer optimizer must be one of"),
])
def test_bad_arguments_fail_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.BernoulliPolicy(**arguments)


def test_population_without_a_switch_is_refused(problem):
    pop = population(hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1e-2)})
    with pytest.raises(ValueError, match="needs at least one on/off switch"):
        fit(pop, pd.BernoulliPolicy(cv_batch_size=32), problem, epochs=1)


@pytest.mark.parametrize("estimator", ["reinforce", "es"])
def test_an_interrupted_run_resumes_from_its_backup_bit_for_bit(estimator, problem, tmp_path):
    """θ, the outer optimizer's state, each member's switches and ε, and the generator."""
    x, y, x_val, y_val = problem

    def run(directory, extra):
        pop = population()
        strategy = pd.BernoulliPolicy(estimator, outer_optimizer="adam", learning_rate=0.5,
                                      sigma=0.7, cv_batch_size=32, seed=4)
        pop.fit(x, y, batch_size=16, epochs=5, steps_per_epoch=3, validation_data=(x_val, y_val),
                verbose=0, callbacks=[pd.BackupAndRestore(directory), strategy, *extra])
        return pop, strategy

    assert_resumes_bit_for_bit(run, tmp_path)
