"""What live regularization costs per member-step: the same population, the same layers, at
fixed rates against tuned per member (issue 38 asks for at most 10 % more).

    python -m experiments.live_regularization_cost [--model fmnist|cifar10|mlp] [--size 5]
                                                   [--steps N] [--repeats 3] [--json PATH]

Two `Population`s of `size` members of the model at the good guess (Dropout after the flatten
and after the hidden Dense layer, RandomTranslation at the input, RandomFlip on CIFAR-10):
  (fixed) the learning rate tuned, dropout and augmentation at the rates the user wrote
          (Keras' own layers, Python floats in the traced step);
  (live)  the learning rate, dropout, augmentation magnitude and label smoothing tuned, each
          a variable per member that the bound layers and the loss read.
Every figure is the median over `repeats` timed epochs of `steps` steps after one warm-up
epoch, the two populations' epochs interleaved so that a change of load hits both alike;
wall and CPU seconds per member-step and their ratio live / fixed are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics

import keras
import numpy as np

from experiments.core.models import MODEL_NAMES, build_model, guess_regularization, paper_loss
from experiments.core.records import atomic_write_text
from experiments.throughput import BATCH_SIZE, DEFAULT_STEPS, _fit_one_epoch, random_data
from popdescent import LogUniform, Population, Uniform

LIVE = {"dropout": Uniform(0.2, 0.4), "augmentation": Uniform(0.8, 1.2),
        "label_smoothing": Uniform(0.0, 0.05)}


def regularized_member(model_name):
    dataset = "cifar10" if model_name == "cifar10" else "fmnist"
    model = build_model(model_name, seed=0, **guess_regularization(dataset, "good"))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=paper_loss())
    return model


def measure(model_name="fmnist", size=5, steps=None, repeats=3, seed=0) -> dict:
    """{"fixed": [...], "live": [...]}: (wall, CPU) seconds per member-step of each repeat."""
    steps = steps or DEFAULT_STEPS[model_name]
    x, y = random_data(model_name, steps * BATCH_SIZE, np.random.default_rng(seed))
    rate = {"learning_rate": LogUniform(1e-4, 1e-2)}
    populations = {
        "fixed": Population(regularized_member(model_name), size=size, seed=seed,
                            hyperparameters=rate),
        "live": Population(regularized_member(model_name), size=size, seed=seed,
                           hyperparameters={**rate, **LIVE}),
    }
    timings = {name: [] for name in populations}
    for repeat in range(repeats + 1):  # repeat 0 is the warm-up
        for name, population in populations.items():
            seconds = _fit_one_epoch(population, x, y, steps) / (steps * size)
            if repeat:
                timings[name].append(seconds)
    return {"model": model_name, "size": size, "steps": steps, "repeats": repeats,
            **{name: [list(map(float, t)) for t in values] for name, values in timings.items()}}


def summary(result) -> dict:
    """Median ms per member-step (wall, CPU) of each population and live / fixed."""
    medians = {name: [1000 * statistics.median(t[i] for t in result[name]) for i in (0, 1)]
               for name in ("fixed", "live")}
    return {**medians, "ratio": [medians["live"][i] / medians["fixed"][i] for i in (0, 1)]}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.live_regularization_cost",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODEL_NAMES, default="fmnist")
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.size < 2 or args.repeats < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--size must be >= 2, --repeats >= 1 and --steps >= 1")
    result = measure(args.model, args.size, args.steps, args.repeats)
    result["summary"] = summary(result)
    fixed, live, ratio = (result["summary"][k] for k in ("fixed", "live", "ratio"))
    print(f"{args.model}, {args.size} members, ms per member-step (wall / CPU):")
    print(f"  fixed rates : {fixed[0]:8.2f} / {fixed[1]:8.2f}")
    print(f"  live        : {live[0]:8.2f} / {live[1]:8.2f}")
    print(f"  live / fixed: {ratio[0]:8.3f} / {ratio[1]:8.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
