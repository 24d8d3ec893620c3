"""Model soups: one model whose weights average several models that share a starting point.

Wortsman et al. (ICML 2022) average the weights of models fine-tuned from the same starting
weights with different hyperparameters: such models lie in one basin, so their average is a
model too, often better than each, at one model's inference cost. Their greedy soup orders the
candidates by validation loss and adds each in turn only when the average with it scores
better on the validation data than without; `greedy_soup` is that rule on plain arrays. Models
that do not share a starting point (fresh initialisations) are not averaged: their average is
not a trained model.
"""

from __future__ import annotations

import numpy as np

__all__ = ["greedy_soup", "average_weights"]


def average_weights(weight_sets, chosen) -> list:
    """The element-wise mean of the weight lists `weight_sets[i]` for i in `chosen`."""
    return [np.mean([np.asarray(weight_sets[i][k]) for i in chosen], axis=0)
            for k in range(len(weight_sets[chosen[0]]))]


def greedy_soup(weight_sets, losses, evaluate) -> list:
    """The candidates the greedy soup averages, in the order they joined.

    Args:
        weight_sets: one list of weight arrays per candidate (same shapes).
        losses: each candidate's own validation loss (non-finite ones never join).
        evaluate: maps a list of weight arrays to its validation loss.

    Returns:
        Indices into `weight_sets`: the candidate with the lowest loss first, then each other
        candidate, in order of its own loss, whose addition lowered the soup's loss.
    """
    losses = np.asarray(losses, dtype=np.float64)
    order = [int(i) for i in np.argsort(np.where(np.isfinite(losses), losses, np.inf),
                                        kind="stable") if np.isfinite(losses[i])]
    if not order:
        raise ValueError("every candidate's validation loss is non-finite: nothing to average")
    chosen, best = [order[0]], float(losses[order[0]])
    for candidate in order[1:]:
        trial = evaluate(average_weights(weight_sets, chosen + [candidate]))
        if np.isfinite(trial) and trial < best:
            chosen.append(candidate)
            best = float(trial)
    return chosen
