"""Population: members, fused training, live hyperparameters, determinism."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.helpers.models import make_model

import popdescent as pd
from popdescent.inputs.training_data import batch_indices


def weights_of(member):
    return [np.array(w) for w in member.get_weights()]


def test_members_are_independently_initialised_clones(model):
    pop = pd.Population(model, size=3, seed=0)
    first, second = weights_of(pop.member(0)), weights_of(pop.member(1))
    assert pop.size == 3 and len(pop.members) == 3
    assert not np.allclose(first[0], second[0])
    assert pop.member(0) is not model
    assert pop.member(0).optimizer is not pop.member(1).optimizer
    assert type(pop.member(0).optimizer) is type(model.optimizer)
    # The user's model is not one of the members and keeps its own weights.
    assert all(member is not model for member in pop.members)


def test_builder_form_gets_each_index(data):
    seen = []

    def build(index):
        seen.append(index)
        return make_model()

    pop = pd.Population(build, size=3, seed=1)
    assert seen == [0, 1, 2] and pop.size == 3


def test_fit_runs_exactly_the_requested_steps_and_counts_them(model, data):
    x, y, _, _ = data
    pop = pd.Population(model, size=3, seed=0)
    # 64 examples with batch 16 is 4 steps per pass: 7 steps per epoch wraps around the data.
    history = pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=7, verbose=0)
    assert pop.gradient_steps == 3 * 7 * 3
    assert history.history["gradient_steps"] == [21, 42, 63]
    for member in pop.members:
        assert int(member.optimizer.iterations.numpy()) == 21


def test_logs_carry_per_member_and_population_losses(model, data):
    x, y, x_val, y_val = data
    pop = pd.Population(model, size=2, seed=0)
    history = pop.fit(x, y, batch_size=16, epochs=1, validation_data=(x_val, y_val), verbose=0)
    logs = {key: values[-1] for key, values in history.history.items()}
    for key in ("loss_0", "loss_1", "accuracy_0", "accuracy_1", "val_loss_0", "val_loss_1"):
        assert key in logs
    assert logs["loss"] == pytest.approx((logs["loss_0"] + logs["loss_1"]) / 2, rel=1e-5)
    assert logs["best_loss"] == pytest.approx(min(logs["loss_0"], logs["loss_1"]), rel=1e-5)


@pytest.mark.parametrize("jit_compile_updates", [False, True])
def test_fused_step_matches_stepping_each_member_alone(data, jit_compile_updates):
    """Same batches, same optimizer: fused and solo training agree to float32 round-off,
    with the members' optimizer updates on TensorFlow's kernels or compiled by XLA."""
    x, y, _, _ = data
    pop = pd.Population(make_model(), size=3, seed=4,
                        hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1e-1)})
    pop.compile(jit_compile_updates=jit_compile_updates)
    solos = []
    for index, member in enumerate(pop.members):
        solo = keras.models.clone_model(member)
        solo.set_weights(member.get_weights())
        solo.compile(optimizer=keras.optimizers.Adam(pop.hyperparameters_of(index)["learning_rate"]),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        solos.append(solo)
    steps, batch_size = 6, 16
    pop.fit(x, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps, verbose=0)
    for indices in batch_indices(len(x), batch_size, int(pop.data_seed), 0, steps):
        for solo in solos:
            solo.train_on_batch(x[indices], y[indices])
    for member, solo in zip(pop.members, solos):
        for fused, alone in zip(member.get_weights(), solo.get_weights()):
            np.testing.assert_allclose(fused, alone, rtol=1e-5, atol=1e-6)


def test_learning_rate_change_applies_at_next_step_without_retrace(data):
    """Plain SGD: the update of one full-batch step is exactly -learning_rate * gradient."""
    x, y, _, _ = data
    pop = pd.Population(make_model(keras.optimizers.SGD(0.01)), size=2, seed=0,
                        hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1.0)})
    member = pop.member(1)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def gradient():
        with tf.GradientTape() as tape:
            loss = loss_function(y, member(x, training=True))
        return [g.numpy() for g in tape.gradient(loss, member.trainable_variables)]

    for learning_rate in (0.01, 0.5):
        pop.set_hyperparameters(1, {"learning_rate": learning_rate})
        before, expected_gradient = weights_of(member), gradient()
        pop.fit(x, y, batch_size=len(x), epochs=1, steps_per_epoch=1, verbose=0)
        for old, new, grad in zip(before, weights_of(member), expected_gradient):
            np.testing.assert_allclose(new - old, -learning_rate * grad, rtol=1e-4, atol=1e-6)
    assert pop.traces == 1


def test_l2_penalty_is_added_to_the_training_loss_without_retrace(data):
    x, y, _, _ = data
    pop = pd.Population(make_model(keras.optimizers.SGD(0.1), metrics=()), size=2, seed=0,
                        hyperparameters={"l2": pd.Uniform(0.0, 1.0)})
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for l2 in (0.0, 0.25):
        pop.set_hyperparameters(0, {"l2": l2})
        member = pop.member(0)
        data_loss = float(loss_function(y, member(x, training=True)))
        squares = sum(float(np.sum(np.square(layer.kernel.numpy()))) for layer in member.layers)
        history = pop.fit(x, y, batch_size=len(x), epochs=1, steps_per_epoch=1, verbose=0)
        assert history.history["loss_0"][-1] == pytest.approx(data_loss + l2 * squares, rel=1e-4)
    assert pop.traces == 1


def test_same_seed_same_run_and_different_seed_different_run(data):
    x, y, x_val, y_val = data

    def run(seed):
        pop = pd.Population(make_model(), size=3, seed=seed, hyperparameters={
            "learning_rate": pd.LogUniform(1e-3, 1e-1), "l2": pd.LogUniform(1e-6, 1e-2)})
        pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=4, verbose=0,
                validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=1)])
        return [w for m in pop.members for w in weights_of(m)], pop.hyperparameter_values()

    weights_a, hyper_a = run(7)
    weights_b, hyper_b = run(7)
    weights_c, hyper_c = run(8)
    assert hyper_a == hyper_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    assert hyper_a != hyper_c
    assert any(not np.array_equal(a, c) for a, c in zip(weights_a, weights_c))


def test_default_hyperparameters_tune_learning_rate_around_the_compiled_one(model):
    pop = pd.Population(model, size=4, seed=0)
    assert list(pop.priors) == ["learning_rate"]
    for row in pop.hyperparameter_values():
        assert 1e-4 <= row["learning_rate"] <= 1e-2


def test_copy_member_copies_weights_optimizer_state_and_hyperparameters(model, data):
    x, y, _, _ = data
    pop = pd.Population(model, size=2, seed=0, hyperparameters={"l2": pd.Uniform(0.0, 1.0)})
    pop.fit(x, y, batch_size=16, epochs=1, verbose=0)
    pop.copy_member(0, 1)
    source, target = pop.member(0), pop.member(1)
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(source.optimizer.variables, target.optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    assert source.optimizer.variables[-1] is not target.optimizer.variables[-1]
    assert pop.hyperparameters_of(0) == pop.hyperparameters_of(1)


def test_evaluate_predict_and_best_model(model, data):
    x, y, x_val, y_val = data
    pop = pd.Population(model, size=3, seed=0)
    pop.fit(x, y, batch_size=16, epochs=1, verbose=0)
    results = pop.evaluate(x_val, y_val, verbose=0, return_dict=True)
    losses = pop.member_losses(x_val, y_val)
    for index in range(3):
        assert results[f"loss_{index}"] == pytest.approx(losses[index], rel=1e-5)
    predictions = pop.predict(x_val, verbose=0)
    assert len(predictions) == 3 and predictions[0].shape == (len(x_val), 3)
    with pytest.raises(ValueError, match="no fitness recorded"):
        pop.best_model()
    fitness = pop.evaluate_fitness(x_val, y_val)
    best = pop.best_model()
    assert pop.best_index() == int(np.argmax(fitness))
    assert best is not pop.member(pop.best_index())
    np.testing.assert_allclose(best.evaluate(x_val, y_val, verbose=0)[0],
                               losses[pop.best_index()], rtol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    ({"jit_compile": "yes"}, "jit_compile must be True, False or 'auto', got 'yes'"),
    ({"steps_per_execution": 0}, "steps_per_execution must be an integer >= 1, got 0"),
    ({"jit_compile_updates": 1}, "jit_compile_updates must be True, False or 'auto', got 1"),
    ({"optimizer": "adam"}, "compile accepts only"),
])
def test_compile_rejects_bad_arguments_by_name(model, arguments, message):
    pop = pd.Population(model, size=2, seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        pop.compile(**arguments)


def test_steps_per_execution_runs_exactly_the_requested_steps(model, data):
    x, y, _, _ = data
    pop = pd.Population(model, size=2, seed=0)
    pop.compile(steps_per_execution=3)
    history = pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=6, verbose=0)
    assert history.history["gradient_steps"] == [12, 24]
    assert all(int(m.optimizer.iterations.numpy()) == 12 for m in pop.members)
    # Keras runs whole executions (7 steps at 3 per execution would run 9): refused up front.
    with pytest.raises(ValueError, match="steps_per_epoch must be a multiple of "
                                         "steps_per_execution = 3.*got 7"):
        pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=7, verbose=0)
    assert pop.gradient_steps == 24


def test_mutating_every_member_of_a_large_population_warns_of_no_retracing(caplog):
    # TensorFlow warns "triggered tf.function retracing" when one function's code traces
    # five times in a row; a population must not trigger it by mutating each member once.
    pop = pd.Population(make_model(), size=6, seed=0)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for index in range(pop.size):
            pop.perturb_weights(index, 0.1, seed=index)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


def test_perturb_weights_adds_seeded_gaussian_noise_of_the_given_stddev():
    pop = pd.Population(make_model(units=256, features=64), size=2, seed=0)
    untouched, before = weights_of(pop.member(0)), weights_of(pop.member(1))
    pop.perturb_weights(1, 0.5, seed=11)
    first = weights_of(pop.member(1))
    noise = np.concatenate([(a - b).ravel() for a, b in zip(first, before)])
    assert abs(noise.mean()) < 0.02 and noise.std() == pytest.approx(0.5, rel=0.03)
    for a, b in zip(weights_of(pop.member(0)), untouched):
        np.testing.assert_array_equal(a, b)
    pop.set_member_weights(1, before)
    pop.perturb_weights(1, 0.5, seed=11)
    for again, once in zip(weights_of(pop.member(1)), first):
        np.testing.assert_array_equal(again, once)
    pop.set_member_weights(1, before)
    pop.perturb_weights(1, 0.5, seed=12)
    assert not np.array_equal(weights_of(pop.member(1))[0], first[0])


class CountEagerCalls(keras.layers.Layer):
    """An identity layer that counts its calls on concrete data outside any traced function."""

    calls = 0

    def call(self, inputs):
        if tf.executing_eagerly():
            CountEagerCalls.calls += 1
        return inputs


def test_fit_builds_member_metrics_without_running_members_on_data(data):
    x, y, _, _ = data

    def build(index):
        model = keras.Sequential([keras.Input((4,)), CountEagerCalls(), keras.layers.Dense(3)])
        model.compile(optimizer="adam", metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    pop = pd.Population(build, size=3, seed=0)
    CountEagerCalls.calls = 0
    history = pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0)
    assert CountEagerCalls.calls == 0
    assert all(f"accuracy_{index}" in history.history for index in range(3))
