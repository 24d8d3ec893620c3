"""Past the horizon, width: a budget-aware survivor that has cooled down with budget left hands
the rest of the budget to new members (children of its rewind point, or fresh ones), trained in
waves, each finishing with its best check's weights among `pop.finished_members`."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.strategies.width import plan_waves
from tests.helpers.callbacks import Interrupt
from tests.helpers.models import make_model
from tests.helpers.survivor import memorizable_data, overfitting_population, survivor_fit

KINDS = ["children", "fresh"]


def width_fit(pop, data, width, callbacks=(), member_steps=200, **kwargs):
    return survivor_fit(pop, data, member_steps=member_steps, restore_best_every=8,
                        cooldown_patience=3, width=width, callbacks=callbacks, **kwargs)


def width_plan(pop):
    (entry,) = [e for e in pop.lineage if "width" in e]
    return entry["width"]


@pytest.mark.parametrize("remaining, horizon, width, steps", [
    (21_120, 1_280, 5, 32), (21_120, 7_200, 5, 32), (283, 36, 5, 4), (100, 300, 5, 4),
    (7, 2, 5, 4), (32_000, 640, 4, 32)])
def test_the_waves_spend_what_is_left_exactly(remaining, horizon, width, steps):
    waves = plan_waves(remaining, horizon, width, steps)
    assert sum(members * own for members, own in waves) == remaining
    assert all(1 <= members <= width for members, _ in waves)
    assert all(own % steps == 0 and members == width for members, own in waves[:-1])
    assert sum(m for m, _ in waves) <= max(1, remaining // horizon)
    assert all(own >= min(horizon, remaining) // width for _, own in waves)


class WaveStart(keras.callbacks.Callback):
    """Each member's weights at the first batch of the first wave."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy, self.weights = strategy, None

    def on_train_batch_begin(self, batch, logs=None):
        phase = self.strategy.width_phase
        if (self.weights is None and phase is not None and phase.active
                and phase.wave.started == self.model.gradient_steps):
            self.weights = [m.get_weights() for m in self.model.members]


@pytest.fixture(scope="module", params=KINDS)
def run(request):
    """One width run of each kind (shared by the tests that only read it): the population,
    its strategy, the weights at the first wave's start and the History."""
    x, y, x_val, y_val = memorizable_data()
    strategy = pd.PopDescent(elites=2, cv_batch_size=32, budget_aware=True, schedule=None,
                             rescue_after=None, range_test=False, commit_early=False,
                             restore_best_every=8, cooldown_patience=3, width=request.param)
    start = WaveStart(strategy)
    pop = overfitting_population()
    history = pop.fit(x, y, batch_size=8, member_steps=200, steps_per_epoch=4,
                      validation_data=(x_val, y_val), verbose=0, callbacks=[strategy, start])
    return SimpleNamespace(kind=request.param, pop=pop, strategy=strategy, start=start,
                           history=history, data=(x, y, x_val, y_val))


def test_the_budget_past_the_horizon_is_spent_on_new_members(run):
    _, _, x_val, y_val = run.data
    pop, kind = run.pop, run.kind
    plan = width_plan(pop)
    assert pop.gradient_steps == 200  # every member-step of the budget, none more
    planned = sum(members for members, _ in plan["waves"])
    finished = pop.finished_members
    assert [f.start for f in finished] == ["survivor"] + [kind] * planned
    assert len({f.origin for f in finished}) == len(finished)
    for entry in finished:  # each kept the weights of its best check
        loss = entry.model.evaluate(x_val, y_val, batch_size=8, verbose=0)
        assert loss == pytest.approx(entry.loss, rel=1e-5)
    if kind == "children":
        assert plan["horizon"] == next(e["cooldown"]["length"] for e in pop.lineage
                                       if "cooldown" in e)
    # History goes on through the waves: one value per iteration of the population's keys
    history = run.history.history
    assert len(history["loss"]) == len(history["best_loss"]) == len(pop.lineage)


def test_children_start_at_the_rewind_point_and_fresh_members_anew(run):
    cooldown = run.strategy.budget.cooldown
    rewind = cooldown.points.weights[cooldown.points.steps.index(cooldown.back)]
    noise = run.strategy.weight_noise * run.strategy.width_phase.magnitude
    for weights in run.start.weights:
        gaps = [np.abs(a - b).max() for a, b in zip(weights, rewind, strict=True)]
        if run.kind == "children":  # the rewind point's weights, mutated by the paper's noise
            assert 0 < max(gaps) < 6 * noise
        else:
            assert max(gaps) > 100 * noise
    rates = [f.hyperparameters["learning_rate"] for f in run.pop.finished_members[1:]]
    assert len(set(rates)) > 1  # hyperparameters mutated around the survivor's


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_killed_in_the_width_phase_resumes_bit_identical(memorizable, tmp_path, kind):
    reference = overfitting_population(seed=3)
    width_fit(reference, memorizable, kind)
    waves = [e["epoch"] for e in reference.lineage if "width_wave" in e]
    kill = waves[0] + 2  # inside the first wave, whose start the backup holds
    assert kill < reference.lineage[-1]["epoch"]
    killed = overfitting_population(seed=3)
    with pytest.raises(KeyboardInterrupt):
        width_fit(killed, memorizable, kind,
                  callbacks=[Interrupt(kill), pd.BackupAndRestore(tmp_path)])
    resumed = overfitting_population(seed=3)
    width_fit(resumed, memorizable, kind, callbacks=[pd.BackupAndRestore(tmp_path)])
    assert resumed.lineage == reference.lineage
    assert resumed.origins == reference.origins
    for a, b in zip(reference.state_variables(), resumed.state_variables(), strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert [f.info() for f in resumed.finished_members] == \
        [f.info() for f in reference.finished_members]
    for a, b in zip(reference.finished_members, resumed.finished_members, strict=True):
        for u, v in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
            assert np.array_equal(u, v)


def test_without_a_stall_width_changes_nothing():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    data = (x[:384], y[:384], x[384:], y[384:])
    runs = []
    for width in (None, "children"):
        pop = pd.Population(lambda index: make_model(keras.optimizers.Adam(1e-3)), size=4,
                            seed=0, hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1e-2)})
        survivor_fit(pop, data, member_steps=120, restore_best_every=8, cooldown_patience=3,
                     width=width)
        runs.append(pop)
    assert not runs[1].finished_members and runs[1].lineage == runs[0].lineage
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_best_model_is_the_finished_member_with_the_lowest_validation_loss(run):
    _, _, x_val, y_val = run.data
    losses = [f.loss for f in run.pop.finished_members]
    best = run.pop.best_model()
    assert best.evaluate(x_val, y_val, batch_size=8, verbose=0) == pytest.approx(
        min(losses), rel=1e-5)
    with pytest.raises(ValueError, match="joined the population past the horizon"):
        run.pop.exported_schedule(0)


def test_the_ensemble_of_finished_members_is_no_worse_than_the_best_of_them(run):
    _, _, x_val, y_val = run.data
    ensemble = run.pop.ensemble_model()
    assert sum(ensemble.member_weights) == pytest.approx(1.0)
    assert len(ensemble.members_chosen) <= run.pop.starting_size
    best = min(f.loss for f in run.pop.finished_members)
    assert ensemble.evaluate(x_val, y_val, verbose=0) <= best + 1e-6


def test_the_soup_averages_only_members_of_the_best_ones_start_point(run):
    _, _, x_val, y_val = run.data
    soup = run.pop.soup_model()
    finished = run.pop.finished_members
    best = min(finished, key=lambda f: f.loss)
    chosen = [f for f in finished if f.origin in soup.members_chosen]
    assert soup.members_chosen[0] == best.origin
    assert all(f.start_point == best.start_point for f in chosen)
    if run.kind == "fresh":  # fresh members share no start point: the best alone
        assert soup.members_chosen == [best.origin]
    # kept only when it helped: the soup is never worse on validation than the best member
    assert soup.evaluate(x_val, y_val, batch_size=8, verbose=0) <= best.loss + 1e-5


def test_finished_members_are_saved_and_loaded_with_the_population(run, tmp_path):
    _, _, x_val, _ = run.data
    run.pop.save(tmp_path / "wide.keras")
    loaded = pd.load_population(tmp_path / "wide.keras")
    assert [f.info() for f in loaded.finished_members] == \
        [f.info() for f in run.pop.finished_members]
    for a, b in zip(run.pop.finished_members, loaded.finished_members, strict=True):
        np.testing.assert_allclose(a.model.predict(x_val, verbose=0),
                                   b.model.predict(x_val, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    ({"width": "wide"}, r"width must be one of \('children', 'fresh'\) or None, got 'wide'"),
    ({"width": "children", "cooldown_patience": None}, "needs cooldown_patience"),
    ({"width": "fresh", "width_members": 0}, r"width_members must be an integer >= 1"),
])
def test_bad_width_arguments_are_refused_before_training(arguments, message):
    with pytest.raises(ValueError, match=message):
        pd.PopDescent(budget_aware=True, **arguments)


def test_width_belongs_to_the_budget_aware_mode():
    with pytest.raises(ValueError, match="pass budget_aware=True"):
        pd.PopDescent(width="children")


def test_fresh_members_are_the_default_width_wherever_a_survivor_cools_down():
    assert pd.PopDescent(budget_aware=True).budget.width == "fresh"
    assert pd.PopDescent(budget_aware=True, cooldown_patience=None).budget.width is None
    assert pd.PopDescent(budget_aware=True, width=None).budget.width is None
    assert pd.PopDescent(budget_aware=True).get_config()["budget"]["width"] == "fresh"
