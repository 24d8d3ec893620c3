"""REINFORCE and ES over on/off switches (`popdescent.strategies.binary_estimators`) on arrays.

A known reward table over K = 3 switches (R[a₁, a₂, a₃], nothing else random) gives the exact
targets: ∇J(θ) for REINFORCE and the Gaussian-smoothed ∇J_σ(θ) for ES. Each estimator's mean
over seeded draws (20,000 for REINFORCE with 4 members; 80,000 for ES, whose estimate is noisier,
with 2) must lie within 4 standard errors (measured from the draws) of its target. The plain
mean baseline, whose expectation is (N - 1)/N of the target, lies 8 (REINFORCE) and 7 (ES)
standard errors away in some coordinate, so the tests catch it.
"""

import numpy as np
import pytest

from popdescent.strategies import binary_estimators as be

TABLE = np.array([[[0.1, -0.3], [0.4, 0.0]], [[-0.2, 0.5], [0.3, -0.6]]])
THETA = np.array([0.5, -1.0, 0.2])


def rewards_of(actions):
    return TABLE[tuple(actions.T.astype(int))]


def mean_and_standard_error(kind, members, sigma, draws=20_000, seed=0):
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(draws):
        state = be.draw_actions(kind, THETA, members, sigma, rng)
        estimates.append(be.estimate_gradient(kind, state, rewards_of(state.actions), sigma))
    estimates = np.array(estimates)
    return estimates.mean(axis=0), estimates.std(axis=0) / np.sqrt(draws)


def test_the_exact_policy_gradient_is_the_derivative_of_the_expected_reward():
    step = 1e-5
    numeric = [(be.expected_reward(THETA + step * e, TABLE)
                - be.expected_reward(THETA - step * e, TABLE)) / (2 * step) for e in np.eye(3)]
    np.testing.assert_allclose(be.exact_policy_gradient(THETA, TABLE), numeric, atol=1e-9)


def test_smoothing_with_a_tiny_sigma_gives_the_exact_gradient():
    np.testing.assert_allclose(be.smoothed_policy_gradient(THETA, TABLE, sigma=1e-4),
                               be.exact_policy_gradient(THETA, TABLE), atol=1e-7)


def test_reinforce_with_the_rescaled_mean_baseline_is_unbiased():
    mean, error = mean_and_standard_error("reinforce", members=4, sigma=1.0)
    assert np.all(np.abs(mean - be.exact_policy_gradient(THETA, TABLE)) < 4 * error)


def test_es_is_unbiased_for_the_smoothed_objective():
    sigma = 1.5
    mean, error = mean_and_standard_error("es", members=2, sigma=sigma, draws=80_000)
    target = be.smoothed_policy_gradient(THETA, TABLE, sigma)
    assert np.all(np.abs(mean - target) < 4 * error)
    # ... which is not the unsmoothed gradient: at σ = 1.5 the third coordinate flips sign.
    assert np.sign(target[2]) != np.sign(be.exact_policy_gradient(THETA, TABLE)[2])


def test_reinforce_draws_switches_with_the_policys_probabilities():
    state = be.draw_actions("reinforce", THETA, 40_000, 1.0, np.random.default_rng(1))
    np.testing.assert_allclose(state.actions.mean(axis=0), be.switch_probabilities(THETA),
                               atol=0.01)  # 4 standard errors
    assert not state.perturbations.any()


def test_es_perturbs_theta_with_standard_normal_noise():
    state = be.draw_actions("es", THETA, 40_000, 0.3, np.random.default_rng(2))
    assert state.perturbations.mean() == pytest.approx(0.0, abs=0.01)
    assert state.perturbations.std() == pytest.approx(1.0, abs=0.01)


def test_the_same_generator_state_gives_the_same_draws():
    first = be.draw_actions("es", THETA, 6, 0.5, np.random.default_rng(3))
    second = be.draw_actions("es", THETA, 6, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.perturbations, second.perturbations)


@pytest.mark.parametrize("call, message", [
    (lambda: be.draw_actions("ppo", THETA, 4, 1.0, np.random.default_rng(0)),
     r"estimator must be one of \('reinforce', 'es'\), got 'ppo'"),
    (lambda: be.centred_rewards([1.0]), "at least 2 members' rewards, got shape"),
    (lambda: be.centred_rewards([1.0, np.nan]), r"non-finite rewards for members \[1\]"),
    (lambda: be.exact_policy_gradient(THETA, np.zeros((2, 3))), r"shape \(2,\)\*K"),
])
def test_bad_input_is_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
