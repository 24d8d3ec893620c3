"""Installs the `popdescent` library.

`baselines/` and `experiments/` are the paper's repository layout and are run from a clone
(`python -m experiments.benchmark ...`); they are deliberately not installed, because a
package called `baselines` already exists on PyPI.
"""

from setuptools import find_packages, setup

setup(
    name="popdescent",
    version="0.1.0",
    description=(
        "Population Descent: population-based, online hyperparameter tuning for Keras 3 models"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["popdescent", "popdescent.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "keras-tuner>=1.4",
        # keras-tuner imports tensorboard at run time but does not declare it.
        "tensorboard",
        "numpy",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout", "pytest-xdist", "scikit-learn"],
        # popdescent.ray: PopDescent as a Ray Tune scheduler, and islands of populations.
        "ray": ["ray[tune]>=2.9"],
        # The benchmark's `optuna` method: Optuna's TPE sampler with Hyperband pruning,
        # pruning through optuna-integration's Keras callback.
        "optuna": ["optuna>=4", "optuna-integration>=4"],
        # The documentation site: mkdocs serve / mkdocs build --strict.
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"],
    },
)
