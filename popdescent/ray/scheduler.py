"""PopDescentScheduler: PopDescent's selection and mutation as a Ray Tune trial scheduler.

At every barrier (`popdescent.ray.barrier`, Ray's synchronous PBT) the trials' metrics become
fitness; `plan_replacement`, the function `popdescent.PopDescent` calls in-process, picks the
elites and each replaced trial's parent, and `mutate_hyperparameters` mutates the parent's
config. The weight noise travels in the replaced trial's config under `RESTORE_KEY`, and the
trainable applies it when it restores (`popdescent.ray.trainable`).
"""

from __future__ import annotations

import numpy as np

from popdescent.hyperparameters import Prior
from popdescent.ray.barrier import LINEAGE_FILE, SynchronousSelection
from popdescent.population.selection import inverse_loss_fitness, sanitize_fitness
from popdescent.strategies.replacement import mutate_hyperparameters, plan_replacement
from popdescent.validation import check_integer, check_number

__all__ = ["PopDescentScheduler", "RESTORE_KEY", "LINEAGE_FILE"]

# The config entry that tells a restored trial what to do with its checkpoint: the weight
# noise's std and seed, and the trial's own member-step count (the parent's checkpoint
# holds the parent's).
RESTORE_KEY = "popdescent_restore"


def check_hyperparameters(hyperparameters) -> dict:
    """Returns `hyperparameters` (name -> bounded popdescent prior) or raises naming the
    entry without bounds."""
    if not isinstance(hyperparameters, dict) or not hyperparameters:
        raise ValueError(
            "hyperparameters must be a non-empty dict name -> prior with bounds "
            f"(popdescent.LogUniform(low, high, bounds=...)), got {hyperparameters!r}"
        )
    for name, prior in hyperparameters.items():
        if not isinstance(prior, Prior) or not prior.mutable or getattr(
            prior, "bounds", None
        ) is None:
            raise ValueError(
                f"hyperparameters[{name!r}] must be a mutable popdescent prior with bounds "
                f"(LogUniform, LogNormal, Uniform), got {prior!r}"
            )
    return dict(hyperparameters)


class PopDescentScheduler(SynchronousSelection):
    """Population Descent over Ray Tune trials: one trial is one member.

    Every `every` reports all trials meet at a barrier. Their metric becomes fitness; the
    `elites` fittest trials go on untouched; every other trial restarts from the checkpoint
    of a parent drawn fitness-weighted, with replacement, from the whole population, with
    each hyperparameter of the parent's config multiplied by
    `hyperparameter_noise_base`**N(0, hyperparameter_noise * (1 - fitness(parent))) (kept
    within its prior's bounds) and weight noise of std `weight_noise * (1 - fitness(parent))`
    added by the trainable when it restores. The decisions come from
    `popdescent.strategies.replacement.plan_replacement`, as in-process. Each decision is
    appended to `lineage` and to `popdescent_lineage.jsonl` in the experiment directory.

    Args:
        hyperparameters: dict config key -> popdescent prior with bounds (`LogUniform`...).
            A key missing from a trial's config is sampled from its prior.
        metric: the reported metric; or give it to `tune.TuneConfig`.
        mode: "min" or "max"; or give it to `tune.TuneConfig`.
        elites: m, trials kept untouched at each selection; 1 <= m < number of trials.
        weight_noise: beta1, weight-noise std at magnitude 1. Default 0.01.
        hyperparameter_noise: beta2, in log10 units at magnitude 1. Default 1.0.
        hyperparameter_noise_base: base of the log-scale mutation factor, > 1. Default 10.
        every: reports between two selections. Default 1.
        fitness: maps the array of metric values to fitness in [0, 1]. Default: 2 / (2 + loss)
            for mode "min"; the metric itself (which must lie in [0, 1]) for mode "max".
        seed: seed of the scheduler's draws (None: a fresh one, kept with the scheduler).
            A selection's draws come from (seed, the report it happens at), not from a
            generator carried along: `Tuner.restore` brings the scheduler back as it was made,
            and a resumed run then decides as the uninterrupted one would have.
        time_attr: the result field counting reports. Default "training_iteration".

    Example:
        >>> scheduler = PopDescentScheduler(
        ...     {"learning_rate": popdescent.LogUniform(1e-4, 1e-2, bounds=(1e-6, 1.0))},
        ...     metric="val_loss", mode="min", elites=2, seed=0)
        >>> tune.Tuner(keras_trainable(build, data), tune_config=tune.TuneConfig(
        ...     scheduler=scheduler, num_samples=4, reuse_actors=True)).fit()
    """

    def __init__(
        self,
        hyperparameters,
        metric=None,
        mode=None,
        elites=3,
        weight_noise=0.01,
        hyperparameter_noise=1.0,
        hyperparameter_noise_base=10.0,
        every=1,
        fitness=None,
        seed=None,
        time_attr="training_iteration",
    ):
        self.priors = check_hyperparameters(hyperparameters)
        self.elites = check_integer("elites", elites, minimum=1)
        self.weight_noise = check_number("weight_noise", weight_noise, minimum=0)
        self.hyperparameter_noise = check_number("hyperparameter_noise", hyperparameter_noise,
                                                 minimum=0)
        self.hyperparameter_noise_base = check_number(
            "hyperparameter_noise_base", hyperparameter_noise_base, minimum=1,
            strict_minimum=True)
        if fitness is not None and not callable(fitness):
            raise ValueError(f"fitness must be a callable or None, got {fitness!r}")
        self.fitness_function = fitness
        self.seed = np.random.SeedSequence(seed).entropy
        self.rng = np.random.default_rng(self.seed)
        super().__init__(metric=metric, mode=mode, every=every, time_attr=time_attr)

    def check_size(self, size):
        if not 1 <= self.elites < size:
            raise ValueError(
                f"elites must be in [1, number of trials - 1] = [1, {size - 1}], got "
                f"{self.elites}"
            )

    def on_trial_add(self, tune_controller, trial):
        super().on_trial_add(tune_controller, trial)
        for name, prior in self.priors.items():
            if name not in trial.config:
                trial.config[name] = prior.sample(self.rng)
                trial.evaluated_params[name] = trial.config[name]

    def fitness(self, values) -> np.ndarray:
        """The trials' fitness in [0, 1] from their metric values."""
        values = np.asarray(values, dtype=np.float64)
        if self.fitness_function is not None:
            return sanitize_fitness(self.fitness_function(values))
        if self._mode == "min":
            return inverse_loss_fitness(values)
        finite = values[np.isfinite(values)]
        if np.any((finite < 0) | (finite > 1)):
            raise ValueError(
                f"mode 'max' without a fitness function needs a metric in [0, 1] (accuracy), "
                f"got {values.tolist()}; pass fitness=..."
            )
        return sanitize_fitness(values)

    def select(self, tune_controller, trials):
        """Plans with `plan_replacement` and restarts each replaced trial from its parent."""
        fitness = self.fitness([self.result_of(t)[self._metric] for t in trials])
        iteration = int(self.result_of(trials[0])[self._time_attr])
        rng = np.random.default_rng([self.seed, iteration])
        plan = plan_replacement(fitness, min(self.elites, len(trials) - 1), rng)
        record = {
            "iteration": iteration,
            "fitness": {t.trial_id: float(f) for t, f in zip(trials, fitness)},
            "elites": [trials[i].trial_id for i in plan.elites],
            "replaced": [],
        }
        # Configs as they are at the barrier: a replaced trial may be another's parent.
        configs = {t: {k: v for k, v in t.config.items() if k != RESTORE_KEY} for t in trials}
        for slot, parent, magnitude, seed in zip(plan.replaced, plan.parents, plan.magnitudes,
                                                 plan.seeds):
            trial, source = trials[int(slot)], trials[int(parent)]
            values = mutate_hyperparameters(
                self.priors, {name: configs[source][name] for name in self.priors}, magnitude,
                self.hyperparameter_noise, self.hyperparameter_noise_base, rng)
            restore = {
                "weight_noise": self.weight_noise * float(magnitude),
                "seed": int(seed),
                "parent": source.trial_id,
                "member_steps": self.result_of(trial).get("member_steps"),
            }
            record["replaced"].append({
                "trial": trial.trial_id, "parent": source.trial_id,
                "magnitude": float(magnitude), "weight_noise": restore["weight_noise"],
                "seed": restore["seed"], "hyperparameters": values,
                "parent_checkpoint": self.checkpoint_of(source).path,
            })
            self.restart(tune_controller, trial, source,
                         {**configs[source], **values, RESTORE_KEY: restore})
        return record
