"""Searches over whole trainings (architecture and static hyperparameters) as KerasTuner tuners.
May import any room below it (today it needs none), never popdescent.ray."""

from popdescent.tuners.genetic_oracle import GeneticOracle
from popdescent.tuners.genetic_search import GeneticSearch
from popdescent.tuners.invasive import MLPSurrogate
from popdescent.tuners.operators import ACTIVATION_TREE

__all__ = ["ACTIVATION_TREE", "GeneticOracle", "GeneticSearch", "MLPSurrogate"]
