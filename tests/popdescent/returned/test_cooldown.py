"""The budget-aware survivor's cool-down: after `cooldown_patience` checks without a new best it
goes back to its best weights, its rate falls linearly to the schedule's final value, and the
fit ends when the cool-down does."""

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.returned.cooldown import CooldownLearningRate, RewindPoints, StallCooldown
from tests.helpers.callbacks import Interrupt
from tests.helpers.models import make_model
from tests.helpers.survivor import checks, overfitting_population, survivor_fit


class MemberRates(keras.callbacks.Callback):
    """(member-steps before the batch, the survivor's learning rate) at every batch, read
    after the strategy set it."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        population = self.model
        if population.size == 1:
            rate = population.member(0).optimizer.learning_rate
            self.rates.append((population.gradient_steps,
                               float(keras.ops.convert_to_numpy(rate))))


def cooled_fit(pop, data, callbacks=(), **kwargs):
    return survivor_fit(pop, data, restore_best_every=8, cooldown_patience=3,
                        callbacks=callbacks, **kwargs)


def test_a_stalled_survivor_rewinds_cools_down_and_stops(memorizable):
    _, _, x_val, y_val = memorizable
    rates = MemberRates()
    pop = overfitting_population()
    cooled_fit(pop, memorizable, callbacks=[rates])
    (entry,) = [e for e in pop.lineage if "cooldown" in e]
    began, cooldown = entry["gradient_steps"], entry["cooldown"]
    # three checks in a row without a new best, after the best so far
    before = [(s, loss) for s, loss in checks(pop) if s <= began]
    best_steps, _ = min(before, key=lambda check: check[1])
    assert [s for s, _ in before][-4] == best_steps == cooldown["best_gradient_steps"]
    # back to a check at or before half the best (the survivor's first check if none is)
    rewind, steps = cooldown["from_gradient_steps"], [s for s, _ in before]
    assert rewind in steps and (rewind == steps[0] or 2 * rewind <= best_steps)
    length = cooldown["length"]
    assert length == min(max(best_steps - rewind, 8), 200 - began)
    # the rate falls linearly from the constant rate (no schedule) to zero, then fit ends
    rate = pop.hyperparameters_of(0)["learning_rate"]
    during = [(s, r) for s, r in rates.rates if s >= began]
    assert during[0][1] == pytest.approx(rate, rel=1e-5)
    for steps, value in during:
        assert value == pytest.approx(rate * (1 - (steps - began) / length), rel=1e-4, abs=1e-9)
    assert pop.gradient_steps == began + length < 200
    # the returned weights are the best check's, over the cool-down's checks too
    overall_steps, overall_loss = min(checks(pop), key=lambda check: check[1])
    assert pop.lineage[-1]["restored_best"] == {"gradient_steps": overall_steps,
                                                "loss": overall_loss}
    assert float(pop.member_losses(x_val, y_val)[0]) == pytest.approx(overall_loss, rel=1e-6)


def noisy_labels(rng, count, noise):
    """A learnable rule (three classes from two signs) with a share `noise` of labels random."""
    x = rng.normal(size=(count, 16)).astype("float32")
    y = ((x[:, 0] > 0).astype(int) + (x[:, 1] > 0)).astype("int32")
    flipped = rng.random(count) < noise
    y[flipped] = rng.integers(0, 3, flipped.sum())
    return x, y


def test_the_cool_down_starts_from_the_rewind_points_weights():
    """A survivor that learns for a while, then fits its noisy labels: it goes back to a check
    before its best, and right after the rewind its loss is that check's."""
    rng = np.random.default_rng(0)
    (x, y), (x_val, y_val) = noisy_labels(rng, 48, 0.4), noisy_labels(rng, 256, 0.0)

    class LossAtRewind(keras.callbacks.Callback):
        loss = None

        def on_epoch_end(self, epoch, logs=None):
            if "cooldown" in self.model.lineage[-1] and self.loss is None:
                self.loss = float(self.model.member_losses(x_val, y_val)[0])

    probe = LossAtRewind()
    pop = pd.Population(
        lambda index: make_model(keras.optimizers.Adam(3e-3), units=64, features=16,
                                 metrics=()),
        size=5, seed=0, hyperparameters={"learning_rate": pd.LogUniform(3e-3, 1e-2)})
    survivor_fit(pop, (x, y, x_val, y_val), member_steps=300, rungs=[(0.05, 1)],
                 restore_best_every=8, cooldown_patience=3, callbacks=[probe])
    (entry,) = [e for e in pop.lineage if "cooldown" in e]
    cooldown = entry["cooldown"]
    assert cooldown["from_gradient_steps"] < cooldown["best_gradient_steps"]
    rewound = dict(checks(pop))[cooldown["from_gradient_steps"]]
    assert rewound > dict(checks(pop))[cooldown["best_gradient_steps"]]
    assert probe.loss == pytest.approx(rewound, rel=1e-6)


def test_a_survivor_that_keeps_improving_spends_the_whole_budget():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    pop = pd.Population(lambda index: make_model(keras.optimizers.Adam(1e-3)), size=4, seed=0,
        hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1e-2)})
    survivor_fit(pop, (x[:384], y[:384], x[384:], y[384:]), member_steps=120,
                 restore_best_every=8, cooldown_patience=3)
    assert pop.size == 1 and pop.gradient_steps == 120
    assert not any("cooldown" in e for e in pop.lineage)


@pytest.mark.parametrize("after", [0, 1], ids=["before the rewind", "during the cool-down"])
def test_a_run_killed_around_the_cool_down_resumes_bit_identical(memorizable, tmp_path, after):
    reference = overfitting_population(seed=3)
    cooled_fit(reference, memorizable)
    (entry,) = [e for e in reference.lineage if "cooldown" in e]
    kill = entry["epoch"] + after  # 0: the rewind points come from the backup
    assert kill < reference.lineage[-1]["epoch"]
    killed = overfitting_population(seed=3)
    with pytest.raises(KeyboardInterrupt):
        cooled_fit(killed, memorizable, callbacks=[Interrupt(kill), pd.BackupAndRestore(tmp_path)])
    resumed = overfitting_population(seed=3)
    cooled_fit(resumed, memorizable, callbacks=[pd.BackupAndRestore(tmp_path)])
    assert resumed.lineage == reference.lineage
    for a, b in zip(reference.state_variables(), resumed.state_variables(), strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_the_cool_down_runs_from_the_rewind_point_to_the_best_or_what_is_left():
    cooldown = StallCooldown(patience=2)
    assert [cooldown.update(i) for i in (True, False, True, False, False)] == [
        False, False, False, False, True]
    cooldown.begin(now=600, rewind_steps=150, best_steps=450, budget_end=2100,
                   from_multiplier=0.8, minimum=100)
    assert cooldown.length == 300
    assert cooldown.multiplier(600, final=0.0) == pytest.approx(0.8)
    assert cooldown.multiplier(750, final=0.2) == pytest.approx(0.5)
    assert not cooldown.over(899) and cooldown.over(900)
    assert cooldown.update(False) is False  # once per run
    short = StallCooldown()
    short.begin(now=1900, rewind_steps=0, best_steps=1500, budget_end=2000, from_multiplier=1.0)
    assert short.length == 100
    at_best = StallCooldown()  # the best is the rewind point: at least `minimum`
    at_best.begin(now=900, rewind_steps=640, best_steps=640, budget_end=9000,
                  from_multiplier=1.0, minimum=320)
    assert at_best.length == 320


def test_rewind_points_keep_a_doubling_grid_and_pick_about_half_the_best():
    points = RewindPoints()
    for steps in range(640, 12_000, 640):
        points.offer(steps, lambda steps=steps: [np.full(2, steps)])
    assert points.steps == [640, 1280, 2560, 5120, 10240]
    assert [w[0][0] for w in points.weights] == points.steps
    assert points.steps[points.before_half_of(4480)] == 1280
    assert points.steps[points.before_half_of(5120)] == 2560
    assert points.steps[points.before_half_of(1000)] == 640  # none that early: the first
    restored = RewindPoints()
    restored.set_state(points.get_state())
    restored.set_arrays(points.get_arrays())
    assert [w[0].tolist() for w in restored.weights] == [w[0].tolist() for w in points.weights]


def test_the_single_model_cool_down_schedule_is_the_same_line():
    schedule = CooldownLearningRate(1e-3, start=100, length=50, from_multiplier=0.5)
    values = [float(keras.ops.convert_to_numpy(schedule(s))) for s in (0, 100, 125, 150, 400)]
    assert values == pytest.approx([5e-4, 5e-4, 2.5e-4, 0.0, 0.0], abs=1e-9)
    restored = CooldownLearningRate.from_config(schedule.get_config())
    assert float(keras.ops.convert_to_numpy(restored(125))) == pytest.approx(2.5e-4)


@pytest.mark.parametrize("argument, message", [
    ({"cooldown_patience": 0}, r"cooldown_patience must be an integer >= 1, got 0"),
    ({"cooldown_patience": 2, "restore_best_weights": False},
     r"cooldown_patience=2 needs restore_best_weights=True"),
])
def test_bad_cooldown_arguments_are_refused_naming_them(argument, message):
    with pytest.raises(ValueError, match=message):
        pd.PopDescent(budget_aware=True, **argument)


def test_a_cooldown_without_budget_aware_is_refused():
    with pytest.raises(ValueError, match="cooldown_patience, width and width_members belong to the budget-aware mode"):
        pd.PopDescent(cooldown_patience=3)
