"""The reference-compatible preset: each of the reference code's quirks is observable.

LR as a loss scale under Adam, an inert regularization rate, one scalar of weight noise, and
hyperparameter factors 2**N(0, 15 * magnitude); the paper-faithful default stays as it was.
"""

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd
from popdescent.strategies.replacement import mutate_hyperparameters


def one_step(pop, strategy, epoch=0):
    """Runs the strategy's end-of-iteration work the way Keras' fit calls it."""
    strategy.set_model(pop)
    strategy.on_train_begin()
    strategy.on_epoch_end(epoch, {})


def weight_change_after_one_step(data, optimizer, hyperparameters):
    x, y, _, _ = data
    pop = pd.Population(make_model(optimizer=optimizer), size=2, seed=7,
                        hyperparameters=hyperparameters)
    before = [np.array(w) for w in pop.member(0).get_weights()]
    history = pop.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0)
    after = pop.member(0).get_weights()
    return [a - b for a, b in zip(after, before)], history.history["loss_0"][0]


def test_loss_scale_multiplies_the_gradient_but_not_the_reported_loss(data):
    sgd = lambda: keras.optimizers.SGD(0.1)  # noqa: E731  (SGD shows the gradient as it is)
    step_1, loss_1 = weight_change_after_one_step(
        data, sgd(), {"learning_rate": pd.Fixed(0.1), "loss_scale": pd.Fixed(1.0)})
    step_4, loss_4 = weight_change_after_one_step(
        data, sgd(), {"learning_rate": pd.Fixed(0.1), "loss_scale": pd.Fixed(4.0)})
    for a, b in zip(step_1, step_4):
        np.testing.assert_allclose(b, 4.0 * a, rtol=1e-4, atol=1e-7)
    assert loss_4 == pytest.approx(loss_1)
    assert np.abs(step_1[0]).max() > 0


def test_under_adam_the_loss_scale_all_but_vanishes(data):
    # The reference's "learning rate": Adam divides the scale out, except through epsilon.
    adam = lambda: keras.optimizers.Adam(1e-3)  # noqa: E731
    step_1, _ = weight_change_after_one_step(
        data, adam(), {"learning_rate": pd.Fixed(1e-3), "loss_scale": pd.Fixed(1.0)})
    step_1000, _ = weight_change_after_one_step(
        data, adam(), {"learning_rate": pd.Fixed(1e-3), "loss_scale": pd.Fixed(1000.0)})
    for a, b in zip(step_1, step_1000):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-8)


def test_inert_hyperparameter_changes_no_training(data):
    steps = [
        weight_change_after_one_step(data, keras.optimizers.Adam(1e-3), {
            "learning_rate": pd.Fixed(1e-3), "reg_constant": pd.Inert(pd.Fixed(value))})[0]
        for value in (1e-6, 1e6)
    ]
    for a, b in zip(*steps):
        np.testing.assert_array_equal(a, b)


def test_inert_hyperparameter_is_mutated_and_recorded(data):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=4, seed=1,
                        hyperparameters=pd.PopDescent.reference_hyperparameters())
    pop.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0,
            validation_data=(x_val, y_val))
    before = pop.hyperparameter_values()
    one_step(pop, pd.PopDescent.reference_preset(elites=2, cv_batch_size=32))
    members = pop.lineage[-1]["members"]
    for index, member in enumerate(members):
        assert set(member["hyperparameters"]) == {"loss_scale", "reg_constant", "l2"}
        if member["replaced"]:
            parent = before[member["parent"]]
            assert member["hyperparameters"]["reg_constant"] != parent["reg_constant"]
            assert member["hyperparameters"]["loss_scale"] != parent["loss_scale"]
            # Fixed: the reference's 0.001
            assert member["hyperparameters"]["l2"] == pytest.approx(1e-3)


@pytest.mark.parametrize("name", ["learning_rate", "l2", "loss_scale"])
def test_inert_prior_under_a_name_training_reads_is_rejected(name):
    with pytest.raises(ValueError, match=f"\\['{name}'\\] is Inert, but training reads"):
        pd.Population(make_model(), size=2, hyperparameters={name: pd.Inert(pd.Fixed(1.0))})


def test_loss_scale_must_stay_positive():
    with pytest.raises(ValueError, match="loss_scale"):
        pd.Population(make_model(), size=2, hyperparameters={"loss_scale": pd.Fixed(0.0)})


def test_scalar_weight_noise_is_one_offset_for_every_weight(data):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=4, seed=2,
                        hyperparameters={"learning_rate": pd.LogUniform(1e-4, 1e-2)})
    pop.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0,
            validation_data=(x_val, y_val))
    before = [np.concatenate([w.ravel() for w in m.get_weights()]) for m in pop.members]
    strategy = pd.PopDescent(elites=2, weight_noise=0.5, weight_noise_mode="scalar",
                             cv_batch_size=32)
    one_step(pop, strategy)
    replaced = [(i, m) for i, m in enumerate(pop.lineage[-1]["members"]) if m["replaced"]]
    assert len(replaced) == 2
    for index, member in replaced:
        after = np.concatenate([w.ravel() for w in pop.member(index).get_weights()])
        shift = after - before[member["parent"]]
        magnitude = 1.0 - pop.lineage[-1]["members"][member["parent"]]["fitness"]
        assert shift[0] != 0 and abs(shift[0]) < 5 * 0.5 * magnitude
        np.testing.assert_allclose(shift, shift[0], atol=1e-6)


def test_default_weight_noise_stays_per_weight(data):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=4, seed=2)
    pop.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0,
            validation_data=(x_val, y_val))
    before = [np.concatenate([w.ravel() for w in m.get_weights()]) for m in pop.members]
    one_step(pop, pd.PopDescent(elites=2, weight_noise=0.5, cv_batch_size=32))
    for index, member in enumerate(pop.lineage[-1]["members"]):
        if member["replaced"]:
            shift = pop.member(index).get_weights()[0].ravel() - before[member["parent"]][:32]
            assert np.std(shift) > 0.01


def test_reference_factor_is_two_to_a_normal_of_fifteen_times_magnitude():
    priors = {"loss_scale": pd.LogNormal(0.0, 1.0, bounds=(1e-30, 1e30))}
    rng = np.random.default_rng(0)
    for magnitude in (0.1, 0.3):
        ratios = np.array([
            mutate_hyperparameters(priors, {"loss_scale": 1.0}, magnitude, 15.0, 2.0, rng)
            ["loss_scale"] for _ in range(20_000)
        ])
        assert np.mean(np.log2(ratios)) == pytest.approx(0.0, abs=0.05)
        assert np.std(np.log2(ratios)) == pytest.approx(15.0 * magnitude, rel=0.03)


def test_default_factor_is_still_ten_to_a_normal_of_the_magnitude():
    priors = {"learning_rate": pd.LogUniform(1e-2, 1e2, bounds=(1e-30, 1e30))}
    values = [mutate_hyperparameters(priors, {"learning_rate": 1.0}, 0.5, 1.0, 10.0,
                                     np.random.default_rng(seed))["learning_rate"]
              for seed in range(5000)]
    assert np.std(np.log10(values)) == pytest.approx(0.5, rel=0.04)
    # Base 10 draws exactly what the prior alone draws: the default is unchanged.
    assert values[0] == priors["learning_rate"].mutate(1.0, 0.5, 1.0, np.random.default_rng(0))


def test_reference_initial_loss_scale_is_ten_to_a_normal_of_minus_four_and_two():
    prior = pd.PopDescent.reference_hyperparameters()["loss_scale"]
    rng = np.random.default_rng(0)
    exponents = np.log10([prior.sample(rng) for _ in range(20_000)])
    assert np.mean(exponents) == pytest.approx(-4.0, abs=0.05)
    assert np.std(exponents) == pytest.approx(2.0, rel=0.03)


def test_log_normal_with_zero_std_starts_every_member_at_its_mean_and_can_move():
    prior = pd.LogNormal(-3.0, 0.0, bounds=(1e-4, 1e-2))
    rng = np.random.default_rng(0)
    assert [prior.sample(rng) for _ in range(10)] == [pytest.approx(1e-3)] * 10
    moved = [prior.mutate(1e-3, 1.0, 1.0, rng) for _ in range(100)]
    assert min(moved) >= 1e-4 and max(moved) <= 1e-2 and np.std(np.log10(moved)) > 0.3


@pytest.mark.parametrize("make, message", [
    (lambda: pd.LogNormal(-3, -1), "std_log10 must be >= 0, got -1"),
    (lambda: pd.LogNormal(-3, 0), "needs bounds"),
    (lambda: pd.LogNormal(-3, 1, bounds=(1e-2, 1.0)), "min <= 10\\*\\*mean_log10"),
    (lambda: pd.PopDescent(weight_noise_mode="gaussian"), "weight_noise_mode must be one of"),
    (lambda: pd.PopDescent(hyperparameter_noise_base=1.0), "base must be a finite number > 1"),
    (lambda: pd.PopDescent.reference_preset(weight_noise=0.1), "reference_preset fixes"),
])
def test_bad_arguments_are_rejected_with_the_argument_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_preset_and_priors_survive_save_and_load(data, tmp_path):
    x, y, _, _ = data
    pop = pd.Population(make_model(), size=2, seed=4,
                        hyperparameters=pd.PopDescent.reference_hyperparameters())
    pop.fit(x, y, batch_size=32, epochs=1, steps_per_epoch=1, verbose=0)
    pop.save(tmp_path / "population.keras")
    loaded = pd.load_population(tmp_path / "population.keras")
    assert loaded.priors == pop.priors
    assert loaded.hyperparameter_values() == pop.hyperparameter_values()
    config = pd.PopDescent.reference_preset(elites=1).get_config()
    assert config["weight_noise_mode"] == "scalar" and config["hyperparameter_noise_base"] == 2.0
