"""What `PopDescent(budget_aware=True)` adds to the paper's algorithm, on plain arrays where
it can be: a shrinking population, a protected member, a rescue of a dead population, and the
budget-aware learning-rate schedule.

Why (docs/budget_aware.md has the measurements): at equal member-steps a population of N
gives each model 1/N of the sequential steps, its selection after a short horizon favours
fast starters, and it never anneals; one Adam model with its rate decayed over the budget beat
every population method at short budgets. So the budget-aware mode explores at full size only
briefly, then keeps its fittest members in rungs (successive halving, 5 -> 2 -> 1) and gives
them the freed compute; the member compiled at the user's own rate is protected until the last
rung, so noisy early selection cannot lose it, and a rung it leads keeps it alone (the
exploration found nothing better, and every further exploring step is depth it loses); every
member's rate follows a schedule over the budget; and members stuck at their starting loss
restart with a rate well below their own (never the protected member, never one whose rate is
at the lower bound already).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from popdescent.returned.cooldown import StallCooldown
from popdescent.returned.schedules import BudgetSchedule
from popdescent.population.selection import rank_by_fitness, sanitize_fitness
from popdescent.strategies.survivor_checkpoint import SurvivorCheckpoint
from popdescent.strategies.width import WIDTH_KINDS
from popdescent.validation import check_integer, check_number

__all__ = ["BudgetAwareness", "default_rungs", "plan_shrink", "planned_sizes", "check_rungs",
           "range_test_rates"]


# A rescued member's rate is its rate x 10**-U(1, RESCUE_DROP), within bounds: "well below
# the current one" (10x to 1000x lower).
RESCUE_DROP = 3.0

# What a survivor that has cooled down with budget left spends it on: fresh members, the kind
# whose ensemble had the lower mean test loss at 32,000 FMNIST member-steps (the rule fixed
# before the runs; seeds 5, 15, 24 in docs/width.md); "children" gave the better soup.
DEFAULT_WIDTH = "fresh"

# Checks of the survivor in a row without a new best before it cools down: never reached in
# the six quick-scale runs of docs/records/guard (at most 1), reached at 9,600 of 32,000
# member-steps in the paper-scale one (docs/budget_aware_paper.md).
DEFAULT_COOLDOWN_PATIENCE = 3


def default_rungs(size: int) -> tuple:
    """(progress, members kept) pairs: halve once after 5 % of the budget, keep one after
    20 % (5 -> 2 -> 1); a population of 2 or 3 keeps one after 20 %.

    Early, because every step an exploring member takes is a step the survivor does not: at
    equal member-steps the returned model's loss followed a single run's at as many own
    steps (docs/budget_aware.md), and 10 %/30 % left the survivor 82 % of the depth where
    5 %/20 % leaves it 88 %."""
    if size >= 4:
        return ((0.05, size // 2), (0.2, 1))
    return ((0.2, 1),)


def check_rungs(rungs) -> tuple:
    """`rungs` as a tuple of (progress in (0, 1), size >= 1) with both strictly monotone."""
    try:
        pairs = tuple((float(p), int(s)) for p, s in rungs)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"rungs must be a list of (progress, members kept) pairs, got {rungs!r}"
        ) from error
    for position, (progress, size) in enumerate(pairs):
        check_number(f"rungs[{position}] progress", progress, minimum=0.0, maximum=1.0,
                     strict_minimum=True)
        check_integer(f"rungs[{position}] size", size, minimum=1)
    if any(b[0] <= a[0] or b[1] >= a[1] for a, b in zip(pairs, pairs[1:])):
        raise ValueError(
            f"rungs must rise in progress and fall in size, got {rungs!r}"
        )
    return pairs


def due_size(rungs, progress: float, size: int):
    """The size the population shrinks to now, or None: the smallest rung size below `size`
    whose progress has been reached (never at the end of the budget, where it is moot)."""
    if progress >= 1.0:
        return None
    due = [kept for at, kept in rungs if progress >= at and kept < size]
    return min(due) if due else None


def planned_sizes(rungs, member_steps: int, size: int, steps_per_epoch: int) -> list:
    """The population's size during each iteration of `fit(member_steps=...)`, mirroring
    `MemberStepBudget` (stop before overspending) and `due_size` (shrink at iteration ends)."""
    sizes, spent = [], 0
    while member_steps - spent >= size:
        steps = min(steps_per_epoch, (member_steps - spent) // size)
        spent += steps * size
        sizes.append(size)
        shrink = due_size(rungs, spent / member_steps, size)
        if shrink is not None:
            size = shrink
    return sizes


def range_test_rates(bounds, count: int) -> list:
    """`count` rates log-spaced over `bounds` (both ends included): the range test's grid."""
    low, high = (float(b) for b in bounds)
    if count == 1:
        return [math.sqrt(low * high)]
    return [float(r) for r in np.geomspace(low, high, count)]


def plan_shrink(fitness, keep: int, protected=None) -> np.ndarray:
    """The `keep` members that stay, sorted: the fittest, with `protected` (a slot, or None)
    always among them while `keep` > 1. A member of fitness 0 (diverged) goes first."""
    ranking = rank_by_fitness(sanitize_fitness(fitness))
    if protected is not None and keep > 1:
        others = [int(i) for i in ranking if int(i) != protected][: keep - 1]
        return np.sort(np.array([protected, *others], dtype=int))
    return np.sort(ranking[:keep].astype(int))


@dataclass
class RescueTracker:
    """Counts iterations in which no member got below the starting loss (all are stuck).

    "Below" means by more than `tolerance` of the members' mean starting loss: a population
    at chance wobbles around its starting loss (2.30 on ten classes) without learning."""

    starting_losses: np.ndarray | None = None
    stuck: int = 0

    def update(self, losses, tolerance=0.01) -> np.ndarray:
        """Records this iteration's losses; returns the mask of members not below
        (1 - tolerance) x the mean starting loss."""
        threshold = (1.0 - tolerance) * float(np.mean(self.starting_losses))
        not_improved = ~(np.asarray(losses) < threshold)
        self.stuck = self.stuck + 1 if not_improved.all() else 0
        return not_improved


class BudgetAwareness:
    """The state and decisions of PopDescent's budget-aware mode (see the module).

    Args:
        schedule: a `BudgetSchedule` for every member's base rate, or None for none.
        rungs: (progress, members kept) pairs, or None for `default_rungs(size)`.
        protect_compiled: keep the member compiled at the user's rate (member 0, set to
            that rate when training starts) until the last rung.
        rescue_after: r, restart stuck members after r iterations in which no member beat
            its starting loss (not the protected one, nor one at the lower rate bound); None
            never rescues.
        rung_samples: the number of fitness samples a shrink ranks members on.
        range_test: spend the first iteration on a learning-rate range test (see
            `range_test_rates` and `range_test_plan`).
        commit_early: at a rung, when the protected member ranks first, keep it alone (see
            `commits`); None (the default) means True.
        restore_best_weights: once one member is left, keep its weights at its lowest loss
            on the rung samples and give them back at the end of the budget (see
            `popdescent.strategies.survivor_checkpoint`).
        restore_best_every: member-steps between two of those checks; None: one iteration
            of the full population.
        cooldown_patience: after this many of those checks in a row without a new best, the
            survivor goes back to its best weights and cools down (`popdescent.returned.cooldown`);
            None never does. "default": 3 with `restore_best_weights`, else None.
        width: what a cooled-down survivor with budget left does: "children" or "fresh"
            train more members (`popdescent.strategies.width`); None stops (the budget's
            rest is not spent). Needs `cooldown_patience`. "default": `DEFAULT_WIDTH` with
            a cool-down, else None.
        width_members: members per wave of the width phase; None: the population's size.
    """

    def __init__(self, schedule=None, rungs=None, protect_compiled=True, rescue_after=2,
                 rung_samples=10_000, range_test=None, commit_early=None,
                 restore_best_weights=True, restore_best_every=None,
                 cooldown_patience="default", width="default", width_members=None):
        if schedule is not None and not isinstance(schedule, BudgetSchedule):
            raise TypeError(f"schedule must be a popdescent BudgetSchedule or None, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.rungs = None if rungs is None else check_rungs(rungs)
        self.protect_compiled = bool(protect_compiled)
        self.rescue_after = None if rescue_after is None else check_integer(
            "rescue_after", rescue_after, minimum=1)
        self.rung_samples = check_integer("rung_samples", rung_samples, minimum=1)
        # None: decided at the start of training (on when the learning rate is tuned).
        if range_test not in (None, True, False):
            raise ValueError(f"range_test must be None (auto), True or False, got "
                             f"{range_test!r}")
        self.range_test = None if range_test is None else bool(range_test)
        self.range_test_pending = self.range_test
        # None: the default, on (docs/budget_aware.md has the three-seed evidence).
        if commit_early is not None and not isinstance(commit_early, (bool, np.bool_)):
            raise ValueError(f"commit_early must be True or False, got {commit_early!r} "
                             f"(None: the default, on)")
        self.commit_early = True if commit_early is None else bool(commit_early)
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise ValueError(f"restore_best_weights must be True or False, got "
                             f"{restore_best_weights!r}")
        self.restore_best_weights = bool(restore_best_weights)
        self.restore_best_every = restore_best_every
        self.checkpoint = SurvivorCheckpoint(restore_best_every)
        if isinstance(cooldown_patience, str) and cooldown_patience == "default":
            cooldown_patience = DEFAULT_COOLDOWN_PATIENCE if self.restore_best_weights else None
        if cooldown_patience is not None and not self.restore_best_weights:
            raise ValueError(
                f"cooldown_patience={cooldown_patience!r} needs restore_best_weights=True (the "
                "cool-down starts from the survivor's best checkpoint); pass "
                "cooldown_patience=None"
            )
        self.cooldown_patience = None if cooldown_patience is None else check_integer(
            "cooldown_patience", cooldown_patience, minimum=1)
        if isinstance(width, str) and width == "default":
            width = DEFAULT_WIDTH if self.cooldown_patience is not None else None
        if width is not None and width not in WIDTH_KINDS:
            raise ValueError(f"width must be one of {WIDTH_KINDS} or None, got {width!r}")
        if width is not None and self.cooldown_patience is None:
            raise ValueError(f"width={width!r} starts when the survivor has cooled down: it "
                             "needs cooldown_patience (and restore_best_weights=True)")
        self.width = width
        self.width_members = None if width_members is None else check_integer(
            "width_members", width_members, minimum=1)
        self.cooldown = self._new_cooldown()
        self.rescue = RescueTracker()
        self.shrunk = False

    def _new_cooldown(self):
        return None if self.cooldown_patience is None else StallCooldown(self.cooldown_patience)

    def get_config(self):
        return {
            "schedule": None if self.schedule is None else self.schedule.get_config(),
            "rungs": None if self.rungs is None else [list(r) for r in self.rungs],
            "protect_compiled": self.protect_compiled,
            "rescue_after": self.rescue_after,
            "rung_samples": self.rung_samples,
            "range_test": self.range_test,
            "commit_early": self.commit_early,
            "restore_best_weights": self.restore_best_weights,
            "restore_best_every": self.restore_best_every,
            "cooldown_patience": self.cooldown_patience,
            "width": self.width,
            "width_members": self.width_members,
        }

    def rungs_for(self, size):
        return self.rungs if self.rungs is not None else default_rungs(size)

    def planned_iterations(self, member_steps, size, steps_per_epoch):
        """Iterations enough for the budget: with `commit_early`, as if the first rung kept
        one member (the most iterations a run can need; `MemberStepBudget` stops a run that
        spends its budget sooner)."""
        rungs = self.rungs_for(size)
        if self.commit_early and self.protect_compiled:
            rungs = ((rungs[0][0], 1),)
        return len(planned_sizes(rungs, member_steps, size, steps_per_epoch))

    # ------------------------------------------------------------- state for backups
    def get_state(self) -> dict:
        losses = self.rescue.starting_losses
        return {"starting_losses": None if losses is None else [float(v) for v in losses],
                "stuck": self.rescue.stuck, "shrunk": self.shrunk,
                "range_test_pending": self.range_test_pending,
                "checkpoint": self.checkpoint.get_state(),
                **({} if self.cooldown is None else {"cooldown": self.cooldown.get_state()})}

    def set_state(self, state) -> None:
        losses = state.get("starting_losses")
        self.rescue.starting_losses = None if losses is None else np.array(losses)
        self.rescue.stuck = int(state.get("stuck", 0))
        self.shrunk = bool(state.get("shrunk", False))
        self.range_test_pending = bool(state.get("range_test_pending", False))
        if "checkpoint" in state:
            self.checkpoint.set_state(state["checkpoint"])
        if self.cooldown is not None and "cooldown" in state:
            self.cooldown.set_state(state["cooldown"])

    # ------------------------------------------------------------- decisions
    def protected_slot(self, population):
        """The slot of the protected member (origin 0), or None (off, or it has left)."""
        if not self.protect_compiled or 0 not in population.origins:
            return None
        return population.origins.index(0)

    def start(self, population, starting_losses):
        """At the start of training: the protected member gets the compiled rate (within
        bounds), and the starting losses are recorded for the rescue."""
        if self.rungs is None:
            self.rungs = default_rungs(population.size)
        fresh = population.gradient_steps == population._budget_start
        if fresh:  # a new budget: a checkpoint of an earlier fit is no candidate
            self.checkpoint = SurvivorCheckpoint(self.restore_best_every)
            self.cooldown = self._new_cooldown()
        self.checkpoint.plan(population.size, population.training_data.steps_per_epoch)
        if fresh and self.protect_compiled:
            compiled = population.live_hyperparameters.compiled_learning_rates[0]
            if compiled is not None and "learning_rate" in population.priors:
                population.set_hyperparameters(0, {"learning_rate": compiled})
        if self.range_test_pending is None:  # the default: only where there is a rate to test
            self.range_test_pending = fresh and "learning_rate" in population.priors
        if fresh and self.range_test_pending:
            if "learning_rate" not in population.priors:
                raise ValueError("range_test needs the learning rate among the population's "
                                 "hyperparameters")
            slots = self.range_test_slots(population)
            rates = range_test_rates(population.priors["learning_rate"].bounds, len(slots))
            for slot, rate in zip(slots, rates):
                population.set_hyperparameters(slot, {"learning_rate": rate})
        if self.rescue.starting_losses is None:
            self.rescue.starting_losses = np.asarray(starting_losses, dtype=np.float64)

    def commits(self, rung_losses, protected) -> bool:
        """Whether a rung keeps the protected member alone: with `commit_early`, when it has
        the lowest rung loss (strictly). The exploration then found nothing better than the
        user's own rate, and every further step of an exploring member is depth the returned
        model loses: in every paper-range run of docs/budget_aware.md the protected member
        led the first rung and went on to win the last one."""
        if not self.commit_early or protected is None:
            return False
        losses = np.where(np.isfinite(rung_losses), rung_losses, np.inf)
        others = np.delete(losses, protected)
        return bool(np.isfinite(losses[protected]) and (losses[protected] < others).all())

    def range_test_slots(self, population) -> list:
        """The members that take part in the range test: all but the protected one."""
        protected = self.protected_slot(population)
        return [slot for slot in range(population.size) if slot != protected]

    def range_test_plan(self, losses, rates, bounds, slots, rng):
        """After the range test's iteration: (slots to restart, their new rates).

        The fastest learner among `slots` (lowest loss; a diverged member never wins) sets
        the scale; every tested member restarts from its initial weights with a rate drawn
        log-uniformly in the decade below the winner's rate, within bounds. Below, because a
        short horizon favours rates too large for the whole budget (the short-horizon bias).
        """
        self.range_test_pending = False
        losses = np.asarray(losses, dtype=np.float64)[slots]
        finite = np.isfinite(losses)
        if not finite.any():
            return [], []
        winner = slots[int(np.argmin(np.where(finite, losses, np.inf)))]
        low, high = bounds
        new_rates = [float(min(max(rates[winner] * 10.0 ** -rng.uniform(0.0, 1.0), low), high))
                     for _ in slots]
        return list(slots), new_rates

    def rescue_plan(self, losses, rates, bounds, rng, protected=None):
        """(slots to restart, their new rates) when the population has been stuck for
        `rescue_after` iterations; else empty. Counts this iteration either way.

        Two members are never restarted: the `protected` one (the user's own rate, which the
        rescue may not take away any more than a selection may), and one whose rate is at
        the lower bound already (no lower rate exists, so a restart would only throw its
        training away). Without these rules a slow starter was mistaken for a dead one: on
        CIFAR-10 with Dropout(0.6) and a strong translation, no member beats its starting
        loss by 1 % in 32 steps, and the rescue restarted every member from its initial
        weights every other iteration to the end of the budget (50 restarts, the returned
        model at chance: docs/regularization.md)."""
        if self.rescue_after is None:
            return [], []
        not_improved = self.rescue.update(losses)
        if self.rescue.stuck < self.rescue_after:
            return [], []
        self.rescue.stuck = 0
        low, high = bounds
        slots = [int(i) for i in np.flatnonzero(not_improved)
                 if i != protected and rates[i] > low * (1.0 + 1e-6)]
        new_rates = [
            float(min(max(rates[i] * 10.0 ** -rng.uniform(1.0, RESCUE_DROP), low), high))
            for i in slots
        ]
        return slots, new_rates


def losses_from_fitness(fitness) -> np.ndarray:
    """Inverts the paper's fitness 2 / (2 + loss); fitness 0 (diverged) -> inf."""
    fitness = sanitize_fitness(fitness)
    with np.errstate(divide="ignore"):
        return np.where(fitness > 0, 2.0 / np.where(fitness > 0, fitness, 1.0) - 2.0, math.inf)
