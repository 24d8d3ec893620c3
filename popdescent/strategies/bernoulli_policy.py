"""REINFORCE or ES over on/off switches as a Keras callback: each member draws its switches
(its `Bernoulli` hyperparameters) from one learned policy."""

from __future__ import annotations

import numpy as np

from popdescent.hyperparameters import Bernoulli
from popdescent.population.selection import inverse_loss_fitness
from popdescent.strategies import binary_estimators as be
from popdescent.strategies import gradient_estimators as ge
from popdescent.strategies.base import PopulationStrategy
from popdescent.validation import check_number

__all__ = ["BernoulliPolicy", "switch_hyperparameters"]

# A starting probability of exactly 0 or 1 would be an infinite logit.
_PROBABILITY_FLOOR = 1e-6


def switch_hyperparameters(priors: dict) -> list:
    """Names (sorted) of the population's on/off switches: its `Bernoulli` hyperparameters."""
    return sorted(name for name, prior in priors.items() if isinstance(prior, Bernoulli))


class BernoulliPolicy(PopulationStrategy):
    """Learns which on/off switches to turn on: a policy θ ∈ R^K over the population's K
    `Bernoulli` hyperparameters, followed by REINFORCE or by evolution strategies (seed 000).

    Switch k is on with probability sigmoid(θₖ), independently of the others; θ starts at the
    logits of the priors' `probability`. Every epoch of `Population.fit` is one unroll: each
    member trains with switches aᵢ drawn from the policy (ES: from the policy θ + σεᵢ); at the
    epoch's end its reward is minus its loss on a freshly sampled validation batch, the
    estimate ĝ of the gradient of the expected reward is formed
    (`binary_estimators.estimate_gradient`, mean baseline) and θ climbs it:
    θ ← θ + α ĝ with `outer_optimizer="sgd"` (the seed's update), or an Adam step. Members
    are never copied or replaced (but for a diverged one, which the base class overwrites
    with a survivor): each keeps training its own weights, so a member's reward also carries
    its earlier switches, as in any online tuning.

    Args:
        estimator: "reinforce" (aᵢ ~ π_θ, ĝ = mean((Rᵢ - b)(aᵢ - p))) or "es"
            (εᵢ ~ N(0, I), aᵢ ~ π_{θ+σεᵢ}, ĝ = mean((Rᵢ - b) εᵢ) / σ).
        learning_rate: α > 0, the step size on θ (logits).
        sigma: σ > 0, ES's perturbation scale on the logits (unused by REINFORCE).
        outer_optimizer: "sgd" (θ ← θ + α ĝ) or "adam".
        cross_validation: rewards from validation data; False uses training data.
        cv_batch_size: size of the sampled batch the rewards are measured on.
        seed: seed of the draws; default derived from the population's seed.

    Example:
        >>> pop = Population(model, size=8, seed=0, hyperparameters={
        ...     "l2": Bernoulli(0.0, 1e-3), "learning_rate": Bernoulli(1e-3, 1e-2)})
        >>> pop.fit(x, y, batch_size=64, epochs=20, steps_per_epoch=50,
        ...         validation_data=(x_val, y_val),
        ...         callbacks=[BernoulliPolicy("reinforce", learning_rate=1.0)])
    """

    def __init__(self, estimator="reinforce", learning_rate=1.0, sigma=1.0,
                 outer_optimizer="sgd", cross_validation=True, cv_batch_size=640, seed=None):
        super().__init__(every=1, cross_validation=cross_validation,
                         fitness=inverse_loss_fitness, cv_batch_size=cv_batch_size, seed=seed)
        self.estimator = be.check_estimator(estimator)
        self.sigma = check_number("sigma", sigma, minimum=0.0, strict_minimum=True)
        self.optimizer = ge.make_outer_optimizer(outer_optimizer, learning_rate)
        self.learning_rate = float(learning_rate)
        self.outer_optimizer = outer_optimizer
        self.names = None
        self.state = None
        self.optimizer_state = None
        self.last_gradient = None

    def check_population(self, population):
        if not switch_hyperparameters(population.priors):
            raise ValueError(
                "BernoulliPolicy needs at least one on/off switch (a Bernoulli hyperparameter, "
                "e.g. hyperparameters={'l2': Bernoulli(0.0, 1e-3)}), got hyperparameters "
                f"{ {name: type(prior).__name__ for name, prior in population.priors.items()} }")

    @property
    def probabilities(self) -> dict:
        """Each switch's current probability of being on, sigmoid(θ)."""
        return dict(zip(self.names, be.switch_probabilities(self.state.theta).tolist()))

    # ------------------------------------------------------------------ the outer loop
    def start(self, population):
        self.names = switch_hyperparameters(population.priors)
        if self.state is None:  # not restored from a backup
            probabilities = np.clip([population.priors[name].probability for name in self.names],
                                    _PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
            theta = np.log(probabilities / (1 - probabilities))
            self.optimizer_state = self.optimizer.init(theta)
            self.state = be.draw_actions(self.estimator, theta, population.size, self.sigma,
                                         self.rng)
        self._assign_switches(population)

    def _assign_switches(self, population):
        priors = population.priors
        for index, switches in enumerate(self.state.actions):
            population.set_hyperparameters(index, {
                name: priors[name].value(bool(on)) for name, on in zip(self.names, switches)})

    def evolve(self, population, fitness, rng):
        losses = self.losses_with_diverged_as_worst(population)
        gradient = be.estimate_gradient(self.estimator, self.state, -losses, self.sigma)
        # The outer optimizers minimise: they descend -ĝ, which climbs the reward.
        theta, self.optimizer_state = self.optimizer.update(-gradient, self.optimizer_state,
                                                            self.state.theta)
        self.last_gradient = gradient
        self.state = be.draw_actions(self.estimator, theta, population.size, self.sigma, rng)
        self._assign_switches(population)
        return np.array([], dtype=int), np.array([], dtype=int)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        # The base class overwrites a diverged member with a copy of a survivor, switches
        # included; the slot keeps its own draw.
        self._assign_switches(self.model)
        if logs is not None:
            for index, name in enumerate(self.names):
                logs[f"theta_{name}"] = float(self.state.theta[index])
                if self.last_gradient is not None:
                    logs[f"gradient_{name}"] = float(self.last_gradient[index])

    # ------------------------------------------------------------------ state and config
    def get_state(self) -> dict:
        state = super().get_state()
        if self.state is not None:
            state["policy"] = {
                "theta": self.state.theta.tolist(),
                "perturbations": self.state.perturbations.tolist(),
                "actions": self.state.actions.astype(int).tolist(),
                "last_gradient": (None if self.last_gradient is None
                                  else self.last_gradient.tolist())}
            state["outer_optimizer"] = ge.optimizer_state_to_json(self.optimizer_state)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if "policy" in state:
            saved = state["policy"]
            self.state = be.PolicyState(
                theta=np.array(saved["theta"], dtype=np.float64),
                perturbations=np.array(saved["perturbations"], dtype=np.float64),
                actions=np.array(saved["actions"], dtype=bool))
            self.last_gradient = (None if saved["last_gradient"] is None
                                  else np.array(saved["last_gradient"], dtype=np.float64))
            self.optimizer_state = ge.optimizer_state_from_json(state["outer_optimizer"])

    def get_config(self):
        return {
            "estimator": self.estimator,
            "learning_rate": self.learning_rate,
            "sigma": self.sigma,
            "outer_optimizer": self.outer_optimizer,
            "cross_validation": self.cross_validation,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
        }
