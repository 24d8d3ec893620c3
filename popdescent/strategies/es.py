"""ES-Single, PES and truncated ES as a Keras callback: the population's members are the
particles, and the outer parameters θ are its continuous hyperparameters."""

from __future__ import annotations

import math

import numpy as np

from popdescent.hyperparameters import Choice, Fixed, Inert
from popdescent.population.selection import inverse_loss_fitness
from popdescent.strategies import gradient_estimators as ge
from popdescent.strategies.base import PopulationStrategy
from popdescent.validation import check_integer

__all__ = ["EvolutionStrategies", "continuous_hyperparameters"]


def continuous_hyperparameters(priors: dict) -> list:
    """Names (sorted) of the hyperparameters an estimate can follow: mutable priors over an
    interval that something reads (not `Choice`, `Fixed` or `Inert`)."""
    return sorted(name for name, prior in priors.items()
                  if prior.mutable and not isinstance(prior, (Choice, Fixed, Inert)))


def _to_theta(prior, value: float) -> float:
    # Log priors are searched in log10 space, as PopDescent and PBT mutate them: a step of
    # the outer optimizer then scales the learning rate rather than shifting it.
    return math.log10(value) if prior.log_scale else float(value)


def _from_theta(prior, coordinate: float) -> float:
    return 10.0 ** coordinate if prior.log_scale else float(coordinate)


class EvolutionStrategies(PopulationStrategy):
    """Follows an evolution-strategies estimate of the gradient of the validation loss with
    respect to the population's continuous hyperparameters (seed 002: ES-Single, PES,
    truncated ES).

    θ holds the continuous hyperparameters in their prior's space (log10 for log-scale
    priors), starting at the members' mean. Member i trains with θ + εᵢ (antithetic pairs:
    members 2j and 2j+1 get ε and -ε). Every epoch of `Population.fit` is one truncated unroll
    of K = `steps_per_epoch` steps; at its end each member's loss on a freshly sampled
    validation batch gives ĝ (`gradient_estimators.estimate_gradient`), the outer optimizer
    steps θ, and the members get the next unroll's perturbations. Members are never copied
    or replaced: each keeps training its own weights. With `horizon`, the inner problem
    restarts every `horizon` epochs: every member goes back to its initial weights with fresh
    optimizer state (the seed's meta-optimisation), PES forgets its sums and ES-Single draws
    new perturbations.

    Args:
        estimator: "es_single" (one ε per member per inner problem), "pes" (fresh ε every
            epoch, the estimate weighs each member by the sum of its ε since the restart) or
            "truncated_es" (fresh ε every epoch; biased towards short-horizon behaviour).
        sigma: σ > 0, the perturbation scale in θ's space (for a log prior, 0.1 is ×1.26).
        learning_rate: the outer optimizer's step size, > 0.
        outer_optimizer: "sgd" or "adam".
        antithetic: pair members (ε, -ε); needs an even population size.
        horizon: epochs per inner problem (>= 1), or None for one online run.
        shared_start: every member starts (and restarts) from member 0's weights (the first
            member's with finite weights), the seed's
            one initial state s₀ for all particles, so that the members' losses differ by
            their perturbations only. With independently initialised members, a pair's loss
            difference also carries their initialisations; ES-Single, which keeps each εᵢ
            for the whole inner problem, then follows that difference every unroll. False
            keeps each member's own initialisation.
        cross_validation: losses on validation data; False uses training data.
        cv_batch_size: size of the sampled batch the losses are measured on.
        seed: seed of the perturbations; default derived from the population's seed.

    Example:
        >>> pop = Population(model, size=8, seed=0,
        ...                  hyperparameters={"learning_rate": LogUniform(1e-4, 1e-2)})
        >>> pop.fit(x, y, batch_size=64, epochs=20, steps_per_epoch=50,
        ...         validation_data=(x_val, y_val),
        ...         callbacks=[EvolutionStrategies("es_single", sigma=0.1)])
    """

    def __init__(self, estimator="es_single", sigma=0.1, learning_rate=0.05,
                 outer_optimizer="adam", antithetic=True, horizon=None, cross_validation=True,
                 cv_batch_size=640, seed=None, shared_start=True):
        super().__init__(every=1, cross_validation=cross_validation,
                         fitness=inverse_loss_fitness, cv_batch_size=cv_batch_size, seed=seed)
        # Validated now (with a stand-in particle count) so that bad arguments fail at once.
        if estimator not in ge.ESTIMATORS:
            raise ValueError(f"estimator must be one of {ge.ESTIMATORS}, got {estimator!r}")
        ge.GradientEstimator(estimator, particles=2, sigma=sigma, antithetic=antithetic)
        self.optimizer = ge.make_outer_optimizer(outer_optimizer, learning_rate)
        self.estimator_kind = estimator
        self.sigma = float(sigma)
        self.learning_rate = float(learning_rate)
        self.outer_optimizer = outer_optimizer
        self.antithetic = bool(antithetic)
        self.horizon = None if horizon is None else check_integer("horizon", horizon, minimum=1)
        self.shared_start = bool(shared_start)
        self.estimator = None
        self.names = None
        self.state = None
        self.optimizer_state = None

    @property
    def needs_initial_weights(self) -> bool:
        """`fit` keeps the initial weights when the inner problem restarts."""
        return self.horizon is not None

    def check_population(self, population):
        if not continuous_hyperparameters(population.priors):
            raise ValueError(
                "EvolutionStrategies needs at least one continuous hyperparameter to estimate "
                "(a LogUniform, LogNormal or Uniform prior), got hyperparameters "
                f"{ {name: type(prior).__name__ for name, prior in population.priors.items()} }")
        if self.antithetic and population.size % 2:
            raise ValueError(
                f"antithetic=True needs an even population size (pairs ε, -ε), got size="
                f"{population.size}; use an even size or antithetic=False")

    # ------------------------------------------------------------------ the outer loop
    def start(self, population):
        self.names = continuous_hyperparameters(population.priors)
        self.estimator = ge.GradientEstimator(self.estimator_kind, population.size, self.sigma,
                                              self.antithetic)
        if self.state is None:  # not restored from a backup
            values = population.hyperparameter_values()
            theta = [np.mean([_to_theta(population.priors[name], member[name])
                              for member in values]) for name in self.names]
            self.state = ge.next_unroll(self.estimator, ge.start(self.estimator, theta),
                                        self.rng)
            self.optimizer_state = self.optimizer.init(self.state.theta)
            self._share_start(population)
        self._assign_particles(population)

    def _share_start(self, population):
        """Copies the first member with finite weights (member 0 unless it diverged) over
        the others: weights, optimizer state and the layers' seed states (common random
        numbers for dropout too)."""
        finite = np.flatnonzero(~population.nonfinite_members())
        if not self.shared_start or not finite.size:
            return
        for index in range(population.size):
            population.copy_member(int(finite[0]), index)

    def _assign_particles(self, population):
        priors = population.priors
        for index, coordinates in enumerate(ge.particle_parameters(self.state)):
            population.set_hyperparameters(index, {
                name: _from_theta(priors[name], coordinate)
                for name, coordinate in zip(self.names, coordinates)})

    def _clip_theta(self, population, theta):
        low, high = zip(*(sorted(_to_theta(population.priors[name], bound)
                                 for bound in population.priors[name].bounds)
                          for name in self.names))
        return np.clip(theta, low, high)

    def evolve(self, population, fitness, rng):
        losses = self.losses_with_diverged_as_worst(population)
        gradient = ge.estimate_gradient(self.estimator, self.state, losses)
        state, self.optimizer_state = ge.outer_step(self.optimizer, self.state,
                                                    self.optimizer_state, gradient)
        state = ge.EstimatorState(theta=self._clip_theta(population, state.theta),
                                  perturbations=state.perturbations,
                                  accumulated=state.accumulated, unroll=state.unroll,
                                  outer_step=state.outer_step)
        if self.horizon is not None and state.unroll >= self.horizon:
            state = ge.restart_inner_problem(state)
            for index in range(population.size):
                population.reinitialize_member(index)
            self._share_start(population)
        self.state = ge.next_unroll(self.estimator, state, rng)
        self.last_gradient = gradient
        self._assign_particles(population)
        return np.array([], dtype=int), np.array([], dtype=int)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        # The base class overwrites a diverged member with a copy of a survivor, hyperparameters
        # included; the slot stays a particle, so it gets its own θ + εᵢ back.
        self._assign_particles(self.model)
        if logs is not None:
            for name, coordinate in zip(self.names, self.state.theta):
                logs[f"theta_{name}"] = float(coordinate)

    def theta_values(self, population) -> dict:
        """θ as hyperparameter values (10**θ for log priors): the centre of the particles."""
        return {name: _from_theta(population.priors[name], coordinate)
                for name, coordinate in zip(self.names, self.state.theta)}

    # ------------------------------------------------------------------ state and config
    def get_state(self) -> dict:
        state = super().get_state()
        if self.state is not None:
            state["estimator"] = {
                "theta": self.state.theta.tolist(),
                "perturbations": self.state.perturbations.tolist(),
                "accumulated": self.state.accumulated.tolist(),
                "unroll": self.state.unroll, "outer_step": self.state.outer_step}
            state["outer_optimizer"] = ge.optimizer_state_to_json(self.optimizer_state)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if "estimator" in state:
            saved = state["estimator"]
            self.state = ge.EstimatorState(
                theta=np.array(saved["theta"], dtype=np.float64),
                perturbations=np.array(saved["perturbations"], dtype=np.float64),
                accumulated=np.array(saved["accumulated"], dtype=np.float64),
                unroll=int(saved["unroll"]), outer_step=int(saved["outer_step"]))
            self.optimizer_state = ge.optimizer_state_from_json(state["outer_optimizer"])

    def get_config(self):
        return {
            "estimator": self.estimator_kind,
            "sigma": self.sigma,
            "learning_rate": self.learning_rate,
            "outer_optimizer": self.outer_optimizer,
            "antithetic": self.antithetic,
            "horizon": self.horizon,
            "cross_validation": self.cross_validation,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
            "shared_start": self.shared_start,
        }
