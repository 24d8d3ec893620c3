"""Priors over hyperparameters: where initial values come from and where mutation may go.

A prior knows nothing of models. It samples an initial value from its *range* and mutates a
value inside its *bounds* (by default the range; wider bounds let an online method walk out
of a badly chosen starting range). Log-scale priors mutate multiplicatively, in log10 space,
which is the paper's LogNormal mutation: at magnitude 1 and scale 1, x10 and x0.1 are one
standard deviation away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Prior", "LogUniform", "LogNormal", "Uniform", "Choice", "Bernoulli", "Fixed", "Inert"]


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


class Prior:
    """Base class: a distribution for initial values plus a mutation rule within bounds."""

    mutable = True
    # True for priors that mutate multiplicatively (in log10 space): a strategy may change
    # the base of their mutation factor (see PopDescent's hyperparameter_noise_base).
    log_scale = False

    def sample(self, rng: np.random.Generator) -> float:
        raise NotImplementedError

    def mutate(self, value: float, magnitude: float, scale: float, rng) -> float:
        """Returns `value` perturbed with strength `magnitude * scale`, kept within bounds."""
        raise NotImplementedError

    def clip(self, value: float) -> float:
        raise NotImplementedError

    def contains(self, value: float) -> bool:
        return self.clip(value) == value

    def get_config(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True, init=False)
class _Interval(Prior):
    low: float
    high: float
    bounds: tuple

    def __init__(self, low, high, bounds=None):
        name = type(self).__name__
        low = _check_number(f"{name} low", low)
        high = _check_number(f"{name} high", high)
        if not low < high:
            raise ValueError(f"{name} needs low < high, got low={low!r}, high={high!r}")
        if bounds is None:
            bounds = (low, high)
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"{name} bounds must be a (low, high) pair, got {bounds!r}")
        bound_low = _check_number(f"{name} bounds[0]", bounds[0])
        bound_high = _check_number(f"{name} bounds[1]", bounds[1])
        if not (bound_low <= low and high <= bound_high):
            raise ValueError(
                f"{name} bounds must contain the initial range [{low}, {high}], "
                f"got bounds=({bound_low}, {bound_high})"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "bounds", (bound_low, bound_high))

    def clip(self, value):
        return float(min(max(value, self.bounds[0]), self.bounds[1]))

    def get_config(self):
        return {
            "class_name": type(self).__name__,
            "low": self.low,
            "high": self.high,
            "bounds": list(self.bounds),
        }


class LogUniform(_Interval):
    """Log-uniform initial values in [low, high]; mutation multiplies by 10**N(0, scale*magnitude).

    Args:
        low: the lower end of the range initial values are drawn from; > 0.
        high: its upper end; > low.
        bounds: (min, max) the value may reach by mutation; defaults to (low, high).

    Example:
        >>> LogUniform(1e-4, 1e-2, bounds=(1e-7, 1.0))
    """

    log_scale = True

    def __init__(self, low, high, bounds=None):
        super().__init__(low, high, bounds)
        if self.bounds[0] <= 0:
            raise ValueError(
                f"LogUniform needs positive low and bounds (log scale), got low={self.low!r}, "
                f"bounds={self.bounds!r}"
            )

    def sample(self, rng):
        return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))

    def mutate(self, value, magnitude, scale, rng):
        # In log10 space, clipped there: value * 10**draw overflows a float (OverflowError)
        # once the draw passes ~308, which a large scale * magnitude reaches.
        exponent = math.log10(self.clip(value)) + rng.normal(0.0, scale * magnitude)
        low, high = math.log10(self.bounds[0]), math.log10(self.bounds[1])
        return self.clip(10 ** min(max(exponent, low), high))


class Uniform(_Interval):
    """Uniform initial values in [low, high]; mutation adds N(0, scale*magnitude*(high-low))."""

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def mutate(self, value, magnitude, scale, rng):
        return self.clip(float(value) + rng.normal(0.0, scale * magnitude * (self.high - self.low)))


@dataclass(frozen=True, init=False)
class Choice(Prior):
    """One of a few numeric values; mutation redraws uniformly with probability `magnitude`."""

    values: tuple

    def __init__(self, values):
        if not isinstance(values, (list, tuple)) or len(values) < 1:
            raise ValueError(f"Choice needs a non-empty list of values, got {values!r}")
        checked = tuple(_check_number(f"Choice value {i}", v) for i, v in enumerate(values))
        object.__setattr__(self, "values", checked)

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def mutate(self, value, magnitude, scale, rng):
        if rng.uniform() < min(1.0, magnitude * scale):
            return self.sample(rng)
        return float(value)

    def clip(self, value):
        return min(self.values, key=lambda v: abs(v - value))

    def get_config(self):
        return {"class_name": "Choice", "values": list(self.values)}


@dataclass(frozen=True, init=False)
class Bernoulli(Choice):
    """An on/off switch: the value `off` or the value `on`, nothing in between.

    What a binary-choice policy (`popdescent.BernoulliPolicy`) turns on and off for each member:
    the L2 penalty (`"l2": Bernoulli(0.0, 1e-3)`), a high learning rate
    (`"learning_rate": Bernoulli(1e-3, 1e-2)`), any hyperparameter training reads. Initial
    values are `on` with probability `probability` (the policy's starting probability too);
    mutation, for PopDescent or PBT, flips the switch with probability `magnitude * scale`.

    Args:
        off: the value when the switch is off.
        on: the value when it is on; must differ from `off`.
        probability: the chance in [0, 1] that an initial draw is `on` (default 0.5).

    Example:
        >>> Bernoulli(0.0, 1e-3)          # L2 off or on
    """

    off: float
    on: float
    probability: float

    def __init__(self, off, on, probability=0.5):
        off = _check_number("Bernoulli off", off)
        on = _check_number("Bernoulli on", on)
        if off == on:
            raise ValueError(f"Bernoulli needs off != on, got off={off!r}, on={on!r}")
        probability = _check_number("Bernoulli probability", probability)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"Bernoulli probability must be in [0, 1], got {probability!r}")
        super().__init__([off, on])
        object.__setattr__(self, "off", off)
        object.__setattr__(self, "on", on)
        object.__setattr__(self, "probability", probability)

    @property
    def bounds(self):
        return (min(self.off, self.on), max(self.off, self.on))

    def value(self, switched_on) -> float:
        """`on` for a true `switched_on`, else `off`."""
        return self.on if switched_on else self.off

    def is_on(self, value) -> bool:
        """Whether `value` is (nearer to) `on` than `off`."""
        return self.clip(value) == self.on

    def sample(self, rng):
        return self.value(rng.uniform() < self.probability)

    def mutate(self, value, magnitude, scale, rng):
        switched_on = self.is_on(value)
        if rng.uniform() < min(1.0, magnitude * scale):
            switched_on = not switched_on
        return self.value(switched_on)

    def get_config(self):
        return {"class_name": "Bernoulli", "off": self.off, "on": self.on,
                "probability": self.probability}


@dataclass(frozen=True, init=False)
class Fixed(Prior):
    """A constant: sampled and mutated to itself. Use it to hold a hyperparameter still."""

    value: float
    mutable = False

    def __init__(self, value):
        object.__setattr__(self, "value", _check_number("Fixed value", value))

    def sample(self, rng):
        return self.value

    def mutate(self, value, magnitude, scale, rng):
        return self.value

    def clip(self, value):
        return self.value

    def get_config(self):
        return {"class_name": "Fixed", "value": self.value}


@dataclass(frozen=True, init=False)
class LogNormal(Prior):
    """Initial values 10**N(mean_log10, std_log10); mutation multiplies by 10**N(0, scale*magnitude).

    The reference code drew its "learning rate" (a loss scale) as 10**N(-4, 2) and its
    regularization rate as 10**N(0, 2). With `std_log10=0` every member starts at
    10**mean_log10 (the ablation's "initial learning rate 1e-3") and mutation still moves it
    within `bounds`.

    Args:
        mean_log10: mean of log10 of the initial values.
        std_log10: standard deviation (>= 0) of log10 of the initial values.
        bounds: (min, max) with 0 < min <= 10**mean_log10 <= max, min < max: sampling and
            mutation stay within; default 10**(mean_log10 -/+ 6 std_log10) (required when
            std_log10 is 0).

    Example:
        >>> LogNormal(-4, 2, bounds=(1e-12, 1e4))
    """

    mean_log10: float
    std_log10: float
    bounds: tuple
    log_scale = True

    def __init__(self, mean_log10, std_log10, bounds=None):
        mean = _check_number("LogNormal mean_log10", mean_log10)
        std = _check_number("LogNormal std_log10", std_log10)
        if std < 0:
            raise ValueError(f"LogNormal std_log10 must be >= 0, got {std_log10!r}")
        if bounds is None:
            if std == 0:
                raise ValueError(
                    "LogNormal with std_log10=0 needs bounds=(min, max) around "
                    f"10**mean_log10 = {10 ** mean}: mutation has nowhere to go otherwise"
                )
            bounds = (10 ** (mean - 6 * std), 10 ** (mean + 6 * std))
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"LogNormal bounds must be a (min, max) pair, got {bounds!r}")
        low = _check_number("LogNormal bounds[0]", bounds[0])
        high = _check_number("LogNormal bounds[1]", bounds[1])
        if not (0 < low < high and low <= 10 ** mean <= high):
            raise ValueError(
                "LogNormal bounds must satisfy 0 < min <= 10**mean_log10 <= max and min < max, "
                f"got bounds=({low}, {high}) for 10**mean_log10 = {10 ** mean}"
            )
        object.__setattr__(self, "mean_log10", mean)
        object.__setattr__(self, "std_log10", std)
        object.__setattr__(self, "bounds", (low, high))

    def _from_log10(self, exponent):
        # Clipped in log10 space: 10**exponent overflows a float past ~308.
        low, high = math.log10(self.bounds[0]), math.log10(self.bounds[1])
        return self.clip(10 ** min(max(exponent, low), high))

    def sample(self, rng):
        return self._from_log10(rng.normal(self.mean_log10, self.std_log10))

    def mutate(self, value, magnitude, scale, rng):
        return self._from_log10(
            math.log10(self.clip(value)) + rng.normal(0.0, scale * magnitude)
        )

    def clip(self, value):
        return float(min(max(value, self.bounds[0]), self.bounds[1]))

    def get_config(self):
        return {
            "class_name": "LogNormal",
            "mean_log10": self.mean_log10,
            "std_log10": self.std_log10,
            "bounds": list(self.bounds),
        }


@dataclass(frozen=True, init=False)
class Inert(Prior):
    """A hyperparameter sampled, mutated and recorded like `prior`, that nothing reads.

    It changes no loss, no optimizer and no gradient. It exists to reproduce code that tuned
    a value it never used: the reference code's Fashion-MNIST regularization rate was drawn
    and mutated every iteration while the L2 penalty used a fixed 0.001. Declared `Inert`, the
    value still shows in the lineage and still consumes the strategy's random draws, and
    anyone reading the configuration sees that it does nothing. A `Population` stores it in
    a variable of its own and refuses it under a name that training reads ("learning_rate",
    "l2", "loss_scale" or an optimizer attribute).

    Args:
        prior: the prior it is sampled and mutated by (not itself `Inert`).

    Example:
        >>> Inert(LogNormal(0, 2, bounds=(1e-12, 1e12)))
    """

    prior: Prior

    def __init__(self, prior):
        if not isinstance(prior, Prior) or isinstance(prior, Inert):
            raise TypeError(f"Inert needs a prior that is not itself Inert, got {prior!r}")
        object.__setattr__(self, "prior", prior)

    @property
    def mutable(self):
        return self.prior.mutable

    @property
    def log_scale(self):
        return self.prior.log_scale

    @property
    def bounds(self):
        return self.prior.bounds  # AttributeError for a prior without bounds (Fixed, Choice)

    def sample(self, rng):
        return self.prior.sample(rng)

    def mutate(self, value, magnitude, scale, rng):
        return self.prior.mutate(value, magnitude, scale, rng)

    def clip(self, value):
        return self.prior.clip(value)

    def get_config(self):
        return {"class_name": "Inert", "prior": self.prior.get_config()}


_PRIOR_CLASSES = {
    cls.__name__: cls for cls in (LogUniform, LogNormal, Uniform, Choice, Bernoulli, Fixed)
}


def prior_from_config(config: dict) -> Prior:
    """Inverse of `Prior.get_config()`, used when a saved population is loaded."""
    config = dict(config)
    if config["class_name"] == "Inert":
        return Inert(prior_from_config(config["prior"]))
    cls = _PRIOR_CLASSES[config.pop("class_name")]
    return cls(**config)


def as_prior(name: str, value) -> Prior:
    """Accepts a Prior or a plain number (taken as `Fixed`) for hyperparameter `name`."""
    if isinstance(value, Prior):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return Fixed(value)
    raise TypeError(
        f"hyperparameters[{name!r}] must be a prior (LogUniform, LogNormal, Uniform, Choice, "
        "Bernoulli, Fixed, Inert) or a "
        f"number, got {value!r}"
    )
