"""The method contract's model option: the paper's CNN unless a test asks for the tiny MLP."""

import pathlib

import pytest

from experiments.core.contract import (
    MethodContext,
    build_context_model,
    get_budget,
    model_name,
)
from experiments.core.models import count_parameters


def context(dataset="fmnist", scale="smoke", **options):
    return MethodContext(method="adam", dataset=dataset, seed=5, scale=scale,
                         regularization=False, data=None, budget=get_budget(dataset, scale),
                         work_dir=pathlib.Path("."), options=options)


@pytest.mark.parametrize("scale", ["smoke", "small", "paper"])
@pytest.mark.parametrize("dataset", ["fmnist", "cifar10"])
def test_without_the_option_every_scale_trains_the_paper_cnn(dataset, scale):
    assert model_name(context(dataset, scale)) == dataset


def test_the_mlp_option_builds_the_tiny_model_shaped_for_the_dataset():
    model = build_context_model(context("cifar10", model="mlp"))
    assert model.name == "mlp" and model.input_shape == (None, 32, 32, 3)
    assert count_parameters(model) < 200_000 < count_parameters(
        build_context_model(context("fmnist")))


def test_an_unknown_model_is_refused_naming_the_option():
    with pytest.raises(ValueError, match=r"options\['model'\] must be one of \('cnn', 'mlp'\), "
                                         r"got 'big'"):
        model_name(context(model="big"))
