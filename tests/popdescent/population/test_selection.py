"""Pure selection helpers on plain arrays."""

import numpy as np
import pytest

from popdescent.population.selection import (
    fitness_weighted_parents,
    inverse_loss_fitness,
    rank_by_fitness,
)


def test_fitness_is_two_over_two_plus_loss_and_zero_when_diverged():
    fitness = inverse_loss_fitness([0.0, 2.0, np.nan, np.inf])
    np.testing.assert_allclose(fitness, [1.0, 0.5, 0.0, 0.0])


def test_ranking_is_fittest_first_and_stable_on_ties():
    assert list(rank_by_fitness([0.2, 0.9, 0.2, np.nan])) == [1, 0, 2, 3]


def test_weighted_parents_follow_fitness_proportions():
    fitness = np.array([0.6, 0.3, 0.1, 0.0])
    draws = fitness_weighted_parents(fitness, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, fitness, atol=0.01)


def test_all_diverged_population_raises_a_clear_error():
    with pytest.raises(FloatingPointError, match="every member of the population has fitness 0"):
        fitness_weighted_parents([0.0, np.nan], 1, np.random.default_rng(0))
