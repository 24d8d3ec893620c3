"""A population's members mixed into one model (`Population.ensemble_model`): which members,
chosen how, on which data. The mixing itself is `popdescent.ensemble`'s."""

from __future__ import annotations

import numpy as np

from popdescent.ensemble import mixture_model, select_mixture
from popdescent.validation import check_integer

__all__ = ["ensemble_of_members", "SELECTIONS"]

SELECTIONS = ("greedy", "fittest")


def validation_arrays(population, validation_data):
    """`validation_data`, or the validation data of the population's last `fit`."""
    if validation_data is None:
        validation_data = population.validation_data
    if validation_data is None:
        raise ValueError("validation_data is needed: fit the population with validation "
                         "data first, or pass validation_data=(x_val, y_val)")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
        raise ValueError(f"validation_data must be a tuple (x_val, y_val), got "
                         f"{type(validation_data).__name__}")
    return validation_data[0], validation_data[1]


def ensemble_of_members(population, k, validation_data, selection):
    """See `Population.ensemble_model`."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    members = [population.member(i) for i in range(population.size)]
    k = len(members) if k is None else check_integer("k", k, minimum=1, maximum=len(members))
    if selection == "fittest":
        chosen = fittest(population, k)
        counts = np.zeros(len(members), dtype=int)
        counts[chosen] = 1
    else:
        counts, _ = select_mixture(members, validation_arrays(population, validation_data), k)
        chosen = [int(i) for i in np.flatnonzero(counts)]
    weights = counts[chosen] / counts.sum()
    ensemble = mixture_model([members[i] for i in chosen], weights,
                             name=f"ensemble_of_{len(chosen)}")
    ensemble.members_chosen = chosen
    ensemble.member_weights = [float(w) for w in weights]
    return ensemble


def fittest(population, k) -> list:
    """The `k` fittest members by the last recorded fitness, fittest first."""
    if population.fitness is None:
        raise ValueError("no fitness recorded yet: fit with a strategy callback first, or "
                         "call pop.evaluate_fitness(x_val, y_val)")
    fitness = np.where(np.isnan(population.fitness), -np.inf, population.fitness)
    return [int(i) for i in np.argsort(-fitness, kind="stable")[:k]]
