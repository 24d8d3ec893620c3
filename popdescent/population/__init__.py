"""The Population model and what it is made of: the fused step, members and what may be done to
them, fitness and selection, live hyperparameters, the optimizer façade, resizing, the member-step
budget, finished members, the returned-model surface.

Imports inputs/, returned/, hyperparameters and validation; never strategies/ (one exception,
named in tests/test_architecture.py: `Population.fit` orders its callbacks with callbacks/backup).
"""
