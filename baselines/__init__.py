"""The paper's baselines and PBT, each a `run(context) -> MethodResult` for the experiments
harness (`python -m experiments.benchmark --method grid|random|esgd|pbt`).

- `grid_search`: one model per learning rate (x L2 rate with regularization), trained together
  as one `Population` with fixed hyperparameters; the best on validation is returned.
- `random_search`: the real `keras_tuner.RandomSearch`, then the best configuration retrained
  with early stopping.
- `esgd`: ESGD (Cui et al., 2018) as a strategy callback over a `Population`, with back-off.
- `pbt`: Population Based Training (`popdescent.strategies.PBT`) over a `Population`.

ESGD, PBT, grid search and PopDescent share one training loop, the population's train step;
they differ only in their callback. This package is not installed with `popdescent` (a
different package called `baselines` exists on PyPI): run it from the repository root.
"""
