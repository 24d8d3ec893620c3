"""`Population`: N Keras models that train as one Keras model, in one compiled step.

The population knows nothing of any tuning algorithm. It trains its members on the same
batches (one graph on TensorFlow: one forward and one backward pass over all members, then
each member's own optimizer update), keeps each member's live hyperparameters in backend
variables, and offers strategies a small surface: measure member losses, copy a member,
perturb weights, set hyperparameters. Strategies (PopDescent, ...) are Keras callbacks.
The surface lives in mixins, one job each: `FusedTrainStep` (the compiled step),
`MemberOperations` (copy, perturb, restart a member, apply a plan), `MemberFitness`
(member losses and fitness); this module holds construction, shrinking, fit and saving.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from popdescent.population import members as members_lib
from popdescent.callbacks.backup import arrange_callbacks
from popdescent.population.budget import MemberStepBudget, check_member_steps, planned_iterations
from popdescent.population.fused_step import FusedTrainStep
from popdescent.population.member_fitness import MemberFitness
from popdescent.population.member_operations import MemberOperations
from popdescent.population.resizing import Resizing
from popdescent.population.returned_models import ReturnedModels
from popdescent.hyperparameters import prior_from_config
from popdescent.population.live_hyperparameters import LiveHyperparameters
from popdescent.population.population_optimizer import (
    LearningRateLog,
    PopulationOptimizer,
    learning_rate_floor,
)
from popdescent.inputs.training_data import (
    check_validation_freq,
    pop_input_keywords,
    training_batches,
    validate_fit_arguments,
)
from popdescent.validation import check_integer

__all__ = ["Population", "load_population"]


def _check_size(size):
    return check_integer("size", size, minimum=2)


@keras.saving.register_keras_serializable(package="popdescent")
class Population(FusedTrainStep, MemberOperations, MemberFitness, Resizing, ReturnedModels,
                 keras.Model):
    """A population of Keras models trained together; itself a `keras.Model`.

    `fit`, `evaluate`, `predict`, `save`, callbacks, History and the progress bar work the
    Keras way. One epoch of `fit` is one iteration: every member takes `steps_per_epoch`
    gradient steps on the same batches; strategy callbacks act at the end of each epoch.
    Keras' learning-rate callbacks (ReduceLROnPlateau, LearningRateScheduler) scale every
    member's rate alike through `pop.optimizer` (see `popdescent.population.population_optimizer`).

    Args:
        model_or_builder: a compiled, built `keras.Model` (each member is a clone with its own
            independently initialised weights and its own optimizer of the same class and
            config), a callable `build(index) -> compiled keras.Model`, or a list of compiled
            models used as they are.
        size: number of members, >= 2 (taken from the list when one is given).
        hyperparameters: dict name -> prior (`LogUniform`, `Uniform`, `Choice`, `Fixed`, or a
            number meaning `Fixed`). Names: `"learning_rate"` (the member optimizer's
            learning-rate variable), `"l2"` (a penalty `l2 * sum(kernel**2)` added to the
            member's training loss), `"loss_scale"` (multiplies the member's training loss,
            penalty included, before its gradient is taken: the reference code's "learning
            rate", which under Adam acts only through Adam's epsilon),
            `"learning_rate_decay"` (in (0, 1]: the member trains at its rate x decay^t, t its
            optimizer's steps since it started or restarted), any other optimizer
            attribute held in a variable, or any other name with an `Inert` prior (kept,
            mutated and recorded, read by nothing).
            Default: `{"learning_rate": LogUniform(lr / 10, lr * 10)}` around the compiled
            learning rate `lr`.
        seed: seeds member initialisation, initial hyperparameters, the batch order and the
            strategies' random draws; the same seed gives the same run on the same machine.
        l2_layers: names of the layers whose kernels the `"l2"` penalty covers; default all.

    Example:
        >>> pop = Population(model, size=5, seed=0,
        ...                  hyperparameters={"learning_rate": LogUniform(1e-4, 1e-2)})
        >>> pop.fit(x, y, batch_size=64, epochs=3, steps_per_epoch=10,
        ...         validation_data=(x_val, y_val), callbacks=[PopDescent(elites=3)])
    """

    def __init__(
        self,
        model_or_builder,
        size=None,
        hyperparameters=None,
        seed=None,
        l2_layers=None,
        name="population",
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "Population's fused train step is written for the TensorFlow backend; "
                f"KERAS_BACKEND is {keras.backend.backend()!r}"
            )
        # A population that shrank (keep_members) is saved with fewer than two members; only
        # loading it may rebuild one that small.
        minimum_size = kwargs.pop("_minimum_size", 2)
        super().__init__(name=name, **kwargs)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = int(seed)
        member_seeds, hyper_seed, self.data_seed, self.strategy_seed = np.random.SeedSequence(
            self.seed
        ).generate_state(4)
        self.members = self._make_members(model_or_builder, size, int(member_seeds),
                                          minimum_size)
        self.size = len(self.members)
        self.starting_size = self.size  # before any shrink or growth: ensembles' default k
        self.live_hyperparameters = LiveHyperparameters(self.members, hyperparameters)
        # An attribute list, so that Keras tracks (and `save` writes) these variables.
        self._hyperparameter_variables = self.live_hyperparameters.own_variables()
        self.l2_layers = None if l2_layers is None else list(l2_layers)
        self._l2_kernels = [members_lib.kernel_variables(m, self.l2_layers) for m in self.members]
        hyper_rng = np.random.default_rng(int(hyper_seed))
        for index in range(self.size):
            self.set_hyperparameters(
                index, {name: prior.sample(hyper_rng) for name, prior in self.priors.items()}
            )
        # What Keras callbacks see as `pop.optimizer`; it holds the member-step counter,
        # which is no weight of the model, so restoring weights does not rewind it.
        self._population_optimizer = PopulationOptimizer(self.live_hyperparameters)
        self._loss_trackers = [keras.metrics.Mean(name=f"loss_{i}") for i in range(self.size)]
        self.fitness = None
        self.last_losses = None
        self.lineage = []
        # Each member's hyperparameters and the step count when the lineage began (set by
        # the first strategy to run), the origin of `exported_schedule`.
        self.lineage_start = None
        self.learning_rate_schedule = None
        self.training_data = None
        self.validation_data = None
        self.traces = 0  # Python side effect in the train step: counts (re)traces
        self.forget_fitness_functions()
        self.forget_operation_functions()
        self.nonfinite = np.zeros(self.size, dtype=bool)
        # The slot each member held when the population was made: after a shrink
        # (`keep_members`) it says which of the original members are left.
        self.origins = list(range(self.size))
        self._origin_count = self.size  # origins ever held: the next new member's is this
        # Members that finished training and left the fused step, at their best check's
        # weights (`popdescent.population.finished`); a tracked list of their models, which
        # `save` writes.
        self.finished_members = []
        self._finished_models = []
        self.member_step_budget = None  # set by fit(member_steps=...)
        self._budget_start = 0
        self._initial_weights = None
        self.built = True
        self.compile()

    # ----------------------------------------------------------------- construction
    def _make_members(self, model_or_builder, size, member_seed, minimum_size=2):
        seeds = np.random.SeedSequence(member_seed).generate_state(256)
        if isinstance(model_or_builder, (list, tuple)):
            members = list(model_or_builder)
            if size is not None and _check_size(size) != len(members):
                raise ValueError(f"size={size} but {len(members)} models were given")
            if len(members) < minimum_size:
                _check_size(len(members))
            for index, member in enumerate(members):
                members_lib.check_compiled_model(member, f"model_or_builder[{index}]")
                if not member.optimizer.built:
                    member.optimizer.build(member.trainable_variables)
            return members
        size = _check_size(size)
        if size > len(seeds):
            seeds = np.random.SeedSequence(member_seed).generate_state(size)
        if isinstance(model_or_builder, keras.Model):
            members_lib.check_compiled_model(model_or_builder, "model_or_builder")
            return [members_lib.clone_member(model_or_builder, int(s), index)
                    for index, s in enumerate(seeds[:size])]
        if callable(model_or_builder):
            return [
                members_lib.build_member(model_or_builder, i, int(seeds[i])) for i in range(size)
            ]
        raise TypeError(
            "model_or_builder must be a compiled keras.Model, a callable build(index), or a "
            f"list of compiled models, got {type(model_or_builder).__name__}"
        )

    # ----------------------------------------------------------------- hyperparameters
    @property
    def priors(self) -> dict:
        """Name -> prior of every tuned hyperparameter."""
        return self.live_hyperparameters.priors

    def set_hyperparameters(self, index, values: dict) -> None:
        """Assigns live hyperparameter values to member `index`, clipped to their priors' bounds.

        The values sit in backend variables that the compiled step reads, so they take effect
        at the next step with no recompilation and no retrace.
        """
        self.live_hyperparameters.assign(index, values)

    def hyperparameters_of(self, index) -> dict:
        """Member `index`'s live hyperparameter values as Python floats."""
        return self.live_hyperparameters.values_of(index)

    def hyperparameter_values(self) -> list:
        """A table: one dict of live hyperparameter values per member."""
        return [self.hyperparameters_of(index) for index in range(self.size)]

    # ----------------------------------------------------------------- progress and state
    @property
    def gradient_steps(self) -> int:
        """Member-steps taken so far: every gradient step of every member that actually ran.
        Only training moves it: restoring earlier weights does not rewind it."""
        return int(self.optimizer.iterations.numpy())

    @property
    def progress(self):
        """The share of `fit(member_steps=B)`'s budget spent, in [0, 1]; None without one."""
        if self.member_step_budget is None:
            return None
        return min(1.0, (self.gradient_steps - self._budget_start) / self.member_step_budget)

    def state_variables(self) -> list:
        """Every variable of the training state, in a fixed order: each member's variables
        (weights and non-trainable state such as dropout seeds) and its optimizer's (step
        count, learning rate, slots), then the population's hyperparameter variables, the
        callbacks' learning-rate scale and the step counter. Restoring these, the strategies'
        generators, `fitness` and `lineage` restores the run."""
        variables = []
        for member in self.members:
            variables.extend(member.variables)
            variables.extend(member.optimizer.variables)
        variables.extend(self.live_hyperparameters.own_variables())
        if self.live_hyperparameters.learning_rate_scale is not None:
            variables.append(self.live_hyperparameters.learning_rate_scale)
        variables.append(self.optimizer.iterations)
        return variables

    # ----------------------------------------------------------------- Keras model API
    def call(self, inputs, training=False):
        """Every member's output on the same inputs, as a list (so `predict` returns a list)."""
        return [member(inputs, training=training) for member in self.members]

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=None,
        verbose="auto",
        callbacks=None,
        validation_data=None,
        steps_per_epoch=None,
        initial_epoch=0,
        validation_freq=1,
        member_steps=None,
        **kwargs,
    ):
        """Trains every member for `epochs` iterations of exactly `steps_per_epoch` steps.

        `member_steps=B` instead of `epochs` trains until B member-steps have run (every
        member's every gradient step counted; a population of 5 spends 5 per batch), so
        strategies and schedules can plan with `progress`. It stops before a batch that would
        overspend, so B is spent exactly when the last size divides what is left (always for
        a population that shrinks to one member). The number of iterations follows from B:
        from the callbacks' `planned_iterations` when one shrinks the population.

        x, y, `sample_weight`, `class_weight`, `validation_split` and `validation_data` are
        what Keras takes (arrays, lists or dicts of them; x a `tf.data.Dataset`, PyDataset or
        generator), all checked before a step runs. Array batches come from a seeded
        permutation per pass, wrapping around; a finite dataset is repeated: each iteration
        runs exactly `steps_per_epoch` steps (default: one pass; required for input of unknown
        length). A resume replays arrays exactly and re-reads a dataset or generator, skipping
        the steps reached (`popdescent.inputs.dataset_inputs` says more).

        Strategy callbacks run first, so that the others (TensorBoard, EarlyStopping, ...)
        see the fitness they log; a `popdescent.BackupAndRestore` callback runs last (each
        is moved there in `callbacks`); when it restores a backup, training resumes at the
        next iteration and the batch stream at the step it had reached.
        """
        inputs = pop_input_keywords(kwargs)
        if member_steps is not None and epochs is not None:
            raise ValueError(
                f"give fit either epochs or member_steps, not both (got epochs={epochs!r}, "
                f"member_steps={member_steps!r})"
            )
        if member_steps is not None:
            member_steps = check_member_steps(member_steps, self.size)
            if steps_per_epoch is None:
                raise ValueError("fit(member_steps=...) needs steps_per_epoch (steps per "
                                 "iteration, between two selections)")
            epochs = initial_epoch + planned_iterations(
                callbacks or [], member_steps, self.size, steps_per_epoch)
        data = validate_fit_arguments(
            x, y, batch_size, 1 if epochs is None else epochs, steps_per_epoch,
            validation_data, initial_epoch, self.members[0],
            validation_steps=kwargs.get("validation_steps"), **inputs,
        )
        check_validation_freq(validation_freq)
        if data.steps_per_epoch % self.steps_per_execution:
            # Keras runs whole executions: 7 steps at 3 per execution would run 9.
            raise ValueError(
                f"steps_per_epoch must be a multiple of steps_per_execution = "
                f"{self.steps_per_execution} (see Population.compile), got {data.steps_per_epoch}"
            )
        callbacks = arrange_callbacks(callbacks)
        self.live_hyperparameters.set_floor(learning_rate_floor(callbacks))
        callbacks.insert(0, LearningRateLog())
        self.member_step_budget = member_steps
        self._budget_start = self.gradient_steps
        if member_steps is not None:
            callbacks.insert(0, MemberStepBudget())
        if self._initial_weights is None and any(
            getattr(callback, "needs_initial_weights", False) for callback in callbacks
        ):
            self._initial_weights = [
                [tf.identity(v.value) for v in member.trainable_variables]
                for member in self.members
            ]
        self.training_data = data
        self.validation_data = data.validation
        self._prepare_members(data.x_spec, data.y_spec)
        # Keras' BackupAndRestore mechanism: a restoring callback sets `_initial_epoch` in
        # on_train_begin, which runs after the dataset exists, so the stream's first step
        # is read lazily, when Keras first pulls a batch.
        self._initial_epoch = None
        dataset = training_batches(
            data,
            seed=int(self.data_seed),
            start_step=lambda: data.steps_per_epoch * (self._initial_epoch or data.initial_epoch),
        )
        try:
            return super().fit(
                dataset,
                epochs=data.epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_data=data.keras_validation,
                steps_per_epoch=data.steps_per_epoch,
                initial_epoch=data.initial_epoch,
                validation_freq=validation_freq,
                validation_batch_size=data.batch_size if data.source is None else None,
                shuffle=False,  # the stream is already a seeded shuffle
                **kwargs,
            )
        finally:
            self._initial_epoch = None  # Keras would carry a restored epoch to the next fit

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Every member's loss and metrics on (x, y): `loss_i`, `accuracy_i`, ..., plus the
        population's mean `loss` and `best_loss` over its finite members and the count of
        `nonfinite_members`."""
        self._prepare_members(x, y)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    # ----------------------------------------------------------------- saving
    def get_config(self):
        return {
            "name": self.name,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "hyperparameters": {name: prior.get_config() for name, prior in self.priors.items()},
            "seed": self.seed,
            "l2_layers": self.l2_layers,
            "origins": list(self.origins),
            "origin_count": self.next_origin,
            "starting_size": self.starting_size,
            # Not weights (restoring weights must not rewind or rescale them): kept here.
            "gradient_steps": self.gradient_steps,
            "learning_rate_scale": self.live_hyperparameters.scale_value(),
            "finished": [{**entry.info(),
                          "config": keras.saving.serialize_keras_object(entry.model)}
                         for entry in self.finished_members],
        }

    @classmethod
    def from_config(cls, config):
        origins = config.get("origins", list(range(len(config["members"]))))
        members = []
        for origin, member_config in zip(origins, config["members"], strict=True):
            with members_lib.member_scope(origin):
                members.append(keras.saving.deserialize_keras_object(member_config))
        priors = {name: prior_from_config(c) for name, c in config["hyperparameters"].items()}
        population = cls(
            members,
            hyperparameters=priors,
            seed=config["seed"],
            l2_layers=config["l2_layers"],
            name=config["name"],
            _minimum_size=1,
        )
        population.origins = list(origins)
        if config.get("finished"):  # their weights load with the population's
            from popdescent.population.finished import restore_finished

            population.set_finished(restore_finished({}, config["finished"], weights=False))
        population._origin_count = int(config.get("origin_count", max(origins) + 1))
        population.starting_size = int(config.get("starting_size", len(origins)))
        population.optimizer.iterations.assign(config.get("gradient_steps", 0))
        if config.get("learning_rate_scale") is not None:
            population.live_hyperparameters.learning_rate_scale.assign(
                config["learning_rate_scale"])
        return population


def load_population(path, safe_mode=True) -> Population:
    """Loads a population saved with `pop.save(path)` (a `.keras` file): members, each
    member's optimizer state, live hyperparameters, priors and the step counter.

    `safe_mode` (default on) refuses to run code stored in the file (Lambda layers and other
    pickled functions). A missing file raises FileNotFoundError; a truncated, tampered or
    foreign file raises ValueError naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no population file at {path!r}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", message="Skipping variable loading")
            population = keras.saving.load_model(
                path, custom_objects={"Population": Population}, safe_mode=safe_mode
            )
        # Keras only warns when an optimizer's saved state does not fit it, and loads the
        # member with fresh optimizer state; a population file must load completely.
        skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
        if skipped:
            raise ValueError(skipped[0])
        for warning in caught:  # the others, as they would have shown
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno, module="keras")
    except Exception as error:
        raise ValueError(
            f"could not load a population from {path!r}: the file is truncated, tampered with, "
            f"or not written by Population.save ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(population, Population):
        raise ValueError(
            f"{path!r} holds a {type(population).__name__}, not a popdescent Population"
        )
    return population
