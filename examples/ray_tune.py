"""PopDescent on Ray Tune: one model per trial, or islands of fused populations.

    pip install -e ".[ray]"
    python examples/ray_tune.py              # PopDescentScheduler, 4 trials of one MLP each
    python examples/ray_tune.py --islands    # 2 islands, each a fused Population of 3

Runs on a local Ray instance (two CPUs here); on a cluster, call ray.init(address="auto")
and give RunConfig a storage_path every node can reach. A few minutes on 2 CPU cores.
"""

import argparse

import keras
import numpy as np
import ray
from ray import tune
from sklearn.datasets import load_digits

import popdescent as pd
from popdescent.ray import IslandMigration, PopDescentScheduler, island_trainable, keras_trainable

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--islands", action="store_true", help="islands of fused populations")
parser.add_argument("--reports", type=int, default=6, help="reports (selections) per trial")
args = parser.parse_args()

x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(x))
x, y = (x[order] / 16.0).astype("float32"), y[order].astype("int32")
data = ((x[:1200], y[:1200]), (x[1200:1500], y[1200:1500]))


def build(config):
    """Any compiled Keras model, built from the trial's config."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(config.get("learning_rate", 1e-3)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


ray.init(num_cpus=2, include_dashboard=False)
if args.islands:
    trainable = island_trainable(build, data, size=3, steps_per_report=50,
                                 hyperparameters={"learning_rate": pd.LogUniform(1e-4, 1e-2)},
                                 popdescent={"elites": 2, "cv_batch_size": 300})
    scheduler, trials = IslandMigration(every=2), 2
else:
    trainable = keras_trainable(build, data, steps_per_report=50)
    scheduler = PopDescentScheduler(
        {"learning_rate": pd.LogUniform(1e-4, 1e-2, bounds=(1e-6, 1.0))},
        metric="val_loss", mode="min", elites=2, seed=0)
    trials = 4
grid = tune.Tuner(
    trainable,
    tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=trials, reuse_actors=True),
    run_config=tune.RunConfig(stop={"training_iteration": args.reports}, verbose=0,
                              failure_config=tune.FailureConfig(max_failures=2)),
).fit()
best = grid.get_best_result(metric="val_loss", mode="min")
print(f"best validation loss: {best.metrics['val_loss']:.4f}")
print(f"member-steps, all trials: {sum(r.metrics['member_steps'] for r in grid)}")
