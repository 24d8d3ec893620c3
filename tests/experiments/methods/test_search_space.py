"""The tuners' shared search space: what it holds for each setting, how a trial's values
become the model and loss it trains, and a bad option refused before any training."""

import pathlib

import keras
import keras_tuner
import numpy as np
import pytest
from popdescent import LabelSmoothedCrossentropy

from experiments.core.contract import MethodContext, get_budget
from experiments.methods.search_space import (
    build_trial_model,
    keras_tuner_values,
    search_space,
    trial_loss,
)


def context(regularization=False, dataset="fmnist", **options):
    return MethodContext(method="optuna", dataset=dataset, seed=5, scale="smoke",
                         regularization=regularization, data=None,
                         budget=get_budget(dataset, "smoke"), work_dir=pathlib.Path("."),
                         options={"model": "mlp", **options})


def names(space):
    return [(d.name, d.low, d.high, d.log) for d in space]


def test_the_default_space_is_the_learning_rate_on_a_log_scale():
    assert names(search_space(context())) == [("learning_rate", 1e-4, 1e-2, True)]
    assert names(search_space(context(lr_range=[1e-6, 1e-5]))) == [
        ("learning_rate", 1e-6, 1e-5, True)]


def test_regularization_adds_the_l2_rate():
    assert names(search_space(context(regularization=True))) == [
        ("learning_rate", 1e-4, 1e-2, True), ("l2", 1e-6, 1e-1, True)]


@pytest.mark.parametrize("guess", ["good", "bad"])
def test_a_guess_adds_dropout_augmentation_and_label_smoothing(guess):
    assert names(search_space(context(regularization=True, guess=guess)))[2:] == [
        ("dropout", 0.0, 0.9, False), ("augmentation", 0.0, 5.0, False),
        ("label_smoothing", 0.0, 0.3, False)]


@pytest.mark.parametrize("options, match", [
    ({"lr_range": [1e-2, 1e-4]}, r"options\['lr_range'\] must be a pair \[low, high\].*"
                                 r"0 < low < high, got \[0.01, 0.0001\]"),
    ({"guess": "ugly"}, r"guess must be one of \('good', 'bad'\), got 'ugly'"),
    ({"model": "resnet"}, r"options\['model'\] must be one of \('cnn', 'mlp'\), got 'resnet'"),
])
def test_a_bad_space_is_refused_with_argument_range_and_value(options, match):
    with pytest.raises(ValueError, match=match):
        search_space(context(**options))


def layer_settings(model):
    dropout = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    translation = [layer.height_factor for layer in model.layers
                   if isinstance(layer, keras.layers.RandomTranslation)]
    return dropout, translation


def test_trial_values_set_both_dropouts_and_the_translation_factor():
    model = build_trial_model(context(guess="good"), {"learning_rate": 1e-3, "dropout": 0.45,
                                                      "augmentation": 2.0})
    dropout, translation = layer_settings(model)
    assert dropout == [0.45, 0.45]
    assert translation == [pytest.approx(0.2)]  # twice the good guess's 0.1


def test_the_translation_factor_is_clipped_to_one():
    model = build_trial_model(context(guess="bad"), {"learning_rate": 1e-3, "dropout": 0.0,
                                                     "augmentation": 5.0})
    assert layer_settings(model)[1] == [1.0]  # 5 x 0.3, clipped


def test_values_a_space_does_not_hold_keep_the_guess():
    model = build_trial_model(context(guess="bad"), {"learning_rate": 1e-3})
    assert layer_settings(model) == ([0.6, 0.6], [0.3])


def test_the_l2_value_regularizes_the_hidden_dense_kernel():
    model = build_trial_model(context(regularization=True), {"learning_rate": 1e-3,
                                                             "l2": 0.02})
    assert model.get_layer("dense_hidden").kernel_regularizer.l2 == pytest.approx(0.02)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_smoothed_loss_equals_keras_categorical_crossentropy_on_one_hot_labels(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 10)).astype("float32") * 3
    labels = rng.integers(0, 10, size=16)
    expected = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                    label_smoothing=smoothing)(
        keras.ops.one_hot(labels, 10), logits)
    got = LabelSmoothedCrossentropy(smoothing, sparse=True, from_logits=True)(labels, logits)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)


def test_without_label_smoothing_the_trial_trains_on_the_paper_loss():
    assert isinstance(trial_loss({"learning_rate": 1e-3}),
                      keras.losses.SparseCategoricalCrossentropy)
    assert isinstance(trial_loss({"label_smoothing": 0.2}), LabelSmoothedCrossentropy)


def test_keras_tuner_registers_every_dimension_with_its_sampling():
    space = search_space(context(regularization=True, guess="good"))
    hp = keras_tuner.HyperParameters()
    values = keras_tuner_values(hp, space)
    assert list(values) == [d.name for d in space]
    registered = {h.name: (h.min_value, h.max_value, h.sampling) for h in hp.space}
    assert registered["learning_rate"] == (1e-4, 1e-2, "log")
    assert registered["augmentation"] == (0.0, 5.0, "linear")


def test_optuna_suggests_every_dimension_within_its_range():
    optuna = pytest.importorskip("optuna", reason="the optuna method needs the [optuna] extra")
    from experiments.methods.search_space import optuna_values

    space = search_space(context(regularization=True, guess="good"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = optuna_values(study.ask(), space)
        for dimension in space:
            assert dimension.low <= values[dimension.name] <= dimension.high
    distributions = study.trials[0].distributions
    assert distributions["learning_rate"].log and not distributions["dropout"].log
