"""Budget-aware learning-rate schedules, and the schedule a population discovered, exported.

`BudgetSchedule` is a multiplier of the learning rate as a function of the share of the
budget spent (`Population.progress`): warm-up, a constant stretch, then a linear decay to
`final` at the end of the budget. A population applies it to every member's base rate
(mutations change the base, the schedule scales it); `ScheduledLearningRate` is the same
schedule for a single Keras model, the baseline a population must beat.

`ancestry` walks a member's lineage back through every copy from a parent and every shrink;
`lineage_schedule` turns that walk into the learning rate it trained with at each of its own
gradient steps that its weights still hold (a budget-aware survivor's restored checkpoint and
cool-down drop the steps they undid), as a Keras `LearningRateSchedule` a fresh model can
train with (PBT's "replay").
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from popdescent.returned.cooldown import StallCooldown
from popdescent.validation import check_fraction

__all__ = ["BudgetSchedule", "ScheduledLearningRate", "StepwiseSchedule", "ancestry",
           "lineage_schedule", "lineage_values"]


class BudgetSchedule:
    """A learning-rate multiplier over the budget's progress p in [0, 1].

    Rises linearly from 0 to 1 over the first `warmup` of the budget, stays at 1 until
    `decay_start`, then falls linearly to `final` at p = 1.

    Args:
        warmup: share of the budget spent warming up, in [0, 1]. Default 0.
        decay_start: progress at which the decay begins, in [warmup, 1]. Default 0.5: a
            constant first half and a linear second half, a hedge between "decay from the
            start" (better for a run that overfits its budget) and "no decay" (better for
            one that underfits it).
        final: the multiplier at the end of the budget, in [0, 1]. Default 0.

    Example:
        >>> BudgetSchedule().multiplier(0.75)
        0.5
    """

    def __init__(self, warmup=0.0, decay_start=0.5, final=0.0):
        self.warmup = check_fraction("warmup", warmup)
        self.decay_start = check_fraction("decay_start", decay_start)
        self.final = check_fraction("final", final)
        if self.decay_start < self.warmup:
            raise ValueError(
                f"decay_start must be in [warmup, 1] = [{self.warmup}, 1], got {decay_start!r}"
            )

    def multiplier(self, progress):
        """The factor on the base learning rate at `progress` (a float, or a tensor)."""
        p = ops.clip(ops.convert_to_tensor(progress, "float32"), 0.0, 1.0)
        warm = ops.minimum(1.0, p / self.warmup) if self.warmup > 0 else ops.ones_like(p)
        span = 1.0 - self.decay_start
        decayed = (1.0 - (1.0 - self.final) * ops.clip((p - self.decay_start) / span, 0.0, 1.0)
                   if span > 0 else ops.ones_like(p))
        value = warm * decayed
        return float(ops.convert_to_numpy(value)) if not _is_symbolic(progress) else value

    def get_config(self):
        return {"warmup": self.warmup, "decay_start": self.decay_start, "final": self.final}


def _is_symbolic(value):
    return not isinstance(value, (int, float, np.integer, np.floating))


@keras.saving.register_keras_serializable(package="popdescent")
class ScheduledLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate * schedule.multiplier(step / total_steps)` for one Keras model.

    Args:
        learning_rate: the base rate (> 0).
        total_steps: the budget in gradient steps (>= 1).
        schedule: a `BudgetSchedule` or its config dict; default `BudgetSchedule()`.
    """

    def __init__(self, learning_rate, total_steps, schedule=None):
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        if not self.learning_rate > 0 or self.total_steps < 1:
            raise ValueError(
                f"learning_rate must be > 0 and total_steps >= 1, got {learning_rate!r} and "
                f"{total_steps!r}"
            )
        if isinstance(schedule, dict):
            schedule = BudgetSchedule(**schedule)
        self.schedule = BudgetSchedule() if schedule is None else schedule

    def __call__(self, step):
        progress = ops.cast(step, "float32") / float(self.total_steps)
        return self.learning_rate * self.schedule.multiplier(progress)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "schedule": self.schedule.get_config()}


@keras.saving.register_keras_serializable(package="popdescent")
class StepwiseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The rate of gradient step k is `values[k]` (the last value after the table ends)."""

    def __init__(self, values):
        self.values = [float(v) for v in values]
        if not self.values:
            raise ValueError("values must hold at least one learning rate, got []")
        # Made here, eagerly: a table first made inside one traced function cannot be read
        # from another (Keras' fit traces its step inside a multi-step function).
        self._table = ops.convert_to_tensor(np.asarray(self.values, np.float32))

    def __call__(self, step):
        index = ops.minimum(ops.cast(step, "int32"), len(self.values) - 1)
        return ops.take(self._table, index)

    def get_config(self):
        return {"values": self.values}


def ancestry(population, index) -> list:
    """Member `index`'s line of ancestors, iteration by iteration, oldest first: tuples
    (global step at the iteration's start, at its end, members training during it, the
    hyperparameters the ancestor trained with). Walks back through every copy from a parent
    and every shrink; needs a lineage written by a strategy callback."""
    entries, slot, line = population.lineage, int(index), []
    for position in reversed(range(len(entries))):
        entry = entries[position]
        if "kept" in entry:  # a shrink at the end of this iteration: back to its numbering
            slot = entry["kept"][slot]
        member = entry["members"][slot]
        if member["replaced"]:
            slot = member["parent"]
        start = entries[position - 1]["gradient_steps"] if position else population.lineage_start[
            "gradient_steps"]
        line.append((start, entry["gradient_steps"], len(entry["members"]),
                     _values_during(population, position, slot)))
    return line[::-1]


def _values_during(population, position, slot):
    """The hyperparameters that slot `slot` of iteration `position` trained with: those it
    was given at the end of the iteration before (or at the start)."""
    if position == 0:
        return population.lineage_start["members"][slot]
    previous = population.lineage[position - 1]
    if "kept" in previous:
        slot = previous["kept"][slot]
    return previous["members"][slot]["hyperparameters"]


def lineage_schedule(population, index):
    """(`StepwiseSchedule` of member `index`'s learning rate per own gradient step, its L2
    rate per step as a list or None). Needs a lineage written by a strategy callback."""
    _check_lineage(population)
    if "learning_rate" not in population.priors:
        raise ValueError("the learning rate is not a tuned hyperparameter of this population")
    values = lineage_values(population, index)
    return StepwiseSchedule(values["learning_rate"]), values.get("l2")


def lineage_values(population, index) -> dict:
    """Name -> the value of every tuned hyperparameter at each of member `index`'s own
    gradient steps that its weights still hold, through every copy from a parent: the
    learning rate as it ran (its base times the schedule or cool-down; also when the rate is
    not tuned but held in a variable), the others as set.
    What a fresh model replays to retrace the member (`Population.exported_hyperparameters`)."""
    _check_lineage(population)
    if "learning_rate_decay" in population.priors:
        # decay^t counts the steps since each optimizer (re)started, which the lineage does
        # not record through copies and restarts: a replay would be wrong, so none is given.
        raise ValueError("exported_schedule cannot replay a tuned learning_rate_decay (the "
                         "lineage does not record each member's optimizer restarts)")
    if population.origins[index] >= population.starting_size:
        raise ValueError(
            f"member {index} (origin {population.origins[index]}) joined the population past "
            "the horizon (the width phase): its learning rate is its wave's line, recorded "
            "in the lineage's 'width_wave' entry, not a schedule the lineage replays")
    multiplier = _multiplier_at(population)
    names = list(population.priors)
    # An untuned rate still ran on the schedule: the member's base rate times it.
    base_rates = population.live_hyperparameters.base_learning_rate
    fixed_rate = None
    if "learning_rate" not in names and base_rates is not None:
        fixed_rate = float(ops.convert_to_numpy(base_rates[index]))
        names.append("learning_rate")
    steps, per_step = [], {name: [] for name in names}
    for start, end, size, values in ancestry(population, index):
        if fixed_rate is not None:
            values = {**values, "learning_rate": fixed_rate}
        for step in range(start, end, size):
            steps.append(step)
            for name in names:
                value = values[name]
                per_step[name].append(value * multiplier(step) if name == "learning_rate"
                                      else value)
    kept = [i for i, step in enumerate(steps) if not _undone(population.lineage, step)]
    return {name: [series[i] for i in kept] for name, series in per_step.items()}


def _check_lineage(population):
    if not population.lineage or getattr(population, "lineage_start", None) is None:
        raise ValueError("no lineage yet: fit the population with a strategy callback first")


def _multiplier_at(population):
    """step -> the factor on the base rate at global member-step `step`: the population's
    schedule, or a budget-aware survivor's cool-down (`popdescent.returned.cooldown`) during it."""
    schedule = getattr(population, "learning_rate_schedule", None)
    start = population.lineage_start
    final = 0.0 if schedule is None else schedule.final
    cooldowns = []  # each survivor cool-down the lineage recorded, as the line it ran on
    for entry in population.lineage:
        if entry.get("cooldown"):
            line = StallCooldown()
            line.set_state({"start": entry["gradient_steps"], **entry["cooldown"]})
            cooldowns.append(line)

    def at(step):
        for line in cooldowns:
            if line.during(step):
                return line.multiplier(step, final)
        if schedule is None:
            return 1.0
        return schedule.multiplier((step - start["gradient_steps"]) / start["member_steps"])

    return at


def _undone(lineage, step) -> bool:
    """Whether the update of global member-step `step` is gone from the weights a budget-aware
    survivor ended with: its best checkpoint, restored at the end of a fit, drops the steps
    after it; a cool-down that went back to earlier weights dropped the steps in between,
    unless the restored checkpoint predates the cool-down (then those steps led to it).
    Both happen only to a population of one, so other members' steps are never touched."""
    for entry in lineage:
        restored = entry.get("restored_best")
        if restored is None:
            continue
        cut, end = restored["gradient_steps"], entry["gradient_steps"]
        if cut <= step < end:
            return True
        for rewind in lineage:
            cooldown = rewind.get("cooldown")
            if (cooldown and cut > rewind["gradient_steps"] <= end
                    and cooldown["from_gradient_steps"] <= step < rewind["gradient_steps"]):
                return True
    return False
