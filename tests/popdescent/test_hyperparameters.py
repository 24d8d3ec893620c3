"""Priors: sampling within the range, mutation within the bounds, log-space behaviour."""

import math

import numpy as np
import pytest

import popdescent as pd
from popdescent.hyperparameters import prior_from_config


def test_log_uniform_samples_cover_the_range_uniformly_in_log_space():
    prior = pd.LogUniform(1e-4, 1e-2)
    rng = np.random.default_rng(0)
    logs = np.log10([prior.sample(rng) for _ in range(4000)])
    assert logs.min() >= -4 and logs.max() <= -2
    assert np.mean(logs) == pytest.approx(-3, abs=0.03)
    assert np.mean(logs < -3) == pytest.approx(0.5, abs=0.03)


def test_log_uniform_mutation_is_a_lognormal_factor_with_std_scale_times_magnitude():
    prior = pd.LogUniform(1e-4, 1e-2, bounds=(1e-12, 1e4))
    rng = np.random.default_rng(1)
    factors = np.log10([prior.mutate(1e-3, 0.5, 1.0, rng) / 1e-3 for _ in range(4000)])
    assert np.std(factors) == pytest.approx(0.5, rel=0.05)
    assert np.mean(factors) == pytest.approx(0.0, abs=0.03)


def test_magnitude_zero_changes_nothing():
    rng = np.random.default_rng(2)
    assert pd.LogUniform(1e-4, 1e-2).mutate(1e-3, 0.0, 1.0, rng) == pytest.approx(1e-3)
    assert pd.Uniform(0.0, 1.0).mutate(0.3, 0.0, 1.0, rng) == pytest.approx(0.3)
    assert pd.Choice([1.0, 2.0, 3.0]).mutate(2.0, 0.0, 1.0, rng) == 2.0


@pytest.mark.parametrize("prior", [
    pd.LogUniform(1e-4, 1e-2),
    pd.LogUniform(1e-6, 1e-5, bounds=(1e-7, 1.0)),
    pd.Uniform(-1.0, 1.0),
    pd.Choice([0.1, 0.2]),
    pd.Bernoulli(0.0, 1e-3),
    pd.Fixed(0.5),
])
def test_mutation_at_maximal_magnitude_never_leaves_the_bounds(prior):
    rng = np.random.default_rng(3)
    low, high = getattr(prior, "bounds", (-math.inf, math.inf))
    value = prior.sample(rng)
    for _ in range(2000):
        value = prior.mutate(value, 1.0, 10.0, rng)
        assert low <= value <= high and prior.contains(value)


def test_initial_range_is_separate_from_mutation_bounds():
    prior = pd.LogUniform(1e-6, 1e-5, bounds=(1e-7, 1.0))
    rng = np.random.default_rng(4)
    assert all(1e-6 <= prior.sample(rng) <= 1e-5 for _ in range(200))
    walked = [prior.mutate(1e-5, 1.0, 3.0, rng) for _ in range(500)]
    assert max(walked) > 1e-3 and min(walked) < 1e-6


def test_priors_round_trip_through_their_config():
    for prior in (pd.LogUniform(1e-4, 1e-2, bounds=(1e-7, 1.0)), pd.Uniform(0, 1),
                  pd.Choice([1, 2]), pd.Bernoulli(1e-3, 1e-2, probability=0.2), pd.Fixed(3)):
        assert prior_from_config(prior.get_config()) == prior


@pytest.mark.parametrize("make, error, message", [
    (lambda: pd.LogUniform(1e-2, 1e-4), ValueError, "low < high"),
    (lambda: pd.LogUniform(-1.0, 1.0), ValueError, "positive low"),
    (lambda: pd.Uniform(0, math.nan), ValueError, "finite"),
    (lambda: pd.Uniform("a", 1), TypeError, "real number"),
    (lambda: pd.Choice([]), ValueError, "non-empty"),
    (lambda: pd.LogUniform(1e-3, 1e-2, bounds=(1e-4,)), ValueError, "pair"),
    (lambda: pd.Bernoulli(1e-3, 1e-3), ValueError, "off != on, got off=0.001, on=0.001"),
    (lambda: pd.Bernoulli(0.0, 1.0, probability=1.5), ValueError,
     r"probability must be in \[0, 1\], got 1.5"),
])
def test_bad_priors_are_rejected_with_the_argument_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bernoulli_draws_on_with_its_probability_and_only_its_two_values():
    prior = pd.Bernoulli(0.0, 1e-3, probability=0.3)
    rng = np.random.default_rng(5)
    draws = np.array([prior.sample(rng) for _ in range(4000)])
    assert set(draws) == {0.0, 1e-3}
    assert np.mean(draws == 1e-3) == pytest.approx(0.3, abs=0.025)  # 3.4 standard errors


def test_bernoulli_mutation_flips_with_probability_magnitude_times_scale():
    prior = pd.Bernoulli(1e-3, 1e-2)
    rng = np.random.default_rng(6)
    flipped = np.mean([prior.mutate(1e-3, 0.2, 1.0, rng) == 1e-2 for _ in range(4000)])
    assert flipped == pytest.approx(0.2, abs=0.022)  # 3.5 standard errors
    assert prior.mutate(1e-2, 0.0, 1.0, rng) == 1e-2
    assert prior.is_on(1e-2) and not prior.is_on(1e-3) and prior.bounds == (1e-3, 1e-2)
