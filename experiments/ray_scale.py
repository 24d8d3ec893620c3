"""In-process fused population vs PopDescent on Ray Tune (one model per trial, or islands).

    python -m experiments.ray_scale [--scale smoke|small|full] [--model fmnist|mlp]
                                    [--cpus 2] [--json PATH]

On the same Fashion-MNIST member-step budget B (every gradient step of every member counted),
runs three ways of doing PopDescent and prints member-steps per second (wall clock, Ray's
start-up and barriers included: what a user waits for) and the test loss of the member each
picks on validation data:
  (a) in-process: one fused `Population` of 5 with `PopDescent(elites=3)`;
  (b) `PopDescentScheduler` with 5 single-model trials (`keras_trainable`, elites 3);
  (c) 2 islands (`island_trainable`, 3 members each, `IslandMigration` every 2 reports).
Each runs ceil(B / (members x steps per report)) reports. Needs `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import keras

from experiments.core.models import build_model, paper_loss
from experiments.core.records import atomic_write_text
from popdescent import LogUniform, PopDescent, Population
from popdescent.inputs.datasets import load_dataset

# (train examples, steps per report, reports of a population of 5): the budget is
# 5 x steps x reports member-steps.
SCALES = {"smoke": (2000, 4, 2), "small": (10_000, 32, 8), "full": (None, 128, 30)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 64
MEMBERS = 5
ISLANDS, ISLAND_SIZE = 2, 3
LEARNING_RATES = LogUniform(1e-4, 1e-2, bounds=(1e-6, 1.0))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.ray_scale",
        description="In-process population vs PopDescentScheduler vs islands on Ray Tune.")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--model", choices=("fmnist", "mlp"), default="fmnist")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use (>= 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=None, help="Ray results directory (default: temp)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write figures here")
    args = parser.parse_args(argv)
    for name, minimum in (("cpus", 1), ("seed", 0)):
        if getattr(args, name) < minimum:
            parser.error(f"--{name} must be an integer >= {minimum}, got {getattr(args, name)}")
    return args


def make_build(model_name, seed):
    """build(config): the paper's model, Adam at the config's learning rate, its loss."""

    def build(config):
        model = build_model(model_name, seed=seed)
        model.compile(keras.optimizers.Adam(config.get("learning_rate", 1e-3)), paper_loss())
        return model

    return build


def test_loss(model, splits):
    return float(model.evaluate(splits.x_test, splits.y_test, batch_size=256, verbose=0))


def in_process(build, splits, steps, reports, seed):
    """(a) one fused Population of 5 with PopDescent."""
    population = Population(build({}), size=MEMBERS, seed=seed,
                            hyperparameters={"learning_rate": LEARNING_RATES})
    start = time.perf_counter()
    population.fit(splits.x_train, splits.y_train, batch_size=BATCH_SIZE, epochs=reports,
                   steps_per_epoch=steps, validation_data=(splits.x_val, splits.y_val),
                   callbacks=[PopDescent(elites=3)], verbose=0)
    seconds = time.perf_counter() - start
    return population.gradient_steps, seconds, test_loss(population.best_model(), splits)


def on_ray(trainable, scheduler, trials, reports, storage, name):
    from ray import tune

    start = time.perf_counter()
    grid = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                  stop={"training_iteration": reports}),
    ).fit()
    seconds = time.perf_counter() - start
    errors = [str(result.error) for result in grid if result.error is not None]
    if errors:
        raise RuntimeError(f"{name}: {len(errors)} trial(s) failed: {errors[0]}")
    return grid, seconds


def scheduler_trials(build, splits, steps, reports, seed, storage):
    """(b) PopDescentScheduler, 5 trials of one model each."""
    from popdescent.ray import PopDescentScheduler, keras_trainable
    from popdescent.ray.model_state import load_model_state

    scheduler = PopDescentScheduler({"learning_rate": LEARNING_RATES}, metric="val_loss",
                                    mode="min", elites=3, seed=seed)
    trainable = keras_trainable(build, ((splits.x_train, splits.y_train),
                                        (splits.x_val, splits.y_val)),
                                steps_per_report=steps, batch_size=BATCH_SIZE, seed=seed)
    grid, seconds = on_ray(trainable, scheduler, MEMBERS, reports, storage, "scheduler")
    best = grid.get_best_result(metric="val_loss", mode="min")
    model = build(best.config)
    with best.checkpoint.as_directory() as directory:
        load_model_state(model, directory)
    return sum(r.metrics["member_steps"] for r in grid), seconds, test_loss(model, splits)


def islands(build, splits, steps, reports, seed, storage):
    """(c) 2 islands of 3 members, migrating every 2 reports."""
    from popdescent.ray import IslandMigration, island_trainable
    from popdescent.ray.islands import read_member

    trainable = island_trainable(
        build, ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val)),
        size=ISLAND_SIZE, hyperparameters={"learning_rate": LEARNING_RATES},
        popdescent={"elites": 2}, steps_per_report=steps, batch_size=BATCH_SIZE, seed=seed)
    grid, seconds = on_ray(trainable, IslandMigration(every=2), ISLANDS, reports, storage,
                           "islands")
    best = grid.get_best_result(metric="val_loss", mode="min")
    model = build({})
    model.optimizer.build(model.trainable_variables)
    count = len(model.variables) + len(model.optimizer.variables)
    with best.checkpoint.as_directory() as directory:
        values = read_member(directory, best.metrics["best_member"], count)
    for variable, value in zip(model.variables, values):
        variable.assign(value)
    return sum(r.metrics["member_steps"] for r in grid), seconds, test_loss(model, splits)


def main(argv=None):
    args = parse_args(argv)
    import ray

    from popdescent.ray import cpu_worker_env

    train_examples, steps, reports = SCALES[args.scale]
    splits = load_dataset("fmnist", train_subset=train_examples, seed=args.seed)
    build = make_build(args.model, args.seed)
    budget = MEMBERS * steps * reports
    island_reports = math.ceil(budget / (ISLANDS * ISLAND_SIZE * steps))
    storage = args.storage or tempfile.mkdtemp(prefix="ray_scale-")
    # The machine's 5-minute load average as each method ends: speeds measured beside other
    # work are only comparable when the loads are alike.
    loads = {}
    rows = {"in_process": in_process(build, splits, steps, reports, args.seed)}
    loads["in_process"] = os.getloadavg()[1]
    # Workers import `experiments` from this clone; each runs TensorFlow on one thread, so
    # `cpus` concurrent trials share `cpus` cores (the in-process run uses them all).
    # A Ray session already running (a test suite's, a notebook's) is used as it is.
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": cpu_worker_env(pythonpath=ROOT)})
    try:
        rows["scheduler"] = scheduler_trials(build, splits, steps, reports, args.seed, storage)
        loads["scheduler"] = os.getloadavg()[1]
        rows["islands"] = islands(build, splits, steps, island_reports, args.seed, storage)
        loads["islands"] = os.getloadavg()[1]
    finally:
        if started:
            ray.shutdown()
    result = {"scale": args.scale, "model": args.model, "budget": budget, "cpus": args.cpus,
              "steps_per_report": steps, "methods": {}}
    print(f"budget {budget} member-steps, {steps} steps per report, {args.cpus} CPUs")
    print(f"{'method':<12} {'member-steps':>12} {'seconds':>9} {'steps/s':>9} {'test loss':>9}"
          f" {'load (5 min)':>12}")
    for name, (member_steps, seconds, loss) in rows.items():
        result["methods"][name] = {"member_steps": int(member_steps), "seconds": seconds,
                                   "member_steps_per_second": member_steps / seconds,
                                   "test_loss": loss, "load_average_5min": loads[name]}
        print(f"{name:<12} {member_steps:>12} {seconds:>9.1f} "
              f"{member_steps / seconds:>9.1f} {loss:>9.4f} {loads[name]:>12.1f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
