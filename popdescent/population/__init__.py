"""The Population model and its parts: fused step, members and their operations, fitness, live
hyperparameters, optimizer, resizing, budget, finished members. May import inputs/, returned/,
hyperparameters, validation; never strategies/ (one exception: tests/test_architecture.py)."""
