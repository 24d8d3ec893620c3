"""Evolution-strategies gradient estimators over an unrolled inner problem, on plain numpy arrays.

Three estimators of the gradient of an inner problem's loss with respect to the outer
parameters θ (hyperparameters), from the losses of N particles that each ran one truncated
unroll of K inner steps with θ + εᵢ (ES-Single paper, seed 002, Algorithms 1 and 2; PES,
Vicol et al. 2021):

- ``"truncated_es"``: a fresh εᵢ for every unroll, ĝ = Σᵢ εᵢ Lᵢ / (N σ²). Blind to how θ acted
  on the state before this unroll, hence biased towards short-horizon behaviour.
- ``"pes"``: a fresh εᵢ for every unroll, but ĝ = Σᵢ ξᵢ Lᵢ / (N σ²) with ξᵢ each particle's sum
  of the perturbations it has run with since the inner problem started. Unbiased; its variance
  grows with the number of unrolls since the start.
- ``"es_single"``: one εᵢ per particle, drawn when the inner problem starts and kept for all of
  its unrolls, ĝ = Σᵢ εᵢ Lᵢ / (N σ²). Unbiased, with a variance that does not grow with the
  number of unrolls (Proposition 3.2: tr Var = (P + 1)‖∇L‖² for one antithetic pair).

The functions are pure: each takes the estimator's settings, an explicit `EstimatorState` and a
seeded `numpy.random.Generator`, and returns a new state, so that a callback (or a toy
experiment) decides with them and applies the result elsewhere, and tests check their
statistics on thousands of draws. `SGD` and `Adam` step θ along an estimate.

Example:
    >>> rng = np.random.default_rng(0)
    >>> estimator = GradientEstimator("es_single", particles=4, sigma=0.1)
    >>> state = start(estimator, theta=[0.5])
    >>> state = next_unroll(estimator, state, rng)     # εᵢ for this unroll
    >>> losses = (particle_parameters(state)[:, 0] - 1.0) ** 2
    >>> gradient = estimate_gradient(estimator, state, losses)
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "ESTIMATORS",
    "GradientEstimator",
    "EstimatorState",
    "draw_perturbations",
    "start",
    "next_unroll",
    "particle_parameters",
    "estimate_gradient",
    "restart_inner_problem",
    "SGD",
    "Adam",
    "make_outer_optimizer",
    "optimizer_state_from_json",
    "optimizer_state_to_json",
    "outer_step",
]

ESTIMATORS = ("truncated_es", "pes", "es_single")


@dataclasses.dataclass(frozen=True)
class GradientEstimator:
    """Which estimator, over how many particles, with which perturbation scale.

    Args:
        kind: one of `ESTIMATORS`: "truncated_es", "pes" or "es_single".
        particles: N >= 1, the number of perturbed copies of the inner problem.
        sigma: σ > 0, the standard deviation of each coordinate of a perturbation.
        antithetic: pair particle 2j+1 with -ε of particle 2j (the seed's algorithms); it
            needs an even `particles`. Pairs cancel the loss's even part, so the estimate does
            not need a baseline.
    """

    kind: str
    particles: int
    sigma: float
    antithetic: bool = True

    def __post_init__(self):
        if self.kind not in ESTIMATORS:
            raise ValueError(f"kind must be one of {ESTIMATORS}, got {self.kind!r}")
        if isinstance(self.particles, bool) or not isinstance(self.particles, (int, np.integer)) \
                or self.particles < 1:
            raise ValueError(f"particles must be an integer >= 1, got {self.particles!r}")
        if not (isinstance(self.sigma, (int, float, np.floating)) and np.isfinite(self.sigma)
                and self.sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {self.sigma!r}")
        if self.antithetic and self.particles % 2:
            raise ValueError(
                f"particles must be even when antithetic=True (pairs ε, -ε), got "
                f"{self.particles}; use an even count or antithetic=False")


@dataclasses.dataclass(frozen=True)
class EstimatorState:
    """Everything an estimator carries between unrolls; plain arrays, so a backup can store it.

    Attributes:
        theta: (P,) the outer parameters.
        perturbations: (N, P) the εᵢ the particles run with in the current unroll.
        accumulated: (N, P) PES's ξᵢ, the sum of each particle's perturbations since the inner
            problem started (zeros for the other estimators).
        unroll: unrolls begun in the current inner problem (0: none yet; ES-Single draws then).
        outer_step: outer steps taken on θ so far.
    """

    theta: np.ndarray
    perturbations: np.ndarray
    accumulated: np.ndarray
    unroll: int = 0
    outer_step: int = 0


def draw_perturbations(rng: np.random.Generator, particles: int, dimension: int, sigma: float,
                       antithetic: bool = True) -> np.ndarray:
    """(particles, dimension) draws from N(0, σ²I); with `antithetic`, row 2j+1 = -row 2j."""
    estimator = GradientEstimator("truncated_es", particles, sigma, antithetic)  # validates
    if isinstance(dimension, bool) or not isinstance(dimension, (int, np.integer)) \
            or dimension < 1:
        raise ValueError(f"dimension must be an integer >= 1, got {dimension!r}")
    if not antithetic:
        return estimator.sigma * rng.standard_normal((particles, dimension))
    half = estimator.sigma * rng.standard_normal((particles // 2, dimension))
    # Interleaved so that pairs stay adjacent: members 0/1, 2/3, ... are mirror images.
    return np.stack([half, -half], axis=1).reshape(particles, dimension)


def _as_theta(theta) -> np.ndarray:
    theta = np.array(theta, dtype=np.float64).reshape(-1)
    if theta.size < 1:
        raise ValueError("theta must hold at least one outer parameter, got an empty array")
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"theta must be finite, got {theta.tolist()}")
    return theta


def start(estimator: GradientEstimator, theta) -> EstimatorState:
    """A state at θ at the start of an inner problem, before its first unroll (perturbations
    are drawn by `next_unroll`)."""
    theta = _as_theta(theta)
    zeros = np.zeros((estimator.particles, theta.size))
    return EstimatorState(theta=theta, perturbations=zeros, accumulated=zeros.copy())


def next_unroll(estimator: GradientEstimator, state: EstimatorState,
                rng: np.random.Generator) -> EstimatorState:
    """The state for the next unroll: the εᵢ the particles run with while it lasts.

    Truncated ES and PES draw fresh perturbations (PES adds them to ξᵢ); ES-Single draws only
    for the first unroll of an inner problem and keeps them until `restart_inner_problem`.
    """
    particles, dimension = state.perturbations.shape
    if particles != estimator.particles:
        raise ValueError(f"state has {particles} particles, the estimator "
                         f"{estimator.particles}; start a new state for a new particle count")
    if estimator.kind == "es_single" and state.unroll > 0:
        return dataclasses.replace(state, unroll=state.unroll + 1)
    perturbations = draw_perturbations(rng, particles, dimension, estimator.sigma,
                                       estimator.antithetic)
    accumulated = state.accumulated + perturbations if estimator.kind == "pes" \
        else state.accumulated
    return dataclasses.replace(state, perturbations=perturbations, accumulated=accumulated,
                               unroll=state.unroll + 1)


def particle_parameters(state: EstimatorState) -> np.ndarray:
    """(N, P) θ + εᵢ: the outer parameters each particle runs the current unroll with."""
    return state.theta[None, :] + state.perturbations


def estimate_gradient(estimator: GradientEstimator, state: EstimatorState,
                      losses) -> np.ndarray:
    """ĝ (P,) from the particles' losses on the current unroll: Σᵢ wᵢ Lᵢ / (N σ²).

    wᵢ is εᵢ (truncated ES, ES-Single) or PES's ξᵢ. `losses` holds one finite loss per
    particle, in the order of `particle_parameters`.
    """
    if state.unroll < 1:
        raise ValueError("estimate_gradient needs an unroll: call next_unroll first "
                         f"(state.unroll = {state.unroll})")
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (estimator.particles,):
        raise ValueError(f"losses must have shape ({estimator.particles},) (one per particle), "
                         f"got {losses.shape}")
    if not np.all(np.isfinite(losses)):
        bad = np.flatnonzero(~np.isfinite(losses)).tolist()
        raise ValueError(f"losses must be finite, got non-finite losses for particles {bad}")
    weights = state.accumulated if estimator.kind == "pes" else state.perturbations
    return weights.T @ losses / (estimator.particles * estimator.sigma ** 2)


def restart_inner_problem(state: EstimatorState) -> EstimatorState:
    """The state when the inner problem starts over (fresh inner weights): PES forgets ξᵢ and
    ES-Single draws new εᵢ at the next unroll; θ and the outer step count stay."""
    return dataclasses.replace(state, perturbations=np.zeros_like(state.perturbations),
                               accumulated=np.zeros_like(state.accumulated), unroll=0)


def _check_learning_rate(learning_rate):
    if not (isinstance(learning_rate, (int, float, np.floating)) and np.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")


@dataclasses.dataclass(frozen=True)
class SGD:
    """Outer SGD on θ: v ← μ v + ĝ, θ ← θ - α v (μ = momentum in [0, 1))."""

    learning_rate: float
    momentum: float = 0.0

    def __post_init__(self):
        _check_learning_rate(self.learning_rate)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    def init(self, theta) -> dict:
        return {"velocity": np.zeros_like(_as_theta(theta)), "step": 0}

    def update(self, gradient, optimizer_state: dict, theta):
        """Returns (new θ, new optimizer state)."""
        gradient = np.asarray(gradient, dtype=np.float64)
        velocity = self.momentum * optimizer_state["velocity"] + gradient
        return (np.asarray(theta) - self.learning_rate * velocity,
                {"velocity": velocity, "step": optimizer_state["step"] + 1})


@dataclasses.dataclass(frozen=True)
class Adam:
    """Outer Adam on θ (Kingma & Ba 2015, bias-corrected moments)."""

    learning_rate: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self):
        _check_learning_rate(self.learning_rate)
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon!r}")

    def init(self, theta) -> dict:
        zeros = np.zeros_like(_as_theta(theta))
        return {"first_moment": zeros, "second_moment": zeros.copy(), "step": 0}

    def update(self, gradient, optimizer_state: dict, theta):
        """Returns (new θ, new optimizer state)."""
        gradient = np.asarray(gradient, dtype=np.float64)
        step = optimizer_state["step"] + 1
        first = self.beta_1 * optimizer_state["first_moment"] + (1 - self.beta_1) * gradient
        second = self.beta_2 * optimizer_state["second_moment"] + (1 - self.beta_2) * gradient ** 2
        first_hat = first / (1 - self.beta_1 ** step)
        second_hat = second / (1 - self.beta_2 ** step)
        new_theta = np.asarray(theta) - self.learning_rate * first_hat / (
            np.sqrt(second_hat) + self.epsilon)
        return new_theta, {"first_moment": first, "second_moment": second, "step": step}


OUTER_OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_outer_optimizer(name: str, learning_rate: float, **options):
    """`SGD` or `Adam` by name ("sgd" | "adam"), with its keyword options."""
    if name not in OUTER_OPTIMIZERS:
        raise ValueError(f"outer optimizer must be one of {sorted(OUTER_OPTIMIZERS)}, "
                         f"got {name!r}")
    return OUTER_OPTIMIZERS[name](learning_rate, **options)


def optimizer_state_to_json(optimizer_state: dict) -> dict:
    """An outer optimizer's state as JSON-ready lists (for `BackupAndRestore`)."""
    return {key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in optimizer_state.items()}


def optimizer_state_from_json(saved: dict) -> dict:
    """The inverse of `optimizer_state_to_json`: lists back to float64 arrays, bit for bit."""
    return {key: np.array(value, dtype=np.float64) if isinstance(value, list) else value
            for key, value in saved.items()}


def outer_step(optimizer, state: EstimatorState, optimizer_state: dict, gradient):
    """Steps θ along `gradient` with `optimizer`; returns (new state, new optimizer state)."""
    gradient = np.asarray(gradient, dtype=np.float64)
    if gradient.shape != state.theta.shape:
        raise ValueError(f"gradient must have theta's shape {state.theta.shape}, "
                         f"got {gradient.shape}")
    theta, optimizer_state = optimizer.update(gradient, optimizer_state, state.theta)
    return (dataclasses.replace(state, theta=theta, outer_step=state.outer_step + 1),
            optimizer_state)
