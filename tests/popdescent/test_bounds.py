"""Hyperparameters never leave their prior's bounds: not by mutation at any magnitude, not by
set_hyperparameters, not through PopDescent, not after float32 rounding of the variables."""

import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd

PRIORS = [
    pd.LogUniform(1e-4, 1e-2),
    pd.LogUniform(1e-4, 1e-2, bounds=(1e-7, 1.0)),
    pd.Uniform(0.0, 1e-3),
    pd.Uniform(-1.0, 1.0, bounds=(-3.0, 2.0)),
    pd.Choice([1e-4, 1e-3, 1e-2]),
    pd.Fixed(3e-4),
]


def within(prior, value, float32=False):
    """Whether `value` is one the prior allows (as a float32 variable stores it, if asked)."""
    cast = (lambda v: float(np.float32(v))) if float32 else float
    if isinstance(prior, pd.Fixed):
        return value == cast(prior.value)
    if isinstance(prior, pd.Choice):
        return value in {cast(v) for v in prior.values}
    low, high = prior.bounds
    return low <= value <= high


def edges(prior):
    if isinstance(prior, pd.Fixed):
        return [prior.value]
    if isinstance(prior, pd.Choice):
        return list(prior.values)
    low, high = prior.bounds
    return [low, high, prior.low, prior.high]


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("scale", [1.0, 10.0, 1e3, 1e300])
def test_mutation_at_maximal_magnitude_stays_within_bounds(prior, scale):
    rng = np.random.default_rng(0)
    values = []
    for start in edges(prior):
        value = start
        for _ in range(500):  # a long walk: each mutation starts where the last one ended
            value = prior.mutate(value, 1.0, scale, rng)
            values.append(value)
        values.extend(prior.mutate(start, 1.0, scale, rng) for _ in range(500))
    assert all(isinstance(v, float) and within(prior, v) for v in values)
    if isinstance(prior, (pd.LogUniform, pd.Uniform)) and scale >= 10:
        assert min(values) == prior.bounds[0] and max(values) == prior.bounds[1]  # clipped


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: type(p).__name__)
def test_samples_lie_in_the_initial_range(prior):
    rng = np.random.default_rng(1)
    samples = [prior.sample(rng) for _ in range(2000)]
    assert all(within(prior, v) for v in samples)
    if isinstance(prior, (pd.LogUniform, pd.Uniform)):
        assert prior.low <= min(samples) and max(samples) <= prior.high


def hyperparameter_sets():
    return [
        {"learning_rate": pd.LogUniform(1e-4, 1e-2, bounds=(1e-6, 1e-1)),
         "l2": pd.Uniform(0.0, 1e-3, bounds=(0.0, 1e-2))},
        {"learning_rate": pd.Choice([1e-4, 1e-3, 3e-3]), "l2": pd.Fixed(1e-4)},
        {"learning_rate": pd.Fixed(1e-3), "l2": pd.Choice([0.0, 1e-5, 1e-3])},
    ]


@pytest.mark.parametrize("index", range(3), ids=["log-uniform", "choice-fixed", "fixed-choice"])
def test_set_hyperparameters_clips_any_number_into_the_float32_variable(index):
    priors = hyperparameter_sets()[index]
    pop = pd.Population(make_model(), size=2, seed=0, hyperparameters=priors)
    for value in [-np.inf, -1e30, -1.0, 0.0, 1e-12, 1e-6, 1e-4, 5e-3, 1.0, 1e30, np.inf]:
        pop.set_hyperparameters(1, {name: value for name in priors})
        live = pop.hyperparameters_of(1)
        assert all(within(priors[name], live[name], float32=True) for name in priors), live


@pytest.mark.parametrize("index", range(2), ids=["log-uniform", "choice-fixed"])
def test_popdescent_mutations_at_huge_noise_stay_within_bounds(index, data):
    priors = hyperparameter_sets()[index]
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=5, seed=2, hyperparameters=priors)
    pop.fit(x, y, batch_size=16, epochs=6, steps_per_epoch=1, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.PopDescent(elites=1, hyperparameter_noise=1e3, weight_noise=0.0,
                                     cv_batch_size=16)])
    records = [m for record in pop.lineage for m in record["members"]]
    assert sum(m["replaced"] for m in records) == 6 * 4
    for member in records + [{"hyperparameters": h} for h in pop.hyperparameter_values()]:
        for name, value in member["hyperparameters"].items():
            assert within(priors[name], value, float32=True), (name, value)
    if index == 0:  # the noise pushes values onto both bounds, where float32 rounding bites
        rates = [m["hyperparameters"]["learning_rate"] for m in records]
        assert min(rates) == pytest.approx(1e-6, rel=1e-6)
        assert max(rates) == pytest.approx(1e-1, rel=1e-6)


def test_nan_hyperparameter_is_rejected():
    pop = pd.Population(make_model(), size=2, seed=0)
    with pytest.raises(ValueError,
                       match="hyperparameter 'learning_rate' of member 0 must be a number"):
        pop.set_hyperparameters(0, {"learning_rate": float("nan")})
