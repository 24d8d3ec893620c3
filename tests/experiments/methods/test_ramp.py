"""`adam-ramp`: the regularization rises linearly from 0 to the guess and holds; bad options
are refused before training, naming the option."""

import pytest

from experiments.core.contract import MethodContext, get_budget
from experiments.methods.ramp import ramp_series, run


def test_the_ramp_rises_linearly_to_the_target_and_holds_it():
    series = ramp_series({"dropout": 0.3, "augmentation": 1.0}, steps=10, until=0.4)
    assert series["dropout"][:5] == pytest.approx([0.0, 0.075, 0.15, 0.225, 0.3])
    assert series["dropout"][4:] == pytest.approx([0.3] * 6)
    assert series["augmentation"][2] == pytest.approx(0.5)


@pytest.mark.parametrize("options, named", [
    ({}, "options['guess']"),
    ({"guess": "good", "ramp_until": 0.0}, "options['ramp_until']"),
    ({"guess": "good", "ramp_until": 1.5}, "options['ramp_until']"),
])
def test_bad_options_are_refused_before_training(tmp_path, options, named):
    context = MethodContext(method="adam-ramp", dataset="fmnist", seed=5, scale="smoke",
                            regularization=False, data=None,
                            budget=get_budget("fmnist", "smoke"), work_dir=tmp_path,
                            options=options)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        run(context)  # data=None: any training would fail otherwise
