"""The contract between the benchmark harness and the methods it compares.

A method is a `run(context: MethodContext) -> MethodResult` registered in
`experiments.methods.METHODS`. Every method gets the same `Budget`, the same data
(`experiments.core.data.load_splits`), model builder (`experiments.core.models.build_model`),
loss (`paper_loss()`) and local optimizer (`make_optimizer`), and measures its curve points
with `experiments.core.evaluation.validation_loss`; the harness measures everything else
(wall time, test and train loss).

Budgets (member-steps = iterations x steps_per_iteration x population_size):

| dataset | scale | iterations x steps | member-steps | share of paper |
|---|---|---|---|---|
| fmnist  | paper | 50 x 128           | 32,000       | 100% |
| fmnist  | middle | 20 x 128          | 12,800       | 40%  |
| cifar10 | paper | 20 x 256 (2 x 128) | 25,600       | 100% |
| cifar10 | middle | 10 x 256          | 12,800       | 50%  |
| fmnist  | small | 15 x 128           |  9,600       | 30%  |
| cifar10 | small |  8 x 64            |  2,560       | 10%  |
| fmnist  | quick | 10 x 64            |  3,200       | 10%  |
| cifar10 | quick |  8 x 64            |  2,560       | 10%  |
| both    | smoke |  2 x 2, population 3, elites 2, CV batch 64 | 12 | seconds, for tests |

`middle` (issue 29) is the budget between the quick and the paper scale at which a population's
width past the horizon one model can use starts to pay (the same iterations as `paper`, fewer).

`quick` (issue 19) is the budget-aware study's scale: short enough to run every method at three
seeds in an afternoon of 2 cores, and short enough that one model's depth matters.

How `small` was chosen, with the timings it was chosen from: docs/budgets.md.

`smoke` also shrinks the data (`SMOKE_DATA`: 512 training, 256 validation and 256 test
images) so the test suite runs both datasets end to end in seconds; records say how much
data they used.
"""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass, field

import keras
import numpy as np

from experiments.core.models import GUESSES, INPUT_SHAPES, build_model, guess_regularization
from experiments.core.validation import check_choice, check_positive_number, is_number

__all__ = [
    "Budget",
    "MethodContext",
    "MethodResult",
    "SCALES",
    "DATASETS",
    "PAPER_SEEDS",
    "get_budget",
    "make_optimizer",
    "learning_rate_range",
    "learning_rate_bounds",
    "learning_rate_prior",
    "geometric_middle",
    "MODELS",
    "model_name",
    "build_context_model",
    "user_regularization",
    "regularization_priors",
    "REGULARIZATION_BOUNDS",
]

DATASETS = ("fmnist", "cifar10")
SCALES = ("smoke", "quick", "small", "middle", "paper")
# The ten seeds of the paper's Table 1 (reference code).
PAPER_SEEDS = (5, 15, 24, 34, 49, 60, 74, 89, 97, 100)
# Search space shared by every method (grid search keeps the paper's own fixed grids).
LEARNING_RATE_RANGE = (1e-4, 1e-2)
L2_RANGE = (1e-6, 1e-1)
DEFAULT_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Budget:
    """The training budget of one (dataset, scale); the same for every method.

    Attributes:
        iterations: PopDescent iterations (= epochs of `Population.fit`).
        steps_per_iteration: local gradient steps per member per iteration.
        batch_size: training batch size (64 in the paper).
        population_size: members of a population (5 in Table 1).
        elites: members kept untouched per iteration (3 in Table 1: 2 replaced).
        cv_batch_size: images of the cross-validation batch fitness is measured on (640).
    """

    iterations: int
    steps_per_iteration: int
    batch_size: int
    population_size: int
    elites: int
    cv_batch_size: int

    @property
    def member_steps(self) -> int:
        """Gradient steps of the whole budget, counted per member: what Table 1 reports."""
        return self.iterations * self.steps_per_iteration * self.population_size

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "member_steps": self.member_steps}


_PAPER = {"batch_size": 64, "population_size": 5, "elites": 3, "cv_batch_size": 640}
_BUDGETS = {
    ("fmnist", "paper"): Budget(iterations=50, steps_per_iteration=128, **_PAPER),
    ("cifar10", "paper"): Budget(iterations=20, steps_per_iteration=256, **_PAPER),
    ("fmnist", "middle"): Budget(iterations=20, steps_per_iteration=128, **_PAPER),
    ("cifar10", "middle"): Budget(iterations=10, steps_per_iteration=256, **_PAPER),
    ("fmnist", "small"): Budget(iterations=15, steps_per_iteration=128, **_PAPER),
    ("cifar10", "small"): Budget(iterations=8, steps_per_iteration=64, **_PAPER),
    ("fmnist", "quick"): Budget(iterations=10, steps_per_iteration=64, **_PAPER),
    ("cifar10", "quick"): Budget(iterations=8, steps_per_iteration=64, **_PAPER),
}
_SMOKE = Budget(
    iterations=2, steps_per_iteration=2, batch_size=64, population_size=3, elites=2,
    cv_batch_size=64,
)
_BUDGETS.update({(dataset, "smoke"): _SMOKE for dataset in DATASETS})


def get_budget(dataset: str, scale: str) -> Budget:
    """The `Budget` of `dataset` ("fmnist" | "cifar10") at `scale` (one of `SCALES`)."""
    check_choice("dataset", dataset, DATASETS)
    check_choice("scale", scale, SCALES)
    return _BUDGETS[(dataset, scale)]


@dataclass(frozen=True)
class MethodContext:
    """Everything a method's `run` gets: what to run, on which data, within which budget.

    Attributes:
        method, dataset, seed, scale, regularization: the run's identity (as in the record).
        data: a `popdescent.inputs.datasets.DatasetSplits` (x_train, y_train, x_val, y_val, x_test,
            y_test). Methods must not read the test arrays: the harness evaluates on them.
        budget: the `Budget` of (dataset, scale).
        work_dir: this run's private directory (`open_work_dir`). It outlives a crash: the
            population methods keep their backup there and resume from it when the harness
            runs them again, the tuners (`hyperband`, `bayesian`, `optuna`) their own storage;
            the others (`random`, say) start it over.
        verbose: Keras verbosity for `fit` (0 silent, 1 progress bar, 2 one line per epoch).
        options: method-specific options, e.g. {"esgd_optimizer": "adam"}; every method
            honours {"lr_range": [low, high]} (where learning rates start, see
            `learning_rate_range`), {"model": "cnn" | "mlp"} (which model it trains, see
            `model_name`) and the online ones {"lr_bounds": [low, high]} (how far they may
            move them).
    """

    method: str
    dataset: str
    seed: int
    scale: str
    regularization: bool
    data: object
    budget: Budget
    work_dir: pathlib.Path
    verbose: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class MethodResult:
    """What a method returns to the harness.

    Attributes:
        model: a compiled `keras.Model` chosen by VALIDATION data only, never test data.
        gradient_steps: member-steps that actually ran, every one counted (searches, retrains,
            discarded models included).
        curve: [(gradient_steps_so_far, best_validation_loss, seconds), ...], one point per
            iteration or per trained model, each measured with `validation_loss`; `seconds`
            is the wall time since `run` began when the point was measured (older records
            and methods may give (steps, loss) pairs: readers accept both).
        details: JSON-serialisable extras (chosen hyperparameters, lineage summary, ...).
        candidates: optional, the final models the method chose among (e.g. a population's
            members); only the clearly labelled `--protocol paper` evaluation uses them, to
            reproduce the reference code's selection by test loss. Empty means [model].
        resumed: None, or where a run that crashed was resumed from its backup in
            `work_dir`: {"iteration": iterations restored, "seconds_before": the training
            seconds they had taken}; the harness adds those seconds to the wall time.
        extra_models: name -> compiled model the method got without further training (the
            ensemble of a final population, say); the harness evaluates each like `model`
            and records it under `extras` (its own row in the reports).
    """

    model: keras.Model
    gradient_steps: int
    curve: list
    details: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    resumed: dict | None = None
    extra_models: dict = field(default_factory=dict)


def _positive_pair(name, value):
    """`value` as a (low, high) pair of finite floats with 0 < low < high, or a ValueError."""
    pair = None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        is_number(v, (int, float, np.integer, np.floating)) for v in value
    ):
        pair = (float(value[0]), float(value[1]))
    if pair is None or not (0 < pair[0] < pair[1] < float("inf")):
        raise ValueError(
            f"options[{name!r}] must be a pair [low, high] of finite numbers with "
            f"0 < low < high, got {value!r}"
        )
    return pair


def learning_rate_range(context: MethodContext) -> tuple:
    """The learning-rate range a method starts from: `context.options["lr_range"]`, default
    the shared search space [1e-4, 1e-2].

    Grid search spreads its five rates over it, random search samples it, population methods
    draw their members' initial rates from it, `adam` trains at its geometric middle.
    """
    if "lr_range" not in context.options:
        return LEARNING_RATE_RANGE
    return _positive_pair("lr_range", context.options["lr_range"])


def learning_rate_bounds(context: MethodContext) -> tuple:
    """How far an online method may move the learning rate: `context.options["lr_bounds"]`,
    which must contain the range; default the range itself (as `LogUniform`'s bounds)."""
    low, high = learning_rate_range(context)
    if "lr_bounds" not in context.options:
        return (low, high)
    bounds = _positive_pair("lr_bounds", context.options["lr_bounds"])
    if not (bounds[0] <= low and high <= bounds[1]):
        raise ValueError(
            f"options['lr_bounds'] must contain the learning-rate range [{low}, {high}], "
            f"got {context.options['lr_bounds']!r}"
        )
    return bounds


def learning_rate_prior(context: MethodContext):
    """The online methods' learning-rate prior: log-uniform initial values over
    `learning_rate_range`, mutation within `learning_rate_bounds`."""
    from popdescent import LogUniform

    return LogUniform(*learning_rate_range(context), bounds=learning_rate_bounds(context))


# Where the population's regularization priors start (narrowly around the user's guess) and
# how far mutation may walk (issue 38): from the bad guess it must walk out by selection.
REGULARIZATION_BOUNDS = {"dropout": (0.0, 0.9), "augmentation": (0.0, 5.0),
                         "label_smoothing": (0.0, 0.3)}


def regularization_priors(context: MethodContext) -> dict:
    """The online methods' priors of the user's regularization, with `options["guess"]`:
    dropout uniform within 0.1 of the guess, the augmentation magnitude in [0.8, 1.2] (1 is
    the guess), label smoothing in [0, 0.05]; each mutating within `REGULARIZATION_BOUNDS`.
    `options["prior"]="wide"`: initial values drawn over the whole bounds instead (the
    population then has breadth to select from, not only a walk out of the guess). Empty
    without a guess (the model has no dropout or augmentation layer)."""
    from popdescent import Uniform

    guess = context.options.get("guess")
    if guess is None:
        return {}
    check_choice("options['guess']", guess, tuple(GUESSES))
    prior = context.options.get("prior", "narrow")
    check_choice("options['prior']", prior, ("narrow", "wide"))
    if prior == "wide":
        return {name: Uniform(*bounds) for name, bounds in REGULARIZATION_BOUNDS.items()}
    dropout = GUESSES[guess]["dropout"]
    return {
        "dropout": Uniform(max(0.0, dropout - 0.1), dropout + 0.1,
                           bounds=REGULARIZATION_BOUNDS["dropout"]),
        "augmentation": Uniform(0.8, 1.2, bounds=REGULARIZATION_BOUNDS["augmentation"]),
        "label_smoothing": Uniform(0.0, 0.05, bounds=REGULARIZATION_BOUNDS["label_smoothing"]),
    }


def geometric_middle(low: float, high: float) -> float:
    """sqrt(low * high): the middle of a range on a log scale (1e-3 for [1e-4, 1e-2])."""
    return float(np.sqrt(low * high))


def make_optimizer(learning_rate: float = DEFAULT_LEARNING_RATE) -> keras.optimizers.Optimizer:
    """The local optimizer every method uses: Adam, 1e-3 by default (the paper's)."""
    check_positive_number("learning_rate", learning_rate)
    return keras.optimizers.Adam(learning_rate=float(learning_rate))


# What options["model"] may name: "cnn", the paper's CNN of the dataset (default), or the tiny
# "mlp"
# (Flatten -> Dense(64) -> Dense(10)) that lets the harness's own tests run every method end
# to end without training the 4.5M-parameter Fashion-MNIST CNN.
MODELS = ("cnn", "mlp")


def model_name(context: MethodContext) -> str:
    """The `build_model` name of the model a method trains: the dataset's CNN, or "mlp" with
    `context.options["model"] == "mlp"`."""
    choice = context.options.get("model", "cnn")
    check_choice("options['model']", choice, MODELS)
    return context.dataset if choice == "cnn" else "mlp"


def user_regularization(context: MethodContext) -> dict:
    """The dropout / augmentation the user's model is written with: `context.options["guess"]`
    ("good" or "bad", see `experiments.core.models.GUESSES`), or none."""
    return guess_regularization(context.dataset, context.options.get("guess"))


def build_context_model(context: MethodContext, regularization="none", l2=1e-3,
                        **overrides) -> keras.Model:
    """`build_model` of `model_name(context)`, uncompiled, shaped for the context's dataset,
    with the user's regularization at its guess (`user_regularization`); `overrides` replace
    single values of it (a tuner's trial: `dropout=0.4`)."""
    name = model_name(context)
    shape = INPUT_SHAPES[context.dataset] if name == "mlp" else None
    return build_model(name, regularization=regularization, l2=l2, input_shape=shape,
                       **{**user_regularization(context), **overrides})
