"""popdescent on Ray Tune, for populations beyond one process (`pip install "popdescent[ray]"`).
May import every room below it (population/, strategies/, callbacks/...), never popdescent.tuners.

- `PopDescentScheduler`: PopDescent's selection and mutation over Ray Tune trials, one
  model per trial.
- `keras_trainable(build, data)`: the trial that trains one compiled Keras model for it.
- `island_trainable` and `IslandMigration`: each trial a whole fused `Population` with
  `PopDescent` inside; the fittest members migrate between islands.
- `cpu_worker_env()`: the workers' environment for trials sharing a few CPU cores.
"""

try:
    import ray  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'popdescent.ray needs Ray Tune: pip install "popdescent[ray]" (or "ray[tune]")'
    ) from error

from popdescent.ray.islands import IslandMigration, island_trainable
from popdescent.ray.scheduler import PopDescentScheduler
from popdescent.ray.trainable import keras_trainable
from popdescent.ray.worker_env import cpu_worker_env

__all__ = [
    "PopDescentScheduler", "keras_trainable", "IslandMigration", "island_trainable", "cpu_worker_env",
]
