"""Helpers for the baselines' smoke tests: a smoke-scale MethodContext on the real
Fashion-MNIST files and the checks every method's result must pass."""

import json
import math

import keras
import numpy as np

from experiments.core.contract import MethodContext, MethodResult, get_budget
from experiments.core.data import load_splits
from tests.helpers.data import skip_without_data


def smoke_context(method, work_dir, regularization=False, **options) -> MethodContext:
    try:
        data = load_splits("fmnist", "smoke")
    except FileNotFoundError as error:
        skip_without_data(f"Fashion-MNIST files not found: {error}")
    return MethodContext(method=method, dataset="fmnist", seed=5, scale="smoke",
                         regularization=regularization, data=data,
                         budget=get_budget("fmnist", "smoke"), work_dir=work_dir, verbose=0,
                         options=options)


def check_common_record(result, context):
    """The fields the harness records, as the contract in experiments/core/contract.py states."""
    assert isinstance(result, MethodResult)
    assert isinstance(result.model, keras.Model) and result.model.compiled
    assert result.model.optimizer is not None
    logits = result.model.predict(context.data.x_val[:8], verbose=0)
    assert logits.shape == (8, 10) and np.isfinite(logits).all()
    assert isinstance(result.gradient_steps, int) and result.gradient_steps > 0
    steps = [point[0] for point in result.curve]
    losses = [point[1] for point in result.curve]
    assert steps == sorted(steps) and steps[-1] == result.gradient_steps
    assert all(isinstance(s, int) for s in steps)
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    json.dumps(result.details)
