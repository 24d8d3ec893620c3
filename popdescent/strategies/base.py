"""What every population strategy shares: a Keras callback that, at the end of an iteration,
measures fitness, lets the strategy evolve the population, and records the lineage."""

from __future__ import annotations

import math

import keras
import numpy as np

from popdescent.inputs.array_inputs import count_examples, take
from popdescent.population.selection import fitness_weighted_parents, inverse_loss_fitness
from popdescent.validation import check_integer, is_population


class PopulationStrategy(keras.callbacks.Callback):
    """Base class of selection/mutation strategies that run as `Population.fit` callbacks.

    Subclasses implement `evolve(population, fitness, rng) -> (replaced, parents)` and may
    override `check_population(population)`. This class handles the cadence (`every`), the
    fitness measurement on a sampled cross-validation (or training) batch, the seeded
    generator, and writes per member `fitness_i`, `parent_i`, `replaced_i` and each
    hyperparameter `<name>_i` into the epoch logs (so History keeps the lineage), and the same
    record into `population.lineage`.
    """

    def __init__(self, every=1, cross_validation=True, fitness=inverse_loss_fitness,
                 cv_batch_size=640, seed=None):
        super().__init__()
        if not isinstance(cv_batch_size, (int, np.integer)) or cv_batch_size < 1:
            raise ValueError(f"cv_batch_size must be an integer >= 1, got {cv_batch_size!r}")
        if not callable(fitness):
            raise TypeError(f"fitness must be callable (losses -> fitness), got {fitness!r}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.every = check_integer("every", every, minimum=1)
        self.cross_validation = bool(cross_validation)
        self.fitness_function = fitness
        self.cv_batch_size = int(cv_batch_size)
        self.seed = seed
        self.rng = None

    @staticmethod
    def check_noise(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"{name} must be a number >= 0, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return float(value)

    # --------------------------------------------------------------- to override
    def check_population(self, population):
        """Raises if this strategy cannot run on `population` (called before training)."""

    def evolve(self, population, fitness, rng):
        """Changes the population; returns (replaced indices, their parents)."""
        raise NotImplementedError

    # --------------------------------------------------------------- config
    @classmethod
    def from_config(cls, config):
        """A strategy built from `get_config()`. The fitness function is stored by name only:
        the default round-trips; another one must be passed again (`fitness=`)."""
        config = dict(config)
        fitness = config.pop("fitness", None)
        if fitness not in (None, inverse_loss_fitness.__qualname__):
            raise ValueError(
                f"this config was made with fitness={fitness!r}, which cannot be restored from "
                f"its name: call {cls.__name__}(**config, fitness=your_function)"
            )
        return cls(**config)

    # --------------------------------------------------------------- state for backups
    def get_state(self) -> dict:
        """What a backup must keep to continue this strategy bit for bit: the generator's
        state (JSON-serialisable). Strategies with more state extend it."""
        return {"rng": None if self.rng is None else self.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        """Restores `get_state()`'s output."""
        if state.get("rng") is not None:
            if self.rng is None:
                self.rng = np.random.default_rng()
            self.rng.bit_generator.state = state["rng"]

    # --------------------------------------------------------------- Keras hooks
    def on_train_begin(self, logs=None):
        population = self.model
        if not is_population(population):
            raise TypeError(
                f"{type(self).__name__} runs on a popdescent.Population, got "
                f"{type(population).__name__}"
            )
        self.check_population(population)
        if self.cross_validation and population.validation_data is None:
            raise ValueError(
                f"{type(self).__name__}(cross_validation=True) needs validation data: pass "
                "validation_data=(x_val, y_val) to fit, or use cross_validation=False"
            )
        if not self.cross_validation and population.training_data.x is None:
            raise ValueError(
                f"{type(self).__name__}(cross_validation=False) measures fitness on training "
                f"arrays, but x is a {population.training_data.kind}: pass validation_data "
                "and keep cross_validation=True"
            )
        if self.rng is None:
            seed = self.seed if self.seed is not None else int(population.strategy_seed)
            self.rng = np.random.default_rng(seed)
        self.start(population)
        if not population.lineage:
            population.lineage_start = {
                "gradient_steps": population.gradient_steps,
                "member_steps": population.member_step_budget,
                "members": population.hyperparameter_values(),
            }

    def start(self, population):
        """Called when training starts, after the checks, before the lineage begins."""

    def fitness_data(self, population):
        """The data fitness is measured on, (x, y) array structures: validation data (for a
        validation dataset, the pool read from its first batches), or training data when
        cross_validation is off."""
        if self.cross_validation:
            return population.validation_data
        return population.training_data.x, population.training_data.y

    def selection_batch(self, population):
        """A freshly sampled batch of `fitness_data` to measure fitness on."""
        x, y = self.fitness_data(population)
        available = count_examples(x)
        count = min(self.cv_batch_size, available)
        chosen = np.sort(self.rng.choice(available, size=count, replace=False))
        return take(x, chosen), take(y, chosen)

    def on_epoch_end(self, epoch, logs=None):
        population = self.model
        size = population.size
        replaced, parents = np.array([], dtype=int), np.array([], dtype=int)
        fitness = np.full(size, np.nan)
        if (epoch + 1) % self.every == 0:
            x, y = self.selection_batch(population)
            fitness = population.evaluate_fitness(
                x, y, fitness=self.fitness_function, batch_size=population.training_data.batch_size
            ).copy()
            if population.nonfinite.all():
                raise FloatingPointError(
                    f"every member of the population is non-finite (NaN or infinite loss, "
                    f"weights or optimizer state) after iteration {epoch}: there is nothing "
                    "left to select from. Lower the learning-rate bounds or check the data; a "
                    "BackupAndRestore callback keeps the last good iteration's backup"
                )
            replaced, parents = self.evolve(population, fitness, self.rng)
            replaced, parents = self._replace_nonfinite(population, fitness, replaced, parents)
            population.fitness = fitness.copy()
            population.fitness[np.asarray(replaced, dtype=int)] = np.nan
        self._record(population, epoch, fitness, replaced, parents, logs)

    @staticmethod
    def losses_with_diverged_as_worst(population) -> np.ndarray:
        """The members' losses on the last fitness batch, a diverged member's counted as the
        worst finite loss: a gradient estimate then weighs against what that member tried
        instead of failing the run. Raises when no member has a finite loss."""
        losses = np.asarray(population.last_losses, dtype=np.float64).copy()
        bad = ~np.isfinite(losses) | population.nonfinite
        if bad.all():
            raise FloatingPointError("every member's loss is non-finite: no estimate to form")
        losses[bad] = losses[~bad].max()
        return losses

    def _replace_nonfinite(self, population, fitness, replaced, parents):
        """A non-finite member the strategy kept (say, more diverged members than it
        replaces) is overwritten by a copy of a fitness-weighted draw, so it never survives."""
        replaced = [int(i) for i in np.asarray(replaced, dtype=int)]
        parents = [int(i) for i in np.asarray(parents, dtype=int)]
        leftover = [i for i in np.flatnonzero(population.nonfinite) if i not in replaced]
        if leftover:
            # Copy from a survivor (a member this iteration did not overwrite); when every
            # survivor is non-finite, from the fresh copies the strategy just made.
            weights = np.asarray(fitness, dtype=np.float64).copy()
            weights[replaced] = 0.0
            if not weights.sum() > 0:
                weights = np.zeros(population.size)
                weights[replaced] = 1.0
            draws = fitness_weighted_parents(weights, len(leftover), self.rng)
            for slot, parent in zip(leftover, draws):
                population.copy_member(int(parent), int(slot))
            replaced += [int(i) for i in leftover]
            parents += [int(i) for i in draws]
        return np.array(replaced, dtype=int), np.array(parents, dtype=int)

    def _record(self, population, epoch, fitness, replaced, parents, logs):
        parent_of = np.arange(population.size)
        parent_of[np.asarray(replaced, dtype=int)] = np.asarray(parents, dtype=int)
        replaced_mask = np.zeros(population.size, dtype=bool)
        replaced_mask[np.asarray(replaced, dtype=int)] = True
        members = []
        for index in range(population.size):
            members.append({
                "fitness": float(fitness[index]),
                "parent": int(parent_of[index]),
                "replaced": bool(replaced_mask[index]),
                "hyperparameters": population.hyperparameters_of(index),
            })
        record = {
            "epoch": int(epoch),
            "gradient_steps": population.gradient_steps,
            "members": members,
        }
        population.lineage.append(record)
        if logs is None:
            return
        for index, member in enumerate(members):
            logs[f"fitness_{index}"] = member["fitness"]
            logs[f"parent_{index}"] = member["parent"]
            logs[f"replaced_{index}"] = int(member["replaced"])
            for name, value in member["hyperparameters"].items():
                logs[f"{name}_{index}"] = value
        if np.isfinite(fitness).any():
            logs["best_fitness"] = float(np.nanmax(fitness))
            logs["best_member"] = int(np.nanargmax(fitness))
