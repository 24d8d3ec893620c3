"""The contract every population strategy keeps, checked on each registered strategy.

A new strategy is tested by joining `STRATEGIES`: the population keeps its size (or shrinks
only as planned), hyperparameters stay within their priors' bounds, a diverged member (fitness
0) is never a parent, the same seed gives the same lineage, `get_state`/`set_state` round-trips
through JSON bit for bit, and `from_config(get_config())` rebuilds the same strategy.
"""

import json

import numpy as np
import pytest

import popdescent as pd
from baselines.esgd import ESGD
from tests.helpers.models import fast_model, toy_problem

STRATEGIES = {
    "popdescent": lambda: pd.PopDescent(elites=2, cv_batch_size=32),
    "popdescent-reference": lambda: pd.PopDescent.reference_preset(elites=2, cv_batch_size=32),
    "popdescent-relative-noise": lambda: pd.PopDescent(elites=2, cv_batch_size=32,
                                                       weight_noise_mode="relative"),
    "popdescent-budget": lambda: pd.PopDescent(elites=2, cv_batch_size=32, budget_aware=True),
    "pbt": lambda: pd.PBT(quantile_fraction=0.5, cv_batch_size=32),
    "esgd": lambda: ESGD(elites=2, cv_batch_size=32, reproductive_factor=2),
    "es-single": lambda: pd.EvolutionStrategies("es_single", sigma=0.2, cv_batch_size=32),
    "pes": lambda: pd.EvolutionStrategies("pes", sigma=0.2, horizon=3, cv_batch_size=32),
    "bernoulli-reinforce": lambda: pd.BernoulliPolicy("reinforce", cv_batch_size=32),
    "bernoulli-es": lambda: pd.BernoulliPolicy("es", sigma=0.5, cv_batch_size=32),
}
# The search space of the strategies that need one of their own (default: the learning rate).
SWITCHES = {"learning_rate": pd.Bernoulli(2e-3, 5e-2), "l2": pd.Bernoulli(0.0, 1e-3)}
HYPERPARAMETERS = {
    "popdescent-reference": lambda: pd.PopDescent.reference_hyperparameters(regularization=False),
    "bernoulli-reinforce": lambda: SWITCHES,
    "bernoulli-es": lambda: SWITCHES,
}
SIZE = 4
MEMBER_STEPS = 96  # 8 iterations of 3 steps at full size


@pytest.fixture(scope="module")
def problem():
    return toy_problem()


def train(name, problem, poison=None, seed=0):
    x, y, x_val, y_val = problem
    hyperparameters = HYPERPARAMETERS.get(
        name, lambda: {"learning_rate": pd.LogUniform(1e-3, 1e-1, bounds=(5e-4, 2e-1))})()
    population = pd.Population(fast_model(), size=SIZE, seed=seed, hyperparameters=hyperparameters)
    if poison is not None:  # a diverged member: NaN weights, fitness 0
        weights = population.member(poison).trainable_variables[0]
        weights.assign(np.full(weights.shape, np.nan, dtype="float32"))
    strategy = STRATEGIES[name]()
    population.fit(x, y, batch_size=16, member_steps=MEMBER_STEPS, steps_per_epoch=3,
                   validation_data=(x_val, y_val), verbose=0, callbacks=[strategy])
    return population, strategy


@pytest.fixture(scope="module", params=sorted(STRATEGIES))
def trained(request, problem):
    return request.param, *train(request.param, problem)


def test_the_population_keeps_its_size_or_shrinks_only_as_planned(trained):
    name, population, strategy = trained
    sizes = [len(entry["members"]) for entry in population.lineage]
    if getattr(strategy, "budget", None) is not None:
        assert sizes == sorted(sizes, reverse=True) and population.size < SIZE
    else:
        assert sizes == [SIZE] * len(sizes) and population.size == SIZE
    assert population.gradient_steps == MEMBER_STEPS


def test_hyperparameters_stay_within_their_bounds(trained):
    _, population, _ = trained
    for entry in population.lineage:
        for member in entry["members"]:
            for hyperparameter, value in member["hyperparameters"].items():
                low, high = population.priors[hyperparameter].bounds
                assert low <= value <= high


def test_the_same_seed_gives_the_same_lineage(trained, problem):
    name, population, _ = trained
    again, _ = train(name, problem)
    assert json.dumps(again.lineage) == json.dumps(population.lineage)


def test_a_diverged_member_is_never_a_parent(problem):
    for name in sorted(STRATEGIES):
        population, _ = train(name, problem, poison=1)
        first = population.lineage[0]
        # A restart (budget-aware range test, rescue) is recorded as replaced by itself: it
        # takes the member's own initial weights, nobody's trained ones.
        parents = [m["parent"] for m in first["members"]
                   if m["replaced"] and not m.get("restarted")]
        assert 1 not in parents, name
        # Replaced, or healed before the first selection (ES's members all start from the
        # first finite member's weights): either way it does not survive diverged.
        assert (first["members"][1]["replaced"] or "kept" in first
                or first["members"][1]["fitness"] > 0), name
        assert all(np.isfinite(w).all() for member in population.members
                   for w in member.get_weights()), name


def test_state_round_trips_through_json_bit_for_bit(trained):
    name, _, strategy = trained
    state = json.loads(json.dumps(strategy.get_state()))
    fresh = STRATEGIES[name]()
    fresh.set_state(state)
    assert json.dumps(fresh.get_state()) == json.dumps(strategy.get_state())
    assert fresh.rng.random() == strategy.rng.random()


def test_config_round_trips(trained):
    _, _, strategy = trained
    rebuilt = type(strategy).from_config(strategy.get_config())
    assert rebuilt.get_config() == strategy.get_config()
