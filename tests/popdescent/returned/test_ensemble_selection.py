"""Greedy ensemble selection (Caruana et al., 2004) and the greedy soup (Wortsman et al.,
2022) on plain arrays: what they choose and why."""

import numpy as np
import pytest

from popdescent.returned.ensemble import greedy_selection
from popdescent.returned.soup import average_weights, greedy_soup


def cross_entropy(labels):
    def loss(probabilities):
        return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))
    return loss


def random_classifiers(rng, count, examples=200, classes=4):
    labels = rng.integers(0, classes, examples)
    outputs = []
    for _ in range(count):
        logits = rng.normal(size=(examples, classes))
        logits[np.arange(examples), labels] += rng.uniform(0.5, 2.0)
        p = np.exp(logits)
        outputs.append(p / p.sum(1, keepdims=True))
    return outputs, labels


@pytest.mark.parametrize("seed", range(5))
def test_the_selection_is_never_worse_than_the_best_candidate(seed):
    outputs, labels = random_classifiers(np.random.default_rng(seed), 6)
    loss = cross_entropy(labels)
    counts = greedy_selection(outputs, loss, size=10)
    mixture = sum(c * o for c, o in zip(counts, outputs)) / counts.sum()
    assert loss(mixture) <= min(loss(o) for o in outputs) + 1e-12
    assert 1 <= counts.sum() <= 10


def test_the_best_candidate_is_picked_first_and_a_duplicate_only_by_repetition():
    outputs, labels = random_classifiers(np.random.default_rng(0), 3)
    loss = cross_entropy(labels)
    assert np.argmax(greedy_selection(outputs, loss, size=1)) == int(
        np.argmin([loss(o) for o in outputs]))
    # one strong candidate and a useless one: the useless one never enters
    useless = np.full_like(outputs[0], 0.25)
    counts = greedy_selection([outputs[0], useless], loss, size=5)
    assert counts[1] == 0 and counts[0] >= 1


def test_a_non_finite_candidate_is_never_chosen():
    outputs, labels = random_classifiers(np.random.default_rng(1), 2)
    broken = np.full_like(outputs[0], np.nan)
    counts = greedy_selection([broken, *outputs], cross_entropy(labels), size=4)
    assert counts[0] == 0
    with pytest.raises(ValueError, match="non-finite"):
        greedy_selection([broken], cross_entropy(labels), size=2)


def test_a_soup_member_is_kept_only_when_the_average_improves():
    """Weights are points; the loss is the distance to a target: averaging the two that lie
    on either side of it helps, adding the one far away would not."""
    target = np.array([0.0, 0.0])
    candidates = [[np.array([1.0, 0.0])], [np.array([-1.2, 0.0])], [np.array([5.0, 5.0])]]

    def evaluate(weights):
        return float(np.linalg.norm(weights[0] - target))

    losses = [evaluate(c) for c in candidates]
    chosen = greedy_soup(candidates, losses, evaluate)
    assert chosen == [0, 1]
    assert evaluate(average_weights(candidates, chosen)) < min(losses)


def test_a_soup_of_one_is_the_best_candidate():
    candidates = [[np.array([2.0])], [np.array([1.0])]]
    chosen = greedy_soup(candidates, [2.0, 1.0], lambda w: float(abs(w[0][0])))
    assert chosen == [1]  # averaging with the worse one would not lower the loss
