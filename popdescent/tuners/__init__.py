"""Searches over whole trainings (architecture and static hyperparameters) as KerasTuner tuners."""

from popdescent.tuners.genetic_oracle import GeneticOracle
from popdescent.tuners.genetic_search import GeneticSearch
from popdescent.tuners.invasive import MLPSurrogate
from popdescent.tuners.operators import ACTIVATION_TREE

__all__ = ["ACTIVATION_TREE", "GeneticOracle", "GeneticSearch", "MLPSurrogate"]
