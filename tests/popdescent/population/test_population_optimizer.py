"""`pop.optimizer`: Keras' own learning-rate and TensorBoard callbacks on a Population of 3,
and a member-step count that restoring weights never rewinds."""

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd
from tests.helpers.callbacks import summary_tags

EPOCHS, STEPS = 3, 2


def population():
    return pd.Population(make_model(), size=3, seed=0, hyperparameters={
        "learning_rate": pd.LogUniform(1e-3, 1e-1)})


def fit(pop, data, callbacks=(), epochs=EPOCHS):
    x, y, x_val, y_val = data
    return pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=STEPS, verbose=0,
                   validation_data=(x_val, y_val), callbacks=list(callbacks))


def base_rates(pop):
    return np.array([values["learning_rate"] for values in pop.hyperparameter_values()])


def optimizer_rates(pop):
    return np.array([float(member.optimizer.learning_rate.numpy()) for member in pop.members])


def geometric_mean(values):
    return float(np.exp(np.mean(np.log(values))))


# ----------------------------------------------------------------- learning rate
def test_reduce_lr_on_plateau_scales_every_member_keeping_their_ratios(data):
    pop = population()
    # min_delta larger than any change: no epoch after the first improves, so with
    # patience=1 the rate is halved after the 2nd and the 3rd epochs.
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                               min_delta=100.0)
    history = fit(pop, data, [reduce])
    np.testing.assert_allclose(optimizer_rates(pop), base_rates(pop) * 0.25, rtol=1e-5)
    reference = geometric_mean(base_rates(pop))  # logged before that epoch's reduction
    np.testing.assert_allclose(history.history["learning_rate"],
                               [reference, reference, reference / 2], rtol=1e-5)


def test_learning_rate_scheduler_scales_every_member_by_its_schedule(data):
    pop = population()
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.1)
    fit(pop, data, [scheduler])
    np.testing.assert_allclose(optimizer_rates(pop), base_rates(pop) * 1e-3, rtol=1e-4)


def test_absolute_schedule_sets_the_members_geometric_mean_rate(data):
    pop = population()
    fit(pop, data, [keras.callbacks.LearningRateScheduler(lambda epoch: 1e-4)])
    assert pop.optimizer.learning_rate == pytest.approx(1e-4, rel=1e-5)
    assert geometric_mean(optimizer_rates(pop)) == pytest.approx(1e-4, rel=1e-5)
    ratios = optimizer_rates(pop) / base_rates(pop)
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)


def test_callbacks_scale_and_budget_schedule_multiply_without_overwriting_each_other():
    pop = population()
    live = pop.live_hyperparameters
    live.set_multiplier(0.5)                                      # the budget schedule
    pop.optimizer.learning_rate = pop.optimizer.learning_rate * 0.1  # a user's callback
    np.testing.assert_allclose(optimizer_rates(pop), base_rates(pop) * 0.05, rtol=1e-5)
    live.set_multiplier(0.25)
    np.testing.assert_allclose(optimizer_rates(pop), base_rates(pop) * 0.025, rtol=1e-5)


def test_callbacks_scale_survives_mutation_and_reaches_best_model(data):
    pop = population()
    pop.optimizer.learning_rate = pop.optimizer.learning_rate * 0.1
    pop.set_hyperparameters(1, {"learning_rate": 0.05})  # a strategy's mutation
    assert float(pop.member(1).optimizer.learning_rate.numpy()) == pytest.approx(0.005)
    _, _, x_val, y_val = data
    pop.evaluate_fitness(x_val, y_val)
    best = pop.best_index()
    assert float(pop.best_model().optimizer.learning_rate.numpy()) == pytest.approx(
        base_rates(pop)[best] * 0.1, rel=1e-5)


@pytest.mark.parametrize("value", [0.0, -1e-3, float("nan")])
def test_population_learning_rate_refuses_a_rate_that_is_not_positive(value):
    with pytest.raises(ValueError, match=r"learning_rate\) must be a finite number > 0"):
        population().optimizer.learning_rate = value


def test_a_reduction_raises_keras_type_error_when_members_schedule_their_own_rate(data):
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=10,
                                                           decay_rate=0.9)
    pop = pd.Population(make_model(keras.optimizers.Adam(schedule)), size=3, seed=0,
                        hyperparameters={})
    # reading the rate works (TensorBoard, the callbacks' logs); setting it raises as Keras'
    assert pop.optimizer.learning_rate == pytest.approx(1e-2)
    with pytest.raises(TypeError, match="created with a `LearningRateSchedule`"):
        fit(pop, data, [keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0,
                                                          min_delta=100)])


def test_callbacks_scale_is_saved_and_backed_up(data, tmp_path):
    pop = population()
    pop.optimizer.learning_rate = pop.optimizer.learning_rate * 0.1
    pop.save(tmp_path / "pop.keras")
    loaded = pd.load_population(tmp_path / "pop.keras")
    np.testing.assert_allclose(optimizer_rates(loaded), optimizer_rates(pop), rtol=1e-6)
    scale = loaded.live_hyperparameters.learning_rate_scale
    assert any(variable is scale for variable in loaded.state_variables())


# ----------------------------------------------------------------- TensorBoard


def test_tensorboard_writes_steps_per_second_from_the_member_step_count(data, tmp_path):
    pop = population()
    fit(pop, data, [keras.callbacks.TensorBoard(tmp_path, write_steps_per_second=True)])
    assert "epoch_steps_per_second" in set(summary_tags(tmp_path))
    assert int(pop.optimizer.iterations.numpy()) == pop.gradient_steps == EPOCHS * STEPS * 3


# ----------------------------------------------------------------- member-step count
def test_set_weights_of_an_earlier_state_does_not_rewind_the_member_step_count(data):
    pop = population()
    fit(pop, data, epochs=1)
    earlier = pop.get_weights()
    fit(pop, data, epochs=1)
    pop.set_weights(earlier)
    assert pop.gradient_steps == 2 * STEPS * 3


def test_early_stopping_restoring_best_weights_does_not_rewind_the_member_step_count(data):
    pop = population()
    # min_delta larger than any change: only the first epoch counts as an improvement, so
    # training stops after the third and the first epoch's weights are restored.
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=100.0,
                                         restore_best_weights=True)
    fit(pop, data, [stop], epochs=10)
    assert stop.stopped_epoch == 2
    assert pop.gradient_steps == 3 * STEPS * 3


def test_load_weights_of_an_earlier_state_does_not_rewind_the_member_step_count(
        data, tmp_path):
    pop = population()
    fit(pop, data, epochs=1)
    pop.save_weights(tmp_path / "earlier.weights.h5")
    fit(pop, data, epochs=1)
    pop.load_weights(tmp_path / "earlier.weights.h5")
    assert pop.gradient_steps == 2 * STEPS * 3
