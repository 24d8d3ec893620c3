"""PopDescent and ESGD variants for the ablation (Table 2) and sensitivity (Tables 3-4)
experiments, and how both hand their runs (`Variant`s) to the harness's one runner.

The variants are `run(context) -> MethodResult` functions like the benchmark's methods (see
`experiments.core.contract`), built from the same library pieces: one `popdescent.Population`
of the paper's model, trained by `experiments.methods.population.train_population` (the
population's fit, the
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

from baselines.esgd import PAPER_SGD, paper_esgd
from experiments.core.contract import (
    DEFAULT_LEARNING_RATE,
    L2_RANGE,
    LEARNING_RATE_RANGE,
    Budget,
    MethodContext,
    MethodResult,
    make_optimizer,
)
from experiments.core.models import HIDDEN_DENSE_NAME, INPUT_SHAPES, build_model, paper_loss
from experiments.core.records import read_records, record_key
from experiments.core.runner import Job, run_jobs
from experiments.core.validation import check_choice, check_positive_number
from experiments.methods.population import train_and_summarize
from popdescent import Fixed, LogNormal, LogUniform, PopDescent, Population

PRESETS = ("paper", "reference")
L2_LAYERS = ("hidden", "all")
OPTION_DEFAULTS = {
    "popdescent": {"preset": "paper", "mutate": True, "cross_validation": True,
                   "initial_learning_rate": None, "initial_l2": None, "l2_layers": "hidden",
                   "model": None},
    "esgd": {"learning_rate": DEFAULT_LEARNING_RATE, "esgd_optimizer": "adam",
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
        if name in merged:
            check_choice(f"options[{name!r}]", merged[name], allowed)
    for name in ("mutate", "cross_validation"):
        if name in merged and not isinstance(merged[name], bool):
            raise ValueError(f"options[{name!r}] must be true or false, got {merged[name]!r}")
    for name in ("initial_learning_rate", "initial_l2", "learning_rate"):
        if merged.get(name) is not None:
            check_positive_number(f"options[{name!r}]", merged[name])
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
        learning_rate = options["initial_learning_rate"] or DEFAULT_LEARNING_RATE
    else:
        strategy = PopDescent(**switches)
        learning_rate = DEFAULT_LEARNING_RATE  # replaced by the prior's draws
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

    strategy = paper_esgd(context.dataset, budget.population_size, budget.elites,
                          budget.cv_batch_size)
    population = Population(
        _builder(context, options["model"] or context.dataset, factory),
        size=budget.population_size, hyperparameters={"learning_rate": Fixed(learning_rate)},
        seed=context.seed,
    )
    result = train_and_summarize(context, population, strategy)
    result.details["generations"] = strategy.generation  # counted while training
    return result


RUNS = {"popdescent": run_popdescent, "esgd": run_esgd}


# ----------------------------------------------------------------------------- the runs
@dataclass(frozen=True)
class Variant:
    """One run of an experiment: `variant` names its records file (`<variant>.jsonl`), the
    rest is the record's identity, its budget and the variant's options."""

    variant: str
    method: str
    dataset: str
    seed: int
    regularization: bool
    budget: Budget
    options: dict = field(default_factory=dict)


def records_path(out, variant) -> pathlib.Path:
    return pathlib.Path(out) / f"{variant}.jsonl"


def as_job(experiment, variant: Variant, out, scale) -> Job:
    """The runner's `Job` of `variant`: its record goes to `out/<variant>.jsonl`, tagged with
    the experiment and the variant."""
    return Job(
        method=variant.method, dataset=variant.dataset, seed=variant.seed, scale=scale,
        regularization=variant.regularization, budget=variant.budget,
        run=RUNS[variant.method], records=records_path(out, variant.variant),
        out=pathlib.Path(out), work_name=f"{variant.variant}-{variant.seed}",
        options=dict(variant.options),
        label=f"{variant.variant}: {variant.method} on {variant.dataset}, seed {variant.seed}",
        record_fields={"experiment": experiment, "variant": variant.variant},
    )


def run_variants(experiment, variants, out, scale, load_data, log=print, force=False,
                 verbose=0) -> int:
    """Runs each variant not finished yet (all with `force`) through the harness's runner
    (`experiments.core.runner.run_jobs`); `load_data(dataset)` gives the splits. Bad options
    fail before anything trains. Returns the number of runs."""
    for variant in variants:
        _check_options(variant.method, variant.options)
    jobs = [as_job(experiment, variant, out, scale) for variant in variants]
    return len(run_jobs(jobs, load_data, name=experiment, force=force, log=log,
                        verbose=verbose))


def run_from_command_line(experiment, variants, args, load_data) -> int:
    """The end of an experiment script's `main`: `run_variants` with the parsed `--out`,
    `--scale`, `--force` and `--quiet`, then where the records went. Returns the exit code."""
    log = (lambda message: None) if args.quiet else (lambda m: print(m, flush=True))
    run_variants(experiment, variants, args.out, args.scale, load_data, log=log,
                 force=args.force)
    log(f"records in {args.out}; render with python -m experiments.report")
    return 0


def read_experiment(out) -> list:
    """Every record of an experiment directory (one `<variant>.jsonl` per variant), the last
    one written per key and variant."""
    records = {}
    for path in sorted(pathlib.Path(out).glob("*.jsonl")):
        for record in read_records(path):
            records[(path.stem, record_key(record))] = record
    return list(records.values())
