"""The contract every method in `METHODS` keeps (see experiments/core/contract.py), checked on each.

Every method runs twice on a tiny slice of the real Fashion-MNIST files, the second time with
the test half replaced by noise images and random labels. Test data must not reach selection:
the returned model is bit-identical, only the test loss the harness would report differs. And
the common contract: a compiled model, gradient steps counted from what ran, a timed curve
monotone in steps. A new method joins `METHODS` and passes here.
"""

import dataclasses
import math

import keras
import numpy as np
import pytest

from experiments.core.contract import Budget, MethodContext, MethodResult
from experiments.core.data import load_splits
from experiments.core.evaluation import loss_and_accuracy
from experiments.methods import METHODS, get_method
from tests.helpers.data import skip_without_data

# Smaller than the smoke scale, so that all methods run twice in about a minute: a
# population of 3, two iterations of one step, batches of 16. The scale stays "smoke", so
# methods that scale their own schedules (grid, random search) take their smallest one.
TINY_BUDGET = Budget(iterations=2, steps_per_iteration=1, batch_size=16, population_size=3,
                     elites=2, cv_batch_size=32)
TINY_DATA = {"train": 128, "validation": 64, "test": 64}
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


def with_noise_as_test_data(data):
    """The same splits with the test half replaced: uniform noise images, random labels."""
    rng = np.random.default_rng(123)
    labels = rng.integers(0, 10, size=len(data.y_test)).astype(data.y_test.dtype)
    images = rng.uniform(0.0, 1.0, size=data.x_test.shape).astype(data.x_test.dtype)
    return dataclasses.replace(data, x_test=images, y_test=labels)


def run_as_the_harness_does(name, data, work_dir) -> tuple:
    context = MethodContext(method=name, dataset="fmnist", seed=SEED, scale="smoke",
                            regularization=False, data=data, budget=TINY_BUDGET,
                            work_dir=work_dir, verbose=0, options={})
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    return get_method(name)(context), context


@pytest.fixture(scope="module", params=sorted(METHODS))
def twice(request, tiny_data, tmp_path_factory):
    """(result, context) of a method on the real data and again with noise as test data."""
    name = request.param
    honest = run_as_the_harness_does(name, tiny_data, tmp_path_factory.mktemp(f"{name}-real"))
    swapped = run_as_the_harness_does(name, with_noise_as_test_data(tiny_data),
                                      tmp_path_factory.mktemp(f"{name}-noise"))
    return honest, swapped


def test_test_data_cannot_leak_into_selection(twice):
    (honest, context), (swapped, swapped_context) = twice
    honest_weights, swapped_weights = honest.model.get_weights(), swapped.model.get_weights()
    assert len(honest_weights) == len(swapped_weights) > 0
    for a, b in zip(honest_weights, swapped_weights):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-identical
    assert honest.gradient_steps == swapped.gradient_steps
    assert [point[:2] for point in honest.curve] == [point[:2] for point in swapped.curve]
    # The swap is real: the test loss the harness reports is what changes.
    real = loss_and_accuracy(honest.model, context.data.x_test, context.data.y_test)[0]
    noise = loss_and_accuracy(swapped.model, swapped_context.data.x_test,
                              swapped_context.data.y_test)[0]
    assert real != noise


def test_result_keeps_the_common_contract(twice):
    (result, context), _ = twice
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
