"""Mixed precision: a population under a `mixed_float16` or `mixed_bfloat16` dtype policy
trains as Keras' own `fit` would, with the loss scaled for the members' LossScaleOptimizers."""

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd

# SGD, not Adam: Adam divides by its own running gradient scale, so an update 2**15 times too
# small (the loss never scaled) would hardly show; SGD's update is proportional to it.
LEARNING_RATE = 0.1
# Mixed precision rounds activations to 10 (float16) or 7 (bfloat16) mantissa bits, so the
# weights do not move exactly as far as in float32; an unscaled float16 loss moved them about
# 30,000 times less. A factor of 2 either way separates the two.
TOLERANCE = 2.0


@pytest.fixture
def dtype_policy(request):
    """Sets the global dtype policy for one test and restores the previous one after it."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(request.param)
    yield request.param
    keras.mixed_precision.set_dtype_policy(previous)


def population(seed=0):
    return pd.Population(make_model(keras.optimizers.SGD(LEARNING_RATE)), size=3, seed=seed,
                         hyperparameters={"learning_rate": pd.Fixed(LEARNING_RATE)})


def weights_of(member):
    return np.concatenate([np.ravel(np.asarray(w, dtype="float32"))
                           for w in member.trainable_weights])


def weight_change(pop, data):
    """How far each member's trainable weights move in 8 SGD steps (L2 norm)."""
    x, y, _, _ = data
    before = [weights_of(member) for member in pop.members]
    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=4, verbose=0)
    return np.array([np.linalg.norm(weights_of(member) - start)
                     for member, start in zip(pop.members, before)])


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_population_moves_its_weights_as_far_as_float32(data, dtype_policy):
    moved = weight_change(population(), data)
    keras.mixed_precision.set_dtype_policy("float32")  # the fixture restores it after the test
    reference = weight_change(population(), data)
    assert np.all(moved > reference / TOLERANCE) and np.all(moved < reference * TOLERANCE), (
        f"{dtype_policy}: weights moved {moved}, float32 {reference}")


@pytest.mark.parametrize("dtype_policy", ["mixed_float16", "mixed_bfloat16"], indirect=True)
def test_mixed_precision_members_compute_in_the_policy_dtype(data, dtype_policy):
    pop = population()
    weight_change(pop, data)
    compute_dtype = dtype_policy.removeprefix("mixed_")
    for member in pop.members:
        assert [layer.compute_dtype for layer in member.layers] == [compute_dtype] * 2
        assert [layer.variable_dtype for layer in member.layers] == ["float32"] * 2


@pytest.mark.parametrize("dtype_policy", ["mixed_float16"], indirect=True)
def test_mixed_float16_step_with_overflowing_gradients_is_skipped_and_its_scale_halved(
        data, dtype_policy):
    x, y, _, _ = data
    pop = population()
    # A scale of 1e38 makes the scaled loss's float16 gradients overflow: Keras' dynamic loss
    # scaling must skip that member's update and halve its scale; the others train.
    pop.member(0).optimizer.dynamic_scale.assign(1e38)
    before = [weights_of(member) for member in pop.members]
    pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=1, verbose=0)
    assert float(pop.member(0).optimizer.dynamic_scale.numpy()) == pytest.approx(5e37)
    np.testing.assert_array_equal(weights_of(pop.member(0)), before[0])
    assert not np.array_equal(weights_of(pop.member(1)), before[1])
    assert float(pop.member(1).optimizer.dynamic_scale.numpy()) == 2.0**15


class KeepInitialWeights(keras.callbacks.Callback):
    """Asks fit to keep the members' initial weights, as PopDescent(rescue_after=...) does."""

    needs_initial_weights = True


@pytest.mark.parametrize("dtype_policy", ["mixed_float16"], indirect=True)
def test_reinitialized_mixed_float16_member_keeps_a_usable_loss_scale(data, dtype_policy):
    x, y, _, _ = data
    pop = population()
    pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0,
            callbacks=[KeepInitialWeights()])
    pop.reinitialize_member(0)
    assert float(pop.member(0).optimizer.dynamic_scale.numpy()) == 2.0**15
    restarted = weights_of(pop.member(0))
    pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.linalg.norm(weights_of(pop.member(0)) - restarted) > 1e-3
