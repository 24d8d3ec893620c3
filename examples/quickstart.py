"""Quickstart: tune a Keras model's learning rate and L2 rate while it trains.

Runs on scikit-learn's digits (ships with the package, no download) in about a minute on
2 CPU cores and prints the best member's test loss and hyperparameters.
Usage: python examples/quickstart.py [--epochs N] [--budget-aware]
"""

import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits

import popdescent as pd

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30, help="PopDescent iterations")
parser.add_argument("--budget-aware", action="store_true",
                    help="the same member-steps (epochs x 16 x 5) with PopDescent(budget_aware=True)")
args = parser.parse_args()

# Data: 1,797 8x8 digit images; train / validation (fitness) / test split.
digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None]
y = digits.target.astype("int32")
order = np.random.default_rng(0).permutation(len(x))
train, val, test = order[:1200], order[1200:1500], order[1500:]

# Any compiled Keras model.
model = keras.Sequential([
    keras.Input((8, 8, 1)),
    keras.layers.Flatten(),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10),
])
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)

# Five members, each with its own weights, learning rate and L2 rate.
pop = pd.Population(model, size=5, seed=0, hyperparameters={
    "learning_rate": pd.LogUniform(1e-4, 1e-2),
    "l2": pd.LogUniform(1e-6, 1e-1),
})
if args.budget_aware:  # the same budget, spent by a shrinking, annealed population
    history = pop.fit(x[train], y[train], batch_size=64, member_steps=args.epochs * 16 * 5,
                      steps_per_epoch=4, validation_data=(x[val], y[val]),
                      callbacks=[pd.PopDescent(budget_aware=True, cv_batch_size=300)], verbose=0)
else:
    history = pop.fit(
        x[train], y[train], batch_size=64, epochs=args.epochs, steps_per_epoch=16,
        validation_data=(x[val], y[val]),
        callbacks=[pd.PopDescent(elites=3, cv_batch_size=300)],
        verbose=0,
    )

best = pop.best_model()  # a plain compiled keras.Model, chosen on validation data
test_loss, test_accuracy = best.evaluate(x[test], y[test], verbose=0)
print(f"gradient steps (all members): {pop.gradient_steps}")
print(f"best member: {pop.best_index()}  hyperparameters: {pop.hyperparameter_values()[pop.best_index()]}")
print(f"best member's test loss: {test_loss:.4f}  test accuracy: {test_accuracy:.4f}")
