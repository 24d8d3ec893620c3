"""`GeneticSearch` / `GeneticOracle` with the real KerasTuner engine.

All but the first test replace the training by a cheap deterministic objective (KerasTuner's
documented `run_trial` override), so that they check the search itself in seconds.
"""

import json
import os

import keras
import keras_tuner
import numpy as np
import pytest

from popdescent.tuners import ACTIVATION_TREE, GeneticOracle, GeneticSearch

ACTIVATIONS = ["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid"]
SCORE = keras_tuner.Objective("score", "min")


def declare_seed_space(hp):
    """The seed's MLP space (layers 1-5, units 16-128, 6 activations, dropout 0-0.5)."""
    hp.Int("layers", 1, 5)
    hp.Int("units", 16, 128)
    hp.Choice("activation", ACTIVATIONS)
    hp.Float("dropout", 0.0, 0.5)


def synthetic_score(values):
    return (
        (values["layers"] - 2) ** 2
        + ((values["units"] - 90) / 16) ** 2
        + 4 * values["dropout"]
        + (values["activation"] != "tanh")
    )


class Interrupted(BaseException):
    """Not an `Exception`, so KerasTuner does not catch it: it stops `search` like Ctrl-C."""


class SyntheticSearch(GeneticSearch):
    """Scores trials with `synthetic_score` and records which trials it ran."""

    interrupt_at = None

    def run_trial(self, trial, *args, **kwargs):
        self.ran = getattr(self, "ran", []) + [trial.trial_id]
        if self.interrupt_at is not None and len(self.ran) == self.interrupt_at:
            raise Interrupted()
        return synthetic_score(trial.hyperparameters.values)


def synthetic_search(directory, **kwargs):
    options = dict(
        population_size=4,
        generations=3,
        tournament_size=2,
        seed=3,
        mutation_widths={"layers": 2, "units": 16},
        directory=str(directory),
        project_name="synthetic",
    )
    options.update(kwargs)
    return SyntheticSearch(declare_seed_space, SCORE, **options)


def trial_values(tuner):
    return {t: trial.hyperparameters.values for t, trial in tuner.oracle.trials.items()}


def test_tiny_search_with_real_keras_models(tmp_path, capsys):
    def build(hp):
        model = keras.Sequential([keras.Input((4,))])
        for _ in range(hp.Int("layers", 1, 2)):
            units = hp.Int("units", 2, 8)
            activation = hp.Choice("activation", ACTIVATIONS)
            model.add(keras.layers.Dense(units, activation=activation))
        model.add(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)))
        model.add(keras.layers.Dense(1))
        model.compile("sgd", "mse")
        return model

    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    tuner = GeneticSearch(
        build,
        "val_loss",
        population_size=2,
        generations=2,
        tournament_size=2,
        categorical_trees={"activation": ACTIVATION_TREE},
        seed=0,
        directory=str(tmp_path),
    )
    tuner.search(x, x.sum(axis=1), validation_split=0.25, epochs=1, batch_size=32, verbose=0)

    assert len(tuner.oracle.trials) == 4
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    best_model = tuner.get_best_models(1)[0]
    assert isinstance(best_model, keras.Model)
    # The model handed back is the best trial's: its loss on the validation quarter (Keras'
    # validation_split takes the last 25 %) is the score the oracle ranked the trial by.
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.score == min(t.score for t in tuner.oracle.trials.values())
    x_val, y_val = x[48:], x[48:].sum(axis=1)
    assert best_model.evaluate(x_val, y_val, verbose=0) == pytest.approx(best_trial.score,
                                                                         rel=1e-5)
    tuner.results_summary(2)
    assert "Origin: generation" in capsys.readouterr().out


def test_generations_follow_the_ga_and_respect_bounds(tmp_path):
    tuner = synthetic_search(tmp_path)
    tuner.search(verbose=0)

    lineage = tuner.oracle.lineage
    assert len(tuner.oracle.trials) == 12
    assert [lineage[t]["generation"] for t in sorted(lineage)] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(r["origin"] == "offspring" for r in lineage.values() if r["generation"] > 0)
    for values in trial_values(tuner).values():
        assert 1 <= values["layers"] <= 5 and 16 <= values["units"] <= 128
        assert 0.0 <= values["dropout"] <= 0.5 and values["activation"] in ACTIVATIONS
    # Elitism: the parents of generation 2 include the best of generations 0 and 1.
    earlier = [t for t in lineage if lineage[t]["generation"] < 2]
    best = min(earlier, key=lambda t: tuner.oracle.trials[t].score)
    assert best in tuner.oracle.pools[0]


def test_any_int_float_choice_boolean_space_stays_on_its_grid(tmp_path):
    def declare_mixed_space(hp):
        hp.Int("filters", 8, 64, step=8)
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        hp.Boolean("batch_norm")
        hp.Fixed("epochs", 3)
        hp.Choice("kind", ["mlp", "cnn"])
        with hp.conditional_scope("kind", ["cnn"]):
            hp.Int("kernel", 2, 5)

    class MixedSearch(GeneticSearch):
        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            return abs(values["filters"] - 40) + abs(np.log10(values["learning_rate"]) + 2)

    tuner = MixedSearch(
        declare_mixed_space, SCORE, population_size=4, generations=4, tournament_size=2,
        mutation_probability=0.5, seed=1, directory=str(tmp_path),
    )
    tuner.search(verbose=0)

    values = list(trial_values(tuner).values())
    assert len(values) == 16 and len({json.dumps(v, sort_keys=True) for v in values}) == 16
    for v in values:
        assert v["filters"] in range(8, 65, 8) and 1e-4 <= v["learning_rate"] <= 1e-1
        assert v["batch_norm"] in (True, False) and v["epochs"] == 3
        assert ("kernel" in v) == (v["kind"] == "cnn"), sorted(v.items())
        assert v.get("kernel", 2) in range(2, 6)


def test_same_seed_gives_the_same_trials(tmp_path):
    first = synthetic_search(tmp_path / "a")
    first.search(verbose=0)
    second = synthetic_search(tmp_path / "b")
    second.search(verbose=0)
    assert trial_values(first) == trial_values(second)


def test_resume_after_interruption_does_not_rerun_finished_trials(tmp_path):
    reference = synthetic_search(tmp_path / "reference")
    reference.search(verbose=0)

    interrupted = synthetic_search(tmp_path / "resumed")
    interrupted.interrupt_at = 6  # Inside generation 1.
    with pytest.raises(Interrupted):
        interrupted.search(verbose=0)
    finished = interrupted.ran[:-1]

    resumed = synthetic_search(tmp_path / "resumed")
    resumed.search(verbose=0)
    assert resumed.ran[0] == interrupted.ran[-1]  # The interrupted trial runs again...
    assert not set(resumed.ran) & set(finished)  # ...the finished ones do not.
    assert len(finished) + len(resumed.ran) == 12
    assert trial_values(resumed) == trial_values(reference)


def test_invasive_species_join_each_generation_and_are_reported(tmp_path, capsys):
    tuner = synthetic_search(tmp_path, invasive=2, invasive_candidates=200)
    tuner.search(verbose=0)

    invasive = [t for t, r in tuner.oracle.lineage.items() if r["origin"] == "invasive"]
    assert len(invasive) == 2 * 2  # Two per generation after the random one.
    tuner.results_summary(12)
    out = capsys.readouterr().out
    assert "invasive species, proposed by the surrogate" in out
    listed = ", ".join(sorted(invasive))
    assert f"Invasive species (proposed by the surrogate): 4 of 12 trials: {listed}" in out


def test_islands_evolve_apart_and_exchange_their_best(tmp_path):
    tuner = synthetic_search(
        tmp_path, population_size=3, islands=2, migration_interval=1, migrants=1, generations=2
    )
    tuner.search(verbose=0)

    oracle = tuner.oracle
    assert len(oracle.trials) == 12
    assert [m["generation"] for m in oracle.migrations] == [1]
    arrived = oracle.migrations[0]["arrived"]
    scores = {t: trial.score for t, trial in oracle.trials.items()}
    founders = [
        [t for t, r in oracle.lineage.items() if r["generation"] == 0 and r["island"] == island]
        for island in (0, 1)
    ]
    # Each island receives the best founder of the other one...
    assert arrived == [[min(founders[1], key=scores.get)], [min(founders[0], key=scores.get)]]
    # ...and otherwise breeds only from its own founders.
    for record in oracle.lineage.values():
        if record["origin"] == "offspring":
            island = record["island"]
            assert set(record["parents"]) <= set(founders[island]) | set(arrived[island])


def test_oracle_waits_for_a_generation_before_planning_the_next(tmp_path):
    space = keras_tuner.HyperParameters()
    declare_seed_space(space)
    oracle = GeneticOracle(
        SCORE, population_size=2, generations=2, tournament_size=2, seed=0, hyperparameters=space
    )
    oracle._set_project_dir(str(tmp_path), "idle")
    first, second = oracle.create_trial("w0"), oracle.create_trial("w1")
    assert oracle.create_trial("w2").status == "IDLE"
    for trial, score in ((first, 1.0), (second, 2.0)):
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.create_trial("w2").status == "RUNNING"


def test_maximised_objective_keeps_the_highest_score(tmp_path):
    space = keras_tuner.HyperParameters()
    declare_seed_space(space)
    objective = keras_tuner.Objective("score", "max")
    oracle = GeneticOracle(
        objective, population_size=3, generations=2, elites=1, seed=0, hyperparameters=space
    )
    oracle._set_project_dir(str(tmp_path), "max")
    trials = [oracle.create_trial(f"w{k}") for k in range(3)]
    for trial, score in zip(trials, (1.0, 7.0, 3.0)):
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    oracle.create_trial("w0")
    assert oracle.pools[0][0] == trials[1].trial_id


def test_search_state_survives_in_the_oracle_file(tmp_path):
    tuner = synthetic_search(tmp_path, generations=2)
    tuner.search(verbose=0)
    with open(os.path.join(tuner.project_dir, "oracle.json")) as f:
        state = json.load(f)["genetic"]
    assert state["lineage"] == tuner.oracle.lineage and state["generation"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(population_size=3, tournament_size=4),
            r"tournament_size \(tau\) must be in \[1, 3\], got 4",
        ),
        (dict(population_size=1, tournament_size=1), r"population_size must be in >= 2, got 1"),
        (dict(tree_base=1.0), r"tree base b must be a finite number > 1, got 1.0"),
        (dict(tree_base=0.5), r"tree base b must be a finite number > 1, got 0.5"),
        (dict(invasive=4), r"invasive must be in \[0, 3\], got 4"),
        (dict(islands=0), r"islands must be in >= 1, got 0"),
        (dict(mutation_probability=0.0), r"mutation_probability must be in \(0, 1\]"),
        (
            dict(categorical_trees={"activation": {"a": ["relu", "swish"], "b": ACTIVATIONS[1:]}}),
            r"categorical_trees\['activation'\] names unknown choices \['swish'\]",
        ),
        (
            dict(categorical_trees={"activation": ["relu", "tanh"]}),
            r"categorical_trees\['activation'\] misses choices",
        ),
        (dict(categorical_trees={"units": [16, 128]}), r"needs an hp.Choice or hp.Boolean"),
        (dict(categorical_trees={"optimizer": ["a", "b"]}), r"names 'optimizer', which is not in"),
        (dict(mutation_widths={"activation": 2}), r"mutation_widths names 'activation'"),
    ],
)
def test_bad_input_gets_a_clear_error(tmp_path, kwargs, message):
    options = dict(population_size=4, tournament_size=2)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        GeneticSearch(declare_seed_space, SCORE, directory=str(tmp_path), **options)


def test_same_seed_trains_the_same_models_and_proposes_the_same_generations(tmp_path):
    def build(hp):
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(hp.Int("units", 2, 16), activation="tanh"),
            keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)),
            keras.layers.Dense(1),
        ])
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")), "mse")
        return model

    x = np.random.default_rng(0).random((64, 4)).astype("float32")

    def search(name):
        tuner = GeneticSearch(build, "val_loss", population_size=3, generations=2,
                              tournament_size=2, seed=11, directory=str(tmp_path),
                              project_name=name)
        # Keras shuffles each epoch and initialises weights from the global seed state: both
        # must come from the trial's seed, not from whatever ran before.
        tuner.search(x, x.sum(axis=1), validation_split=0.25, epochs=2, batch_size=8,
                     verbose=0)
        trials = sorted(tuner.oracle.trials.items())
        return [(t, trial.hyperparameters.values, trial.score) for t, trial in trials]

    first = search("first")
    np.random.default_rng().random()  # Unrelated global state changes between searches.
    keras.utils.set_random_seed(12345)
    second = search("second")
    assert [t[:2] for t in first] == [t[:2] for t in second]
    assert [t[2] for t in first] == [t[2] for t in second]
    assert len(first) == 6
