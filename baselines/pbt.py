"""PBT's settings as the benchmark runs it: `popdescent.strategies.PBT` every `interval`
iterations (default 1: PopDescent's cadence), the bottom 25 % copying a random top-25 % member
and exploring its hyperparameters (x1.2 / x0.8, or a redraw with probability 0.25). The
benchmark's `pbt` method is `experiments.methods.pbt`.
"""

from __future__ import annotations

from popdescent.strategies import PBT

__all__ = ["DEFAULT_INTERVAL", "paper_pbt"]

DEFAULT_INTERVAL = 1


def paper_pbt(interval=DEFAULT_INTERVAL, cv_batch_size=640) -> PBT:
    """The PBT callback the benchmark runs, selecting every `interval` iterations on a fresh
    `cv_batch_size`-image validation batch (`PBT` validates both)."""
    return PBT(interval=interval, cv_batch_size=cv_batch_size)
