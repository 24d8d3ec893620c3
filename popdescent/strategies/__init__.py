"""Strategies: tuning algorithms that run as Keras callbacks over a Population, one a file.
May import population/'s helpers, returned/, inputs/ and below; never callbacks/, tuners/, ray/."""

from popdescent.strategies.base import PopulationStrategy
from popdescent.strategies.bernoulli_policy import BernoulliPolicy
from popdescent.strategies.es import EvolutionStrategies
from popdescent.strategies.pbt import PBT, ExploitPlan, explore, plan_exploit
from popdescent.strategies.popdescent import PopDescent
from popdescent.strategies.replacement import ReplacementPlan, plan_replacement

__all__ = [
    "PopulationStrategy",
    "PopDescent",
    "ReplacementPlan",
    "plan_replacement",
    "PBT",
    "ExploitPlan",
    "plan_exploit",
    "explore",
    "EvolutionStrategies",
    "BernoulliPolicy",
]
