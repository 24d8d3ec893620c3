"""Argument checks shared by the library: one place, one message shape.

Every message names the argument, the allowed range and the value received, as
scikit-learn's parameter validation does: `elites must be an integer >= 1, got 0`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_integer", "check_number", "check_fraction"]


def check_integer(name, value, minimum=None, maximum=None) -> int:
    """`value` as an int within [minimum, maximum] (bool refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
        minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            allowed = f"an integer >= {minimum}" if minimum is not None else "an integer"
        else:
            allowed = f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_number(name, value, minimum=None, maximum=None, strict_minimum=False) -> float:
    """`value` as a finite float within the bounds (bool refused), else ValueError."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = "" if minimum is None else (f"> {minimum}" if strict_minimum else f">= {minimum}")
        high = "" if maximum is None else f"<= {maximum}"
        allowed = " and ".join(part for part in (low, high) if part)
        raise ValueError(
            f"{name} must be a finite number{' ' + allowed if allowed else ''}, got {value!r}"
        )
    return float(value)


def check_fraction(name, value) -> float:
    """`value` as a float in [0, 1]."""
    return check_number(name, value, minimum=0.0, maximum=1.0)


# What callbacks use of a population: checked by shape, not by class, so that callbacks need
# not import `popdescent.population` (which imports them), as Keras' own callbacks use
# `self.model` without importing `keras.Model`'s subclasses.
POPULATION_SURFACE = ("members", "size", "evaluate_fitness", "member_state",
                      "load_member_state", "state_variables", "lineage")


def is_population(model) -> bool:
    """Whether `model` offers the population surface strategies and backups rely on."""
    return all(hasattr(model, name) for name in POPULATION_SURFACE)
