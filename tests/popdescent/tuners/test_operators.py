"""The pure genetic operators of `popdescent.tuners`, on seeded draws and plain arrays."""

import math

import numpy as np
import pytest

from popdescent.tuners import invasive, operators
from popdescent.tuners.operators import ACTIVATION_TREE


def test_tournament_picks_the_best_of_the_drawn_entrants():
    scores = np.array([5.0, 1.0, 4.0, 3.0, 2.0, 6.0])
    for seed in range(50):
        winner = operators.tournament(scores, 3, np.random.default_rng(seed))
        entrants = np.random.default_rng(seed).choice(np.arange(6), size=3, replace=False)
        assert winner == entrants[np.argmin(scores[entrants])]


def test_tournament_of_the_whole_population_picks_the_best():
    scores = [3.0, np.inf, 0.5, 2.0]
    assert {operators.tournament(scores, 4, np.random.default_rng(s)) for s in range(20)} == {2}


def test_tournament_never_picks_an_excluded_member():
    scores = [0.0, 1.0, 2.0, 3.0]
    winners = {
        operators.tournament(scores, 2, np.random.default_rng(s), exclude=(0,)) for s in range(50)
    }
    assert 0 not in winners and winners <= {1, 2}


def test_tournament_larger_than_the_population_raises():
    with pytest.raises(ValueError, match=r"tournament size must be in \[1, 3\].*got 4"):
        operators.tournament([1.0, 2.0, 3.0], 4, np.random.default_rng(0))


def test_two_point_crossover_keeps_genes_from_exactly_two_parents_at_two_cuts():
    parent_a = [f"a{k}" for k in range(6)]
    parent_b = [f"b{k}" for k in range(6)]
    cuts_seen = set()
    for seed in range(100):
        child, (i, j) = operators.two_point_crossover(
            parent_a, parent_b, np.random.default_rng(seed)
        )
        assert 1 <= i < j <= 6
        assert child == parent_a[:i] + parent_b[i:j] + parent_a[j:]
        cuts_seen.add((i, j))
    # Every pair of cut points 1 <= i < j <= 6 is possible.
    assert len(cuts_seen) == 15


def test_integer_mutation_moves_within_its_width_and_bounds():
    rng = np.random.default_rng(0)
    steps = {operators.mutate_integer(50, 16, 128, 16, rng) - 50 for _ in range(3000)}
    assert steps == set(range(-16, 17))
    near_edge = [operators.mutate_integer(2, 1, 5, 2, rng) for _ in range(500)]
    assert min(near_edge) == 1 and max(near_edge) == 4


def test_float_mutation_has_the_seeds_spread_and_stays_in_bounds():
    rng = np.random.default_rng(0)
    centre = np.array([operators.mutate_float(0.25, 0.0, 0.5, 0.15, rng) for _ in range(4000)])
    assert centre.std() == pytest.approx(0.15 * 0.5, rel=0.1)
    edge = [operators.mutate_float(0.49, 0.0, 0.5, 0.15, rng) for _ in range(1000)]
    assert min(edge) >= 0.0 and max(edge) == 0.5


def test_uniform_categorical_mutation_always_changes_the_choice():
    rng = np.random.default_rng(0)
    draws = [operators.mutate_categorical("b", ["a", "b", "c"], rng) for _ in range(600)]
    assert set(draws) == {"a", "c"}
    assert abs(draws.count("a") - draws.count("c")) < 100


def test_activation_tree_hops():
    leaves = operators.tree_leaves(ACTIVATION_TREE)
    hops = lambda a, b: operators.tree_hops(leaves[a], leaves[b])  # noqa: E731
    assert hops("relu", "leaky_relu") == 2
    assert hops("relu", "elu") == hops("relu", "gelu") == 4
    assert hops("relu", "tanh") == hops("relu", "sigmoid") == 5
    assert hops("tanh", "sigmoid") == 2


def test_tree_mutation_draws_nearer_leaves_more_often():
    probabilities = operators.tree_distance_probabilities(ACTIVATION_TREE, base=2.0)
    choices = list(operators.tree_leaves(ACTIVATION_TREE))
    rng = np.random.default_rng(0)
    draws = [
        operators.mutate_categorical("relu", choices, rng, probabilities) for _ in range(20000)
    ]
    counts = {choice: draws.count(choice) for choice in choices}
    assert counts["relu"] == 0
    # 2 hops > 4 hops > 5 hops; b = 2 gives p ∝ 1 / hops: 1/2, 1/4, 1/5.
    assert counts["leaky_relu"] > max(counts["elu"], counts["gelu"])
    assert min(counts["elu"], counts["gelu"]) > max(counts["tanh"], counts["sigmoid"])
    total = 1 / 2 + 2 / 4 + 2 / 5
    assert counts["leaky_relu"] / 20000 == pytest.approx((1 / 2) / total, abs=0.015)


def test_larger_tree_base_spreads_the_mutation():
    def entropy(row):
        return -sum(p * math.log(p) for p in row.values())

    rows = [operators.tree_distance_probabilities(ACTIVATION_TREE, b)["relu"] for b in (1.2, 2, 8)]
    assert entropy(rows[0]) < entropy(rows[1]) < entropy(rows[2])
    assert rows[0]["leaky_relu"] > rows[1]["leaky_relu"] > rows[2]["leaky_relu"]


@pytest.mark.parametrize("base", [1, 0.5, -2, float("inf"), "2", True])
def test_tree_base_must_exceed_one(base):
    with pytest.raises(ValueError, match="tree base b must be"):
        operators.tree_distance_probabilities(ACTIVATION_TREE, base)


def test_tree_with_repeated_leaf_raises():
    with pytest.raises(ValueError, match="'relu' appears twice"):
        operators.tree_leaves({"a": ["relu", "tanh"], "b": ["relu"]})


def test_next_pool_keeps_elites_then_the_best_children():
    scores = {"p1": 0.1, "p2": 0.9, "p3": 0.8, "c1": 0.5, "c2": 0.7, "c3": 0.2}
    pool = operators.next_pool(["p1", "p2", "p3"], ["c1", "c2", "c3"], scores, 3, elites=1)
    assert pool == ["p1", "c3", "c1"]
    assert operators.next_pool(["p1"], ["c2"], scores, 2, elites=0) == ["c2", "p1"]


def test_ring_migration_sends_each_islands_best_to_the_next():
    scores = {"a1": 1.0, "a2": 5.0, "b1": 2.0, "b2": 3.0, "c1": 0.5, "c2": 9.0}
    pools = operators.ring_migration([["a1", "a2"], ["b1", "b2"], ["c1", "c2"]], scores, 1)
    assert pools == [["a1", "c1"], ["b1", "a1"], ["c1", "b1"]]


def test_rank_targets_ignore_the_scale_of_outliers():
    assert list(invasive.rank_targets([0.3, 1e9, 0.1])) == [0.5, 1.0, 0.0]


def test_propose_returns_the_best_predicted_candidates():
    class SumSurrogate:
        def fit(self, x, y):
            self.fitted = (np.asarray(x).shape, np.asarray(y).shape)
            return self

        def predict(self, x):
            return np.asarray(x).sum(axis=1)

    surrogate = SumSurrogate()
    candidates = [[3.0, 0.0], [0.1, 0.2], [1.0, 1.0], [0.0, 0.0]]
    order, predicted = invasive.propose(surrogate, [[0, 1], [1, 0]], [1.0, 2.0], candidates, 2)
    assert order == [3, 1] and predicted == pytest.approx([0.0, 0.3])
    assert surrogate.fitted == ((2, 2), (2,))


def test_the_mlp_surrogate_learns_a_simple_target():
    # What the invasive species rely on: fit on evaluated trials, the surrogate predicts
    # unseen ones far better than their mean does, and orders them far better than chance.
    rng = np.random.default_rng(0)
    x = rng.random((160, 3))
    y = x[:, 0] + 2 * x[:, 1] - x[:, 2]
    surrogate = invasive.MLPSurrogate(seed=0).fit(x[:96], y[:96])
    predicted = surrogate.predict(x[96:])
    error = np.mean((predicted - y[96:]) ** 2)
    assert error < 0.1 * np.var(y[96:])
    ranks = np.argsort(np.argsort(predicted)), np.argsort(np.argsort(y[96:]))
    assert np.corrcoef(*ranks)[0, 1] > 0.9


def test_the_mlp_surrogate_error_falls_as_it_trains_longer():
    rng = np.random.default_rng(1)
    x = rng.random((64, 2))
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    errors = [np.mean((invasive.MLPSurrogate(epochs=epochs, seed=0).fit(x, y).predict(x) - y)
                      ** 2) for epochs in (1, 200)]
    assert errors[1] < 0.1 * errors[0]

