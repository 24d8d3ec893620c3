"""Budget-aware PopDescent: a member-step budget, a shrinking population, a schedule on every
member's rate, the rescue of a dead population, the exported schedule and the ensemble."""

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.strategies.budget_aware import (
    RescueTracker,
    plan_shrink,
    planned_sizes,
)
from tests.helpers.callbacks import Interrupt
from tests.helpers.lineage import FollowLines, RateRecorder
from tests.helpers.models import fast_model, toy_problem


@pytest.fixture
def problem():
    return toy_problem()


def population(size=5, seed=0, low=1e-3, high=1e-1, optimizer=None, bounds=None):
    return pd.Population(fast_model(optimizer), size=size, seed=seed,
                         hyperparameters={"learning_rate": pd.LogUniform(low, high, bounds)})


def budget_fit(pop, problem, member_steps=400, steps=4, callbacks=None, **kwargs):
    """Budget-aware fit; the range test, early commitment, the cool-down and the width phase
    after it stay off unless a test asks for them, so that each test sees the mechanism it is
    about."""
    x, y, x_val, y_val = problem
    kwargs.setdefault("range_test", False)
    kwargs.setdefault("commit_early", False)
    kwargs.setdefault("cooldown_patience", None)
    kwargs.setdefault("width", None)  # a width member has no schedule to export
    strategy = pd.PopDescent(elites=2, cv_batch_size=32, budget_aware=True, **kwargs)
    history = pop.fit(x, y, batch_size=16, member_steps=member_steps, steps_per_epoch=steps,
                      validation_data=(x_val, y_val), verbose=0,
                      callbacks=[strategy, *(callbacks or [])])
    return strategy, history


# ------------------------------------------------------------------ the budget
@pytest.mark.parametrize("member_steps", [200, 202])
def test_a_fixed_population_spends_its_budget_and_never_more(problem, member_steps):
    pop = population(size=4)
    x, y, x_val, y_val = problem
    history = pop.fit(x, y, batch_size=16, member_steps=member_steps, steps_per_epoch=6,
                      validation_data=(x_val, y_val), verbose=0,
                      callbacks=[pd.PopDescent(elites=2, cv_batch_size=32)])
    # 50 batches of 4 (the last iteration cut to 2); a 51st would overspend 202
    assert pop.gradient_steps == 200
    assert len(history.epoch) == 9


def test_a_shrinking_population_spends_exactly_its_budget_in_the_planned_iterations(problem):
    pop = population()
    _, history = budget_fit(pop, problem, member_steps=403)
    assert pop.gradient_steps == 403
    assert pop.size == 1
    assert len(history.epoch) == len(planned_sizes(((0.05, 2), (0.2, 1)), 403, 5, 4))


def test_fit_refuses_epochs_with_member_steps_and_a_budget_below_one_batch(problem):
    x, y, x_val, y_val = problem
    pop = population(size=3)
    with pytest.raises(ValueError, match="either epochs or member_steps"):
        pop.fit(x, y, epochs=2, member_steps=30, steps_per_epoch=2)
    with pytest.raises(ValueError, match=r"member_steps must be an integer >= 3, got 2"):
        pop.fit(x, y, member_steps=2, steps_per_epoch=2)
    assert pop.gradient_steps == 0


def test_budget_aware_mode_refuses_a_fit_without_budget(problem):
    x, y, x_val, y_val = problem
    pop = population(size=3)
    with pytest.raises(ValueError, match="member_steps"):
        pop.fit(x, y, epochs=1, steps_per_epoch=2, validation_data=(x_val, y_val), verbose=0,
                callbacks=[pd.PopDescent(elites=1, budget_aware=True)])


@pytest.mark.parametrize("rungs", [[(0.5, 2), (0.3, 1)], [(0.1, 1), (0.3, 2)], [(0.0, 2)],
                                   [(1.5, 1)], "fast"])
def test_bad_rungs_are_refused_before_training(rungs):
    with pytest.raises(ValueError, match="rungs"):
        pd.PopDescent(budget_aware=True, rungs=rungs)


@pytest.mark.parametrize("argument", [{"rescue_after": 0}, {"rescue_after": 1.5},
                                      {"rung_samples": 0}])
def test_bad_rescue_and_rung_arguments_are_refused_naming_them(argument):
    (name, value), = argument.items()
    with pytest.raises(ValueError, match=rf"{name} must be an integer >= 1, got {value}"):
        pd.PopDescent(budget_aware=True, **argument)


def test_a_range_test_that_is_not_a_switch_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"range_test must be None \(auto\), True or False, "
                                         r"got 'yes'"):
        pd.PopDescent(budget_aware=True, range_test="yes")


def test_a_commit_early_that_is_not_a_switch_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"commit_early must be True or False, got 1"):
        pd.PopDescent(budget_aware=True, commit_early=1)


@pytest.mark.parametrize("argument", [{"rungs": [(0.5, 1)]}, {"range_test": True},
                                      {"commit_early": True}])
def test_budget_aware_arguments_without_budget_aware_are_refused(argument):
    with pytest.raises(ValueError, match="budget_aware=True"):
        pd.PopDescent(**argument)


# ------------------------------------------------------------------ the shrink
def test_plan_shrink_keeps_the_fittest_and_the_protected_member():
    fitness = np.array([0.1, 0.9, 0.5, 0.7, 0.0])
    assert plan_shrink(fitness, 2).tolist() == [1, 3]
    assert plan_shrink(fitness, 2, protected=0).tolist() == [0, 1]
    assert plan_shrink(fitness, 1, protected=0).tolist() == [1]  # the last rung competes


class ValidationLosses(keras.callbacks.Callback):
    """Each member's loss on the whole validation data at every iteration's end, measured
    after the iteration's last step (before any strategy acts: strategies run first at the
    epoch's end, so by this callback's `on_epoch_end` a shrink has happened)."""

    def __init__(self, x_val, y_val):
        super().__init__()
        self.x_val, self.y_val, self.losses, self.latest = x_val, y_val, [], None

    def on_train_batch_end(self, batch, logs=None):
        self.latest = self.model.member_losses(self.x_val, self.y_val, 16)

    def on_epoch_end(self, epoch, logs=None):
        self.losses.append(self.latest)


def test_a_shrink_keeps_the_members_fittest_on_all_validation_data_and_says_who_left(problem):
    pop = population()
    x, y, x_val, y_val = problem
    observed = ValidationLosses(x_val, y_val)
    strategy = pd.PopDescent(elites=2, cv_batch_size=1, budget_aware=True,
                             protect_compiled=False, range_test=False)
    pop.fit(x, y, batch_size=16, member_steps=400, steps_per_epoch=4,
            validation_data=(x_val, y_val), verbose=0, callbacks=[observed, strategy])
    shrinks = [entry for entry in pop.lineage if "kept" in entry]
    assert [len(entry["kept"]) for entry in shrinks] == [2, 1]
    for entry in shrinks:
        # judged on all 64 validation samples, not on the 1-sample cv batch
        losses = observed.losses[pop.lineage.index(entry)]
        np.testing.assert_allclose(entry["rung_losses"], losses, rtol=1e-5)
        best = np.argsort(losses, kind="stable")[: len(entry["kept"])]
        assert sorted(entry["kept"]) == sorted(best.tolist())
        assert len(entry["left"]) == len(entry["members"]) - len(entry["kept"])
    assert pop.origins == [o for o in range(5) if o not in shrinks[0]["left"] + shrinks[1]["left"]]
    # after the first shrink nothing is replaced any more: the survivors only train
    first = pop.lineage.index(shrinks[0])
    assert not any(m["replaced"] for entry in pop.lineage[first:] for m in entry["members"])


def test_the_member_compiled_at_the_users_rate_is_protected_until_the_last_rung(problem):
    pop = population(low=1e-4, high=1e-3)  # the compiled 1e-2 lies outside the prior: clipped
    budget_fit(pop, problem, member_steps=400)
    first = next(entry for entry in pop.lineage if "kept" in entry)
    assert 0 in first["kept"]  # slot 0 held origin 0 until then
    before = pop.lineage[: pop.lineage.index(first)]
    assert not any(entry["members"][0]["replaced"] for entry in before)
    assert pop.lineage_start["members"][0]["learning_rate"] == pytest.approx(1e-3, rel=1e-6)


def test_early_commitment_is_the_budget_aware_default():
    assert pd.PopDescent(budget_aware=True).get_config()["budget"]["commit_early"] is True
    off = pd.PopDescent(budget_aware=True, commit_early=False)
    assert off.get_config()["budget"]["commit_early"] is False


def test_commit_early_keeps_a_leading_protected_member_alone_and_spends_the_budget(problem):
    # Explored rates 1e-6..1e-5 barely learn; the protected member trains at the compiled
    # 1e-2, so it leads the first rung by far.
    pop = population(low=1e-6, high=1e-5, bounds=(1e-7, 1.0))
    _, history = budget_fit(pop, problem, member_steps=200, commit_early=True)
    shrinks = [entry for entry in pop.lineage if "kept" in entry]
    assert len(shrinks) == 1 and shrinks[0]["committed"]
    assert shrinks[0]["kept"] == [0] and pop.origins == [0]
    assert int(np.argmin(shrinks[0]["rung_losses"])) == 0
    assert pop.gradient_steps == 200
    # More iterations than the default rungs plan (one member sooner); the plan covered them.
    assert len(history.epoch) > len(planned_sizes(((0.05, 2), (0.2, 1)), 200, 5, 4))
    assert history.params["epochs"] >= len(history.epoch)


def test_commit_early_changes_nothing_when_the_protected_member_does_not_lead(problem):
    # The protected member is compiled at 1e-7 and cannot lead; the run must be the default's.
    runs = []
    for commit_early in (False, True):
        pop = population(low=1e-2, high=1e-1, bounds=(1e-7, 1.0),
                         optimizer=keras.optimizers.Adam(1e-7))
        budget_fit(pop, problem, member_steps=200, commit_early=commit_early)
        runs.append(pop)
    default, committing = runs
    assert [e.get("kept") for e in committing.lineage] == [e.get("kept") for e in default.lineage]
    assert not any(e.get("committed") for e in committing.lineage)
    for a, b in zip(default.get_weights(), committing.get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ the schedule
def test_every_member_trains_at_its_base_rate_times_the_schedule(problem):
    pop = population(size=3)
    recorder = RateRecorder()
    schedule = pd.BudgetSchedule(decay_start=0.0)
    steps_before = []

    class Steps(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            steps_before.append(pop.gradient_steps)

    budget_fit(pop, problem, member_steps=120, schedule=schedule, rungs=[(0.9, 1)],
               callbacks=[Steps(), recorder], rescue_after=None)
    bases = [m["hyperparameters"]["learning_rate"] for m in pop.lineage[-1]["members"]]
    last = recorder.rates[-1]
    expected = 1.0 - steps_before[-1] / 120
    for rate, base in zip(last, bases):
        assert rate == pytest.approx(base * expected, rel=1e-5)
    assert recorder.rates[0][0] == pytest.approx(pop.lineage_start["members"][0]["learning_rate"],
                                                 rel=1e-6)


def test_the_multiplier_scales_a_plain_sgd_update(problem):
    x, y, _, _ = problem
    updates = []
    for multiplier in (1.0, 0.25):
        pop = population(size=2, optimizer=keras.optimizers.SGD(0.1), low=0.05, high=0.2)
        pop.live_hyperparameters.set_multiplier(multiplier)
        before = [w.numpy().copy() for w in pop.member(0).trainable_variables]
        pop.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=1, verbose=0)
        after = [w.numpy() for w in pop.member(0).trainable_variables]
        updates.append(np.concatenate([(a - b).ravel() for a, b in zip(after, before)]))
    np.testing.assert_allclose(updates[1], 0.25 * updates[0], rtol=1e-4, atol=1e-7)


def test_budget_schedule_is_constant_then_linear_to_final():
    schedule = pd.BudgetSchedule(warmup=0.1, decay_start=0.5, final=0.2)
    assert schedule.multiplier(0.05) == pytest.approx(0.5)
    assert schedule.multiplier(0.3) == pytest.approx(1.0)
    assert schedule.multiplier(0.75) == pytest.approx(0.6)
    assert schedule.multiplier(1.0) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"decay_start must be in \[warmup, 1\]"):
        pd.BudgetSchedule(warmup=0.5, decay_start=0.2)


# ------------------------------------------------------------------ the rescue
def test_rescue_tracker_counts_only_iterations_where_every_member_is_stuck():
    tracker = RescueTracker(starting_losses=np.array([2.29, 2.31]))
    tracker.update([2.3, 2.4])
    tracker.update([2.28, 2.5])  # 2.28 is not below 0.99 x 2.3
    assert tracker.stuck == 2
    tracker.update([1.0, 2.5])
    assert tracker.stuck == 0


def test_rescue_restarts_a_population_stuck_at_chance_with_lower_rates(problem):
    # Adam at rates 3-10 on this problem: every member blows past its starting loss.
    pop = population(low=3.0, high=10.0, bounds=(1e-5, 10.0))
    budget_fit(pop, problem, member_steps=400, rescue_after=1, protect_compiled=False)
    restarted = [(entry["epoch"], i) for entry in pop.lineage
                 for i, m in enumerate(entry["members"]) if m.get("restarted")]
    assert restarted
    epoch, slot = restarted[0]
    rate_after = pop.lineage[epoch]["members"][slot]["hyperparameters"]["learning_rate"]
    assert rate_after < 0.3  # at least 10x below the lowest starting rate


def test_rescue_spares_the_protected_member_and_a_member_at_the_lower_bound():
    """A slow starter is not a dead one: restarting the user's own rate, or a member whose rate
    cannot go lower, only throws its training away (on CIFAR-10 with strong regularization it
    did so every other iteration to the end of the budget)."""
    budget = pd.PopDescent(budget_aware=True, rescue_after=1).budget
    budget.rescue.starting_losses = np.full(4, 2.30)
    rates, bounds = [1e-3, 1e-4, 5e-3, 2e-3], (1e-4, 1e-1)
    slots, new_rates = budget.rescue_plan([2.30] * 4, rates, bounds,
                                          np.random.default_rng(0), protected=0)
    assert slots == [2, 3]
    assert all(bounds[0] <= new <= old / 10 for new, old in zip(new_rates, (5e-3, 2e-3)))


def test_a_stuck_population_keeps_its_protected_member_training(problem):
    # Adam at rates 3-10, the compiled one too: every member blows past its starting loss,
    # the others are rescued, and the member compiled at the user's rate (slot 0 until the
    # first rung) keeps its weights and its rate.
    pop = population(low=3.0, high=10.0, bounds=(1e-5, 10.0),
                     optimizer=keras.optimizers.Adam(5.0))
    budget_fit(pop, problem, member_steps=400, rescue_after=1, rungs=((0.5, 1),))
    before_rung = [entry for entry in pop.lineage if len(entry["members"]) == 5]
    restarted = {i for entry in before_rung
                 for i, m in enumerate(entry["members"]) if m.get("restarted")}
    assert restarted and 0 not in restarted
    assert [entry["members"][0]["hyperparameters"]["learning_rate"]
            for entry in before_rung] == pytest.approx([5.0] * len(before_rung))


def test_the_range_test_restarts_members_in_the_decade_below_the_fastest_learner(problem):
    pop = population(low=1e-6, high=1e-5, bounds=(1e-6, 1.0))  # a range far too small
    budget_fit(pop, problem, member_steps=400, range_test=True)
    tested = [1, 2, 3, 4]  # slot 0 holds the protected compiled rate
    start = [pop.lineage_start["members"][i]["learning_rate"] for i in tested]
    np.testing.assert_allclose(start, np.geomspace(1e-6, 1.0, 4), rtol=1e-5)
    first = pop.lineage[0]["members"]
    assert [first[i].get("restarted", False) for i in range(5)] == [False] + [True] * 4
    fitness = [first[i]["fitness"] for i in tested]
    fastest = start[int(np.argmax(fitness))]
    for i in tested:
        assert fastest / 10 * (1 - 1e-5) <= first[i]["hyperparameters"]["learning_rate"] \
            <= fastest * (1 + 1e-5)
    assert pop.gradient_steps == 400


def test_the_range_test_is_the_default_where_the_learning_rate_is_tuned(problem):
    x, y, x_val, y_val = problem
    pop = population(low=1e-6, high=1e-5, bounds=(1e-6, 1.0))
    pop.fit(x, y, batch_size=16, member_steps=400, steps_per_epoch=4,
            validation_data=(x_val, y_val), verbose=0,
            callbacks=[pd.PopDescent(elites=2, cv_batch_size=32, budget_aware=True)])
    start = [pop.lineage_start["members"][i]["learning_rate"] for i in range(1, 5)]
    np.testing.assert_allclose(start, np.geomspace(1e-6, 1.0, 4), rtol=1e-5)
    assert all(m.get("restarted") for m in pop.lineage[0]["members"][1:])
    # The first rung (5 % = 20 member-steps) is due after the range test's own iteration: it
    # waits one, so the restarted members are judged on their new rates.
    assert "kept" not in pop.lineage[0] and "kept" in pop.lineage[1]

    # Without a learning-rate hyperparameter there is nothing to test: no error, no restart.
    l2_only = pd.Population(fast_model(), size=3, seed=0,
                            hyperparameters={"l2": pd.LogUniform(1e-6, 1e-3)})
    l2_only.fit(x, y, batch_size=16, member_steps=60, steps_per_epoch=4,
                validation_data=(x_val, y_val), verbose=0,
                callbacks=[pd.PopDescent(elites=1, cv_batch_size=32, budget_aware=True)])
    assert not any(m.get("restarted") for m in l2_only.lineage[0]["members"])
    assert l2_only.gradient_steps == 60


def test_rescue_leaves_a_healthy_population_alone(problem):
    pop = population(low=1e-2, high=1e-1)
    budget_fit(pop, problem, member_steps=400, rescue_after=1)
    assert not any(m.get("restarted") for entry in pop.lineage for m in entry["members"])


# ------------------------------------------------------------------ resume across a shrink
def test_a_run_killed_after_a_shrink_resumes_bit_identical(problem, tmp_path):
    reference = population(seed=3)
    budget_fit(reference, problem, member_steps=400)
    killed = population(seed=3)
    with pytest.raises(KeyboardInterrupt):
        budget_fit(killed, problem, member_steps=400,
                   callbacks=[Interrupt(12), pd.BackupAndRestore(tmp_path)])
    assert killed.size < 5  # it had shrunk before the kill
    resumed = population(seed=3)
    budget_fit(resumed, problem, member_steps=400, callbacks=[pd.BackupAndRestore(tmp_path)])
    assert resumed.origins == reference.origins
    assert resumed.gradient_steps == reference.gradient_steps == 400
    assert resumed.lineage == reference.lineage
    for a, b in zip(reference.state_variables(), resumed.state_variables(), strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


# ------------------------------------------------------------------ export and ensemble
@pytest.mark.parametrize("budget_aware", [True, False])
def test_the_exported_schedule_replays_the_rates_each_member_trained_with(problem, budget_aware):
    x, y, x_val, y_val = problem
    pop = population(size=4, seed=1)
    recorder = RateRecorder()
    follow = FollowLines(recorder)

    if budget_aware:  # a survivor that cools down: back to earlier weights, then its best
        budget_fit(pop, problem, member_steps=320, rungs=[(0.5, 1)], cooldown_patience=2,
                   restore_best_every=8, callbacks=[recorder, follow])
        (began,) = [e["gradient_steps"] for e in pop.lineage if "cooldown" in e]
        assert pop.lineage[-1]["restored_best"]["gradient_steps"] > began
    else:  # the paper's mode: replacements from the first iteration on, no schedule
        pop.fit(x, y, batch_size=16, member_steps=320, steps_per_epoch=4,
                validation_data=(x_val, y_val), verbose=0,
                callbacks=[pd.PopDescent(elites=2, cv_batch_size=32), recorder, follow])
        assert any(member["replaced"] for member in pop.lineage[0]["members"])
    for index in range(pop.size):
        schedule, l2 = pop.exported_schedule(index)
        assert l2 is None
        assert len(schedule.values) == len(follow.lines[index])
        fresh = keras.optimizers.SGD(learning_rate=schedule)
        for step, rate in enumerate(follow.lines[index]):
            fresh.iterations.assign(step)
            assert float(fresh.learning_rate) == pytest.approx(rate, rel=1e-5)


def test_the_ensemble_of_the_fittest_members_averages_their_probabilities(problem):
    x, y, x_val, y_val = problem
    pop = population(size=3)
    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=4, validation_data=(x_val, y_val),
            verbose=0, callbacks=[pd.PopDescent(elites=2, cv_batch_size=32)])
    ensemble = pop.ensemble_model(2, selection="fittest")
    chosen = ensemble.members_chosen
    probabilities = [keras.ops.convert_to_numpy(keras.ops.softmax(pop.member(i)(x_val)))
                     for i in chosen]
    mixed = keras.ops.convert_to_numpy(keras.ops.softmax(ensemble(x_val)))
    np.testing.assert_allclose(mixed, np.mean(probabilities, axis=0), rtol=1e-4, atol=1e-6)
    member_losses = [pop.member(i).evaluate(x_val, y_val, verbose=0) for i in chosen]
    assert ensemble.evaluate(x_val, y_val, verbose=0) <= np.mean(member_losses) + 1e-6
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\], got 4"):
        pop.ensemble_model(4, selection="fittest")
    with pytest.raises(ValueError, match=r"selection must be one of"):
        pop.ensemble_model(selection="best")


def test_the_greedy_ensemble_is_never_worse_on_validation_than_its_best_member(problem):
    x, y, x_val, y_val = problem
    pop = population(size=4)
    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=4, validation_data=(x_val, y_val),
            verbose=0, callbacks=[pd.PopDescent(elites=2, cv_batch_size=32)])
    ensemble = pop.ensemble_model(k=6)  # six additions with replacement among four
    assert len(ensemble.members_chosen) <= 4 and sum(ensemble.member_weights) == \
        pytest.approx(1.0)
    best = min(pop.member(i).evaluate(x_val, y_val, verbose=0) for i in range(4))
    assert ensemble.evaluate(x_val, y_val, verbose=0) <= best + 1e-6


def test_relative_weight_noise_scales_with_each_variables_own_spread(problem):
    pop = population(size=2)
    kernel = pop.member(0).trainable_variables[0]
    kernel.assign(kernel.numpy() * 100.0)
    before = [v.numpy().copy() for v in pop.member(0).trainable_variables]
    pop.perturb_weights(0, 0.1, seed=1, relative=True)
    delta = pop.member(0).trainable_variables[0].numpy() - before[0]
    assert np.std(delta) == pytest.approx(0.1 * np.std(before[0]), rel=0.3)
    bias_delta = pop.member(0).trainable_variables[1].numpy() - before[1]
    assert np.all(bias_delta == 0)  # a zero bias has no spread: no noise


def test_a_shrunk_population_saves_and_loads_with_its_survivors(problem, tmp_path):
    pop = population()
    budget_fit(pop, problem, member_steps=400)
    assert pop.size == 1
    pop.save(tmp_path / "shrunk.keras")
    loaded = pd.load_population(tmp_path / "shrunk.keras")
    assert loaded.size == 1 and loaded.gradient_steps == 400
    assert loaded.hyperparameter_values() == pop.hyperparameter_values()
    for a, b in zip(pop.member(0).get_weights(), loaded.member(0).get_weights(), strict=True):
        assert np.array_equal(a, b)
    x, _, x_val, _ = problem
    np.testing.assert_allclose(loaded.predict(x_val, verbose=0)[0],
                               pop.predict(x_val, verbose=0)[0], rtol=1e-6)
