"""The short-horizon bias on the regularized benchmark, and whether a cool-down branch or the
improvement rate would remove it (issue 38: "a fitness that does not punish regularization").

    python -m experiments.horizon_bias [--dataset fmnist] [--scale middle] [--seeds 5 15 24]
                                       [--settings none good] [--branches 32 128]
                                       [--out docs/records/regularization/horizon_bias]

For each seed and setting (no dropout or augmentation, or the user's guess), one model trains
exactly as `adam-decay` does (the same initial weights, stream and schedule over the scale's
budget, checked on the whole validation half every `steps_per_iteration` steps) up to the last
probe. A probe is a step count at which `popdescent-budget` ranks members: its rungs' own steps
per member (default rungs, no range test) and the rungs' member-steps read as a single run's
steps (the reading of docs/regularization.md). At every probe the model's weights and Adam
state are copied and each copy trains `branch` more steps on a stream of its own, its rate
falling linearly from the schedule's value to 0 (the cool-down `CooledCheckpoint` applies),
then is measured and discarded: the fitness a "cool-down branch" would select on. The main
run never sees the branches, so its checks are `adam-decay`'s until that run's cool-down, if
any, begins (a test checks it; compare `checks` with a committed run's curve). Records: one per
(seed, setting), method `probe-SETTING`, with the plain and cooled validation loss at every
probe, every check, and the branch steps spent.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import time

import keras
import numpy as np

from baselines.random_search import training_stream
from experiments.core.contract import (DATASETS, SCALES, MethodContext, build_context_model,
                                       get_budget)
from experiments.core.data import load_splits
from experiments.core.evaluation import validation_loss
from experiments.core.models import GUESSES, paper_loss
from experiments.core.records import RECORDS_FILE, git_commit, machine, read_records, write_record
from popdescent import BudgetSchedule, ScheduledLearningRate
from popdescent.returned.cooldown import CooldownLearningRate
from popdescent.strategies.budget_aware import default_rungs, planned_sizes
from popdescent.validation import check_integer

__all__ = ["rung_horizons", "probe_steps", "cooled_copy_loss", "probe_run", "main"]

SETTINGS = ("none", *GUESSES)
DEFAULT_OUT = pathlib.Path("docs/records/regularization/horizon_bias")
# Branch lengths: a quarter of a quick-scale iteration and one middle-scale iteration.
DEFAULT_BRANCHES = (32, 128)


def rung_horizons(budget) -> list:
    """(member-steps spent, each member's own steps) when each default rung of a population
    of `budget.population_size` shrinks it, read off `planned_sizes` (the budget's plan)."""
    size, per_iteration = budget.population_size, budget.steps_per_iteration
    sizes = planned_sizes(default_rungs(size), budget.member_steps, size, per_iteration)
    horizons, spent = [], 0
    for number, members in enumerate(sizes):
        spent += members * per_iteration
        if number + 1 < len(sizes) and sizes[number + 1] < members:
            horizons.append((spent, (number + 1) * per_iteration))
    return horizons


def probe_steps(budget) -> list:
    """The sorted step counts probed: each rung's own steps and its member-steps."""
    return sorted({steps for pair in rung_horizons(budget) for steps in pair})


def _copy_optimizer_state(source, target, model) -> None:
    target.build(model.trainable_variables)
    if len(source.variables) != len(target.variables):
        raise RuntimeError("the branch's optimizer does not mirror the run's")
    for to, value in zip(target.variables, source.variables):
        to.assign(value)


def cooled_copy_loss(model, context, rate, branch, seed) -> float:
    """The validation loss of a copy of `model` (weights and Adam state) after `branch` steps
    of a rate falling linearly from `rate`'s value now to 0, on a stream of its own."""
    steps = int(model.optimizer.iterations.numpy())
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    multiplier = float(rate.schedule.multiplier(steps / rate.total_steps))
    optimizer = keras.optimizers.Adam(
        CooldownLearningRate(rate.learning_rate, steps, branch, multiplier, 0.0))
    copy.compile(optimizer=optimizer, loss=paper_loss())
    _copy_optimizer_state(model.optimizer, optimizer, copy)
    data = context.data
    copy.fit(training_stream(data.x_train, data.y_train, context.budget.batch_size,
                             seed + 1_000_003 * (steps + 1)),
             steps_per_epoch=branch, epochs=1, verbose=0, shuffle=False)
    return validation_loss(copy, data)


class Probes(keras.callbacks.Callback):
    """At each check: the validation loss; at a probe also the cooled copies' losses."""

    def __init__(self, context, rate, probes, branches, seed):
        super().__init__()
        self.context, self.rate, self.seed = context, rate, seed
        self.probes, self.branches = set(probes), tuple(branches)
        self.checks, self.results = [], []

    def on_epoch_end(self, epoch, logs=None):
        steps = int(self.model.optimizer.iterations.numpy())
        loss = validation_loss(self.model, self.context.data)
        self.checks.append((steps, loss))
        if steps in self.probes:
            cooled = {str(b): cooled_copy_loss(self.model, self.context, self.rate, b, self.seed)
                      for b in self.branches}
            self.results.append({"steps": steps, "loss": loss, "cooled": cooled})
        if steps >= max(self.probes):
            self.model.stop_training = True


def probe_run(context, setting, branches) -> dict:
    """One model of `setting` trained as `adam-decay` up to the last probe; its record."""
    budget = context.budget
    probes = probe_steps(budget)
    every = budget.steps_per_iteration
    if any(p % every for p in probes):
        raise ValueError(f"probes {probes} must be multiples of the check, {every} steps")
    keras.utils.set_random_seed(context.seed)
    model = build_context_model(context)
    rate = ScheduledLearningRate(1e-3, budget.member_steps, BudgetSchedule())
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=paper_loss())
    callback = Probes(context, rate, probes, branches, context.seed)
    started = time.perf_counter()
    model.fit(training_stream(context.data.x_train, context.data.y_train, budget.batch_size,
                              context.seed),
              steps_per_epoch=every, epochs=math.ceil(max(probes) / every), verbose=0,
              shuffle=False, callbacks=[callback])
    return {
        "method": f"probe-{setting}", "dataset": context.dataset, "seed": context.seed,
        "scale": context.scale, "member_steps": budget.member_steps,
        "regularization": False, "setting": setting,
        "options": dict(context.options), "rung_horizons": rung_horizons(budget),
        "probes": callback.results, "checks": callback.checks,
        "branch_steps": sum(branches) * len(probes), "wall_time_s": time.perf_counter() - started,
        "machine": machine(), "git_commit": git_commit(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="fmnist")
    parser.add_argument("--scale", choices=SCALES, default="middle")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 15, 24])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=["none", "good"])
    parser.add_argument("--branches", type=int, nargs="+", default=list(DEFAULT_BRANCHES))
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        for branch in args.branches:
            check_integer("--branches", branch, minimum=1)
    except ValueError as error:
        parser.error(str(error))
    path = args.out / RECORDS_FILE
    done = {(r["seed"], r["setting"]) for r in read_records(path) if r["scale"] == args.scale
            and r["dataset"] == args.dataset}
    budget, data = get_budget(args.dataset, args.scale), None
    for seed in args.seeds:
        for setting in args.settings:
            if (seed, setting) in done:
                print(f"seed {seed} {setting}: recorded, skipped")
                continue
            data = data or load_splits(args.dataset, args.scale)
            context = MethodContext(
                method=f"probe-{setting}", dataset=args.dataset, seed=seed, scale=args.scale,
                regularization=False, data=data, budget=budget, work_dir=args.out,
                options={} if setting == "none" else {"guess": setting})
            record = probe_run(context, setting, args.branches)
            write_record(path, record)
            print(f"seed {seed} {setting}: " + ", ".join(
                f"{p['steps']}: {p['loss']:.3f} -> "
                + "/".join(f"{v:.3f}" for v in p["cooled"].values())
                for p in record["probes"]), flush=True)
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
