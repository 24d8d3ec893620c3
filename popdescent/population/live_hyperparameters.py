"""`LiveHyperparameters`: each member's tuned hyperparameters, held in backend variables.

The compiled train step reads these variables, so a strategy's `assign` takes effect at the
next step with no recompilation and no retrace. Which variable a name means: `learning_rate`
and any other optimizer attribute held in a variable are the member optimizer's own; `l2`,
`loss_scale` and `learning_rate_decay` are variables of the population that its train step
reads; `dropout`, `augmentation` and `label_smoothing` are variables that each member's
layers and loss read (`popdescent.population.live_regularization`); a name with an `Inert` prior gets a variable that nothing reads (kept, mutated and
recorded only).

The learning rate is held three times: each member's *base* rate (what strategies mutate and
the lineage records), one population-wide `learning_rate_multiplier` (what a budget-aware
schedule moves) and one population-wide `learning_rate_scale` (what Keras' learning-rate
callbacks move, through `PopulationOptimizer`). The optimizer's own variable is set to
base x multiplier x scale before every update, so a mutation, a schedule and a user's callback
compose: the mutation changes the base, the schedule and the callback each scale it. A tuned
`learning_rate_decay` d makes the rate a schedule of its own, x d^t at the member's t-th
step since its optimizer started (or restarted): the (initial rate, decay) pair of
seed 002, which an evolution strategy can tune as two outer parameters.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from popdescent.population import live_regularization
from popdescent.hyperparameters import Fixed, Inert, LogUniform, as_prior
from popdescent.population.live_regularization import REGULARIZATION_NAMES
from popdescent.validation import check_number

__all__ = ["LiveHyperparameters"]

# Names the population's train step reads itself rather than through an optimizer.
POPULATION_NAMES = ("l2", "loss_scale", "learning_rate_decay", *REGULARIZATION_NAMES)

# The values an optimizer (or the l2 penalty) can take; a prior reaching outside is rejected
# before training, not discovered as a NaN member later. (low, low is allowed, high, high is
# allowed)
_HYPERPARAMETER_RANGES = {
    "learning_rate": (0.0, False, np.inf, False),
    "l2": (0.0, True, np.inf, False),
    "loss_scale": (0.0, False, np.inf, False),
    "weight_decay": (0.0, True, np.inf, False),
    "epsilon": (0.0, False, np.inf, False),
    "learning_rate_decay": (0.0, False, 1.0, True),
    "dropout": (0.0, True, 1.0, False),
    "augmentation": (0.0, True, np.inf, False),
    "label_smoothing": (0.0, True, 1.0, False),
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
    low, inclusive, high, high_inclusive = _HYPERPARAMETER_RANGES[name]
    smallest, largest = _prior_extent(prior)
    below = smallest < low or (smallest == low and not inclusive)
    above = largest > high or (largest == high and not high_inclusive)
    if below or above:
        allowed = ("[" if inclusive else "(") + f"{low}, {high}" + (
            "]" if high_inclusive else ")")
        raise ValueError(
            f"hyperparameters[{name!r}] must stay within {allowed} (what training can "
            f"take), but its prior reaches {smallest if below else largest}: {prior}"
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


def learning_rate_variable(member):
    """The member optimizer's learning-rate variable, or None (a schedule, for example)."""
    variable = getattr(member.optimizer, "learning_rate", None)
    return variable if isinstance(variable, keras.Variable) else None


class LiveHyperparameters:
    """The priors of a population and, per member, the variable behind every tuned name.

    Args:
        members: the population's compiled member models.
        hyperparameters: dict name -> prior (or a number meaning `Fixed`), or None for
            `{"learning_rate": LogUniform(lr / 10, lr * 10)}` around member 0's compiled
            learning rate. Checked against the members' optimizers before anything trains.
    """

    def __init__(self, members, hyperparameters):
        self.members = members
        self.priors = self._resolve_priors(hyperparameters)
        size = len(members)
        self.l2 = [
            keras.Variable(0.0, trainable=False, name=f"l2_{i}") for i in range(size)
        ] if "l2" in self.priors else None
        self.loss_scale = [
            keras.Variable(1.0, trainable=False, name=f"loss_scale_{i}") for i in range(size)
        ] if "loss_scale" in self.priors else None
        self.inert = {
            name: [keras.Variable(0.0, trainable=False, name=f"{name}_{i}") for i in range(size)]
            for name, prior in self.priors.items() if isinstance(prior, Inert)
        }
        # Name -> one variable per member, which that member's layers (or loss) read.
        self.regularization = {name: [] for name in REGULARIZATION_NAMES if name in self.priors}
        self._add_regularization(members, range(size))
        rates = [learning_rate_variable(member) for member in members]
        self.learning_rate_decay = None
        if "learning_rate_decay" in self.priors:
            if any(rate is None for rate in rates):
                raise ValueError(
                    "hyperparameters['learning_rate_decay'] needs every member's optimizer to "
                    "hold its learning rate in a variable (not a LearningRateSchedule)")
            self.learning_rate_decay = [
                keras.Variable(1.0, trainable=False, name=f"learning_rate_decay_{i}")
                for i in range(size)]
        # The rate each member was compiled with, before any prior draws: what a
        # budget-aware strategy protects (`compiled_learning_rates`).
        self.compiled_learning_rates = [
            None if rate is None else float(ops.convert_to_numpy(rate)) for rate in rates
        ]
        self.base_learning_rate = None
        self.learning_rate_multiplier = None
        # Not among `own_variables`, which are the population's weights: like a Keras
        # optimizer's rate, restoring weights leaves it alone (the population saves it in
        # its config and lists it in `state_variables` for backups).
        self.learning_rate_scale = None
        if all(rate is not None for rate in rates):
            self.base_learning_rate = [
                keras.Variable(float(ops.convert_to_numpy(rate)), dtype=rate.dtype,
                               trainable=False, name=f"base_learning_rate_{i}")
                for i, rate in enumerate(rates)
            ]
            self.learning_rate_multiplier = keras.Variable(
                1.0, trainable=False, name="learning_rate_multiplier")
            self.learning_rate_scale = keras.Variable(
                1.0, trainable=False, name="learning_rate_scale")
            # ReduceLROnPlateau's min_lr for every member (0: none), which `Population.fit`
            # sets from the callbacks it is given; not state: each fit sets it.
            self.learning_rate_floor = keras.Variable(
                0.0, trainable=False, name="learning_rate_floor")

    # ----------------------------------------------------------------- checks
    def _resolve_priors(self, hyperparameters):
        if hyperparameters is None:
            learning_rate = learning_rate_variable(self.members[0])
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
            elif name in REGULARIZATION_NAMES:
                for index, member in enumerate(self.members):
                    live_regularization.check_regularizable(
                        member, name, f"hyperparameters[{name!r}] (member {index})")
            elif name not in POPULATION_NAMES:
                self._check_optimizer_hyperparameter(name)
            _check_prior_range(name, prior)
            priors[name] = prior
        return priors

    def _check_optimizer_hyperparameter(self, name):
        for index, member in enumerate(self.members):
            variable = getattr(member.optimizer, name, None)
            if not isinstance(variable, keras.Variable):
                allowed = list(POPULATION_NAMES) + (
                    ["learning_rate"] if learning_rate_variable(member) is not None else []
                )
                raise ValueError(
                    f"unknown or untunable hyperparameter {name!r}: member {index}'s optimizer "
                    f"{type(member.optimizer).__name__} holds no variable called {name!r} "
                    "(a learning-rate schedule cannot be tuned); allowed names: "
                    f"{allowed}, or any other name with an Inert prior"
                )

    def _check_inert_name(self, name):
        if name in ("learning_rate", *POPULATION_NAMES) or any(
            isinstance(getattr(member.optimizer, name, None), keras.Variable)
            for member in self.members
        ):
            raise ValueError(
                f"hyperparameters[{name!r}] is Inert, but training reads {name!r}: an inert "
                "hyperparameter needs a name of its own (for example 'reg_constant')"
            )

    # ----------------------------------------------------------------- values
    def variable(self, index, name):
        """The backend variable that holds hyperparameter `name` of member `index`."""
        if name == "l2":
            return self.l2[index]
        if name == "loss_scale":
            return self.loss_scale[index]
        if name == "learning_rate_decay":
            return self.learning_rate_decay[index]
        if name in self.inert:
            return self.inert[name][index]
        if name in self.regularization:
            return self.regularization[name][index]
        if name == "learning_rate" and self.base_learning_rate is not None:
            return self.base_learning_rate[index]
        return getattr(self.members[index].optimizer, name)

    def apply_learning_rate(self, index) -> None:
        """Sets member `index`'s optimizer rate to its base rate x the schedule multiplier x
        the callbacks' scale (x its decay^t, when tuned, t the steps its optimizer has taken);
        backend assigns, which the fused step calls before every update."""
        if self.base_learning_rate is None:
            return
        base = self.base_learning_rate[index]
        rate = learning_rate_variable(self.members[index])
        value = self._scaled(base) * ops.cast(self.learning_rate_multiplier, base.dtype)
        if self.learning_rate_decay is not None:
            steps = self.members[index].optimizer.iterations
            value = value * ops.power(ops.cast(self.learning_rate_decay[index], base.dtype),
                                      ops.cast(steps, base.dtype))
        rate.assign(value)

    def _scaled(self, base):
        """A base rate times the callbacks' scale, kept at or above the floor (min_lr) as
        Keras' ReduceLROnPlateau keeps one model's: a reduction never takes a rate below the
        floor, and a rate already below it is not reduced."""
        scaled = base * ops.cast(self.learning_rate_scale, base.dtype)
        floor = ops.minimum(base, ops.cast(self.learning_rate_floor, base.dtype))
        return ops.maximum(scaled, floor)

    def set_floor(self, value) -> None:
        """Every member's rate, as the callbacks scale it, stays at or above `value`."""
        if self.base_learning_rate is not None:
            self.learning_rate_floor.assign(float(value))
            self._apply_all()

    def _check_variable_rates(self, what):
        if self.base_learning_rate is None:
            raise ValueError(
                f"{what} needs every member's optimizer to hold its learning rate in a "
                "variable (not a LearningRateSchedule, which schedules itself)"
            )

    def set_multiplier(self, value) -> None:
        """The schedule's factor on every member's base learning rate, from the next step on."""
        self._check_variable_rates("a learning-rate schedule")
        self.learning_rate_multiplier.assign(float(value))
        self._apply_all()

    def _apply_all(self):
        for index in range(len(self.members)):
            self.apply_learning_rate(index)

    def reference_learning_rate(self) -> float:
        """The geometric mean of the members' base learning rates x the callbacks' scale (each
        kept at the floor); for members whose optimizers follow a `LearningRateSchedule`, the
        geometric mean of their current rates (what `PopulationOptimizer.learning_rate`
        reads)."""
        if self.base_learning_rate is None:
            rates = [float(ops.convert_to_numpy(member.optimizer.learning_rate))
                     for member in self.members]
            with np.errstate(divide="ignore"):  # a schedule that has reached 0 reads 0
                return float(np.exp(np.mean(np.log(rates))))
        # In the variables' own precision, as the train step computes each member's rate, so
        # that members all at 0.5 read 0.5.
        bases = np.array([ops.convert_to_numpy(v) for v in self.base_learning_rate])
        scale = ops.convert_to_numpy(self.learning_rate_scale).astype(bases.dtype)
        floor = ops.convert_to_numpy(self.learning_rate_floor).astype(bases.dtype)
        rates = np.maximum(bases * scale, np.minimum(bases, floor))
        mean = np.exp(np.mean(np.log(rates.astype(np.float64))))
        return float(np.asarray(mean).astype(bases.dtype))

    def scale_value(self):
        """The callbacks' learning-rate scale as a float (None without variable rates)."""
        scale = self.learning_rate_scale
        return None if scale is None else float(ops.convert_to_numpy(scale))

    def set_reference_learning_rate(self, value) -> None:
        """Scales every member's learning rate by value / `reference_learning_rate()`,
        keeping the ratios between members, from the next step on. Members whose optimizers
        follow a `LearningRateSchedule` raise TypeError, as a Keras optimizer does."""
        if self.base_learning_rate is None:
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument (every member's optimizer was), hence "
                "its learning rate is not settable; compile the members with a float "
                "`learning_rate` for Keras' learning-rate callbacks to act on them")
        value = check_number("the population's learning rate (model.optimizer.learning_rate)",
                             value, minimum=0.0, strict_minimum=True)
        scale = self.scale_value() * value / self.reference_learning_rate()
        floor = float(ops.convert_to_numpy(self.learning_rate_floor))
        if floor > 0 and np.float32(value) <= np.float32(floor):
            # ReduceLROnPlateau clipped its reduction to min_lr: as one model goes to min_lr,
            # every member above it does (the others keep their rates).
            largest = max(float(ops.convert_to_numpy(v)) for v in self.base_learning_rate)
            scale = min(scale, floor / largest)
        self.learning_rate_scale.assign(scale)
        self._apply_all()

    def keep(self, indices) -> None:
        """Drops every member's variables but those of `indices` (the population's members
        list, shared with this object, is trimmed by the population itself)."""
        def trim(values):
            return None if values is None else [values[i] for i in indices]

        self.l2 = trim(self.l2)
        self.loss_scale = trim(self.loss_scale)
        self.learning_rate_decay = trim(self.learning_rate_decay)
        self.inert = {name: trim(values) for name, values in self.inert.items()}
        self.regularization = {name: trim(values) for name, values in self.regularization.items()}
        self.base_learning_rate = trim(self.base_learning_rate)
        self.compiled_learning_rates = trim(self.compiled_learning_rates)

    def extend(self, new_members) -> None:
        """Variables for members just appended to the population's members list (which
        this object shares), each starting where `__init__` starts a member's: l2 0, loss
        scale 1, decay 1, base rate the optimizer's."""
        start = len(self.members) - len(new_members)
        positions = range(start, len(self.members))
        rates = [learning_rate_variable(member) for member in new_members]
        if self.l2 is not None:
            self.l2.extend(keras.Variable(0.0, trainable=False, name=f"l2_{i}")
                           for i in positions)
        if self.loss_scale is not None:
            self.loss_scale.extend(keras.Variable(1.0, trainable=False, name=f"loss_scale_{i}")
                                   for i in positions)
        for name, values in self.inert.items():
            values.extend(keras.Variable(0.0, trainable=False, name=f"{name}_{i}")
                          for i in positions)
        if self.learning_rate_decay is not None:
            self.learning_rate_decay.extend(
                keras.Variable(1.0, trainable=False, name=f"learning_rate_decay_{i}")
                for i in positions)
        self._add_regularization(new_members, positions)
        self.compiled_learning_rates.extend(
            None if rate is None else float(ops.convert_to_numpy(rate)) for rate in rates)
        if self.base_learning_rate is not None:
            if any(rate is None for rate in rates):
                raise ValueError("a new member's optimizer must hold its learning rate in a "
                                 "variable, as the other members' do")
            self.base_learning_rate.extend(
                keras.Variable(float(ops.convert_to_numpy(rate)), dtype=rate.dtype,
                               trainable=False, name=f"base_learning_rate_{i}")
                for i, rate in zip(positions, rates))

    def _add_regularization(self, members, positions) -> None:
        """A variable per tuned regularization name for each of `members` (at `positions`),
        starting at what the user wrote, and the member's layers bound to read it."""
        for name, variables in self.regularization.items():
            for member, position in zip(members, positions):
                variable = keras.Variable(live_regularization.initial_value(member, name),
                                          trainable=False, name=f"{name}_{position}")
                live_regularization.bind(member, name, variable)
                variables.append(variable)

    def assign(self, index, values: dict) -> None:
        """Assigns `values` (name -> number) to member `index`, clipped to the priors' bounds."""
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
            variable = self.variable(index, name)
            variable.assign(_representable_within(self.priors[name], value, variable.dtype))
            if name in ("learning_rate", "learning_rate_decay"):
                self.apply_learning_rate(index)

    def values_of(self, index) -> dict:
        """Member `index`'s live values as Python floats."""
        return {
            name: float(ops.convert_to_numpy(self.variable(index, name)))
            for name in self.priors
        }

    def own_variables(self) -> list:
        """The variables this object created (not the optimizers'), in a fixed order: l2,
        loss_scale, each inert name's, the base learning rates, the schedule multiplier, the
        learning-rate decays, then the regularization names' (last, so that a population
        tuning none of them keeps the order its backups were written in)."""
        variables = list(self.l2 or []) + list(self.loss_scale or [])
        for inert in self.inert.values():
            variables.extend(inert)
        variables.extend(self.base_learning_rate or [])
        if self.learning_rate_multiplier is not None:
            variables.append(self.learning_rate_multiplier)
        variables.extend(self.learning_rate_decay or [])
        for values in self.regularization.values():
            variables.extend(values)
        return variables
