"""Throughput: a fused `Population` against training its members one by one.

    python -m experiments.throughput [--model fmnist|cifar10|mlp] [--size 5] [--steps N]
                                     [--repeats 3] [--json PATH]
                                     [--precision float32 [mixed_bfloat16 ...]]

Measures, in one run, on the same random data and batch size 64:
  (a) one plain `keras.Model.fit` of a single member, ms per step;
  (b) `size` members trained one after another, each by its own plain `fit` (what grid search,
      KerasTuner and the paper's reference code do), ms per member-step;
  (c) `Population.fit` of `size` members (as constructed, default compile), ms per member-step;
  (d) one PopDescent end-of-iteration step (fitness on a 640-image cross-validation batch,
      selection, copies, mutation), ms, and as a percentage of one 128-step iteration of (c).

Every figure is the median over `repeats` timed epochs of `steps` steps, after one warm-up
epoch (tracing, compilation) that is not counted. The repeats of (a), (b) and (c) are
interleaved, so a change of load on a shared machine hits all three alike and the ratio
(b)/(c) stays meaningful. The load average at start and end is printed and saved: on a shared
machine, compare ratios from one run, not absolute times from different runs. Beside wall time
the process's CPU time per member-step is reported: the work done, which other processes'
load does not inflate (its ratio is what a fully loaded machine would show).

With several `--precision` policies (Keras dtype policies, e.g. `float32 mixed_bfloat16`), each
policy gets its own models and the repeats of every policy's (a), (b), (c) are interleaved too,
so each policy's figures are side by side with float32's under the same load; the JSON names
the CPU's bf16/fp16 instructions, which decide whether a reduced precision can be faster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import keras
import numpy as np

from experiments.core.models import INPUT_SHAPES, MODEL_NAMES, NUM_CLASSES, build_model, paper_loss
from experiments.core.records import atomic_write_text
from popdescent import PopDescent, Population

BATCH_SIZE = 64
ITERATION_STEPS = 128  # the paper's steps per member per iteration
CROSS_VALIDATION_SIZE = 640  # the paper's cross-validation batch: 10 batches of 64
# Chosen so that a default run (warm-up included) stays under 3 minutes on a 2-core CPU.
DEFAULT_STEPS = {"fmnist": 12, "cifar10": 6, "mlp": 50}
TITLES = {"fmnist": "FMNIST CNN", "cifar10": "CIFAR-10 CNN", "mlp": "MLP"}
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16")
# /proc/cpuinfo flags that give a CPU native reduced-precision arithmetic (oneDNN uses them).
REDUCED_PRECISION_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx_ne_convert",
                           "avx512_fp16", "amx_fp16", "avx512f")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m experiments.throughput",
        description="Fused population training against N plain fits, in ms per member-step.",
    )
    parser.add_argument("--model", choices=MODEL_NAMES, default="fmnist")
    parser.add_argument("--size", type=int, default=5, help="population size N (>= 2)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per timed epoch (default: fmnist 12, cifar10 6, mlp 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", default=None, help="also write figures here")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["float32"],
                        help="one or more Keras dtype policies, measured side by side "
                             "(default: float32)")
    args = parser.parse_args(argv)
    if len(set(args.precision)) != len(args.precision):
        parser.error(f"--precision names a policy twice: {args.precision}")
    if args.steps is None:
        args.steps = DEFAULT_STEPS[args.model]
    for name, minimum in (("size", 2), ("steps", 1), ("repeats", 1), ("seed", 0)):
        value = getattr(args, name)
        if value < minimum:
            parser.error(f"--{name} must be an integer >= {minimum}, got {value}")
    return args


def compiled_member(model_name, seed):
    """One candidate as the baselines train it: the paper's model, Adam(1e-3), its loss."""
    model = build_model(model_name, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=paper_loss(),
                  metrics=["accuracy"])
    return model


@contextlib.contextmanager
def dtype_policy(name):
    """Builds the models made inside under Keras dtype policy `name`, then restores the old one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cpu_reduced_precision_flags(cpuinfo="/proc/cpuinfo"):
    """Which of `REDUCED_PRECISION_FLAGS` the CPU reports (empty when unknown)."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle
                          if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in REDUCED_PRECISION_FLAGS if flag in flags]


def random_data(model_name, count, rng):
    x = rng.random((count, *INPUT_SHAPES[model_name]), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, size=count)
    return x, y


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, and the CPU time this process spent in it (all threads)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.cpu_seconds = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu_start)


class TimedPopDescent(PopDescent):
    """PopDescent, unchanged, timing its end-of-iteration step and, within it, `evolve`
    (selection, copies and mutation; the rest is the fitness measurement and the records)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seconds, self.evolve_seconds = [], []

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.seconds.append(time.perf_counter() - start)

    def evolve(self, population, fitness, rng):
        start = time.perf_counter()
        result = super().evolve(population, fitness, rng)
        self.evolve_seconds.append(time.perf_counter() - start)
        return result


def _fit_one_epoch(model, x, y, steps):
    """(wall, CPU) seconds of one epoch of `steps` steps."""
    timer = EpochTimer()
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, steps_per_epoch=steps, verbose=0,
              callbacks=[timer])
    return np.array([timer.seconds[-1], timer.cpu_seconds[-1]])


def measure_training(model_name, size, steps, repeats, seed, precisions=("float32",)):
    """(a), (b), (c) of every precision: (wall, CPU) seconds per step of each timed repeat,
    interleaved across figures and precisions. Returns the data and, per precision, its
    population and timings."""
    rng = np.random.default_rng(seed)
    x, y = random_data(model_name, steps * BATCH_SIZE, rng)
    models = {}
    for precision in precisions:
        with dtype_policy(precision):
            models[precision] = (
                compiled_member(model_name, seed),
                [compiled_member(model_name, seed + 1 + index) for index in range(size)],
                Population(compiled_member(model_name, seed), size=size, seed=seed),
            )
    timings = {precision: {"a": [], "b": [], "c": []} for precision in precisions}
    for repeat in range(repeats + 1):  # repeat 0 is the warm-up
        for precision, (single, one_by_one, population) in models.items():
            a = _fit_one_epoch(single, x, y, steps)
            b = sum(_fit_one_epoch(model, x, y, steps) for model in one_by_one)
            c = _fit_one_epoch(population, x, y, steps)
            if repeat:
                timings[precision]["a"].append(a / steps)
                timings[precision]["b"].append(b / (steps * size))
                timings[precision]["c"].append(c / (steps * size))
    populations = {precision: entry[2] for precision, entry in models.items()}
    return x, y, populations, timings


def measure_evolution(model_name, population, x, y, repeats, seed):
    """(d): seconds of PopDescent's end-of-iteration step inside a real `Population.fit`, and
    of its `evolve` part alone."""
    rng = np.random.default_rng(seed + 1)
    x_val, y_val = random_data(model_name, CROSS_VALIDATION_SIZE, rng)
    strategy = TimedPopDescent(elites=min(3, population.size - 1), seed=seed)
    epochs = repeats + 1
    # One step per iteration: only the strategy's time is wanted. validation_freq beyond the
    # last epoch keeps Keras' own validation pass (not part of PopDescent) out of the run.
    population.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, steps_per_epoch=1, verbose=0,
                   validation_data=(x_val, y_val), validation_freq=epochs + 1,
                   callbacks=[strategy])
    return strategy.seconds[1:], strategy.evolve_seconds[1:]


def run(model_name="fmnist", size=5, steps=None, repeats=3, seed=0, precision="float32"):
    """Measures (a)-(d) in one precision; returns the figures as a JSON-ready dict."""
    return run_precisions(model_name, size, steps, repeats, seed, (precision,))[precision]


def run_precisions(model_name="fmnist", size=5, steps=None, repeats=3, seed=0,
                   precisions=("float32",)):
    """Measures (a)-(d) in every precision side by side; returns {precision: figures}."""
    steps = DEFAULT_STEPS[model_name] if steps is None else steps
    load_before = os.getloadavg()[0]
    x, y, populations, timings = measure_training(model_name, size, steps, repeats, seed,
                                                  precisions)
    results = {}
    for precision in precisions:
        with dtype_policy(precision):
            evolution, evolve = measure_evolution(model_name, populations[precision], x, y,
                                                  repeats, seed)
        results[precision] = _figures(model_name, size, steps, repeats, populations[precision],
                                      timings[precision], evolution, evolve)
        results[precision]["precision"] = precision
    flags = cpu_reduced_precision_flags()
    for precision in precisions:
        results[precision].update(load_average_before=load_before,
                                  load_average_after=os.getloadavg()[0],
                                  cpu_reduced_precision_flags=flags)
        if precision != "float32" and "float32" in results:
            float32 = results["float32"]
            results[precision]["vs_float32"] = {
                key: results[precision][key] / float32[key]
                for key in ("a_ms_per_step", "b_ms_per_member_step", "c_ms_per_member_step",
                            "c_cpu_ms_per_member_step")}
    return results


def _figures(model_name, size, steps, repeats, population, timings, evolution, evolve):
    a, b, c = (statistics.median(t[0] for t in timings[key]) * 1000 for key in "abc")
    cpu = {key: statistics.median(t[1] for t in timings[key]) * 1000 for key in "abc"}
    d = statistics.median(evolution) * 1000
    d_evolve = statistics.median(evolve) * 1000
    iteration_ms = ITERATION_STEPS * size * c
    return {
        "model": model_name,
        "size": size,
        "steps": steps,
        "repeats": repeats,
        "batch_size": BATCH_SIZE,
        "backend": keras.backend.backend(),
        # What the members' layers really compute in (the policy is only a request).
        "compute_dtype": population.member(0).layers[-1].compute_dtype,
        "population_compile": {
            "jit_compile": bool(population.jit_compile),
            "steps_per_execution": int(population.steps_per_execution),
            "jit_compile_updates": bool(population.jit_compile_updates),
        },
        "a_ms_per_step": a,
        "b_ms_per_member_step": b,
        "c_ms_per_member_step": c,
        "d_ms": d,
        "d_percent_of_iteration": 100 * d / iteration_ms,
        "d_selection_mutation_ms": d_evolve,
        "d_selection_mutation_percent_of_iteration": 100 * d_evolve / iteration_ms,
        "d_fitness_ms": d - d_evolve,
        "iteration_ms": iteration_ms,
        "ratio": b / c,
        "a_over_c": a / c,
        # CPU time of this process (all its threads): the work, which load does not inflate.
        "a_cpu_ms_per_step": cpu["a"],
        "b_cpu_ms_per_member_step": cpu["b"],
        "c_cpu_ms_per_member_step": cpu["c"],
        "cpu_ratio": cpu["b"] / cpu["c"],
        "repeats_ms": {key: [float(value[0]) * 1000 for value in values]
                       for key, values in timings.items()} | {
            "d": [value * 1000 for value in evolution],
            "d_selection_mutation": [value * 1000 for value in evolve]},
    }


def format_table(result):
    size = result["size"]
    lines = [
        f"{TITLES[result['model']]}, N = {size}, batch {result['batch_size']}, "
        f"{result['steps']} steps x {result['repeats']} repeats (median), "
        f"{result['backend']} backend, population compile {result['population_compile']}",
        f"precision {result['precision']} (layers compute in {result['compute_dtype']}); CPU reduced-precision flags: "
        f"{', '.join(result['cpu_reduced_precision_flags']) or 'none'}",
        f"load average: {result['load_average_before']:.2f} at start, "
        f"{result['load_average_after']:.2f} at end",
        f"(a) one plain fit                        {result['a_ms_per_step']:8.1f} ms/step",
        f"(b) {size} plain fits, one after another     "
        f"{result['b_ms_per_member_step']:8.1f} ms/member-step",
        f"(c) Population.fit, {size} members           "
        f"{result['c_ms_per_member_step']:8.1f} ms/member-step",
        f"(d) PopDescent end of iteration          {result['d_ms']:8.1f} ms "
        f"= {result['d_percent_of_iteration']:.2f} % of a {ITERATION_STEPS}-step iteration "
        f"({result['iteration_ms'] / 1000:.1f} s)",
        f"    fitness on {CROSS_VALIDATION_SIZE} images {result['d_fitness_ms']:.1f} ms, "
        f"selection + copies + mutation {result['d_selection_mutation_ms']:.1f} ms "
        f"= {result['d_selection_mutation_percent_of_iteration']:.2f} %",
        f"ratio (b)/(c) = {result['ratio']:.2f}    (a)/(c) = {result['a_over_c']:.2f}",
        f"CPU time per member-step (the work; load does not inflate it): "
        f"(a) {result['a_cpu_ms_per_step']:.1f}, (b) {result['b_cpu_ms_per_member_step']:.1f}, "
        f"(c) {result['c_cpu_ms_per_member_step']:.1f} ms; (b)/(c) {result['cpu_ratio']:.2f}",
    ]
    if "vs_float32" in result:
        ratios = result["vs_float32"]
        lines.append(
            f"{result['precision']} / float32 time, side by side: (a) "
            f"{ratios['a_ms_per_step']:.2f}, (b) {ratios['b_ms_per_member_step']:.2f}, (c) "
            f"{ratios['c_ms_per_member_step']:.2f}; CPU time (c) "
            f"{ratios['c_cpu_ms_per_member_step']:.2f}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    results = run_precisions(args.model, args.size, args.steps, args.repeats, args.seed,
                             tuple(args.precision))
    print("\n\n".join(format_table(result) for result in results.values()))
    # One precision keeps the single-table JSON; several are keyed by policy.
    output = results[args.precision[0]] if len(results) == 1 else results
    if args.json:
        atomic_write_text(args.json, json.dumps(output, indent=2))
    return output


if __name__ == "__main__":
    main(sys.argv[1:])
