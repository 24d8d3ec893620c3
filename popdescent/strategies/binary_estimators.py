"""REINFORCE and ES estimates of a policy gradient over K on/off switches, on plain numpy arrays.

The policy (seed 000): θ ∈ R^K, switch k on with probability pₖ = sigmoid(θₖ), the switches
independent, π_θ(a) = Πₖ pₖ^aₖ (1 - pₖ)^(1 - aₖ) for a ∈ {0, 1}^K. The objective is the
expected reward J(θ) = Σₐ π_θ(a) R(a). N members each draw a and report a reward Rᵢ.

- ``"reinforce"``: aᵢ ~ π_θ; ĝ = mean((Rᵢ - b) ∇ log π_θ(aᵢ)), where ∇ log π_θ(a) = a - p.
  Unbiased for ∇J(θ).
- ``"es"``: the seed's evolution strategies on θ: εᵢ ~ N(0, I), member i runs the policy
  θ + σεᵢ (aᵢ ~ π_{θ+σεᵢ}); ĝ = mean((Rᵢ - b) εᵢ) / σ. Unbiased for the gradient of the
  Gaussian-smoothed objective J_σ(θ) = E_ε J(θ + σε), which tends to ∇J as σ → 0.

Both use the seed's mean baseline b = mean(R), with the estimate scaled by N / (N - 1): a
baseline made of the member's own reward is correlated with its action and shrinks the
expectation by (N - 1) / N; scaled, the estimate equals the leave-one-out baseline's
(Kool et al. 2019) and is unbiased. The functions are pure: draws come from the
`numpy.random.Generator` passed in. `exact_policy_gradient` and `smoothed_policy_gradient`
give the targets for a known reward table (tests, `experiments/binary_choices.py`).

Example:
    >>> rng = np.random.default_rng(0)
    >>> state = draw_actions("reinforce", theta=np.zeros(2), members=8, sigma=1.0, rng=rng)
    >>> rewards = state.actions[:, 0] - 0.5 * state.actions[:, 1]
    >>> gradient = estimate_gradient("reinforce", state, rewards, sigma=1.0)
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

__all__ = [
    "ESTIMATORS",
    "PolicyState",
    "check_estimator",
    "switch_probabilities",
    "draw_actions",
    "centred_rewards",
    "estimate_gradient",
    "all_actions",
    "expected_reward",
    "exact_policy_gradient",
    "smoothed_policy_gradient",
]

ESTIMATORS = ("reinforce", "es")


def check_estimator(kind: str) -> str:
    if kind not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {kind!r}")
    return kind


def switch_probabilities(theta) -> np.ndarray:
    """sigmoid(θ): each switch's probability of being on (θ broadcasts, any shape)."""
    theta = np.asarray(theta, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * theta))  # sigmoid without exp overflow


@dataclasses.dataclass(frozen=True)
class PolicyState:
    """What one unroll's estimate needs: the policy θ (K,), each member's perturbation εᵢ
    (N, K; zeros for REINFORCE) and each member's switches aᵢ (N, K, booleans)."""

    theta: np.ndarray
    perturbations: np.ndarray
    actions: np.ndarray


def draw_actions(kind, theta, members, sigma, rng) -> PolicyState:
    """Each member's switches for the next unroll: aᵢ ~ π_θ (REINFORCE) or, for ES, a fresh
    εᵢ ~ N(0, I) and aᵢ ~ π_{θ+σεᵢ}."""
    check_estimator(kind)
    theta = np.asarray(theta, dtype=np.float64)
    shape = (int(members), theta.size)
    if kind == "es":
        perturbations = rng.standard_normal(shape)
    else:
        perturbations = np.zeros(shape)
    probabilities = switch_probabilities(theta + sigma * perturbations)
    actions = rng.uniform(size=shape) < probabilities
    return PolicyState(theta=theta.copy(), perturbations=perturbations, actions=actions)


def centred_rewards(rewards) -> np.ndarray:
    """(Rᵢ - mean R) · N / (N - 1): the mean baseline, rescaled to be unbiased (module doc)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1 or rewards.size < 2:
        raise ValueError(f"rewards must be a vector of at least 2 members' rewards, got shape "
                         f"{rewards.shape}")
    if not np.isfinite(rewards).all():
        bad = np.flatnonzero(~np.isfinite(rewards)).tolist()
        raise ValueError(f"rewards must be finite, got non-finite rewards for members {bad}")
    return (rewards - rewards.mean()) * rewards.size / (rewards.size - 1)


def estimate_gradient(kind, state: PolicyState, rewards, sigma) -> np.ndarray:
    """ĝ ≈ ∇J(θ) (REINFORCE) or ∇J_σ(θ) (ES) from each member's reward, shape (K,)."""
    check_estimator(kind)
    centred = centred_rewards(rewards)
    if centred.size != state.actions.shape[0]:
        raise ValueError(f"rewards must have one entry per member ({state.actions.shape[0]}), "
                         f"got {centred.size}")
    if kind == "reinforce":
        scores = state.actions - switch_probabilities(state.theta)  # ∇ log π_θ(aᵢ)
        return centred @ scores / centred.size
    return centred @ state.perturbations / (centred.size * sigma)


# ---------------------------------------------------------------- targets of a known table
def all_actions(switches: int) -> np.ndarray:
    """Every a ∈ {0, 1}^K as rows (2^K, K), in the order of a reward table's flat index."""
    return np.array(list(itertools.product((0, 1), repeat=int(switches))), dtype=np.float64)


def _table(reward_table):
    table = np.asarray(reward_table, dtype=np.float64)
    if table.shape != (2,) * table.ndim or table.ndim < 1:
        raise ValueError(f"reward_table must have shape (2,)*K (R[a₁, ..., a_K]), got "
                         f"{table.shape}")
    return table.reshape(-1), all_actions(table.ndim)


def _action_probabilities(theta, actions):
    p = switch_probabilities(theta)
    return np.prod(np.where(actions == 1, p, 1 - p), axis=-1)


def expected_reward(theta, reward_table) -> float:
    """J(θ) = Σₐ π_θ(a) R(a) for a table R of shape (2,)*K."""
    rewards, actions = _table(reward_table)
    return float(_action_probabilities(np.asarray(theta, dtype=np.float64), actions) @ rewards)


def exact_policy_gradient(theta, reward_table) -> np.ndarray:
    """∇J(θ) = Σₐ π_θ(a) R(a) (a - p): REINFORCE's target."""
    theta = np.asarray(theta, dtype=np.float64)
    rewards, actions = _table(reward_table)
    weights = _action_probabilities(theta, actions) * rewards
    return weights @ (actions - switch_probabilities(theta))


def smoothed_policy_gradient(theta, reward_table, sigma, points=24) -> np.ndarray:
    """∇J_σ(θ) = E_ε ∇J(θ + σε), ES's target, by Gauss-Hermite quadrature on a product grid
    of `points`^K nodes (exact to ~1e-10 for K <= 3 and σ <= 3 at the default)."""
    theta = np.asarray(theta, dtype=np.float64)
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)  # weight exp(-x²/2)
    weights = weights / weights.sum()
    total = np.zeros_like(theta)
    for index in itertools.product(range(points), repeat=theta.size):
        node = nodes[list(index)]
        total += np.prod(weights[list(index)]) * exact_policy_gradient(theta + sigma * node,
                                                                       reward_table)
    return total
