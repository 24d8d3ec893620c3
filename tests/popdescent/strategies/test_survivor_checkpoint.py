"""The budget-aware survivor checkpoint: once one member is left, its best weights on the
validation data come back at the end of the budget (restore_best_weights)."""

import keras
import numpy as np
import pytest

import popdescent as pd
from tests.helpers.callbacks import Interrupt
from tests.helpers.survivor import checks, overfitting_population, survivor_fit


def test_an_overfitting_survivor_gets_back_its_best_weights(memorizable):
    _, _, x_val, y_val = memorizable
    kept = overfitting_population()
    survivor_fit(kept, memorizable)
    final = overfitting_population()
    survivor_fit(final, memorizable, restore_best_weights=False)
    assert kept.size == final.size == 1
    assert checks(final) == []  # off: nothing is measured
    best_steps, best_loss = min(checks(kept), key=lambda check: check[1])
    assert best_steps < 200 == kept.gradient_steps
    assert kept.lineage[-1]["restored_best"] == {"gradient_steps": best_steps, "loss": best_loss}
    # the same run but for the returned weights: those of its lowest validation check
    restored = float(kept.member_losses(x_val, y_val)[0])
    assert restored == pytest.approx(best_loss, rel=1e-6)
    assert restored < float(final.member_losses(x_val, y_val)[0]) - 0.1
    model = kept.best_model()
    for a, b in zip(model.get_weights(), kept.member(0).get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_the_survivor_is_checked_when_it_becomes_the_last_then_every_n_steps_and_at_the_end(
        memorizable):
    pop = overfitting_population()
    survivor_fit(pop, memorizable, restore_best_every=40)
    last = [e for e in pop.lineage if "kept" in e][-1]
    steps = [s for s, _ in checks(pop)]
    assert steps[0] == last["gradient_steps"]  # its rung loss, measured on the same samples
    assert last["rung_losses"][last["kept"][0]] == checks(pop)[0][1]
    assert steps[-1] == 200
    assert all(b - a >= 40 for a, b in zip(steps[:-2], steps[1:-1]))
    assert all(b - a < 44 for a, b in zip(steps[:-1], steps[1:]))  # 40, rounded to 4-step


class StopTrainingAt(keras.callbacks.Callback):
    """Ends a fit the Keras way (`stop_training`, as EarlyStopping does) after iteration
    `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


def test_a_fit_stopped_early_returns_the_best_weights_too(memorizable):
    _, _, x_val, y_val = memorizable
    pop = overfitting_population()
    survivor_fit(pop, memorizable, callbacks=[StopTrainingAt(30)])
    assert pop.gradient_steps < 200
    best_steps, best_loss = min(checks(pop), key=lambda check: check[1])
    assert pop.lineage[-1]["restored_best"]["gradient_steps"] == best_steps < pop.gradient_steps
    assert float(pop.member_losses(x_val, y_val)[0]) == pytest.approx(best_loss, rel=1e-6)


def test_a_run_killed_after_its_best_check_resumes_bit_identical(memorizable, tmp_path):
    reference = overfitting_population(seed=3)
    survivor_fit(reference, memorizable)
    best_steps = reference.lineage[-1]["restored_best"]["gradient_steps"]
    kill = next(e["epoch"] for e in reference.lineage if e["gradient_steps"] > best_steps + 20)
    killed = overfitting_population(seed=3)
    with pytest.raises(KeyboardInterrupt):
        survivor_fit(killed, memorizable,
                     callbacks=[Interrupt(kill), pd.BackupAndRestore(tmp_path)])
    resumed = overfitting_population(seed=3)
    survivor_fit(resumed, memorizable, callbacks=[pd.BackupAndRestore(tmp_path)])
    assert resumed.lineage == reference.lineage
    for a, b in zip(reference.state_variables(), resumed.state_variables(), strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("argument, message", [
    ({"restore_best_every": 0}, r"restore_best_every must be an integer >= 1, got 0"),
    ({"restore_best_weights": "yes"}, r"restore_best_weights must be True or False"),
])
def test_bad_checkpoint_arguments_are_refused_naming_them(argument, message):
    with pytest.raises(ValueError, match=message):
        pd.PopDescent(budget_aware=True, **argument)


def test_a_checkpoint_cadence_without_budget_aware_is_refused():
    with pytest.raises(ValueError, match="pass budget_aware=True"):
        pd.PopDescent(restore_best_every=10)
