"""Tests of experiments.models: the paper's parameter counts, regularization and seeding."""

import keras
import numpy as np
import pytest

from experiments.core.models import (
    HIDDEN_DENSE_NAME,
    REGULARIZATIONS,
    GUESSES,
    build_model,
    count_parameters,
    guess_regularization,
    paper_loss,
)

PAPER_PARAMETERS = {"fmnist": 4_575_242, "cifar10": 186_250, "mlp": 50_890}
# Conv2D and Dense kernels in each model: the number of L2 losses under "all".
KERNELS = {"fmnist": 5, "cifar10": 6, "mlp": 2}


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
@pytest.mark.parametrize("dataset", ["fmnist", "cifar10", "mlp"])
def test_parameter_count_matches_paper(dataset, regularization):
    model = build_model(dataset, regularization=regularization)
    assert count_parameters(model) == PAPER_PARAMETERS[dataset]


@pytest.mark.parametrize("dataset", ["fmnist", "cifar10", "mlp"])
def test_regularization_adds_one_loss_per_regularized_kernel(dataset):
    expected = {"none": 0, "dense": 1, "all": KERNELS[dataset]}
    for regularization, losses in expected.items():
        assert len(build_model(dataset, regularization).losses) == losses


@pytest.mark.parametrize("dataset", ["fmnist", "cifar10"])
def test_dense_regularization_penalizes_the_hidden_dense_kernel(dataset):
    model = build_model(dataset, regularization="dense", l2=0.5)
    kernel = model.get_layer(HIDDEN_DENSE_NAME).kernel
    expected = 0.5 * np.sum(np.square(keras.ops.convert_to_numpy(kernel)))
    np.testing.assert_allclose(float(model.losses[0]), expected, rtol=1e-5)


@pytest.mark.parametrize("dataset, shape", [("fmnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_outputs_are_logits_not_probabilities(dataset, shape):
    model = build_model(dataset, seed=0)
    images = np.random.default_rng(0).uniform(size=(4, *shape)).astype("float32")
    outputs = keras.ops.convert_to_numpy(model(images))
    assert outputs.shape == (4, 10)
    assert outputs.min() < 0 or not np.allclose(outputs.sum(axis=1), 1.0)


def test_paper_loss_expects_logits():
    loss = paper_loss()
    logits = np.array([[2.0, -1.0, 0.5]], dtype="float32")
    expected = -np.log(np.exp(2.0) / np.exp(logits).sum())
    np.testing.assert_allclose(float(loss(np.array([0]), logits)), expected, rtol=1e-5)


def test_same_seed_gives_identical_weights():
    first, second = build_model("cifar10", seed=7), build_model("cifar10", seed=7)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_kernels():
    first, second = build_model("cifar10", seed=7), build_model("cifar10", seed=8)
    for a, b in zip(first.get_weights(), second.get_weights()):
        if a.ndim > 1:  # Kernels; biases start at zero either way.
            assert not np.array_equal(a, b)


def test_mlp_accepts_an_input_shape():
    model = build_model("mlp", input_shape=(8,))
    assert model.input_shape == (None, 8)
    assert count_parameters(model) == 8 * 64 + 64 + 64 * 10 + 10


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"dataset": "mnist"}, r"dataset must be one of .*, got 'mnist'"),
        ({"dataset": "fmnist", "regularization": "l1"}, r"regularization must be one of"),
        ({"dataset": "fmnist", "l2": -1e-3}, r"l2 must be a finite number >= 0, got -0.001"),
        ({"dataset": "fmnist", "l2": float("nan")}, r"l2 must be a finite number >= 0"),
        ({"dataset": "fmnist", "seed": -1}, r"seed must be None or an int >= 0, got -1"),
        ({"dataset": "cifar10", "input_shape": (28, 28, 1)}, r"only be set for dataset='mlp'"),
        ({"dataset": "mlp", "input_shape": (0, 3)}, r"non-empty tuple of ints >= 1"),
        ({"dataset": "fmnist", "dropout": 1.0}, r"dropout must be None or a number in \[0, 1\), got 1.0"),
        ({"dataset": "fmnist", "translation": 1.5}, r"translation must be .* \[0, 1\], got 1.5"),
        ({"dataset": "fmnist", "flip": "yes"}, r"flip must be True or False, got 'yes'"),
    ],
)
def test_invalid_arguments_are_rejected_with_the_received_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        build_model(**arguments)


@pytest.mark.parametrize("guess", sorted(GUESSES))
def test_a_guess_puts_dropout_after_flatten_and_hidden_dense_and_augments_the_input(guess):
    model = build_model("cifar10", seed=0, **guess_regularization("cifar10", guess))
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["flip", "translation"]
    assert names[names.index("flatten") + 1].startswith("dropout")
    assert names[names.index(HIDDEN_DENSE_NAME) + 1].startswith("dropout")
    rates = {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)}
    assert rates == {GUESSES[guess]["dropout"]}
    translation = model.get_layer("translation")
    assert translation.height_factor == translation.width_factor == GUESSES[guess]["translation"]
    # Regularization adds no weights: the paper's parameter count stands.
    assert count_parameters(model) == PAPER_PARAMETERS["cifar10"]


def test_fmnist_guesses_do_not_flip():
    model = build_model("fmnist", seed=0, **guess_regularization("fmnist", "good"))
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in model.layers)
