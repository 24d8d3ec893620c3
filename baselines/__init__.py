"""The paper's baseline algorithms, written against the `popdescent` library and KerasTuner
only (never the experiments harness):

- `grid_search`: the paper's grid (learning rates, L2 rates, steps per model) as fixed
  `Choice` hyperparameters of one `Population`, and the callback that scores it.
- `random_search`: `keras_tuner.RandomSearch` scored on validation loss, a hypermodel that
  records every execution, the retraining's curve and an endless training stream.
- `esgd`: ESGD (Cui et al., 2018) as a strategy callback over a `Population`, with back-off,
  and the settings of the ESGD code the paper ran (`paper_esgd`).
- `pbt`: the settings the benchmark runs `popdescent.strategies.PBT` with.

The benchmark's methods that run them on the paper's models and budgets are
`experiments.methods`. ESGD, PBT, grid search and PopDescent share one training loop, the
population's train step; they differ only in their callback. This package is not installed
with `popdescent` (a different package called `baselines` exists on PyPI): run it from the
repository root.
"""
