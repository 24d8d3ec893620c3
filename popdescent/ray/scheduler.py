"""PopDescentScheduler: PopDescent's selection and mutation as a Ray Tune trial scheduler.

Ray Tune's synchronous PopulationBasedTraining already gathers every trial at a barrier,
checkpoints it, and can restart a trial from another trial's checkpoint with a new config
(`_exploit`). This subclass keeps that machinery and replaces only the decision: at every
barrier the trials' metrics become fitness, `plan_replacement` (the function
`popdescent.PopDescent` calls in-process) picks the elites and each replaced trial's parent,
and `mutate_hyperparameters` mutates the parent's config. The weight noise travels in the
replaced trial's config under `RESTORE_KEY`, and the trainable applies it when it restores
(`popdescent.ray.trainable`).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from ray.tune.schedulers import PopulationBasedTraining

from popdescent.hyperparameters import Prior
from popdescent.selection import inverse_loss_fitness, sanitize_fitness
from popdescent.strategies.popdescent import mutate_hyperparameters, plan_replacement
from popdescent.validation import check_integer

# The config entry that tells a restored trial what to do with its checkpoint: the weight
# noise's std and seed, and the trial's own member-step count (the parent's checkpoint
# holds the parent's).
RESTORE_KEY = "popdescent_restore"
LINEAGE_FILE = "popdescent_lineage.jsonl"


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


def _check_noise(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class PopDescentScheduler(PopulationBasedTraining):
    """Population Descent over Ray Tune trials: one trial is one member.

    Every `every` reports all trials meet at a barrier (PBT's `synch=True`). Their metric
    becomes fitness; the `elites` fittest trials go on untouched; every other trial restarts
    from the checkpoint of a parent drawn fitness-weighted, with replacement, from the whole
    population, with each hyperparameter of the parent's config multiplied by
    `hyperparameter_noise_base`**N(0, hyperparameter_noise * (1 - fitness(parent))) (kept
    within its prior's bounds) and weight noise of std `weight_noise * (1 - fitness(parent))`
    added by the trainable when it restores. The decisions come from
    `popdescent.strategies.popdescent.plan_replacement`, as in-process.

    Each decision is appended to `lineage` and to `popdescent_lineage.jsonl` in the
    experiment directory.

    Args:
        hyperparameters: dict config key -> popdescent prior with bounds (`LogUniform`...).
            A key missing from a trial's config is sampled from its prior.
        metric, mode: the reported metric and "min" or "max"; or give them to
            `tune.TuneConfig`.
        elites: m, trials kept untouched at each selection; 1 <= m < number of trials.
        weight_noise: beta1, weight-noise std at magnitude 1. Default 0.01.
        hyperparameter_noise: beta2, in log10 units at magnitude 1. Default 1.0.
        hyperparameter_noise_base: base of the log-scale mutation factor, > 1. Default 10.
        every: reports between two selections. Default 1.
        fitness: maps the array of metric values to fitness in [0, 1]. Default: 2 / (2 + loss)
            for mode "min"; the metric itself (which must lie in [0, 1]) for mode "max".
        seed: seed of the scheduler's draws.
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
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.elites = check_integer("elites", elites, minimum=1)
        self.weight_noise = _check_noise("weight_noise", weight_noise)
        self.hyperparameter_noise = _check_noise("hyperparameter_noise", hyperparameter_noise)
        self.hyperparameter_noise_base = _check_noise(
            "hyperparameter_noise_base", hyperparameter_noise_base)
        if not self.hyperparameter_noise_base > 1:
            raise ValueError(
                f"hyperparameter_noise_base must be > 1, got {hyperparameter_noise_base!r}")
        every = check_integer("every", every, minimum=1)
        if fitness is not None and not callable(fitness):
            raise ValueError(f"fitness must be a callable or None, got {fitness!r}")
        self.fitness_function = fitness
        self.rng = np.random.default_rng(seed)
        self.lineage = []
        self._pending = {}
        self._checked_size = False
        super().__init__(
            time_attr=time_attr, metric=metric, mode=mode, perturbation_interval=every,
            custom_explore_fn=self._explore_is_planned, log_config=False, synch=True)

    @staticmethod
    def _explore_is_planned(config):
        raise AssertionError("PopDescentScheduler mutates in _get_new_config, not explore")

    # ----------------------------------------------------------------- checks
    def set_search_properties(self, metric, mode, **spec) -> bool:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(
                "PopDescentScheduler needs a metric and mode 'min' or 'max' (here or in "
                f"tune.TuneConfig), got metric={self._metric!r}, mode={self._mode!r}"
            )
        super().on_trial_add(tune_controller, trial)
        for name, prior in self.priors.items():
            if name not in trial.config:
                trial.config[name] = prior.sample(self.rng)
                trial.evaluated_params[name] = trial.config[name]

    # ----------------------------------------------------------------- selection
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

    # ----------------------------------------------------------------- the barrier
    def on_trial_result(self, tune_controller, trial, result):
        """Pauses each trial when it reaches the next selection (its checkpoint is saved on
        pausing); the selection itself waits for `choose_trial_to_run`, when every live trial
        is paused there."""
        for name in (self._time_attr, self._metric):
            if name not in result:
                raise RuntimeError(
                    f"PopDescentScheduler needs {name!r} in every result; trial "
                    f"{trial.trial_id} reported {sorted(result)}"
                )
        state = self._trial_state[trial]
        time = result[self._time_attr]
        if time - state.last_perturbation_time < self._perturbation_interval:
            return self.CONTINUE
        self._save_trial_state(state, time, result, trial)
        return self.PAUSE

    def on_trial_error(self, tune_controller, trial):
        """A failed trial restarts from its latest registered checkpoint (FailureConfig):
        its place at the barrier goes back to that checkpoint's, or it would wait forever."""
        super().on_trial_error(tune_controller, trial)
        state = self._trial_state.get(trial)
        if state is None:
            return
        latest = trial.latest_checkpoint_result
        time = latest.metrics.get(self._time_attr, 0) if latest and latest.metrics else 0
        state.last_train_time = time
        state.last_perturbation_time = min(state.last_perturbation_time, time)

    def choose_trial_to_run(self, tune_controller):
        # Ray adds every trial of a basic search (up to 200) before it starts the first, so
        # the population's size is known here, before any trial runs.
        if not self._checked_size:
            size = len(tune_controller.get_trials())
            if not 1 <= self.elites < size:
                raise ValueError(
                    f"elites must be in [1, number of trials - 1] = [1, {size - 1}], got "
                    f"{self.elites}"
                )
            self._checked_size = True
        live = tune_controller.get_live_trials()
        if live and all(
            trial.status == trial.PAUSED and not trial.is_saving
            and self._trial_state[trial].last_train_time >= self._next_perturbation_sync
            for trial in live
        ):
            # Every live trial waits at the barrier with its checkpoint registered: no save
            # is in flight that could overwrite a replaced trial's new checkpoint.
            self._select(tune_controller, list(live))
            self._next_perturbation_sync = max(
                self._next_perturbation_sync + self._perturbation_interval,
                max(self._trial_state[t].last_train_time for t in live))
        return super().choose_trial_to_run(tune_controller)

    def _select(self, tune_controller, trials):
        """Plans with `plan_replacement` and restarts each replaced trial from its parent."""
        trials = sorted(trials, key=lambda t: t.trial_id)
        for trial in trials:
            state = self._trial_state[trial]
            # Snapshot every parent's checkpoint before any replacement changes a trial's
            # latest checkpoint (a replaced trial may be another's parent, as in-process).
            state.last_checkpoint = trial.checkpoint
            state.last_perturbation_time = state.last_train_time
        values = [self._trial_state[t].last_result[self._metric] for t in trials]
        fitness = self.fitness(values)
        plan = plan_replacement(fitness, min(self.elites, len(trials) - 1), self.rng)
        record = {
            "iteration": int(self._trial_state[trials[0]].last_train_time),
            "fitness": {t.trial_id: float(f) for t, f in zip(trials, fitness)},
            "elites": [trials[i].trial_id for i in plan.elites],
            "replaced": [],
        }
        parent_configs = {int(p): dict(trials[int(p)].config) for p in set(plan.parents.tolist())}
        for slot, parent, magnitude, seed in zip(plan.replaced, plan.parents, plan.magnitudes,
                                                 plan.seeds):
            trial, source = trials[int(slot)], trials[int(parent)]
            config = {key: value for key, value in parent_configs[int(parent)].items()
                      if key != RESTORE_KEY}
            values = mutate_hyperparameters(
                self.priors, {name: config[name] for name in self.priors}, magnitude,
                self.hyperparameter_noise, self.hyperparameter_noise_base, self.rng)
            restore = {
                "weight_noise": self.weight_noise * float(magnitude),
                "seed": int(seed),
                "parent": source.trial_id,
                "member_steps": self._trial_state[trial].last_result.get("member_steps"),
            }
            checkpoint = self._trial_state[source].last_checkpoint
            if checkpoint is None:
                raise RuntimeError(
                    f"trial {source.trial_id} has no checkpoint: a PopDescentScheduler "
                    "trainable must pass checkpoint=... to every tune.report"
                )
            record["replaced"].append({
                "trial": trial.trial_id, "parent": source.trial_id,
                "magnitude": float(magnitude), "weight_noise": restore["weight_noise"],
                "seed": restore["seed"], "hyperparameters": values,
                "parent_checkpoint": checkpoint.path,
            })
            self._pending[trial] = {**config, **values, RESTORE_KEY: restore}
            self._exploit(tune_controller, trial, source)
        self.lineage.append(record)
        self._write_lineage(trials[0], record)

    def _get_new_config(self, trial, trial_to_clone):
        return self._pending.pop(trial), {}

    def _write_lineage(self, trial, record):
        path = getattr(trial, "local_experiment_path", None)
        if path and os.path.isdir(path):
            with open(os.path.join(path, LINEAGE_FILE), "a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
