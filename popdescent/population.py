"""`Population`: N Keras models that train as one Keras model, in one compiled step.

The population knows nothing of any tuning algorithm. It trains its members on the same
batches (one graph on TensorFlow: one forward and one backward pass over all members, then
each member's own optimizer update), keeps each member's live hyperparameters in backend
variables, and offers strategies a small surface: measure member losses, copy a member,
perturb weights, set hyperparameters. Strategies (PopDescent, ...) are Keras callbacks.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from popdescent import members as members_lib
from popdescent.hyperparameters import Fixed, Inert, LogUniform, as_prior, prior_from_config
from popdescent.selection import inverse_loss_fitness, sanitize_fitness
from popdescent.training_data import (
    FitData,
    check_validation_freq,
    index_batches,
    validate_fit_arguments,
)

__all__ = ["Population", "load_population"]

# Below this many trainable parameters per member, the optimizer update is a small part of a
# step and XLA's compile time (about a second per member on a 2-core CPU) does not pay back
# in a short run; see Population.compile.
_XLA_UPDATE_MIN_PARAMETERS = 100_000


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    return int(size)


# The values an optimizer (or the l2 penalty) can take; a prior reaching outside is rejected
# before training, not discovered as a NaN member later. (low, low is allowed)
_HYPERPARAMETER_RANGES = {
    "learning_rate": (0.0, False),
    "l2": (0.0, True),
    "loss_scale": (0.0, False),
    "weight_decay": (0.0, True),
    "epsilon": (0.0, False),
}


def _prior_extent(prior):
    """The smallest and largest value a prior can ever give (its bounds, or its values)."""
    if isinstance(prior, Fixed):
        return prior.value, prior.value
    if hasattr(prior, "values"):
        return min(prior.values), max(prior.values)
    return prior.bounds


def _check_prior_range(name, prior):
    if name not in _HYPERPARAMETER_RANGES:
        return
    low, inclusive = _HYPERPARAMETER_RANGES[name]
    smallest, largest = _prior_extent(prior)
    if smallest < low or (smallest == low and not inclusive):
        allowed = f"[{low}, inf)" if inclusive else f"({low}, inf)"
        raise ValueError(
            f"hyperparameters[{name!r}] must stay within {allowed} (what the optimizer can "
            f"take), but its prior reaches {smallest}: {prior}"
        )


def _representable_within(prior, value, dtype):
    """`value` clipped to the prior's bounds and rounded to the variable's dtype without
    leaving them (float32 rounding of 1e-6, for example, lands just below 1e-6). Compared as
    Python floats: NumPy 2 would compare a float32 with a Python float in float32."""
    clipped = prior.clip(value)
    low, high = getattr(prior, "bounds", (-np.inf, np.inf))
    numpy_dtype = np.dtype(keras.backend.standardize_dtype(dtype))
    rounded = numpy_dtype.type(clipped)
    if float(rounded) < low:
        rounded = np.nextafter(numpy_dtype.type(low), numpy_dtype.type(np.inf))
    elif float(rounded) > high:
        rounded = np.nextafter(numpy_dtype.type(high), numpy_dtype.type(-np.inf))
    return rounded


@keras.saving.register_keras_serializable(package="popdescent")
class Population(keras.Model):
    """A population of Keras models trained together; itself a `keras.Model`.

    `fit`, `evaluate`, `predict`, `save`, callbacks, History and the progress bar work the
    Keras way. One epoch of `fit` is one iteration: every member takes `steps_per_epoch`
    gradient steps on the same batches; strategy callbacks act at the end of each epoch.

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
            rate", which under Adam acts only through Adam's epsilon), any other optimizer
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
        super().__init__(name=name, **kwargs)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = int(seed)
        member_seeds, hyper_seed, self.data_seed, self.strategy_seed = np.random.SeedSequence(
            self.seed
        ).generate_state(4)
        self.members = self._make_members(model_or_builder, size, int(member_seeds))
        self.size = len(self.members)
        self.priors = self._resolve_priors(hyperparameters)
        self.l2_layers = None if l2_layers is None else list(l2_layers)
        self._l2_kernels = [members_lib.kernel_variables(m, self.l2_layers) for m in self.members]
        self._l2_variables = [
            keras.Variable(0.0, trainable=False, name=f"l2_{i}") for i in range(self.size)
        ] if "l2" in self.priors else None
        self._loss_scale_variables = [
            keras.Variable(1.0, trainable=False, name=f"loss_scale_{i}") for i in range(self.size)
        ] if "loss_scale" in self.priors else None
        self._inert_variables = {
            name: [keras.Variable(0.0, trainable=False, name=f"{name}_{i}")
                   for i in range(self.size)]
            for name, prior in self.priors.items() if isinstance(prior, Inert)
        }
        hyper_rng = np.random.default_rng(int(hyper_seed))
        for index in range(self.size):
            self.set_hyperparameters(
                index, {name: prior.sample(hyper_rng) for name, prior in self.priors.items()}
            )
        self._member_steps = keras.Variable(0, dtype="int64", trainable=False, name="steps")
        self._loss_trackers = [keras.metrics.Mean(name=f"loss_{i}") for i in range(self.size)]
        self.fitness = None
        self.lineage = []
        self.training_data = None
        self.validation_data = None
        self.traces = 0  # Python side effect in the train step: counts (re)traces
        self._member_loss_function = None
        self._nonfinite_function = None
        self.nonfinite = np.zeros(self.size, dtype=bool)
        self.built = True
        self.compile()

    # ----------------------------------------------------------------- construction
    def _make_members(self, model_or_builder, size, member_seed):
        seeds = np.random.SeedSequence(member_seed).generate_state(256)
        if isinstance(model_or_builder, (list, tuple)):
            members = list(model_or_builder)
            if size is not None and _check_size(size) != len(members):
                raise ValueError(f"size={size} but {len(members)} models were given")
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
            return [members_lib.clone_member(model_or_builder, int(s)) for s in seeds[:size]]
        if callable(model_or_builder):
            return [
                members_lib.build_member(model_or_builder, i, int(seeds[i])) for i in range(size)
            ]
        raise TypeError(
            "model_or_builder must be a compiled keras.Model, a callable build(index), or a "
            f"list of compiled models, got {type(model_or_builder).__name__}"
        )

    def _resolve_priors(self, hyperparameters):
        if hyperparameters is None:
            learning_rate = self._learning_rate_variable(0)
            if learning_rate is None:
                return {}
            value = float(learning_rate.numpy())
            hyperparameters = {"learning_rate": LogUniform(value / 10, value * 10)}
        if not isinstance(hyperparameters, dict):
            raise TypeError(
                f"hyperparameters must be a dict name -> prior, got {type(hyperparameters).__name__}"
            )
        priors = {}
        for name, prior in hyperparameters.items():
            prior = as_prior(name, prior)
            if isinstance(prior, Inert):
                self._check_inert_name(name)
            elif name not in ("l2", "loss_scale"):
                self._check_optimizer_hyperparameter(name)
            _check_prior_range(name, prior)
            priors[name] = prior
        return priors

    def _check_optimizer_hyperparameter(self, name):
        for index, member in enumerate(self.members):
            variable = getattr(member.optimizer, name, None)
            if not isinstance(variable, keras.Variable):
                allowed = ["l2", "loss_scale"] + [
                    attribute
                    for attribute in ("learning_rate",)
                    if isinstance(getattr(member.optimizer, attribute, None), keras.Variable)
                ]
                raise ValueError(
                    f"unknown or untunable hyperparameter {name!r}: member {index}'s optimizer "
                    f"{type(member.optimizer).__name__} holds no variable called {name!r} "
                    "(a learning-rate schedule cannot be tuned); allowed names: "
                    f"{allowed}, or any other name with an Inert prior"
                )

    def _check_inert_name(self, name):
        if name in ("learning_rate", "l2", "loss_scale") or any(
            isinstance(getattr(member.optimizer, name, None), keras.Variable)
            for member in self.members
        ):
            raise ValueError(
                f"hyperparameters[{name!r}] is Inert, but training reads {name!r}: an inert "
                "hyperparameter needs a name of its own (for example 'reg_constant')"
            )

    def _learning_rate_variable(self, index):
        variable = getattr(self.members[index].optimizer, "learning_rate", None)
        return variable if isinstance(variable, keras.Variable) else None

    # ----------------------------------------------------------------- hyperparameters
    def _hyperparameter_variable(self, index, name):
        if name == "l2":
            return self._l2_variables[index]
        if name == "loss_scale":
            return self._loss_scale_variables[index]
        if name in self._inert_variables:
            return self._inert_variables[name][index]
        return getattr(self.members[index].optimizer, name)

    def set_hyperparameters(self, index, values: dict) -> None:
        """Assigns live hyperparameter values to member `index`, clipped to their priors' bounds.

        The values sit in backend variables that the compiled step reads, so they take effect
        at the next step with no recompilation and no retrace.
        """
        for name, value in values.items():
            if name not in self.priors:
                raise ValueError(f"unknown hyperparameter {name!r}; tuned: {sorted(self.priors)}")
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ) or np.isnan(value):
                raise ValueError(
                    f"hyperparameter {name!r} of member {index} must be a number (values "
                    f"beyond the bounds are clipped to them), got {value!r}"
                )
            variable = self._hyperparameter_variable(index, name)
            variable.assign(_representable_within(self.priors[name], value, variable.dtype))

    def hyperparameters_of(self, index) -> dict:
        """Member `index`'s live hyperparameter values as Python floats."""
        return {
            name: float(ops.convert_to_numpy(self._hyperparameter_variable(index, name)))
            for name in self.priors
        }

    def hyperparameter_values(self) -> list:
        """A table: one dict of live hyperparameter values per member."""
        return [self.hyperparameters_of(index) for index in range(self.size)]

    # ----------------------------------------------------------------- member operations
    def member(self, index) -> keras.Model:
        """Member `index` itself (not a copy): training it changes the population."""
        return self.members[index]

    def _member_variables(self, index):
        member = self.members[index]
        return list(member.weights) + list(member.optimizer.variables)

    def member_state(self, index) -> list:
        """A snapshot (tensors) of member `index`: weights, optimizer state, hyperparameters."""
        variables = self._member_variables(index)
        snapshot = [tf.identity(variable.value) for variable in variables]
        return snapshot + [self.hyperparameters_of(index)]

    def load_member_state(self, index, state) -> None:
        """Overwrites member `index` with a `member_state` snapshot (backend assigns)."""
        *tensors, hyperparameters = state
        for variable, value in zip(self._member_variables(index), tensors, strict=True):
            variable.assign(value)
        self.set_hyperparameters(index, hyperparameters)

    def copy_member(self, source, destination) -> None:
        """Member `destination` becomes a copy of `source`: weights, its own copy of the
        optimizer state, and hyperparameters."""
        if source != destination:
            self.load_member_state(destination, self.member_state(source))

    def perturb_weights(self, index, stddev, seed) -> None:
        """Adds independent Gaussian noise N(0, stddev) to every trainable weight of member
        `index`; `seed` (an int) makes the draw reproducible."""
        if stddev <= 0:
            return
        if getattr(self, "_perturbations", None) is None:
            self._perturbations = {}
        if index not in self._perturbations:
            self._perturbations[index] = tf.function(self._perturbation(index))
        self._perturbations[index](
            tf.constant(int(seed), tf.int64), tf.constant(float(stddev), tf.float64)
        )

    def _perturbation(self, index):
        # One traced function per member: one dispatch instead of one per weight, and the
        # weights' draws run in parallel (the same draws as op by op: same seeds, same kernel).
        variables = self.members[index].trainable_variables

        def perturb(seed, stddev):
            for position, variable in enumerate(variables):
                noise = tf.random.stateless_normal(
                    variable.shape,
                    seed=tf.stack([seed, tf.constant(position, tf.int64)]),
                    stddev=tf.cast(stddev, variable.dtype),
                    dtype=variable.dtype,
                )
                variable.assign_add(noise)

        return perturb

    def shift_weights(self, index, offset) -> None:
        """Adds the same number `offset` to every trainable weight of member `index`: the
        reference code's weight mutation (one scalar draw for the whole model)."""
        if isinstance(offset, bool) or not isinstance(
            offset, (int, float, np.integer, np.floating)
        ) or not np.isfinite(offset):
            raise ValueError(f"offset must be a finite number, got {offset!r}")
        for variable in self.members[index].trainable_variables:
            variable.assign(variable.value + ops.cast(offset, variable.dtype))

    def set_member_weights(self, index, weights) -> None:
        """Assigns a list of tensors to member `index`'s trainable weights (backend assigns)."""
        for variable, value in zip(self.members[index].trainable_variables, weights, strict=True):
            variable.assign(value)

    # ----------------------------------------------------------------- fitness
    @property
    def gradient_steps(self) -> int:
        """Member-steps taken so far: every gradient step of every member that actually ran."""
        return int(self._member_steps.numpy())

    def _member_losses_graph(self, x, y):
        return ops.stack([
            member.compute_loss(x=x, y=y, y_pred=member(x, training=False), training=False)
            for member in self.members
        ])

    def member_losses(self, x, y, batch_size=None) -> np.ndarray:
        """Each member's loss on (x, y), as `member.evaluate` computes it; shape (size,)."""
        if self._member_loss_function is None:
            self._member_loss_function = tf.function(
                self._member_losses_graph, reduce_retracing=True
            )
        count = len(x)
        batch_size = count if batch_size is None else int(batch_size)
        total = np.zeros(self.size, dtype=np.float64)
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            losses = self._member_loss_function(x[start:stop], y[start:stop]).numpy()
            total += losses.astype(np.float64) * (stop - start)
        return total / count

    def evaluate_fitness(self, x, y, fitness=inverse_loss_fitness, batch_size=None) -> np.ndarray:
        """Measures every member's fitness on (x, y), stores it in `self.fitness`, returns it.

        A member whose loss, weights or optimizer state is non-finite gets fitness 0, whatever
        the fitness function says; the mask is kept in `self.nonfinite`.
        """
        losses = self.member_losses(x, y, batch_size)
        self.nonfinite = ~np.isfinite(losses) | self.nonfinite_members()
        self.fitness = sanitize_fitness(fitness(losses))
        self.fitness[self.nonfinite] = 0.0
        return self.fitness

    def nonfinite_members(self) -> np.ndarray:
        """A boolean mask, shape (size,): True where a member's weights or optimizer state hold
        a NaN or an infinity (one compiled check over all members, no retrace)."""
        if self._nonfinite_function is None:
            groups = [
                [v for v in self._member_variables(i) if "float" in str(v.dtype)]
                for i in range(self.size)
            ]

            def check():
                return tf.stack([
                    tf.logical_not(tf.reduce_all(tf.stack(
                        [tf.reduce_all(tf.math.is_finite(v.value)) for v in group])))
                    for group in groups
                ])

            self._nonfinite_function = tf.function(check)
        return self._nonfinite_function().numpy()

    def state_variables(self) -> list:
        """Every variable of the training state, in a fixed order: each member's variables
        (weights and non-trainable state such as dropout seeds) and its optimizer's (step
        count, learning rate, slots), then the l2 variables and the step counter. Restoring
        these, the strategies' generators, `fitness` and `lineage` restores the run."""
        variables = []
        for member in self.members:
            variables.extend(member.variables)
            variables.extend(member.optimizer.variables)
        variables.extend(self._l2_variables or [])
        variables.extend(self._loss_scale_variables or [])
        for inert in self._inert_variables.values():
            variables.extend(inert)
        variables.append(self._member_steps)
        return variables

    def best_index(self) -> int:
        """Index of the fittest member by the last recorded fitness (never by test data)."""
        if self.fitness is None:
            raise ValueError(
                "no fitness recorded yet: fit with a strategy callback such as PopDescent, or "
                "call pop.evaluate_fitness(x_val, y_val)"
            )
        fitness = np.where(np.isnan(self.fitness), -np.inf, self.fitness)
        return int(np.argmax(fitness))

    def best_model(self) -> keras.Model:
        """A plain compiled `keras.Model`: an independent copy of the fittest member, compiled
        like it with an optimizer at its live learning rate (fresh optimizer state)."""
        member = self.members[self.best_index()]
        copy = keras.models.clone_model(member)
        copy.set_weights(member.get_weights())
        copy.compile_from_config(member.get_compile_config())
        return copy

    # ----------------------------------------------------------------- Keras model API
    def call(self, inputs, training=False):
        """Every member's output on the same inputs, as a list (so `predict` returns a list)."""
        return [member(inputs, training=training) for member in self.members]

    def compile(self, jit_compile=False, steps_per_execution=1, run_eagerly=False,
                jit_compile_updates="auto", **kwargs):
        """Sets how the fused step runs. Members keep their own optimizers and losses.

        Args:
            jit_compile: True compiles the whole fused step with XLA (Keras' meaning). Off by
                default: on CPU, TensorFlow's oneDNN convolutions and their gradients took
                less time than XLA's, and XLA's fork-join threads suffer more when the cores
                are shared (see experiments/throughput.py).
            steps_per_execution: steps run per call of the compiled function (Keras' meaning);
                callbacks' per-batch hooks see every `steps_per_execution`-th batch.
            run_eagerly: run the step eagerly, for debugging.
            jit_compile_updates: True compiles each member's optimizer update with XLA, the
                rest of the step staying on TensorFlow's kernels. An update is a chain of
                elementwise operations over every weight (Adam: about a dozen full-size passes
                through memory) that XLA fuses into one pass: on the paper's FMNIST CNN, Adam's
                update took a quarter of the CPU time. Compiling costs about a second per
                member, so `"auto"` (the default) turns it on only for members of at least
                100,000 trainable parameters. It has no effect with `jit_compile` or
                `run_eagerly`; set it False for an optimizer that XLA cannot compile.
        """
        if kwargs:
            raise ValueError(
                "a Population is compiled through its members; compile accepts only "
                "jit_compile, steps_per_execution, run_eagerly and jit_compile_updates, got "
                f"{sorted(kwargs)}"
            )
        if not (jit_compile is True or jit_compile is False or jit_compile == "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
        if isinstance(steps_per_execution, bool) or not isinstance(
            steps_per_execution, (int, np.integer)
        ) or steps_per_execution < 1:
            raise ValueError(
                f"steps_per_execution must be an integer >= 1, got {steps_per_execution!r}"
            )
        if not (
            jit_compile_updates is True or jit_compile_updates is False
            or jit_compile_updates == "auto"
        ):
            raise ValueError(
                f"jit_compile_updates must be True, False or 'auto', got {jit_compile_updates!r}"
            )
        super().compile(
            optimizer=None,
            loss=None,
            jit_compile=jit_compile,
            steps_per_execution=int(steps_per_execution),
            run_eagerly=run_eagerly,
        )
        if jit_compile_updates == "auto":
            smallest = min(
                sum(int(np.prod(v.shape)) for v in member.trainable_variables)
                for member in self.members
            )
            jit_compile_updates = smallest >= _XLA_UPDATE_MIN_PARAMETERS
        self.jit_compile_updates = jit_compile_updates  # resolved, as Keras does jit_compile
        self._member_updates = None
        if jit_compile_updates and not self.jit_compile and not self.run_eagerly:
            self._member_updates = [self._compiled_update(member) for member in self.members]

    @staticmethod
    def _compiled_update(member):
        def update(gradients):
            member.optimizer.apply(gradients, member.trainable_variables)

        # Called from inside the traced train step, this becomes one XLA cluster per member:
        # members' updates can still overlap with each other and with other members' backward
        # passes on TensorFlow's inter-op threads.
        return tf.function(update, jit_compile=True, reduce_retracing=True)

    @property
    def metrics(self):
        tracked = list(self._loss_trackers) if hasattr(self, "_loss_trackers") else []
        for member in getattr(self, "members", []):
            tracked.extend(metric for metric in member.metrics if metric.name != "loss")
        return tracked

    def _penalised_loss(self, index, x, y, sample_weight):
        member = self.members[index]
        y_pred = member(x, training=True)
        loss = member.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        if self._l2_variables is not None and self._l2_kernels[index]:
            squares = ops.sum(ops.stack([ops.sum(ops.square(k)) for k in self._l2_kernels[index]]))
            loss = loss + ops.cast(self._l2_variables[index], loss.dtype) * squares
        return y_pred, loss

    def _scaled_loss(self, index, loss):
        # What the member differentiates, not what it reports: the logs keep the unscaled
        # loss, as the reference code reported its cross-entropy before scaling.
        if self._loss_scale_variables is None:
            return loss
        return loss * ops.cast(self._loss_scale_variables[index], loss.dtype)

    def train_step(self, data):
        self.traces += 1
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = [self._penalised_loss(i, x, y, sample_weight) for i in range(self.size)]
            # Members share no variables, so the gradient of the sum is each member's own.
            total = ops.sum(ops.stack([
                self._scaled_loss(index, loss) for index, (_, loss) in enumerate(outputs)
            ]))
        variables = [member.trainable_variables for member in self.members]
        gradients = tape.gradient(total, variables)
        for index, (member, grads, weights) in enumerate(zip(self.members, gradients, variables)):
            if self._member_updates is None:
                member.optimizer.apply(grads, weights)
            else:
                self._member_updates[index](grads)
        self._member_steps.assign_add(self.size)
        return self._update_logs(x, y, sample_weight, outputs, self._member_steps)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = []
        for member in self.members:
            y_pred = member(x, training=False)
            loss = member.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
            outputs.append((y_pred, loss))
        return self._update_logs(x, y, sample_weight, outputs)

    def _update_logs(self, x, y, sample_weight, outputs, steps=None):
        logs, losses = {}, []
        batch = ops.shape(ops.convert_to_tensor(keras.tree.flatten(x)[0]))[0]
        for index, (member, (y_pred, loss)) in enumerate(zip(self.members, outputs)):
            self._loss_trackers[index].update_state(loss, sample_weight=batch)
            losses.append(self._loss_trackers[index].result())
            logs[f"loss_{index}"] = losses[-1]
            member.compute_metrics(x, y, y_pred, sample_weight)
            for metric in member.metrics:
                if metric.name == "loss":
                    continue
                result = metric.result()
                results = result if isinstance(result, dict) else {metric.name: result}
                logs.update({f"{key}_{index}": value for key, value in results.items()})
        logs["loss"] = ops.mean(ops.stack(losses))
        logs["best_loss"] = ops.min(ops.stack(losses))
        if steps is not None:
            logs["gradient_steps"] = steps
        return logs

    def _prepare_members(self, x, y):
        """Builds members' compiled metrics eagerly from one sample, outside any traced step."""
        for member in self.members:
            if any(not metric.built for metric in member.metrics if metric.name != "loss"):
                member.compute_metrics(x[:1], y[:1], member(x[:1], training=False))
                member.reset_metrics()

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_data=None,
        steps_per_epoch=None,
        initial_epoch=0,
        validation_freq=1,
        **kwargs,
    ):
        """Trains every member for `epochs` iterations of exactly `steps_per_epoch` steps.

        x, y are arrays (validated before anything trains). Batches are drawn without
        replacement from a seeded permutation of the data, reshuffled on every pass and
        wrapping around, so each iteration runs exactly `steps_per_epoch` steps (Keras' own
        array input cuts an epoch short when the data runs out). `steps_per_epoch` defaults
        to one pass over the data. `validation_steps` goes to `keras.Model.fit`.

        A `popdescent.BackupAndRestore` callback always runs after the strategies (it is
        moved to the end of `callbacks`); when it restores a backup, training resumes at
        the next iteration and the batch stream at the step it had reached.
        """
        from popdescent.backup import arrange_callbacks  # backup imports the strategies

        unsupported = sorted(set(kwargs) - {"validation_steps"})
        if unsupported:
            raise ValueError(
                f"Population.fit does not take {unsupported}: it feeds its own seeded batch "
                "stream (no validation_split, sample_weight, class_weight, shuffle or "
                "validation_batch_size); allowed extra argument: validation_steps"
            )
        data = validate_fit_arguments(
            x, y, batch_size, epochs, steps_per_epoch, validation_data, initial_epoch,
            self.members[0],
        )
        check_validation_freq(validation_freq)
        if data.steps_per_epoch % self.steps_per_execution:
            # Keras runs whole executions: 7 steps at 3 per execution would run 9.
            raise ValueError(
                f"steps_per_epoch must be a multiple of steps_per_execution = "
                f"{self.steps_per_execution} (see Population.compile), got {data.steps_per_epoch}"
            )
        callbacks = arrange_callbacks(callbacks)
        self.training_data = data
        self.validation_data = data.validation
        self._prepare_members(data.x, data.y)
        # Keras' BackupAndRestore mechanism: a restoring callback sets `_initial_epoch` in
        # on_train_begin, which runs after the dataset exists, so the stream's first step
        # is read lazily, when Keras first pulls a batch.
        self._initial_epoch = None
        dataset = index_batches(
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
                validation_data=data.validation,
                steps_per_epoch=data.steps_per_epoch,
                initial_epoch=data.initial_epoch,
                validation_freq=validation_freq,
                validation_batch_size=data.batch_size,
                shuffle=False,  # the stream is already a seeded shuffle
                **kwargs,
            )
        finally:
            self._initial_epoch = None  # Keras would carry a restored epoch to the next fit

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """Every member's loss and metrics on (x, y): `loss_i`, `accuracy_i`, ..., plus the
        population's mean `loss` and `best_loss`."""
        self._prepare_members(x, y)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    # ----------------------------------------------------------------- saving
    def get_compile_config(self):
        return {
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
            "run_eagerly": self.run_eagerly,
            "jit_compile_updates": self.jit_compile_updates,
        }

    def compile_from_config(self, config):
        self.compile(**config)

    def get_config(self):
        return {
            "name": self.name,
            "members": [keras.saving.serialize_keras_object(m) for m in self.members],
            "hyperparameters": {name: prior.get_config() for name, prior in self.priors.items()},
            "seed": self.seed,
            "l2_layers": self.l2_layers,
        }

    @classmethod
    def from_config(cls, config):
        members = [keras.saving.deserialize_keras_object(c) for c in config["members"]]
        priors = {name: prior_from_config(c) for name, c in config["hyperparameters"].items()}
        return cls(
            members,
            hyperparameters=priors,
            seed=config["seed"],
            l2_layers=config["l2_layers"],
            name=config["name"],
        )


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
