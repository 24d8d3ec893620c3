"""ESGD: evolutionary stochastic gradient descent (Cui, Zhang, Kingsbury & Zhang, 2018) as a
strategy callback over the same `Population` PopDescent and PBT use, with the settings of the
ESGD code the paper ran (`paper_esgd`). The benchmark's `esgd` method is
`experiments.methods.esgd`.

One generation is one epoch of `Population.fit`: every member first takes its local optimizer
steps (the population's train step, the only training loop), then this callback makes
offspring by recombination and mutation, evaluates them on the cross-validation batch the
parents were scored on, and keeps the population size by (mu + lambda) m-elitist selection,
with the back-off of the ESGD paper: the best fitness never gets worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from popdescent.population.selection import inverse_loss_fitness, rank_by_fitness, sanitize_fitness
from popdescent.strategies.base import PopulationStrategy

__all__ = [
    "ESGD", "OffspringPlan", "plan_offspring", "select_survivors", "back_off", "assign_slots",
    "mean_weights", "paper_esgd", "OPTIMIZERS", "PAPER_SGD", "MUTATION_LENGTH", "FIXED_L2",
]


@dataclass(frozen=True)
class OffspringPlan:
    """How one generation's offspring are made, before anything is applied.

    Attributes:
        parents: (offspring, mixing_number) member indices; each row's mean is one child.
        seeds: one seed per child for its Gaussian weight mutation.
        stddev: the mutation's standard deviation, mutation_length / generation.
    """

    parents: np.ndarray
    seeds: np.ndarray
    stddev: float


def plan_offspring(fitness, offspring: int, mixing_number: int, generation: int,
                   mutation_length: float, rng: np.random.Generator) -> OffspringPlan:
    """Draws each child's `mixing_number` parents uniformly, without replacement, from the
    members with positive fitness (a diverged member is never a parent); std decays as 1/g."""
    eligible = np.flatnonzero(sanitize_fitness(fitness) > 0)
    if len(eligible) == 0:
        raise FloatingPointError(
            "every member of the population has fitness 0 (non-finite or infinite loss): "
            "no parent is left for ESGD's offspring; lower the learning rate or check the data"
        )
    replace = len(eligible) < mixing_number
    parents = np.stack([
        rng.choice(eligible, size=mixing_number, replace=replace) for _ in range(offspring)
    ]) if offspring else np.zeros((0, mixing_number), dtype=int)
    seeds = rng.integers(0, 2**31 - 1, size=offspring)
    return OffspringPlan(parents, seeds, float(mutation_length) / generation)


def select_survivors(fitness, size: int, elites: int, rng: np.random.Generator) -> np.ndarray:
    """(mu + lambda) m-elitist selection on plain arrays: indices of `size` distinct survivors.

    The `elites` fittest candidates survive; the other `size - elites` are drawn uniformly
    without replacement from the rest, preferring candidates with positive fitness (diverged
    ones are taken only when nothing else is left). Returned fittest first.
    """
    fitness = sanitize_fitness(fitness)
    if not 1 <= elites <= size <= len(fitness):
        raise ValueError(
            f"need 1 <= elites <= size <= candidates, got elites={elites}, size={size}, "
            f"candidates={len(fitness)}"
        )
    ranking = rank_by_fitness(fitness)
    kept, rest = ranking[:elites], ranking[elites:]
    alive = rest[fitness[rest] > 0]
    drawn = rng.choice(alive, size=min(size - elites, len(alive)), replace=False)
    dead = rest[fitness[rest] <= 0][: size - elites - len(drawn)]
    survivors = np.concatenate([kept, drawn, dead]).astype(int)
    return survivors[np.argsort(-fitness[survivors], kind="stable")]


def back_off(survivors, fitness, previous_best) -> np.ndarray:
    """The ESGD paper's guarantee that the best fitness never degrades, on plain arrays.

    `previous_best` is the candidate index of last generation's best member, measured on the
    same batch as `fitness`; if it is fitter than every survivor it replaces the weakest one.
    """
    survivors = np.asarray(survivors, dtype=int).copy()
    fitness = sanitize_fitness(fitness)
    if previous_best is None or fitness[previous_best] <= fitness[survivors].max():
        return survivors
    survivors[int(np.argmin(fitness[survivors]))] = previous_best
    return survivors[np.argsort(-fitness[survivors], kind="stable")]


def assign_slots(survivors, size: int) -> np.ndarray:
    """Which candidate each population slot holds next: a surviving member keeps its slot
    (candidates 0..size-1 are the current members); newcomers fill the freed slots in order."""
    survivors = [int(s) for s in survivors]
    slots = np.full(size, -1, dtype=int)
    for member in survivors:
        if member < size:
            slots[member] = member
    newcomers = iter(s for s in survivors if s >= size)
    for slot in np.flatnonzero(slots < 0):
        slots[slot] = next(newcomers)
    return slots


def mean_weights(weight_lists):
    """The element-wise mean of several models' weight lists (intermediate recombination)."""
    return [tf.add_n(list(tensors)) / len(tensors) for tensors in zip(*weight_lists)]


class ESGD(PopulationStrategy):
    """ESGD (Cui et al., 2018) as a Keras callback over a `Population`.

    Each epoch of `Population.fit` is one generation: the members first train with their
    own optimizer (the population's train step), then at the end of the epoch this callback
    measures their fitness on a sampled cross-validation batch and
      1. makes `reproductive_factor * size` offspring, each the mean of `mixing_number`
         distinct parents plus per-weight Gaussian noise of std `mutation_length / g` in
         generation g (1, 2, ...); a child inherits its first parent's optimizer state and
         hyperparameters;
      2. evaluates the offspring on the same batch (forward passes, no gradient steps);
      3. keeps `size` of the parents and offspring by m-elitist selection: the `elites`
         fittest, and the rest drawn uniformly without replacement;
      4. backs off: if last generation's best member (re-measured on this batch) is fitter
         than every survivor, it replaces the weakest survivor, so the best fitness never
         gets worse (the esgd-ws code the paper ran lacks this step).
    The lineage records, per slot, the fitness of the member now in it; `parent_i` is a
    child's first parent, or the slot the backed-off member was copied from.

    Args:
        reproductive_factor: offspring per member per generation (lambda = factor * mu).
            Default 4 (the paper's run: mu 5, lambda 20).
        mixing_number: rho, parents averaged per child, in [1, size]. Default 3.
        elites: m of m-elitist selection, in [1, size]. Default 3.
        mutation_length: sigma0, std of the weight mutation in generation 1. Default 0.01
            (the ESGD code's CIFAR-10 setting; it used 0.001 on Fashion-MNIST).
        backoff: keep the best fitness from ever getting worse. Default True.
        cross_validation: select on validation data; False selects on training data.
        fitness: maps an array of member losses to fitness; default 2 / (2 + loss).
        cv_batch_size: size of the sampled cross-validation batch. Default 640.
        seed: seed of this strategy's draws; default derived from the population's seed.

    Example:
        >>> pop = Population(model, size=5, hyperparameters={"learning_rate": Fixed(1e-3)})
        >>> pop.fit(x, y, batch_size=64, epochs=10, steps_per_epoch=128,
        ...         validation_data=(x_val, y_val), callbacks=[ESGD()])
    """

    def __init__(self, reproductive_factor=4, mixing_number=3, elites=3, mutation_length=0.01,
                 backoff=True, cross_validation=True, fitness=inverse_loss_fitness,
                 cv_batch_size=640, seed=None):
        super().__init__(every=1, cross_validation=cross_validation, fitness=fitness,
                         cv_batch_size=cv_batch_size, seed=seed)
        for name, value in (("reproductive_factor", reproductive_factor),
                            ("mixing_number", mixing_number), ("elites", elites)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.reproductive_factor = int(reproductive_factor)
        self.mixing_number = int(mixing_number)
        self.elites = int(elites)
        self.mutation_length = self.check_noise("mutation_length", mutation_length)
        self.backoff = bool(backoff)
        self.generation = 0
        self.last_plan = None
        self._batch = None
        self._previous_best = None  # (member_state snapshot, slot it was in)
        self._survivor_fitness = None
        self._restored_best_slot = None

    def check_population(self, population):
        for name, value in (("elites", self.elites), ("mixing_number", self.mixing_number)):
            if value > population.size:
                raise ValueError(
                    f"{name} must be in [1, size] = [1, {population.size}], got {value}"
                )

    def selection_batch(self, population):
        # Offspring are scored on the very batch their parents were scored on.
        self._batch = super().selection_batch(population)
        return self._batch

    def evolve(self, population, fitness, rng):
        size = population.size
        self.generation += 1
        plan = plan_offspring(fitness, self.reproductive_factor * size, self.mixing_number,
                              self.generation, self.mutation_length, rng)
        states = [population.member_state(i) for i in range(size)]
        weights = [[tf.identity(v.value) for v in population.member(i).trainable_variables]
                   for i in range(size)]
        frozen = [[tf.identity(v.value) for v in population.member(i).non_trainable_weights]
                  for i in range(size)]
        loaders = [self._offspring_loader(states, weights, frozen, plan, k)
                   for k in range(len(plan.parents))]
        previous_best = None
        if self.backoff and self._previous_best is not None:
            previous_best = size + len(loaders)
            loaders.append(lambda slot, evaluating=False:
                           population.load_member_state(slot, self._previous_best[0]))
        parents_nonfinite = population.nonfinite.copy()
        offspring_fitness, offspring_nonfinite = self._evaluate(population, loaders)
        candidate_fitness = np.concatenate([sanitize_fitness(fitness), offspring_fitness])
        candidate_nonfinite = np.concatenate([parents_nonfinite, offspring_nonfinite])
        survivors = select_survivors(candidate_fitness[: size + len(plan.parents)], size,
                                     self.elites, rng)
        survivors = back_off(survivors, candidate_fitness, previous_best)
        slots = assign_slots(survivors, size)
        for slot, candidate in enumerate(slots):
            if candidate < size:
                population.load_member_state(slot, states[candidate])
            else:
                loaders[candidate - size](slot)
        replaced = np.flatnonzero(slots != np.arange(size))
        parents = np.array([self._lineage_parent(c, size, plan) for c in slots[replaced]],
                           dtype=int)
        fitness[:] = candidate_fitness[slots]
        # Slots now hold other members: the base class's guard against non-finite survivors
        # must see the new occupants' flags, not the ones measured before selection.
        population.nonfinite = candidate_nonfinite[slots]
        self._survivor_fitness = fitness.copy()
        best_slot = int(np.argmax(fitness))
        self._previous_best = (population.member_state(best_slot), best_slot)
        self.last_plan = {"offspring": plan, "survivors": survivors, "slots": slots,
                          "candidate_fitness": candidate_fitness,
                          "backed_off": previous_best is not None and previous_best in slots}
        return replaced, parents

    def _offspring_loader(self, states, weights, frozen, plan, child):
        """A function that writes child `child` into a population slot: its weights only
        while evaluating, its first parent's optimizer state and hyperparameters too when
        it joins the population."""
        first_parent = int(plan.parents[child][0])
        seed = int(plan.seeds[child])

        def load(slot, evaluating=False):
            population = self.model
            if evaluating:
                for variable, value in zip(population.member(slot).non_trainable_weights,
                                           frozen[first_parent], strict=True):
                    variable.assign(value)
            else:
                population.load_member_state(slot, states[first_parent])
            population.set_member_weights(
                slot, mean_weights([weights[int(p)] for p in plan.parents[child]]))
            population.perturb_weights(slot, plan.stddev, seed)

        return load

    def _lineage_parent(self, candidate, size, plan):
        if candidate < size + len(plan.parents):
            return int(plan.parents[candidate - size][0])
        return int(self._previous_best[1])

    def _evaluate(self, population, loaders):
        """Fitness and non-finite flag of each candidate written by `loaders`, scored on this
        generation's batch `size` at a time (forward passes only)."""
        x, y = self._batch
        batch_size = population.training_data.batch_size
        scores, nonfinite = [np.zeros(0)], [np.zeros(0, dtype=bool)]
        for start in range(0, len(loaders), population.size):
            chunk = loaders[start:start + population.size]
            for slot, load in enumerate(chunk):
                load(slot, evaluating=True)
            losses = population.member_losses(x, y, batch_size=batch_size)[: len(chunk)]
            broken = (~np.isfinite(losses) | population.nonfinite_members()[: len(chunk)])
            score = sanitize_fitness(self.fitness_function(losses))
            score[broken] = 0.0
            scores.append(score)
            nonfinite.append(broken)
        return np.concatenate(scores), np.concatenate(nonfinite)

    # ------------------------------------------------------------ backups (BackupAndRestore)
    def get_state(self) -> dict:
        """The generator, the generation count and the slot of the back-off's best member.

        The best member's weights need no copy in the backup: the population saved with it
        holds that member, unchanged, in that slot.
        """
        slot = None if self._previous_best is None else int(self._previous_best[1])
        if slot is None:  # restored, but no generation has begun since
            slot = getattr(self, "_restored_best_slot", None)
        return {**super().get_state(), "generation": self.generation, "best_slot": slot}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.generation = int(state["generation"])
        self._previous_best = None
        self._restored_best_slot = state.get("best_slot")

    def on_epoch_begin(self, epoch, logs=None):
        # After a restore, take the back-off snapshot before this generation trains.
        slot = self._restored_best_slot
        if slot is not None:
            self._previous_best = (self.model.member_state(int(slot)), int(slot))
            self._restored_best_slot = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._survivor_fitness is not None:
            # Every survivor was scored on this generation's batch, newcomers included.
            self.model.fitness = self._survivor_fitness.copy()

    def get_config(self):
        return {
            "reproductive_factor": self.reproductive_factor,
            "mixing_number": self.mixing_number,
            "elites": self.elites,
            "mutation_length": self.mutation_length,
            "backoff": self.backoff,
            "cross_validation": self.cross_validation,
            "cv_batch_size": self.cv_batch_size,
            "seed": self.seed,
            "fitness": getattr(self.fitness_function, "__qualname__",
                               type(self.fitness_function).__name__),
        }


# ----------------------------------------------------------------------------- the paper's settings
OPTIMIZERS = ("adam", "sgd")
# The ESGD code the paper ran (esgd-ws): plain SGD with momentum 0.9 at lr 0.001 on
# Fashion-MNIST, SGD at lr 0.01 without momentum on CIFAR-10; sigma0 0.001 and 0.01.
PAPER_SGD = {"fmnist": {"learning_rate": 1e-3, "momentum": 0.9},
             "cifar10": {"learning_rate": 1e-2, "momentum": 0.0}}
MUTATION_LENGTH = {"fmnist": 1e-3, "cifar10": 1e-2}
# With regularization ESGD does not tune the L2 rate: every member uses the paper's 1e-3.
FIXED_L2 = 1e-3


def paper_esgd(dataset: str, population_size: int, elites: int, cv_batch_size: int) -> ESGD:
    """ESGD as the paper ran it on `dataset` ("fmnist" | "cifar10"): 4 offspring per member,
    3 parents per child (at most `population_size`), sigma0 `MUTATION_LENGTH[dataset]`."""
    if dataset not in MUTATION_LENGTH:
        raise ValueError(f"dataset must be one of {tuple(MUTATION_LENGTH)}, got {dataset!r}")
    return ESGD(
        reproductive_factor=4,
        mixing_number=min(3, population_size),
        elites=elites,
        mutation_length=MUTATION_LENGTH[dataset],
        cv_batch_size=cv_batch_size,
    )
