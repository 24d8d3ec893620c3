"""Grid search, the paper's baseline: one model per learning rate in {1e-2, ..., 1e-6}, with
regularization one per (learning rate, L2 rate) pair, 25 models, all trained alike; the best on
validation is kept.

The grid trains as one `Population` whose members hold their grid point as live
hyperparameters (`grid_priors`: `Choice` priors over the grid, set once, never mutated: no
strategy runs), so it shares the population's train step, the code base's one training loop,
with every other method. `PAPER_STEPS_PER_MODEL` are the paper's Table 1 steps per model
(Fashion-MNIST: 64,000 steps over 5 models = 12,800 each, 160,000 over 25 = 6,400 each;
CIFAR-10: 19,200 / 96,000 = 3,840 each). The benchmark's `grid` method is
`experiments.methods.grid`.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np

from popdescent import Choice

LEARNING_RATES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
L2_RATES = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# Steps per model at paper scale, (dataset, regularization) -> steps: Table 1's totals over
# the 5 (no regularization) or 25 (regularization) models.
PAPER_STEPS_PER_MODEL = {
    ("fmnist", False): 64_000 // 5,
    ("fmnist", True): 160_000 // 25,
    ("cifar10", False): 19_200 // 5,
    ("cifar10", True): 96_000 // 25,
}


def grid_points(regularization: bool, learning_rates=LEARNING_RATES) -> list:
    """The grid's hyperparameters, one dict per model."""
    if not regularization:
        return [{"learning_rate": rate} for rate in learning_rates]
    return [{"learning_rate": rate, "l2": l2}
            for rate, l2 in itertools.product(learning_rates, L2_RATES)]


class FixedBatchFitness(keras.callbacks.Callback):
    """Scores every member on the same validation images after each iteration, so the curve
    follows the grid's current leader (no strategy measures fitness here)."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        self.model.evaluate_fitness(self.x, self.y,
                                    batch_size=self.model.training_data.batch_size)


def grid_priors(regularization: bool, learning_rates=LEARNING_RATES) -> dict:
    """The population's hyperparameters for the grid: `Choice` priors over its values (each
    member is then set to its grid point)."""
    priors = {"learning_rate": Choice(learning_rates)}
    if regularization:
        priors["l2"] = Choice(L2_RATES)
    return priors


def spread_learning_rates(low: float, high: float, count: int = len(LEARNING_RATES)) -> tuple:
    """`count` rates evenly spaced in log space from `high` down to `low` (both included)."""
    return tuple(float(rate) for rate in np.geomspace(high, low, count))
