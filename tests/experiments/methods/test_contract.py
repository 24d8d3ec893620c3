"""The contract every method in `METHODS` keeps (see experiments/core/contract.py), checked on each.

Every method runs on a tiny slice of the real Fashion-MNIST files with its test arrays sealed:
they keep their length, shape and dtype, and any read of their values raises. A method that
touches test data fails here, every time (comparing runs on real and on swapped test data
caught a leak only when the leak changed which candidate won). And the common contract: a
compiled model, gradient steps counted from what ran, a timed curve monotone in steps. A new
method joins `METHODS` and passes here.
"""

import dataclasses
import importlib.util
import json
import math

import keras
import numpy as np
import pytest

from experiments.core.contract import Budget, MethodContext, MethodResult
from experiments.core.data import load_splits
from experiments.core.evaluation import loss_and_accuracy
from experiments.methods import METHODS, get_method
from tests.helpers.data import skip_without_data

# Smaller than the smoke scale, so that all methods run in about half a minute: a
# population of 3, two iterations of two steps, batches of 16. The scale stays "smoke", so
# methods that scale their own schedules (grid, random search) take their smallest one. Its
# 12 member-steps hold the smallest Hyperband iteration (11 epochs of one step).
TINY_BUDGET = Budget(iterations=2, steps_per_iteration=2, batch_size=16, population_size=3,
                     elites=2, cv_batch_size=32)
TINY_DATA = {"train": 128, "validation": 64, "test": 64}
# Every method trains the tiny MLP (options["model"] = "mlp"): the contract is about the
# harness, not the paper's CNNs.
SEED = 5


@pytest.fixture(scope="module")
def tiny_data():
    try:
        splits = load_splits("fmnist", "smoke")
    except FileNotFoundError as error:
        skip_without_data(f"Fashion-MNIST files not found: {error}")
    return dataclasses.replace(
        splits,
        x_train=splits.x_train[:TINY_DATA["train"]], y_train=splits.y_train[:TINY_DATA["train"]],
        x_val=splits.x_val[:TINY_DATA["validation"]], y_val=splits.y_val[:TINY_DATA["validation"]],
        x_test=splits.x_test[:TINY_DATA["test"]], y_test=splits.y_test[:TINY_DATA["test"]],
    )


class SealedArray:
    """Stands in for a test array: its length, shape and dtype are there, any read of its
    values (indexing, iteration, numpy or TensorFlow conversion, any array method) raises."""

    def __init__(self, array):
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self._length = len(array)

    def __len__(self):
        return self._length

    def _read(self, *args, **kwargs):
        raise AssertionError("a method read the test data")

    __array__ = __getitem__ = __iter__ = __array_function__ = __array_ufunc__ = _read

    def __getattr__(self, name):
        self._read()


def with_test_data_sealed(data):
    """The same splits with the test half sealed (`SealedArray`)."""
    return dataclasses.replace(data, x_test=SealedArray(data.x_test),
                               y_test=SealedArray(data.y_test))


# The attribution controls read a population's record: given one written as the harness
# writes it (the fields they read), for the option each names it with.
RECORD_OPTIONS = {"adam-replay": "replay_from", "adam-constant": "constant_from"}
# Methods that need the user's regularization to act on.
GUESSED = {"adam-ramp": "good"}


def population_records(directory):
    record = {"method": "popdescent-budget", "dataset": "fmnist", "scale": "smoke", "seed": SEED,
              "options": {"model": "mlp"},
              "details": {"hyperparameters": {"learning_rate": 1e-3, "dropout": 0.2},
                          "exported_hyperparameters": {"learning_rate": [[2e-3, 3], [1e-3, 3]]}}}
    path = directory / "population_records.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return str(path)


def run_as_the_harness_does(name, data, work_dir) -> tuple:
    options = {"model": "mlp", **({"guess": GUESSED[name]} if name in GUESSED else {})}
    if name in RECORD_OPTIONS:
        options[RECORD_OPTIONS[name]] = population_records(work_dir)
    context = MethodContext(method=name, dataset="fmnist", seed=SEED, scale="smoke",
                            regularization=False, data=data, budget=TINY_BUDGET,
                            work_dir=work_dir, verbose=0, options=options)
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    return get_method(name)(context), context


# Methods that need an extra package: skipped, with the reason, where it is not installed.
EXTRAS = {"optuna": ("optuna", "optuna_integration")}


@pytest.fixture(scope="module", params=sorted(METHODS))
def sealed_run(request, tiny_data, tmp_path_factory):
    """(result, context) of a method whose test arrays raise on any read."""
    name = request.param
    missing = [package for package in EXTRAS.get(name, ())
               if importlib.util.find_spec(package) is None]
    if missing:
        pytest.skip(f"method {name!r} needs the [{name}] extra ({', '.join(missing)} "
                    "not installed)")
    return run_as_the_harness_does(name, with_test_data_sealed(tiny_data),
                                   tmp_path_factory.mktemp(name))


def test_test_data_cannot_leak_into_selection(sealed_run):
    result, context = sealed_run  # it ran to the end without reading the test arrays
    assert isinstance(context.data.x_test, SealedArray)
    assert len(context.data.x_test) == TINY_DATA["test"]


@pytest.mark.parametrize("read", [
    lambda data: data.x_test[:8],
    lambda data: np.asarray(data.y_test),
    lambda data: keras.ops.convert_to_tensor(data.x_test),
    lambda data: data.x_test.mean(),
    lambda data: list(data.y_test),
])
def test_a_sealed_test_array_raises_on_any_read(tiny_data, read):
    with pytest.raises(AssertionError, match="read the test data"):
        read(with_test_data_sealed(tiny_data))


def test_a_method_that_scores_on_test_data_is_caught(tiny_data, tmp_path):
    def leaky(context):
        model = get_method("adam")(context).model
        loss_and_accuracy(model, context.data.x_test, context.data.y_test)  # the leak

    context = MethodContext(method="adam", dataset="fmnist", seed=SEED, scale="smoke",
                            regularization=False, data=with_test_data_sealed(tiny_data),
                            budget=TINY_BUDGET, work_dir=tmp_path, verbose=0,
                            options={"model": "mlp"})
    with pytest.raises(AssertionError, match="read the test data"):
        leaky(context)


def test_result_keeps_the_common_contract(sealed_run):
    result, context = sealed_run
    assert isinstance(result, MethodResult)
    assert isinstance(result.model, keras.Model) and result.model.compiled
    assert result.model.optimizer is not None
    logits = keras.ops.convert_to_numpy(result.model(context.data.x_val[:4], training=False))
    assert logits.shape == (4, 10) and np.isfinite(logits).all()
    assert isinstance(result.gradient_steps, int) and result.gradient_steps > 0
    assert result.curve, "the curve must have at least one point"
    steps = [point[0] for point in result.curve]
    assert steps == sorted(steps) and steps[0] > 0
    # Counted from what ran: the last point is measured after the last step.
    assert steps[-1] == result.gradient_steps
    assert all(math.isfinite(point[1]) and point[1] > 0 for point in result.curve)
    # Timed: seconds since the run began, never going back.
    seconds = [point[2] for point in result.curve]
    assert all(s > 0 for s in seconds) and seconds == sorted(seconds)
