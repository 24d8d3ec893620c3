"""keras/src/callbacks/reduce_lr_on_plateau_test.py and learning_rate_scheduler_test.py (keras
3.15.1) on a Population: the callbacks act on `pop.optimizer.learning_rate`, the reference
rate, and through it on every member's rate."""

import keras
import pytest

import popdescent as pd
from keras import callbacks, layers, optimizers
from keras.src.utils import io_utils, numerical_utils

from tests.keras_callbacks.conftest import get_test_data, population


def member_rates(model):
    return [float(keras.ops.convert_to_numpy(m.optimizer.learning_rate)) for m in model.members]


@pytest.fixture
def plateau():
    (x_train, y_train), (x_test, y_test) = get_test_data(
        train_samples=10, test_samples=10, input_shape=(3,), num_classes=2)
    y_test, y_train = numerical_utils.to_categorical(y_test), numerical_utils.to_categorical(y_train)
    model = population(lambda: [layers.Dense(5), layers.Dense(2)], (3,), loss="mse",
                       optimizer=optimizers.Adam(0.1))
    return model, x_train, y_train, x_test, y_test


def test_reduces_lr_with_model_fit(plateau):
    model, x_train, y_train, x_test, y_test = plateau
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="val_loss",
                                            min_delta=100)
    model.fit(x_train, y_train, validation_data=(x_test, y_test), callbacks=[reduce_lr],
              epochs=2, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert member_rates(model) == pytest.approx([0.01] * 3)


def schedule_population():
    return population(lambda: [layers.Dense(5), layers.Dense(2)], (3,), loss="mse",
                      optimizer=optimizers.Adam(optimizers.schedules.PolynomialDecay(
                          initial_learning_rate=0.1, decay_steps=10)))


def test_throws_when_optimizer_has_schedule(plateau):
    _, x_train, y_train, x_test, y_test = plateau
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="val_loss",
                                            min_delta=100)
    with pytest.raises(TypeError, match="This optimizer was created with a `LearningRateSchedule`"):
        schedule_population().fit(x_train, y_train, validation_data=(x_test, y_test),
                                  callbacks=[reduce_lr], epochs=2, verbose=0)


def test_a_schedule_raises_only_when_a_reduction_is_due(plateau):
    """Not upstream: a model with a schedule reads its rate every epoch without raising."""
    _, x_train, y_train, x_test, y_test = plateau
    history = schedule_population().fit(
        x_train, y_train, validation_data=(x_test, y_test), epochs=2, verbose=0,
        callbacks=[callbacks.ReduceLROnPlateau(patience=5, monitor="val_loss")])
    assert len(history.history["learning_rate"]) == 2


def test_verbose_logging(plateau, caplog):
    model, x_train, y_train, x_test, y_test = plateau
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="val_loss",
                                            min_delta=100, verbose=1)
    io_utils.disable_interactive_logging()
    io_utils.set_logging_verbosity("INFO")
    try:
        with caplog.at_level("INFO"):
            model.fit(x_train, y_train, validation_data=(x_test, y_test),
                      callbacks=[reduce_lr], epochs=2, verbose=0)
    finally:
        io_utils.enable_interactive_logging()
    assert any("ReduceLROnPlateau reducing learning rate to 0.01" in record.getMessage()
               for record in caplog.records)


def test_honors_min_lr(plateau):
    model, x_train, y_train, x_test, y_test = plateau
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="val_loss",
                                            min_delta=10, min_lr=0.005)
    model.fit(x_train, y_train, validation_data=(x_test, y_test), callbacks=[reduce_lr],
              epochs=4, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.005)


def test_min_lr_is_every_members_floor(plateau):
    """Issue 31: with members at different rates, each stays at or above min_lr, as one model
    does (before, only their geometric mean did: members ended at 0.0039 and 0.0024)."""
    _, x_train, y_train, x_test, y_test = plateau
    model = population(lambda: [layers.Dense(5), layers.Dense(2)], (3,), loss="mse",
                       optimizer=optimizers.Adam(0.1),
                       hyperparameters={"learning_rate": pd.LogUniform(0.01, 1.0)})
    before = member_rates(model)
    reduce_lr = callbacks.ReduceLROnPlateau(patience=0, factor=0.1, monitor="val_loss",
                                            min_delta=100, min_lr=0.005)
    model.fit(x_train, y_train, validation_data=(x_test, y_test), callbacks=[reduce_lr],
              epochs=8, verbose=0)
    assert min(before) > 0.005
    assert member_rates(model) == pytest.approx([0.005] * 3)
    assert model.optimizer.learning_rate == pytest.approx(0.005)


def test_cooldown(plateau):
    model, x_train, y_train, x_test, y_test = plateau
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="val_loss",
                                            min_delta=100, cooldown=2)
    model.fit(x_train, y_train, validation_data=(x_test, y_test), callbacks=[reduce_lr],
              epochs=4, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.001)


def test_state_reset_across_fit_calls(plateau):
    model = plateau[0]
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="loss",
                                            min_delta=0, cooldown=2)
    reduce_lr.set_model(model)
    reduce_lr.on_train_begin()
    reduce_lr.best, reduce_lr.wait, reduce_lr.cooldown_counter = 0.5, 3, 2
    reduce_lr.on_train_begin()
    assert reduce_lr.best is None and reduce_lr.wait == 0 and reduce_lr.cooldown_counter == 0


@pytest.fixture
def scheduled():
    (x_train, y_train), _ = get_test_data(train_samples=10, test_samples=10, input_shape=(3,),
                                          num_classes=2)
    return x_train, numerical_utils.to_categorical(y_train)


def sgd_population(optimizer="sgd"):
    return population(lambda: [layers.Dense(5), layers.Dense(2)], (3,), loss="mse",
                      optimizer=optimizer)


def test_updates_learning_rate(scheduled):
    model = sgd_population()
    model.fit(*scheduled, callbacks=[callbacks.LearningRateScheduler(
        lambda step: 1.0 / (2.0 + step), verbose=1)], epochs=1, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.5)
    assert member_rates(model) == pytest.approx([0.5] * 3)


def test_scheduler_verbose_logging(scheduled, caplog):
    io_utils.disable_interactive_logging()
    io_utils.set_logging_verbosity("INFO")
    try:
        with caplog.at_level("INFO"):
            sgd_population().fit(*scheduled, epochs=1, verbose=0, callbacks=[
                callbacks.LearningRateScheduler(lambda step: 1.0 / (1.0 + step), verbose=1)])
    finally:
        io_utils.enable_interactive_logging()
    assert any("LearningRateScheduler setting learning rate to 1.0" in record.getMessage()
               for record in caplog.records)


def test_schedule_dependent_on_previous_learning_rate(scheduled):
    model = sgd_population(optimizers.Adam(0.03))
    model.fit(*scheduled, callbacks=[callbacks.LearningRateScheduler(lambda step, lr: lr / 2)],
              epochs=2, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.03 / 4.0)


def test_scheduler_throws_when_optimizer_has_schedule(scheduled):
    with pytest.raises(TypeError, match="This optimizer was created with a `LearningRateSchedule`"):
        schedule_population().fit(*scheduled, epochs=2, verbose=0, callbacks=[
            callbacks.LearningRateScheduler(lambda step, lr: lr / 2)])


def test_learning_rate_in_history(scheduled):
    history = sgd_population().fit(*scheduled, epochs=1, verbose=0, callbacks=[
        callbacks.LearningRateScheduler(lambda step, lr: 0.5)])
    assert "learning_rate" in history.history
    assert type(history.history["learning_rate"][0]) is float
    assert history.history["learning_rate"][0] == 0.5
