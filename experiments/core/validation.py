"""The harness's argument checks, in one place, each raising the message the tests pin:
argument, what is allowed, the value received (`repr`).

`bool` is an `int` subclass in Python; every numeric check here refuses it, so `True` is never
taken for 1 (a common slip in JSON options such as `--option lr_range=[true, 1]`).
"""

from __future__ import annotations

import argparse
import json
import math
import numbers

import numpy as np

__all__ = ["is_integer", "is_number", "check_choice", "check_positive_number",
           "check_non_negative_number", "seed_argument"]


def is_integer(value, types=(int, np.integer)) -> bool:
    """Whether `value` is an integer of `types`, `bool` excluded."""
    return isinstance(value, types) and not isinstance(value, bool)


def is_number(value, types=numbers.Real) -> bool:
    """Whether `value` is a number of `types`, `bool` excluded."""
    return isinstance(value, types) and not isinstance(value, bool)


def check_choice(argument: str, value, allowed) -> None:
    """`value` must be one of `allowed`."""
    if value not in allowed:
        raise ValueError(f"{argument} must be one of {allowed}, got {value!r}")


def check_positive_number(argument: str, value, types=(int, float)):
    """`value` must be a finite number > 0 of `types`; returns it."""
    if not is_number(value, types) or not 0 < value < math.inf:
        raise ValueError(f"{argument} must be a finite number > 0, got {value!r}")
    return value


def check_non_negative_number(argument: str, value, types=numbers.Real):
    """`value` must be a finite number >= 0 of `types`; returns it."""
    if not is_number(value, types) or not 0 <= value < math.inf:
        raise ValueError(f"{argument} must be a finite number >= 0, got {value!r}")
    return value


def seed_argument(text):
    """An argparse `type`: a seed, an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0, got {text!r}")
    return value


def option_argument(text):
    """An argparse `type`: NAME=VALUE, the value read as JSON where it parses (a number, a
    list) and kept as text otherwise."""
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"--option must look like NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value
