"""Pure, seeded genetic operators on plain values and arrays.

Every function takes its `numpy.random.Generator` as an argument and keeps no state, so the
oracle's plan for a generation is a function of the seed and the scores alone, and these
operators are tested on plain arrays. Scores are always "lower is better": the oracle flips
the sign of objectives to maximise and maps missing or non-finite scores to `+inf`.

Tree-distance categorical mutation follows Pintus (2024, seed 004): the distance between two
leaves of a hierarchy is `d_b = log_b(hops)` and a mutation draws the new leaf with
probability proportional to `2 ** -d_b`, excluding the current one.
"""

import math

import numpy as np

# Seed 004 mutates the activation over a hand-made hierarchy of activation functions (its figure
# is not in the text we have); this is our hierarchy over six Keras activations. Siblings are
# 2 hops apart, `relu`-`elu` 4 hops, rectifiers to saturating functions 5 hops.
ACTIVATION_TREE = {
    "rectifier": {
        "piecewise_linear": ["relu", "leaky_relu"],
        "smooth": ["elu", "gelu"],
    },
    "saturating": ["tanh", "sigmoid"],
}


def tournament(scores, size, rng, exclude=()):
    """Index of the best of `size` distinct members drawn uniformly without replacement.

    Args:
        scores: 1-D array, lower is better; `+inf` for failed members.
        size: tournament size `tau`, in `[1, number of eligible members]`.
        rng: `numpy.random.Generator`.
        exclude: indices that may not take part (e.g. the first parent).

    Returns:
        The index (into `scores`) of the winner; ties go to the first drawn.
    """
    scores = np.asarray(scores, dtype=float)
    eligible = np.array([i for i in range(len(scores)) if i not in set(exclude)])
    if not 1 <= size <= len(eligible):
        raise ValueError(
            f"tournament size must be in [1, {len(eligible)}] (eligible members), got {size}"
        )
    entrants = rng.choice(eligible, size=size, replace=False)
    return int(entrants[np.argmin(scores[entrants])])


def two_point_crossover(parent_a, parent_b, rng):
    """Child `a[:i] + b[i:j] + a[j:]` with two cut points `1 <= i < j <= n`.

    With `j == n` the child is a one-point crossover; with one gene the child is a copy of
    `parent_a`. Returns `(child, (i, j))` so that callers can record where the cuts fell.
    """
    if len(parent_a) != len(parent_b):
        raise ValueError(
            f"parents must have the same number of genes, got {len(parent_a)} and "
            f"{len(parent_b)}"
        )
    n = len(parent_a)
    if n < 2:
        return list(parent_a), (n, n)
    i, j = sorted(int(c) for c in rng.choice(np.arange(1, n + 1), size=2, replace=False))
    child = list(parent_a[:i]) + list(parent_b[i:j]) + list(parent_a[j:])
    return child, (i, j)


def mutate_integer(value, low, high, width, rng):
    """`value` plus a uniform integer step in `[-width, width]`, clipped to `[low, high]`."""
    if width < 1:
        raise ValueError(f"integer mutation width must be >= 1, got {width}")
    step = int(rng.integers(-width, width + 1))
    return int(min(high, max(low, int(value) + step)))


def mutate_float(value, low, high, scale, rng):
    """`value + N(0, scale * (high - low))`, clipped to `[low, high]`."""
    if scale <= 0:
        raise ValueError(f"float mutation scale must be > 0, got {scale}")
    moved = float(value) + rng.normal(0.0, scale * (high - low))
    return float(min(high, max(low, moved)))


def mutate_categorical(value, choices, rng, probabilities=None):
    """A choice other than `value`: uniform, or drawn from `probabilities[value]`.

    Args:
        value: the current choice.
        choices: the allowed values (at least two).
        rng: `numpy.random.Generator`.
        probabilities: optional mapping `choice -> {other choice: probability}` (the rows of
            `tree_distance_probabilities`); uniform over the other choices when `None`.
    """
    others = [c for c in choices if c != value]
    if not others:
        return value
    if probabilities is None:
        return others[int(rng.integers(len(others)))]
    row = probabilities[value]
    weights = np.array([row[c] for c in others], dtype=float)
    return others[int(rng.choice(len(others), p=weights / weights.sum()))]


def tree_leaves(tree):
    """`{leaf: path}` for a nested dict/list tree; a path lists the edges from the root.

    Dict keys and list positions name the edges; anything that is not a dict or a list is a
    leaf. Raises `ValueError` on a repeated leaf or an empty subtree.
    """
    leaves = {}

    def walk(node, path):
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, (list, tuple)):
            items = list(enumerate(node))
        else:
            if node in leaves:
                raise ValueError(f"tree leaves must be unique, {node!r} appears twice")
            leaves[node] = path
            return
        if not items:
            raise ValueError(f"tree has an empty subtree at {list(path)}")
        for edge, child in items:
            walk(child, path + (edge,))

    walk(tree, ())
    return leaves


def tree_hops(path_a, path_b):
    """Number of edges between two leaves given their root paths."""
    common = 0
    for edge_a, edge_b in zip(path_a, path_b):
        if edge_a != edge_b:
            break
        common += 1
    return len(path_a) + len(path_b) - 2 * common


def check_tree_base(base):
    """Raises `ValueError` unless `base` is a finite number > 1 (`log_b` needs `b > 1`)."""
    if isinstance(base, bool) or not isinstance(base, (int, float)):
        raise ValueError(f"tree base b must be a number > 1, got {base!r}")
    if not (math.isfinite(base) and base > 1):
        raise ValueError(f"tree base b must be a finite number > 1, got {base!r}")


def tree_distance_probabilities(tree, base):
    """Mutation probabilities between the leaves of `tree` (seed 004).

    `p_b(l1, l2) ∝ 2 ** -log_b(hops(l1, l2))` over `l2 != l1`; a larger base `b` flattens the
    distribution (more exploration), a base near 1 concentrates it on the nearest leaves.

    Returns:
        `{leaf: {other leaf: probability}}`, each row summing to one.
    """
    check_tree_base(base)
    leaves = tree_leaves(tree)
    if len(leaves) < 2:
        raise ValueError(f"a mutation tree needs at least 2 leaves, got {list(leaves)}")
    # 2 ** -log_b(h) == h ** -(ln 2 / ln b).
    exponent = math.log(2.0) / math.log(base)
    table = {}
    for leaf, path in leaves.items():
        weights = {
            other: tree_hops(path, other_path) ** -exponent
            for other, other_path in leaves.items()
            if other != leaf
        }
        total = sum(weights.values())
        table[leaf] = {other: w / total for other, w in weights.items()}
    return table


def next_pool(parents, children, scores, size, elites):
    """Generational replacement with elitism.

    The `elites` best of parents and children survive, then the best children fill the pool
    up to `size`; if too few children were evaluated, the best remaining parents fill it.

    Args:
        parents, children: lists of member identifiers.
        scores: mapping identifier -> score (lower is better).
        size: pool size.
        elites: number of best members kept whatever their generation.
    """
    by_score = lambda ids: sorted(ids, key=lambda m: scores[m])  # noqa: E731 (stable sort)
    pool = by_score(list(parents) + list(children))[:elites]
    for member in by_score(children) + by_score(parents):
        if len(pool) >= size:
            break
        if member not in pool:
            pool.append(member)
    return pool


def ring_migration(pools, scores, migrants):
    """Island `i` receives copies of the `migrants` best of island `i - 1` in place of its worst.

    Decided on a snapshot of all pools first, so the order of islands does not matter. A
    migrant already present in the receiving pool is not duplicated.
    """
    if len(pools) < 2 or migrants == 0:
        return [list(pool) for pool in pools]
    best = [sorted(pool, key=lambda m: scores[m])[:migrants] for pool in pools]
    migrated = []
    for index, pool in enumerate(pools):
        arriving = [m for m in best[index - 1] if m not in pool]
        kept = sorted(pool, key=lambda m: scores[m])[: len(pool) - len(arriving)]
        migrated.append(kept + arriving)
    return migrated
