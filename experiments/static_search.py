"""GeneticSearch against KerasTuner's RandomSearch and BayesianOptimization (issue 9).

    python -m experiments.static_search --scale smoke|small|paper [--tasks sinewave fmnist]
        [--methods ...] [--seeds N] [--render-only]

Every method gets the same trial budget, the same seeds and the same data on two tasks:
(a) seed 004's "sinewave" regression (five sine covariates, a random linear target; objective
validation MSE) and (b) Fashion-MNIST (objective validation accuracy). The search space is
seed 004's MLP: layers 1-5, units 16-128, one of six activations, dropout 0-0.5. A callback
scores every epoch on the test split too; a trial's test value is that of the epoch KerasTuner
scores it by (its best validation epoch), giving best-so-far validation and test against trials.

One JSON line per finished run goes to `results/static_search/<scale>/records.jsonl`, and
KerasTuner projects to `.../tuners/`, so an interrupted run resumes; finished runs are skipped.
`experiments.reports.static_search` renders `docs/static_search.md` and `.png` from the records.
"""

import argparse
import json
import pathlib
import time

import keras
import keras_tuner
import numpy as np

from popdescent.tuners import ACTIVATION_TREE, GeneticSearch

ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]
TASKS = ("sinewave", "fmnist")
METHODS = ("random", "bayesian", "ga", "ga_invasive", "ga_islands", "ga_islands_invasive")
RESULTS = pathlib.Path("results/static_search")
# Budget: population_size * generations trials per run; the 2-island variants run
# generations // 2 generations of two populations, so every method has the same budget.
# "small" is sized for about 20 minutes on 2 shared CPU cores, where a trial costs 2-5 s, most
# of it KerasTuner's clear_session/gc and tf.function tracing rather than training.
SCALES = {
    "smoke": dict(
        seeds=1, population_size=2, generations=2, tournament_size=2, migration_interval=1,
        invasive=1, sine_samples=400, sine_epochs=2, fmnist_train=512, fmnist_eval=500,
        fmnist_epochs=1, methods=METHODS,
    ),
    "small": dict(
        seeds=3, population_size=3, generations=4, tournament_size=2, migration_interval=1,
        invasive=1, sine_samples=1500, sine_epochs=5, fmnist_train=3000, fmnist_eval=1000,
        fmnist_epochs=2, methods=METHODS[:5],
    ),
    "paper": dict(
        seeds=5, population_size=5, generations=20, tournament_size=3, migration_interval=2,
        invasive=1, sine_samples=5000, sine_epochs=30, fmnist_train=None, fmnist_eval=None,
        fmnist_epochs=10, methods=METHODS,
    ),
}
OBJECTIVES = {"sinewave": ("val_loss", "min", "MSE"), "fmnist": ("val_accuracy", "max", "accuracy")}


def sinewave(samples, seed=0):
    """Five sine covariates of one time axis and a random linear combination as target.

    Returns `(x, y)` splits 60/20/20 as a dict; the same data for every method and seed.
    """
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 20.0, size=(samples, 1))
    frequencies = rng.uniform(0.5, 3.0, size=(1, 5))
    phases = rng.uniform(0.0, 2 * np.pi, size=(1, 5))
    x = np.sin(frequencies * t + phases).astype("float32")
    weights = rng.normal(size=(5,))
    y = (x @ weights + rng.normal(0.0, 0.01, size=samples)).astype("float32")
    train, val = int(0.6 * samples), int(0.8 * samples)
    return {
        "train": (x[:train], y[:train]),
        "val": (x[train:val], y[train:val]),
        "test": (x[val:], y[val:]),
    }


def fmnist(config):
    from popdescent.inputs.datasets import load_dataset

    splits = load_dataset("fmnist", train_subset=config["fmnist_train"], download=False)
    evaluated = config["fmnist_eval"] or len(splits.x_val)
    return {
        "train": (splits.x_train, splits.y_train),
        "val": (splits.x_val[:evaluated], splits.y_val[:evaluated]),
        "test": (splits.x_test[:evaluated], splits.y_test[:evaluated]),
    }


def make_build(task, input_shape):
    """Seed 004's MLP search space as a KerasTuner `build(hp)`."""

    def build(hp):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
        units = hp.Int("units", 16, 128)
        activation = hp.Choice("activation", ACTIVATIONS)
        dropout = hp.Float("dropout", 0.0, 0.5)
        for _ in range(hp.Int("layers", 1, 5)):
            x = keras.layers.Dense(units, activation=activation)(x)
            x = keras.layers.Dropout(dropout)(x)
        model = keras.Model(inputs, keras.layers.Dense(10 if task == "fmnist" else 1)(x))
        if task == "fmnist":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
        else:
            model.compile(keras.optimizers.Adam(1e-3), "mse")
        return model

    return build


def make_tuner(method, task, input_shape, seed, config, directory):
    objective = keras_tuner.Objective(*OBJECTIVES[task][:2])
    common = dict(objective=objective, seed=seed, directory=str(directory), project_name=method)
    build = make_build(task, input_shape)
    budget = config["population_size"] * config["generations"]
    if method == "random":
        return keras_tuner.RandomSearch(build, max_trials=budget, **common)
    if method == "bayesian":
        # As many random initial points as the GA's random generation; KerasTuner's default
        # (3 x 4 dimensions = 12) would leave BO nearly no guided trials at small budgets.
        return keras_tuner.BayesianOptimization(
            build, max_trials=budget, num_initial_points=config["population_size"], **common
        )
    islands = 2 if "islands" in method else 1
    return GeneticSearch(
        build,
        population_size=config["population_size"],
        generations=config["generations"] // islands,
        tournament_size=config["tournament_size"],
        islands=islands,
        migration_interval=config["migration_interval"],
        invasive=config["invasive"] if "invasive" in method else 0,
        # Seed 004's mutation widths: layers +-2, units +-16; dropout N(0, 0.15 * range).
        mutation_widths={"layers": 2, "units": 16},
        categorical_trees={"activation": ACTIVATION_TREE},
        **common,
    )


class TestMetrics(keras.callbacks.Callback):
    """Adds `test_<metric>` to each epoch's logs, so KerasTuner records the test value of the
    epoch it scores a trial by (its best validation epoch) without reloading checkpoints."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        results = self.model.evaluate(self.x, self.y, verbose=0, return_dict=True)
        logs.update({f"test_{name}": float(value) for name, value in results.items()})


def run(method, task, seed, scale, config, data, directory):
    """One search; returns its record (trial table, best-so-far validation and test curves)."""
    x_train, y_train = data["train"]
    keras.utils.set_random_seed(seed)
    tuner = make_tuner(method, task, x_train.shape[1:], seed, config, directory)
    epochs = config["sine_epochs"] if task == "sinewave" else config["fmnist_epochs"]
    started = time.time()
    tuner.search(
        x_train,
        y_train,
        validation_data=data["val"],
        epochs=epochs,
        batch_size=32 if task == "sinewave" else 128,
        callbacks=[TestMetrics(*data["test"])],
        verbose=0,
    )
    wall_s = time.time() - started
    oracle = tuner.oracle
    maximise = oracle.objective.direction == "max"
    test_name = "test_accuracy" if task == "fmnist" else "test_loss"
    trials, best, best_val, best_test = [], None, [], []
    for trial_id in oracle.start_order:
        trial = oracle.trials[trial_id]
        score = trial.score if trial.status == "COMPLETED" else None
        test = trial.metrics.get_last_value(test_name) if score is not None else None
        if score is not None and (
            best is None or (score > best[0] if maximise else score < best[0])
        ):
            best = (score, test)
        best_val.append(best[0] if best else None)
        best_test.append(best[1] if best else None)
        origin = getattr(oracle, "lineage", {}).get(trial_id, {}).get("origin", method)
        trials.append({"id": trial_id, "values": trial.hyperparameters.values, "val": score,
                       "test": test, "origin": origin})
    return {
        "task": task, "method": method, "seed": seed, "scale": scale, "epochs": epochs,
        "budget": len(trials), "wall_s": wall_s, "trials": trials,
        "best_val": best_val, "best_test": best_test,
    }


def read_records(path):
    """Records of a JSON-lines file, the last one per (task, method, seed) kept."""
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[(record["task"], record["method"], record["seed"])] = record
    return list(records.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default: the scale's")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the scale's)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--docs", type=pathlib.Path, default=pathlib.Path("docs"))
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    config = SCALES[args.scale]
    # Seeds start at 1: KerasTuner replaces a falsy seed (0) by a random one.
    seeds = range(1, 1 + (args.seeds or config["seeds"]))
    output = args.results / args.scale
    records_path = output / "records.jsonl"
    if not args.render_only:
        done = {(r["task"], r["method"], r["seed"]) for r in read_records(records_path)}
        output.mkdir(parents=True, exist_ok=True)
        for task in args.tasks:
            data = sinewave(config["sine_samples"]) if task == "sinewave" else fmnist(config)
            for seed in seeds:
                for method in args.methods or config["methods"]:
                    if (task, method, seed) in done:
                        continue
                    directory = output / "tuners" / task / f"seed{seed}"
                    record = run(method, task, seed, args.scale, config, data, directory)
                    with open(records_path, "a") as stream:
                        stream.write(json.dumps(record) + "\n")
                    final = record["best_val"][-1]
                    print(f"{task} {method} seed {seed}: best val {final:.5g} "
                          f"test {record['best_test'][-1]:.5g} ({record['wall_s']:.0f} s)",
                          flush=True)
    from experiments.reports.static_search import render

    render(read_records(records_path), args.scale, config, args.docs)


if __name__ == "__main__":
    main()
