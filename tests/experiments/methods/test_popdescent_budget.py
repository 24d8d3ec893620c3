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
