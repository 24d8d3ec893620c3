"""PBT: Ray Tune's exploit (bottom quantile copies the top) and explore (x1.2 / x0.8, or a
redraw from the prior with probability 0.25), on plain arrays and on a real Population."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from popdescent import Population  # noqa: E402
from popdescent.hyperparameters import Choice, Fixed, LogUniform, Uniform  # noqa: E402
from popdescent.strategies import PBT, explore, plan_exploit  # noqa: E402
from popdescent.strategies.pbt import quantile_count  # noqa: E402

FACTORS = (1.2, 0.8)


@pytest.mark.parametrize("size, fraction, expected", [
    (2, 0.25, 1), (3, 0.25, 1), (4, 0.25, 1), (5, 0.25, 2), (8, 0.25, 2), (9, 0.25, 3),
    (5, 0.5, 2), (6, 0.5, 3), (10, 0.0, 0),
])
def test_quantile_count_follows_ray_tune(size, fraction, expected):
    assert quantile_count(size, fraction) == expected


def test_exactly_the_bottom_quantile_is_replaced_from_the_top_quantile():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(2, 21))
        fitness = rng.uniform(0.01, 1.0, size=size)
        plan = plan_exploit(fitness, 0.25, rng)
        count = quantile_count(size, 0.25)
        order = np.argsort(fitness)
        assert sorted(plan.bottom) == sorted(order[:count])
        assert sorted(plan.top) == sorted(order[size - count:])
        assert len(plan.parents) == count
        assert set(plan.parents) <= set(plan.top)


def test_parents_are_drawn_uniformly_from_the_top_quantile():
    rng = np.random.default_rng(1)
    fitness = np.array([0.9, 0.1, 0.8, 0.5, 0.4, 0.3, 0.2, 0.7, 0.6, 0.65])  # top 3: 0, 2, 7
    draws = np.concatenate([plan_exploit(fitness, 0.25, rng).parents for _ in range(4000)])
    frequencies = np.bincount(draws, minlength=10) / len(draws)
    np.testing.assert_allclose(frequencies[[0, 2, 7]], 1 / 3, atol=0.02)
    assert frequencies[[1, 3, 4, 5, 6, 8, 9]].sum() == 0


def test_diverged_member_is_never_a_parent():
    rng = np.random.default_rng(2)
    fitness = np.array([np.nan, 0.5, np.inf, -np.inf])  # the top half holds member 0
    for _ in range(200):
        plan = plan_exploit(fitness, 0.5, rng)
        assert 0 in plan.top
        assert set(plan.parents) == {1}


def test_every_member_diverged_raises():
    with pytest.raises(FloatingPointError, match="fitness 0"):
        plan_exploit(np.array([np.nan, np.nan, 0.0, 0.0]), 0.25, np.random.default_rng(0))


def test_same_seed_gives_the_same_plan():
    fitness = np.random.default_rng(3).uniform(size=12)
    first = plan_exploit(fitness, 0.25, np.random.default_rng(7))
    second = plan_exploit(fitness, 0.25, np.random.default_rng(7))
    np.testing.assert_array_equal(first.parents, second.parents)
    np.testing.assert_array_equal(first.bottom, second.bottom)


def test_explore_perturbs_by_factor_or_resamples_with_the_specified_frequencies():
    rng = np.random.default_rng(4)
    priors = {"learning_rate": LogUniform(1e-4, 1e-2, bounds=(1e-7, 1.0)),
              "momentum": Uniform(0.1, 0.2, bounds=(0.0, 1.0))}
    start = {"learning_rate": 1e-3, "momentum": 0.5}  # 0.5 lies outside momentum's range
    draws = 20000
    outcomes = {name: {"up": 0, "down": 0, "resampled": 0} for name in priors}
    for _ in range(draws):
        explored = explore(start, priors, 0.25, FACTORS, rng)
        for name, prior in priors.items():
            value = explored[name]
            if np.isclose(value, start[name] * 1.2, rtol=1e-12):
                outcomes[name]["up"] += 1
            elif np.isclose(value, start[name] * 0.8, rtol=1e-12):
                outcomes[name]["down"] += 1
            else:
                assert prior.low <= value <= prior.high  # a redraw from the initial range
                outcomes[name]["resampled"] += 1
    for name in priors:
        assert outcomes[name]["resampled"] / draws == pytest.approx(0.25, abs=0.015)
        assert outcomes[name]["up"] / draws == pytest.approx(0.375, abs=0.015)
        assert outcomes[name]["down"] / draws == pytest.approx(0.375, abs=0.015)


def test_resampled_values_follow_the_prior():
    rng = np.random.default_rng(5)
    prior = LogUniform(1e-4, 1e-2)
    values = [explore({"learning_rate": 1e-3}, {"learning_rate": prior}, 1.0, FACTORS, rng)
              ["learning_rate"] for _ in range(4000)]
    exponents = np.log10(values)
    assert exponents.min() >= -4 and exponents.max() <= -2
    np.testing.assert_allclose(np.histogram(exponents, bins=4, range=(-4, -2))[0] / 4000,
                               0.25, atol=0.03)  # log-uniform: flat in log space


def test_explored_values_stay_within_bounds():
    rng = np.random.default_rng(6)
    prior = LogUniform(1e-4, 1e-2)
    for _ in range(500):
        for start in (1e-4, 1e-2):
            value = explore({"lr": start}, {"lr": prior}, 0.25, FACTORS, rng)["lr"]
            assert 1e-4 <= value <= 1e-2


def test_explore_keeps_fixed_and_moves_choice_to_a_neighbour():
    rng = np.random.default_rng(7)
    priors = {"l2": Fixed(1e-3), "units": Choice([8, 16, 32, 64])}
    seen = set()
    for _ in range(2000):
        explored = explore({"l2": 1e-3, "units": 16}, priors, 0.0, FACTORS, rng)
        assert explored["l2"] == 1e-3
        seen.add(explored["units"])
    assert seen == {8.0, 32.0}


@pytest.mark.parametrize("arguments, message", [
    ({"interval": 0}, "interval must be an integer >= 1, got 0"),
    ({"quantile_fraction": 0.6}, r"quantile_fraction must be a number in \[0, 0.5\], got 0.6"),
    ({"resample_probability": -0.1}, r"resample_probability must be a number in \[0, 1.0\]"),
    ({"perturbation_factors": (1.2, 0.0)}, "perturbation_factors must be"),
])
def test_bad_arguments_raise_naming_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        PBT(**arguments)


def _tiny_model(index=0):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_replaced_member_copies_weights_and_optimizer_state_of_a_top_member():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    population = Population(_tiny_model, size=4, seed=0, hyperparameters={
        "learning_rate": LogUniform(1e-4, 1e-2, bounds=(1e-6, 1.0))})
    strategy = PBT(resample_probability=0.0, seed=0)  # always x1.2 or x0.8
    population.fit(x[:64], y[:64], batch_size=16, epochs=1, steps_per_epoch=3, verbose=0,
                   validation_data=(x[64:], y[64:]), callbacks=[strategy])
    record = population.lineage[-1]["members"]
    replaced = [i for i, member in enumerate(record) if member["replaced"]]
    assert len(replaced) == 1  # ceil(4 * 0.25)
    slot = replaced[0]
    parent = record[slot]["parent"]
    fitness = [member["fitness"] for member in record]
    assert fitness[parent] == max(fitness) and fitness[slot] == min(fitness)
    copy, source = population.member(slot), population.member(parent)
    def state(model):
        slots = [v for v in model.optimizer.variables if "learning_rate" not in v.path]
        return model.weights + slots

    assert len(state(copy)) == 13  # 4 weights, Adam's iteration and 8 moment slots
    for mine, theirs in zip(state(copy), state(source), strict=True):
        np.testing.assert_array_equal(np.asarray(mine.value), np.asarray(theirs.value))
    ratio = record[slot]["hyperparameters"]["learning_rate"] / \
        record[parent]["hyperparameters"]["learning_rate"]
    assert np.isclose(ratio, 1.2, rtol=1e-5) or np.isclose(ratio, 0.8, rtol=1e-5)


def test_pbt_method_runs_at_smoke_scale_and_returns_the_common_record(tmp_path):
    from experiments.methods.pbt import run
    from tests.helpers.method_smoke import check_common_record, smoke_context

    context = smoke_context("pbt", tmp_path)
    result = run(context)
    check_common_record(result, context)
    budget = context.budget
    assert result.gradient_steps == budget.member_steps  # every member-step that ran
    assert len(result.curve) == budget.iterations
    # ceil(3 * 0.25) = 1 member replaced per iteration.
    assert result.details["replacements"] == budget.iterations
    assert 1e-4 <= result.details["hyperparameters"]["learning_rate"] <= 1e-2


def test_pbt_method_rejects_a_bad_interval_before_training(tmp_path):
    from experiments.methods.pbt import run
    from tests.helpers.method_smoke import smoke_context

    with pytest.raises(ValueError, match="interval must be an integer >= 1, got 0"):
        run(smoke_context("pbt", tmp_path, pbt_interval=0))
