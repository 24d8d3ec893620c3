"""The `popdescent-budget` method passes `options["rungs"]` to PopDescent, so a study can
move the shrinks (the depth a survivor gets) without touching the library's default."""

import pytest

from experiments.methods import get_method
from tests.helpers.method_smoke import smoke_context


def test_the_rungs_option_moves_the_shrink(tmp_path):
    context = smoke_context("popdescent-budget", tmp_path, model="mlp", rungs=[[0.5, 1]])
    result = get_method("popdescent-budget")(context)
    (shrink,) = result.details["shrinks"]
    assert shrink["kept"] and len(shrink["kept"]) == 1
    # The default rung for 3 members keeps one after 20 % of the budget; this one after 50 %.
    assert shrink["gradient_steps"] >= 0.5 * context.budget.member_steps
    assert result.gradient_steps == context.budget.member_steps


def test_bad_rungs_are_refused_before_training(tmp_path):
    context = smoke_context("popdescent-budget", tmp_path, model="mlp", rungs=[[0.5, 2], [0.2, 1]])
    with pytest.raises(ValueError, match="rungs must rise in progress and fall in size"):
        get_method("popdescent-budget")(context)


@pytest.mark.parametrize("restore", [True, False])
def test_the_survivor_checkpoint_is_checked_at_adams_cadence_and_can_be_turned_off(
        tmp_path, restore):
    context = smoke_context("popdescent-budget", tmp_path, model="mlp",
                            restore_best_weights=restore)
    result = get_method("popdescent-budget")(context)
    budget = context.budget
    checks = [e["gradient_steps"] for e in result.details["lineage"] if "survivor_loss" in e]
    restored = result.details["restored_best"]
    assert result.details["strategy"]["budget"]["restore_best_weights"] is restore
    if not restore:
        assert restored is None and checks == []
        return
    # where `adam` checks its best checkpoint: every steps_per_iteration x size member-steps
    every = budget.steps_per_iteration * budget.population_size
    assert result.details["strategy"]["budget"]["restore_best_every"] == every
    assert restored["gradient_steps"] in checks
