"""Gene vectors of a KerasTuner search space, and mutation of one gene by hyperparameter type.

A gene is one non-`Fixed` entry of `HyperParameters.space`, in space order; an entry that is
inactive in a trial (conditional scope) carries its default. Numbers move through
KerasTuner's own `[0, 1]` embedding (`value_to_prob` / `prob_to_value`) where that keeps
their sampling (log, reverse log, step grid), so every result is a value the space allows.
"""

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module

from popdescent.tuners import operators

CATEGORICAL = (hp_module.Choice, hp_module.Boolean)


def native(value):
    """Python scalars only: values travel through JSON and KerasTuner's protos."""
    return value.item() if isinstance(value, np.generic) else value


def gene_space(space):
    return [hp for hp in space if not isinstance(hp, hp_module.Fixed)]


def genes_of(space, values):
    """Gene vector of a values dict: the value where active, the default elsewhere."""
    return [
        values[hp.name]
        if hp.name in values and all(c.is_active(values) for c in hp.conditions)
        else hp.default
        for hp in gene_space(space)
    ]


def to_values(space, genes):
    """Active values of a gene vector (conditional scopes resolved in space order)."""
    by_entry = dict(zip(map(id, gene_space(space)), genes))
    hps = hp_module.HyperParameters()
    for hp in space:
        hps.merge([hp])
        if hps.is_active(hp):
            fixed = isinstance(hp, hp_module.Fixed)
            hps.values[hp.name] = hp.value if fixed else by_entry[id(hp)]
    return dict(hps.values)


def sample_genes(space, rng):
    """Uniform draw in KerasTuner's embedding: the distribution `RandomSearch` samples from."""
    return [native(hp.prob_to_value(rng.random())) for hp in gene_space(space)]


def encode(space, genes):
    """Surrogate features: one-hot categorical genes, `[0, 1]` embedding of numbers."""
    features = []
    for hp, value in zip(gene_space(space), genes):
        if isinstance(hp, CATEGORICAL):
            features.extend(float(value == choice) for choice in hp.values)
        else:
            features.append(hp.value_to_prob(value))
    return features


def mutate_gene(hp, value, rng, width=None, float_scale=0.15, probabilities=None):
    """One mutation of `value` of hyperparameter `hp`, always inside its bounds and grid.

    Args:
        hp: the `hp.Int` / `hp.Float` / `hp.Choice` / `hp.Boolean`.
        value: its current value.
        rng: `numpy.random.Generator`.
        width: `hp.Int`: steps in `[-width, width]` value units (grid positions for log
            grids), default `max(1, range / 8)`; `hp.Float`: standard deviation as a fraction
            of the range, default `float_scale`.
        float_scale: default float standard deviation as a fraction of the range.
        probabilities: tree-distance table for a categorical gene; uniform when `None`.
    """
    if isinstance(hp, CATEGORICAL):
        return native(operators.mutate_categorical(value, list(hp.values), rng, probabilities))
    if isinstance(hp, hp_module.Float):
        scale = width or float_scale
        position = operators.mutate_float(hp.value_to_prob(value), 0.0, 1.0, scale, rng)
        return float(hp.prob_to_value(position))
    span = hp.max_value - hp.min_value
    if hp.step is None:  # Log-sampled int without a grid: move in value units.
        width = int(width or max(1, round(span / 8)))
        return operators.mutate_integer(value, hp.min_value, hp.max_value, width, rng)
    if hp.sampling == "linear":
        positions = max(1, round((width or max(1, round(span / 8))) / hp.step))
        count = span // hp.step + 1
        index = min(count - 1, max(0, round((value - hp.min_value) / hp.step)))
        moved = operators.mutate_integer(index, 0, count - 1, positions, rng)
        return int(hp.min_value + moved * hp.step)
    grid = sorted({int(round(v)) for v in hp.values})  # Log grid: width counts positions.
    index = int(np.argmin([abs(v - value) for v in grid]))
    positions = int(width or max(1, round(len(grid) / 8)))
    return grid[operators.mutate_integer(index, 0, len(grid) - 1, positions, rng)]


def check_trees_and_widths(space, trees, widths):
    """Raises `ValueError` if a tree or a width does not fit the hyperparameter it names."""
    names = sorted({hp.name for hp in space})
    for name, tree in trees.items():
        entries = [hp for hp in space if hp.name == name]
        if not entries:
            raise ValueError(
                f"categorical_trees names {name!r}, which is not in the search space {names}"
            )
        leaves = list(operators.tree_leaves(tree))
        for hp in entries:
            if not isinstance(hp, CATEGORICAL):
                raise ValueError(
                    f"categorical_trees[{name!r}] needs an hp.Choice or hp.Boolean, "
                    f"got {type(hp).__name__}"
                )
            choices = list(hp.values)
            unknown = [leaf for leaf in leaves if leaf not in choices]
            if unknown:
                raise ValueError(
                    f"categorical_trees[{name!r}] names unknown choices {unknown}; "
                    f"the choices of {name!r} are {choices}"
                )
            missing = [choice for choice in choices if choice not in leaves]
            if missing:
                raise ValueError(
                    f"categorical_trees[{name!r}] misses choices {missing}; every choice "
                    f"of {name!r} must be a leaf"
                )
    for name, width in widths.items():
        entries = [hp for hp in space if hp.name == name]
        numeric = (hp_module.Int, hp_module.Float)
        if not entries or not all(isinstance(hp, numeric) for hp in entries):
            raise ValueError(
                f"mutation_widths names {name!r}, which is not an hp.Int or hp.Float of "
                f"the search space {names}"
            )
        if not width > 0:
            raise ValueError(f"mutation_widths[{name!r}] must be > 0, got {width!r}")
