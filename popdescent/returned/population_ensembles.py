"""A population's members combined into one model: mixed (`Population.ensemble_model`) or
averaged (`Population.soup_model`): which members, chosen how, on which data. The mixing and
the averaging themselves are `popdescent.returned.ensemble`'s and `popdescent.returned.soup`'s.

The candidates are the finished members (`Population.finished_members`) once there are any,
else the members in training."""

from __future__ import annotations

import numpy as np

import keras

from popdescent.returned.ensemble import (
    mixture_loss,
    mixture_model,
    mixable_outputs,
    select_mixture,
)
from popdescent.returned.soup import average_weights, greedy_soup
from popdescent.validation import check_integer

__all__ = ["ensemble_of_members", "soup_of_members", "candidates", "SELECTIONS"]

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
    members, losses = candidates(population)
    if selection == "fittest":
        k = len(members) if k is None else check_integer("k", k, minimum=1,
                                                           maximum=len(members))
        chosen = fittest(population, k) if losses is None else [
            int(i) for i in np.argsort(losses, kind="stable")[:k]]
        counts = np.zeros(len(members), dtype=int)
        counts[chosen] = 1
    else:  # additions with replacement: any k
        k = population.starting_size if k is None else check_integer("k", k, minimum=1)
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


def candidates(population):
    """(models, their validation losses): the finished members with the losses their
    strategy measured, or the members in training and None."""
    if population.finished_members:
        return ([entry.model for entry in population.finished_members],
                np.array([entry.loss for entry in population.finished_members]))
    return [population.member(i) for i in range(population.size)], None


def soup_of_members(population, validation_data):
    """See `Population.soup_model`."""
    x, y = validation_arrays(population, validation_data)
    if not population.finished_members:
        best = population.best_model()
        best.members_chosen = [int(population.origins[population.best_index()])]
        return best
    finished = population.finished_members
    best = min(range(len(finished)), key=lambda i: finished[i].loss)
    point = finished[best].start_point
    group = [i for i, entry in enumerate(finished)
             if i == best or (point is not None and entry.start_point == point)]
    template = finished[best].model
    scratch = keras.models.clone_model(template)
    scratch.compile_from_config(template.get_compile_config())
    loss = mixture_loss(template, y)

    def evaluate(weights):
        scratch.set_weights(weights)
        return loss(mixable_outputs([scratch], x)[0])

    weight_sets = [finished[i].model.get_weights() for i in group]
    chosen = greedy_soup(weight_sets, [finished[i].loss for i in group], evaluate)
    soup = population.best_model()
    soup.set_weights(average_weights(weight_sets, chosen))
    soup.members_chosen = [int(finished[group[i]].origin) for i in chosen]
    return soup
