"""Truncated ES, PES and ES-Single (`popdescent.strategies.gradient_estimators`) on plain arrays.

Statistical checks use seeded draws and a stated tolerance that is several standard errors wide
for the number of draws used, so that they are stable for any seed yet fail on a wrong formula.
The unrolled problem is the influence-balancing system (Tallec & Olivier 2017, as the PES and
ES-Single papers set it up): sₜ₊₁ = A sₜ + θ·c with A = ½(I + superdiagonal) on 23 units, c = +1
on the first 10 units and -1 on the other 13, loss ½(s¹ - 1)² after each unroll. Its loss is
quadratic in θ, so ES's Gaussian smoothing adds nothing and the estimators' targets are exact.
"""

import numpy as np
import pytest

from popdescent.strategies import gradient_estimators as ge

UNITS = 23
DYNAMICS = 0.5 * np.eye(UNITS) + 0.5 * np.eye(UNITS, k=1)
INFLUENCE = np.array([1.0] * 10 + [-1.0] * (UNITS - 10))


def unroll(states, thetas, steps):
    """Runs each row of `states` `steps` steps with its own scalar θ; returns (states, losses)."""
    for _ in range(steps):
        states = states @ DYNAMICS.T + np.asarray(thetas)[:, None] * INFLUENCE
    return states, 0.5 * (states[:, 0] - 1.0) ** 2


def loss_after(theta, steps, start=None):
    """The loss after `steps` steps run with one θ throughout, from `start` (ones by default)."""
    start = np.ones((1, UNITS)) if start is None else start
    return unroll(start, [theta], steps)[1][0]


def derivative(function, theta, step=1e-3):
    # A central difference is exact (up to rounding) on a quadratic.
    return (function(theta + step) - function(theta - step)) / (2 * step)


def estimates_on_unrolled_problem(kind, theta, unrolls, steps, particles, draws):
    """One estimate per seeded draw, formed at the last of `unrolls` unrolls of `steps` steps;
    every particle keeps its own state from the start of the inner problem (PES, ES-Single)."""
    estimator = ge.GradientEstimator(kind, particles=particles, sigma=0.1)
    estimates = []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        state = ge.start(estimator, [theta])
        states = np.ones((particles, UNITS))
        for _ in range(unrolls):
            state = ge.next_unroll(estimator, state, rng)
            states, losses = unroll(states, ge.particle_parameters(state)[:, 0], steps)
        estimates.append(ge.estimate_gradient(estimator, state, losses)[0])
    return np.array(estimates)


@pytest.mark.parametrize("kind", ["es_single", "pes"])
def test_es_single_and_pes_are_unbiased_for_the_whole_inner_problem(kind):
    """Mean of 400 draws of 100 particles within 5% of d L / dθ, where θ acts on all 12 steps
    (standard error about 1%)."""
    theta, unrolls, steps = 0.5, 4, 3
    true_gradient = derivative(lambda t: loss_after(t, unrolls * steps), theta)
    estimates = estimates_on_unrolled_problem(kind, theta, unrolls, steps, 100, 400)
    assert abs(estimates.mean() - true_gradient) <= 0.05 * abs(true_gradient)


def test_truncated_es_follows_the_last_unroll_only_and_moves_the_wrong_way():
    """Algorithm 1 of the seed: particles branch from one shared state for a single unroll.
    Near the steady state of θ = 0.5 the long-run gradient is +24 (θ should fall to -1/6), while
    the last unroll alone says about -4: truncated ES's mean matches the latter within 5%."""
    theta, steps = 0.5, 1
    shared = unroll(np.ones((1, UNITS)), [theta], 300)[0]
    long_run = derivative(lambda t: loss_after(t, 300 + steps), theta)
    last_unroll = derivative(lambda t: loss_after(t, steps, start=shared), theta)
    estimator = ge.GradientEstimator("truncated_es", particles=100, sigma=0.1)
    estimates = []
    for seed in range(400):
        rng = np.random.default_rng(seed)
        state = ge.next_unroll(estimator, ge.start(estimator, [theta]), rng)
        particles = np.repeat(shared, estimator.particles, axis=0)
        losses = unroll(particles, ge.particle_parameters(state)[:, 0], steps)[1]
        estimates.append(ge.estimate_gradient(estimator, state, losses)[0])
    mean = np.mean(estimates)
    assert long_run > 20 and last_unroll < -3
    assert abs(mean - last_unroll) <= 0.05 * abs(last_unroll)
    assert np.sign(mean) != np.sign(long_run)


def test_every_estimator_is_unbiased_on_a_quadratic_without_unrolls():
    """One unroll of L(θ) = ½ θᵀHθ + bᵀθ (P = 3): all three estimators coincide with ES, whose
    mean over 20,000 pairs is within 0.05·‖∇L‖ of ∇L (standard error about 0.01·‖∇L‖)."""
    curvature = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 3.0]])
    offset = np.array([1.0, -2.0, 0.5])
    theta = np.array([0.3, -0.1, 0.7])
    true_gradient = curvature @ theta + offset
    for kind in ge.ESTIMATORS:
        estimator = ge.GradientEstimator(kind, particles=20000, sigma=0.5)
        state = ge.next_unroll(estimator, ge.start(estimator, theta), np.random.default_rng(3))
        points = ge.particle_parameters(state)
        losses = 0.5 * np.einsum("np,pq,nq->n", points, curvature, points) + points @ offset
        estimate = ge.estimate_gradient(estimator, state, losses)
        assert np.linalg.norm(estimate - true_gradient) <= 0.05 * np.linalg.norm(true_gradient)


def test_es_single_total_variance_follows_proposition_3_2():
    """Proposition 3.2: tr Var(ĝ) = (P + 1)‖∇L‖².

    Assumptions (those under which the proposition's equality holds): L is quadratic in θ (so
    an antithetic pair's loss difference is exactly 2 εᵀ∇L), the estimate comes from one
    antithetic pair (N = 2; N/2 independent pairs divide the variance by N/2), and ε ~ N(0, σ²I).
    Then ĝ = ε εᵀ∇L / σ², whose covariance is ‖∇L‖² I + ∇L ∇Lᵀ. Checked with P = 3 on 40,000
    seeded draws, within 5% (the trace's standard error is about 1.5%).
    """
    curvature = np.diag([1.0, 2.0, 4.0])
    theta = np.array([0.5, -0.3, 0.2])
    true_gradient = curvature @ theta
    estimator = ge.GradientEstimator("es_single", particles=2, sigma=0.2)
    rng = np.random.default_rng(11)
    estimates = []
    for _ in range(40000):
        state = ge.next_unroll(estimator, ge.start(estimator, theta), rng)
        points = ge.particle_parameters(state)
        losses = 0.5 * np.einsum("np,pq,nq->n", points, curvature, points)
        estimates.append(ge.estimate_gradient(estimator, state, losses))
    total_variance = np.trace(np.cov(np.array(estimates), rowvar=False))
    expected = (theta.size + 1) * true_gradient @ true_gradient
    assert total_variance == pytest.approx(expected, rel=0.05)


def test_es_single_variance_stays_flat_over_unrolls_while_pes_variance_grows():
    """On the unrolled problem (P = 1, one antithetic pair) ES-Single's relative variance
    Var(ĝ)/(dLᵤ/dθ)² is the same after 1 and after 50 unrolls (Lᵤ is quadratic in the one θ a
    particle runs with throughout, so ĝ = z²·dLᵤ/dθ with z ~ N(0, 1)), and near Proposition
    3.2's P + 1 = 2 (within 20%; 1,500 draws give a standard error of about 8%). After 50 unrolls
    the loss depends mostly on the last ~10, yet PES's ξ sums all 50 perturbations: its relative
    variance is more than ten times ES-Single's (it is about 90 against 2)."""
    theta, steps = 0.5, 2
    ratios = []
    for unrolls in (1, 50):
        gradient = derivative(lambda t: loss_after(t, unrolls * steps), theta)
        single = estimates_on_unrolled_problem("es_single", theta, unrolls, steps, 2, 1500)
        ratios.append(single.var() / gradient ** 2)
    assert ratios[1] == pytest.approx(ratios[0], rel=0.01)
    assert ratios[0] == pytest.approx(2.0, rel=0.20)
    gradient = derivative(lambda t: loss_after(t, 50 * steps), theta)
    pes = estimates_on_unrolled_problem("pes", theta, 50, steps, 2, 300)
    assert pes.var() / gradient ** 2 > 10 * ratios[1]


def test_perturbations_are_antithetic_pairs_when_asked():
    draws = ge.draw_perturbations(np.random.default_rng(0), 6, 3, 0.1)
    np.testing.assert_array_equal(draws[1::2], -draws[0::2])
    assert not np.allclose(draws[0], draws[2])


def test_same_seed_gives_the_same_perturbations():
    first = ge.draw_perturbations(np.random.default_rng(5), 4, 2, 0.3, antithetic=False)
    second = ge.draw_perturbations(np.random.default_rng(5), 4, 2, 0.3, antithetic=False)
    np.testing.assert_array_equal(first, second)


def test_es_single_keeps_its_perturbations_for_the_whole_inner_problem():
    estimator = ge.GradientEstimator("es_single", particles=4, sigma=0.1)
    rng = np.random.default_rng(0)
    state = ge.next_unroll(estimator, ge.start(estimator, [0.0, 1.0]), rng)
    first = state.perturbations
    state = ge.next_unroll(estimator, ge.next_unroll(estimator, state, rng), rng)
    np.testing.assert_array_equal(state.perturbations, first)
    restarted = ge.next_unroll(estimator, ge.restart_inner_problem(state), rng)
    assert not np.allclose(restarted.perturbations, first)


def test_truncated_es_and_pes_draw_fresh_perturbations_and_pes_sums_them():
    rng = np.random.default_rng(0)
    for kind in ("truncated_es", "pes"):
        estimator = ge.GradientEstimator(kind, particles=4, sigma=0.1)
        first = ge.next_unroll(estimator, ge.start(estimator, [0.0]), rng)
        second = ge.next_unroll(estimator, first, rng)
        assert not np.allclose(first.perturbations, second.perturbations)
        if kind == "pes":
            np.testing.assert_allclose(second.accumulated,
                                       first.perturbations + second.perturbations)
            assert not ge.restart_inner_problem(second).accumulated.any()
        else:
            assert not second.accumulated.any()


def test_sgd_and_adam_step_against_the_gradient():
    gradient = np.array([2.0, -1.0])
    sgd = ge.SGD(learning_rate=0.1)
    theta, _ = sgd.update(gradient, sgd.init([0.0, 0.0]), np.zeros(2))
    np.testing.assert_allclose(theta, [-0.2, 0.1])
    adam = ge.make_outer_optimizer("adam", 0.01)
    theta, state = adam.update(gradient, adam.init([0.0, 0.0]), np.zeros(2))
    # Adam's first step is the learning rate times the gradient's sign.
    np.testing.assert_allclose(theta, [-0.01, 0.01], rtol=1e-6)
    assert state["step"] == 1


def test_outer_step_moves_theta_and_counts():
    estimator = ge.GradientEstimator("pes", particles=2, sigma=0.1)
    optimizer = ge.SGD(0.5)
    state = ge.start(estimator, [1.0])
    state, optimizer_state = ge.outer_step(optimizer, state, optimizer.init(state.theta), [1.0])
    np.testing.assert_allclose(state.theta, [0.5])
    assert state.outer_step == 1 and optimizer_state["step"] == 1


@pytest.mark.parametrize("arguments, message", [
    (dict(kind="es", particles=2, sigma=0.1), "kind must be one of"),
    (dict(kind="pes", particles=0, sigma=0.1), "particles must be an integer >= 1, got 0"),
    (dict(kind="pes", particles=2, sigma=0.0), "sigma must be a finite number > 0, got 0.0"),
    (dict(kind="pes", particles=2, sigma=-1.0), "sigma must be a finite number > 0, got -1.0"),
    (dict(kind="pes", particles=3, sigma=0.1), "particles must be even when antithetic=True"),
])
def test_bad_estimator_settings_name_the_argument_and_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        ge.GradientEstimator(**arguments)


def test_odd_particle_count_is_allowed_without_antithetic_pairs():
    draws = ge.draw_perturbations(np.random.default_rng(0), 3, 2, 0.1, antithetic=False)
    assert draws.shape == (3, 2)


def test_bad_losses_and_theta_are_refused():
    estimator = ge.GradientEstimator("es_single", particles=2, sigma=0.1)
    state = ge.start(estimator, [0.0])
    with pytest.raises(ValueError, match="call next_unroll first"):
        ge.estimate_gradient(estimator, state, [1.0, 2.0])
    state = ge.next_unroll(estimator, state, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"losses must have shape \(2,\)"):
        ge.estimate_gradient(estimator, state, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"non-finite losses for particles \[1\]"):
        ge.estimate_gradient(estimator, state, [1.0, np.nan])
    with pytest.raises(ValueError, match="theta must hold at least one outer parameter"):
        ge.start(estimator, [])
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        ge.SGD(0.0)
    with pytest.raises(ValueError, match="outer optimizer must be one of"):
        ge.make_outer_optimizer("rmsprop", 0.1)
