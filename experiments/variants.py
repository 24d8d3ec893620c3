"""PopDescent and ESGD variants for the ablation (Table 2) and sensitivity (Tables 3-4)
experiments, and the resumable runner both use.

The variants are `run(context) -> MethodResult` functions like the benchmark's methods (see
`experiments.methods`), built from the same library pieces: one `popdescent.Population` of
the paper's model, trained by `baselines.common.train_population` (the population's fit, the
code base's one training loop) with a `PopDescent` or `ESGD` callback. What varies is read
from `context.options`:

PopDescent (`run_popdescent`):
    preset: "paper" (default: Algorithm 1 and 2 as the paper states them) or "reference"
        (`PopDescent.reference_preset()` with `PopDescent.reference_hyperparameters()`: the
        authors' code's loss-scale "learning rate", inert regularization rate, scalar weight
        noise and 2**N(0, 15 m) factors; the members' Adam keeps lr `initial_learning_rate`).
    mutate, cross_validation: PopDescent's ablation switches (default True).
    initial_learning_rate: every member starts at this rate (a LogNormal prior of std 0),
        mutated within the shared range [1e-4, 1e-2] widened to contain it; default: drawn
        log-uniformly from [1e-4, 1e-2] as in Table 1.
    initial_l2: with regularization, every member starts at this L2 rate, mutated within
        [1e-6, 1e-1] widened to contain it; default drawn log-uniformly from [1e-6, 1e-1].
        (The reference preset keeps it fixed: its own rate was never used.)
    l2_layers: "hidden" (default, Table 1: the hidden Dense kernel) or "all" (every Conv2D
        and Dense kernel: the ablation, the same penalty as `build_model(regularization="all")`
        but owned by the population, so fitness and evaluation stay pure cross-entropy).
    model: the `build_model` name, default the dataset's CNN; "mlp" for fast tests.

ESGD (`run_esgd`): `learning_rate` (a fixed rate, default 1e-3), `esgd_optimizer` ("adam",
default, or "sgd": the paper's ESGD ran plain SGD), `model` as above.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field

import keras

from baselines.common import train_and_summarize
from experiments import benchmark, methods
from experiments.methods import (
    L2_RANGE,
    LEARNING_RATE_RANGE,
    MethodContext,
    MethodResult,
    make_optimizer,
)
from experiments.models import HIDDEN_DENSE_NAME, INPUT_SHAPES, build_model, paper_loss
from popdescent import Fixed, LogNormal, LogUniform, PopDescent, Population

PRESETS = ("paper", "reference")
L2_LAYERS = ("hidden", "all")
OPTION_DEFAULTS = {
    "popdescent": {"preset": "paper", "mutate": True, "cross_validation": True,
                   "initial_learning_rate": None, "initial_l2": None, "l2_layers": "hidden",
                   "model": None},
    "esgd": {"learning_rate": methods.DEFAULT_LEARNING_RATE, "esgd_optimizer": "adam",
             "model": None},
}


def _check_options(method, options):
    unknown = sorted(set(options) - set(OPTION_DEFAULTS[method]))
    if unknown:
        raise ValueError(f"{method} variant options must be among "
                         f"{sorted(OPTION_DEFAULTS[method])}, got {unknown}")
    merged = {**OPTION_DEFAULTS[method], **options}
    choices = {"preset": PRESETS, "l2_layers": L2_LAYERS, "esgd_optimizer": ("adam", "sgd")}
    for name, allowed in choices.items():
        if name in merged and merged[name] not in allowed:
            raise ValueError(f"options[{name!r}] must be one of {allowed}, got {merged[name]!r}")
    for name in ("mutate", "cross_validation"):
        if name in merged and not isinstance(merged[name], bool):
            raise ValueError(f"options[{name!r}] must be true or false, got {merged[name]!r}")
    for name in ("initial_learning_rate", "initial_l2", "learning_rate"):
        value = merged.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 < value < math.inf):
            raise ValueError(f"options[{name!r}] must be a finite number > 0, got {value!r}")
    if merged["model"] not in (None, "mlp", "fmnist", "cifar10"):
        raise ValueError(f"options['model'] must be 'fmnist', 'cifar10' or 'mlp', "
                         f"got {merged['model']!r}")
    return merged


def _started_at(value, default_range):
    """A prior starting every member at `value`, mutated within `default_range` widened to
    contain it; or, without a value, log-uniform initial values over the range."""
    if value is None:
        return LogUniform(*default_range)
    bounds = (min(default_range[0], value), max(default_range[1], value))
    return LogNormal(math.log10(value), 0.0, bounds=bounds)


def _builder(context, model_name, optimizer_factory):
    shape = INPUT_SHAPES[context.dataset] if model_name == "mlp" else None

    def build(index):
        model = build_model(model_name, regularization="none", input_shape=shape)
        model.compile(optimizer=optimizer_factory(), loss=paper_loss())
        return model

    return build


def popdescent_hyperparameters(context, options) -> dict:
    """The Population priors of a PopDescent variant (see the module docstring)."""
    if options["preset"] == "reference":
        return PopDescent.reference_hyperparameters(
            regularization=context.regularization,
            l2=options["initial_l2"] if options["initial_l2"] is not None else 1e-3,
        )
    hyperparameters = {
        "learning_rate": _started_at(options["initial_learning_rate"], LEARNING_RATE_RANGE)
    }
    if context.regularization:
        hyperparameters["l2"] = _started_at(options["initial_l2"], L2_RANGE)
    return hyperparameters


def run_popdescent(context: MethodContext) -> MethodResult:
    """A PopDescent variant within `context.budget`; returns the fittest member (by CV)."""
    options = _check_options("popdescent", context.options)
    hyperparameters = popdescent_hyperparameters(context, options)
    keras.utils.set_random_seed(context.seed)
    budget = context.budget
    switches = {"elites": budget.elites, "cv_batch_size": budget.cv_batch_size,
                "mutate": options["mutate"], "cross_validation": options["cross_validation"]}
    if options["preset"] == "reference":
        strategy = PopDescent.reference_preset(**switches)
        learning_rate = options["initial_learning_rate"] or methods.DEFAULT_LEARNING_RATE
    else:
        strategy = PopDescent(**switches)
        learning_rate = methods.DEFAULT_LEARNING_RATE  # replaced by the prior's draws
    model_name = options["model"] or context.dataset
    l2_layers = None
    if "l2" in hyperparameters and options["l2_layers"] == "hidden":
        l2_layers = [HIDDEN_DENSE_NAME]
    population = Population(
        _builder(context, model_name, lambda: make_optimizer(learning_rate)),
        size=budget.population_size, hyperparameters=hyperparameters, seed=context.seed,
        l2_layers=l2_layers,
    )
    return train_and_summarize(context, population, strategy, preset=options["preset"])


def run_esgd(context: MethodContext) -> MethodResult:
    """ESGD at a fixed learning rate within `context.budget`; returns the fittest member."""
    from baselines.esgd import ESGD, MUTATION_LENGTH, PAPER_SGD

    options = _check_options("esgd", context.options)
    keras.utils.set_random_seed(context.seed)
    budget = context.budget
    learning_rate = float(options["learning_rate"])
    if options["esgd_optimizer"] == "sgd":
        momentum = PAPER_SGD[context.dataset]["momentum"]

        def factory():
            return keras.optimizers.SGD(learning_rate, momentum=momentum)
    else:
        def factory():
            return make_optimizer(learning_rate)

    strategy = ESGD(reproductive_factor=4, mixing_number=min(3, budget.population_size),
                    elites=budget.elites, mutation_length=MUTATION_LENGTH[context.dataset],
                    cv_batch_size=budget.cv_batch_size)
    population = Population(
        _builder(context, options["model"] or context.dataset, factory),
        size=budget.population_size, hyperparameters={"learning_rate": Fixed(learning_rate)},
        seed=context.seed,
    )
    result = train_and_summarize(context, population, strategy)
    result.details["generations"] = strategy.generation  # counted while training
    return result


RUNS = {"popdescent": run_popdescent, "esgd": run_esgd}


# ----------------------------------------------------------------------------- the runner
@dataclass(frozen=True)
class Job:
    """One run of an experiment: `variant` names its records file (`<variant>.jsonl`), the
    rest is the record's identity, its budget and the variant's options."""

    variant: str
    method: str
    dataset: str
    seed: int
    regularization: bool
    budget: methods.Budget
    options: dict = field(default_factory=dict)

    def key(self, scale):
        return (self.method, self.dataset, self.seed, scale, self.regularization)


def records_path(out, variant) -> pathlib.Path:
    return pathlib.Path(out) / f"{variant}.jsonl"


def is_finished(job, out, scale) -> bool:
    return any(benchmark.record_key(record) == job.key(scale)
               for record in benchmark.read_records(records_path(out, job.variant)))


def run_jobs(experiment, jobs, out, scale, load_data, log=print, force=False, verbose=0) -> int:
    """Runs each job not finished yet (all with `force`), writing one record per run
    atomically into `out/<variant>.jsonl` through the benchmark harness (`run_one`,
    `write_record`); `load_data(dataset)` gives the splits. Returns the number of runs."""
    for job in jobs:  # bad options fail here, before anything trains
        _check_options(job.method, job.options)
    pending = [job for job in jobs if force or not is_finished(job, out, scale)]
    if len(pending) < len(jobs):
        log(f"{experiment}: skipping {len(jobs) - len(pending)} finished run(s) in {out}")
    git_commit = benchmark._git_commit()
    data = {}
    for number, job in enumerate(pending, start=1):
        if job.dataset not in data:
            data[job.dataset] = load_data(job.dataset)
        log(f"{experiment} [{number}/{len(pending)}] {job.variant}: {job.method} on "
            f"{job.dataset}, seed {job.seed}, {job.budget.member_steps} member-steps")
        work_dir = methods.open_work_dir(out, f"{job.variant}-{job.seed}", fresh=force)
        context = MethodContext(
            method=job.method, dataset=job.dataset, seed=job.seed, scale=scale,
            regularization=job.regularization, data=data[job.dataset], budget=job.budget,
            work_dir=work_dir, verbose=verbose, options=dict(job.options),
        )
        record = benchmark.run_one(context, RUNS[job.method], "honest", log, git_commit)
        record.update({"experiment": experiment, "variant": job.variant})
        benchmark.write_record(records_path(out, job.variant), record)
        methods.close_work_dir(work_dir)
        log(f"  test loss {record['test_loss']:.4f}, {record['wall_time_s']:.0f} s")
        keras.backend.clear_session()
    return len(pending)


def run_from_command_line(experiment, jobs, args, load_data) -> int:
    """The end of an experiment script's `main`: `run_jobs` with the parsed `--out`,
    `--scale`, `--force` and `--quiet`, then where the records went. Returns the exit code."""
    log = (lambda message: None) if args.quiet else (lambda m: print(m, flush=True))
    run_jobs(experiment, jobs, args.out, args.scale, load_data, log=log, force=args.force)
    log(f"records in {args.out}; render with python -m experiments.report")
    return 0


def read_experiment(out) -> list:
    """Every record of an experiment directory (one `<variant>.jsonl` per variant), the last
    one written per key and variant."""
    records = {}
    for path in sorted(pathlib.Path(out).glob("*.jsonl")):
        for record in benchmark.read_records(path):
            records[(path.stem, benchmark.record_key(record))] = record
    return list(records.values())
