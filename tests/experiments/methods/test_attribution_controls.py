"""The controls that say whose win a population's is (issue 38): replaying its schedules in one
fresh run, holding its final values constant, and selecting at random."""

import json

import numpy as np
import pytest

from experiments.core.contract import MethodContext, get_budget
from experiments.methods.random_selection import RandomSelectionFitness
from experiments.methods.replay import exported_values, population_record
from popdescent.population.selection import inverse_loss_fitness


def context(tmp_path, **options):
    return MethodContext(method="adam-replay", dataset="fmnist", seed=5, scale="smoke",
                         regularization=False, data=None, budget=get_budget("fmnist", "smoke"),
                         work_dir=tmp_path, verbose=0, options=options)


def write_records(tmp_path, *records):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def population(seed=5, guess="bad", selection=None, exported=None):
    options = {"guess": guess, **({"selection": selection} if selection else {})}
    return {"method": "popdescent-budget", "dataset": "fmnist", "scale": "smoke", "seed": seed,
            "options": options, "details": {"exported_hyperparameters": exported}}


def test_the_replayed_record_is_the_population_of_the_same_seed_guess_and_fitness_selection(
        tmp_path):
    wanted = population(exported={"dropout": [[0.6, 2], [0.4, 1]]})
    path = write_records(tmp_path, population(seed=15), population(guess="good"),
                         population(selection="random"), wanted)
    record = population_record(context(tmp_path, guess="bad", replay_from=path))
    assert record is not None and record["details"] == wanted["details"]
    assert exported_values(record) == {"dropout": [0.6, 0.6, 0.4]}


@pytest.mark.parametrize("options, message", [
    ({}, r"options\['replay_from'\] must name a records file"),
    ({"replay_from": "/nonexistent/records.jsonl"}, r"options\['replay_from'\] = .* is not a file"),
])
def test_a_missing_record_is_refused_before_training(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        population_record(context(tmp_path, guess="bad", **options))


def test_a_records_file_without_the_run_is_refused_naming_it(tmp_path):
    path = write_records(tmp_path, population(seed=15))
    with pytest.raises(ValueError, match=r"holds no popdescent-budget record of fmnist smoke "
                                         r"seed 5 guess 'bad'"):
        population_record(context(tmp_path, guess="bad", replay_from=path))


def test_random_selection_shuffles_fitness_among_finite_members_only():
    losses = np.array([0.3, np.nan, 0.5, 0.4, np.inf])
    shuffled = RandomSelectionFitness(5)(losses)
    plain = inverse_loss_fitness(losses)
    finite = np.isfinite(losses)
    assert sorted(shuffled[finite]) == sorted(plain[finite])  # the same values, handed out
    np.testing.assert_array_equal(shuffled[~finite], plain[~finite])  # diverged: never parents
    np.testing.assert_array_equal(shuffled, RandomSelectionFitness(5)(losses))  # resumable
    orders = {tuple(np.argsort(RandomSelectionFitness(5)(losses + shift)[finite]))
              for shift in np.linspace(0, 0.1, 20)}
    assert len(orders) > 1  # not the fitness order every time


@pytest.mark.parametrize("options, message", [
    ({"guess": "awful"}, r"options\['guess'\] must be one of \('good', 'bad'\), got 'awful'"),
    ({"guess": "bad", "prior": "huge"}, r"options\['prior'\] must be one of .*got 'huge'"),
])
def test_bad_regularization_options_are_refused_before_training(tmp_path, options, message):
    from experiments.core.contract import regularization_priors

    with pytest.raises(ValueError, match=message):
        regularization_priors(context(tmp_path, **options))


@pytest.mark.parametrize("options, message", [
    ({"selection": "greedy"}, r"options\['selection'\] must be one of \['fitness', 'random'\], "
                              r"got 'greedy'"),
])
def test_a_bad_selection_option_is_refused(tmp_path, options, message):
    from experiments.methods.popdescent_budget import selection_option

    with pytest.raises(ValueError, match=message):
        selection_option(context(tmp_path, **options))
