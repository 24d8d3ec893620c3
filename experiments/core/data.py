"""The data a run trains and is evaluated on, by (dataset, scale)."""

from __future__ import annotations

import dataclasses

from experiments.core.contract import DATASETS, SCALES
from experiments.core.validation import check_choice

__all__ = ["SMOKE_DATA", "load_splits"]

# Data kept at smoke scale: (training subset, first validation images, first test images).
SMOKE_DATA = {"train": 512, "validation": 256, "test": 256}


def load_splits(dataset: str, scale: str, data_dir=None):
    """The `DatasetSplits` a run at `scale` trains and is evaluated on.

    The full data at `small` and `paper` scale; at `smoke` scale a seeded 512-image training
    subset (seed 0, the same for every method and seed) and the first 256 images of the
    validation and test halves.
    """
    from popdescent.inputs.datasets import load_dataset

    check_choice("dataset", dataset, DATASETS)
    check_choice("scale", scale, SCALES)
    if scale != "smoke":
        return load_dataset(dataset, data_dir=data_dir)
    splits = load_dataset(dataset, data_dir=data_dir, train_subset=SMOKE_DATA["train"], seed=0)
    validation, test = SMOKE_DATA["validation"], SMOKE_DATA["test"]
    return dataclasses.replace(
        splits,
        x_val=splits.x_val[:validation], y_val=splits.y_val[:validation],
        x_test=splits.x_test[:test], y_test=splits.y_test[:test],
    )
