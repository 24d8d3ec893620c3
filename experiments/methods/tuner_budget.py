"""How the tuners spend the harness's member-steps: pure arithmetic on plain numbers, so the
mapping is tested for every budget without training a model.

Hyperband (`plan_hyperband`). KerasTuner's `HyperbandOracle` with max_epochs R and factor f
runs brackets b = B-1, ..., 0 (B: how often R divides by f before it falls below 1); bracket b
has rounds r = 0..b of ceil(K/(b+1)·f^(b-r)) trials (K = ceil(1 + log_f R)) trained to
ceil(R/f^(b-r)) epochs; a trial of round r > 0 starts from the best checkpoint of the one it
was promoted from and pays only the epochs past it (`hyperband_rounds`). One iteration costs
`hyperband_epochs(R, f)` epochs: 11 for R = 3, 75 for R = 9, 375 for R = 27 at f = 3.
KerasTuner's docstring estimate, R·(log_f R)², is about 1.5x too low (36 for R = 9, 243 for
R = 27). The mapping keeps f = 3 (KerasTuner's default) and R = f^k (epochs of 1, 3, 9, ...
checks), and gives each k the steps per epoch S = budget // epochs(R) that make one
iteration spend the budget. Its longest trial (R·S steps: the last bracket's, or a trial
promoted through every round) should be about the horizon H one model can use: of the k
whose longest trial reaches H (within `HORIZON_TOLERANCE`), the largest, for the most
brackets; where the budget lets no k reach it, the k with the longest trial (k = 1 at the
quick scale: 3,200 FMNIST member-steps hold 11 epochs of 290 steps, the longest trial 870).

Bayesian optimisation and Optuna (`plan_fixed_trials`): trials of R checks, as many as the
budget holds at Hyperband's longest trial (N = budget // (R·S)), each check stretched to
S' = budget // (N·R) steps so that N trials spend the budget; the study stops when the next
trial would not fit in what is left, so trials that stop early (cool-down, pruning) leave
room for more. Both model-based samplers start from min(their default, N // 2) random trials
(`startup_trials`), so at least half of the planned trials are chosen by the model.

The horizon (`horizon`): 3,840 member-steps on Fashion-MNIST, the length of the budget-aware
population's fresh members at 32,000 member-steps (docs/width.md: eight independent runs of
that length ensemble best); on CIFAR-10 it is not measured, and the mapping takes one paper
member's training, 20 x 256 = 5,120 steps. `options["horizon"]` sets another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from experiments.core.validation import is_integer

__all__ = ["HYPERBAND_FACTOR", "HORIZONS", "HORIZON_TOLERANCE", "Round", "HyperbandPlan",
           "FixedTrialsPlan", "hyperband_rounds", "hyperband_epochs", "plan_hyperband",
           "plan_fixed_trials", "horizon", "startup_trials"]

HYPERBAND_FACTOR = 3  # KerasTuner's and Optuna's default reduction factor
HORIZONS = {"fmnist": 3840, "cifar10": 5120}
# The FMNIST horizon is a measurement at 640-step checks (a sixth of it); a longest trial
# within 10% of it is "about" it.
HORIZON_TOLERANCE = 0.1


@dataclass(frozen=True)
class Round:
    """One round of a Hyperband bracket: `trials` trials trained to `epochs` epochs, each
    paying `new_epochs` of them (the rest were paid by the trial it was promoted from)."""

    bracket: int
    round: int
    trials: int
    epochs: int
    new_epochs: int


@dataclass(frozen=True)
class HyperbandPlan:
    """KerasTuner Hyperband's arguments for a budget and what they will cost."""

    max_epochs: int
    factor: int
    steps_per_epoch: int
    iterations: int
    rounds: tuple

    @property
    def epochs_per_iteration(self) -> int:
        return sum(r.trials * r.new_epochs for r in self.rounds)

    @property
    def trials(self) -> int:
        return self.iterations * sum(r.trials for r in self.rounds)

    @property
    def member_steps(self) -> int:
        """Gradient steps the plan runs when no trial stops early."""
        return self.iterations * self.epochs_per_iteration * self.steps_per_epoch

    @property
    def longest_trial_steps(self) -> int:
        return self.max_epochs * self.steps_per_epoch

    def as_dict(self) -> dict:
        return {"max_epochs": self.max_epochs, "factor": self.factor,
                "steps_per_epoch": self.steps_per_epoch, "hyperband_iterations": self.iterations,
                "brackets": 1 + max(r.bracket for r in self.rounds), "trials": self.trials,
                "epochs_per_iteration": self.epochs_per_iteration,
                "planned_member_steps": self.member_steps,
                "longest_trial_steps": self.longest_trial_steps}


@dataclass(frozen=True)
class FixedTrialsPlan:
    """Trials of `epochs` checks of `steps_per_epoch` steps; `trials` fit the budget."""

    epochs: int
    steps_per_epoch: int
    trials: int

    @property
    def trial_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def member_steps(self) -> int:
        return self.trials * self.trial_steps

    def as_dict(self) -> dict:
        return {"epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch,
                "trials": self.trials, "trial_steps": self.trial_steps,
                "planned_member_steps": self.member_steps}


def hyperband_rounds(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> tuple:
    """The `Round`s of one iteration of KerasTuner's `HyperbandOracle(max_epochs, factor)`,
    in the order it runs them (its `_get_size` and `_get_epochs`)."""
    brackets, epochs = 0, max_epochs
    while epochs >= 1:  # the oracle's `_get_num_brackets`
        epochs, brackets = epochs / factor, brackets + 1
    final_size = math.ceil(1 + math.log(max_epochs, factor))
    rounds = []
    for bracket in reversed(range(brackets)):
        trained = 0
        for number in range(bracket + 1):
            size = math.ceil(final_size / (bracket + 1) * factor ** (bracket - number))
            epochs = math.ceil(max_epochs / factor ** (bracket - number))
            rounds.append(Round(bracket, number, size, epochs, epochs - trained))
            trained = epochs
    return tuple(rounds)


def hyperband_epochs(max_epochs: int, factor: int = HYPERBAND_FACTOR) -> int:
    """Epochs one Hyperband iteration trains, promoted trials paying only their new ones."""
    return sum(r.trials * r.new_epochs for r in hyperband_rounds(max_epochs, factor))


def _check_steps(argument, value, minimum=1):
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def plan_hyperband(member_steps: int, horizon_steps: int,
                   factor: int = HYPERBAND_FACTOR) -> HyperbandPlan:
    """Hyperband's max_epochs, steps per epoch and iterations (one) for a budget of
    `member_steps` and a horizon of `horizon_steps` (the module docstring says how); a
    budget that holds not even the smallest iteration (R = f, one step per epoch) is
    refused."""
    member_steps = _check_steps("member_steps", member_steps)
    horizon_steps = _check_steps("horizon", horizon_steps)
    factor = _check_steps("factor", factor, minimum=2)
    smallest = hyperband_epochs(factor, factor)
    if member_steps < smallest:
        raise ValueError(
            f"budget.member_steps must be >= {smallest} for one Hyperband iteration "
            f"(max_epochs={factor}, factor={factor}: {smallest} epochs of one step), "
            f"got {member_steps}")
    candidates, power = [], 1
    while hyperband_epochs(factor ** power, factor) <= member_steps:
        max_epochs = factor ** power
        candidates.append((max_epochs, member_steps // hyperband_epochs(max_epochs, factor)))
        power += 1
    near = [c for c in candidates if c[0] * c[1] >= (1 - HORIZON_TOLERANCE) * horizon_steps]
    if near:
        max_epochs, steps = near[-1]
    else:  # the longest trial the budget allows; the more brackets on a tie
        max_epochs, steps = max(candidates, key=lambda c: (c[0] * c[1], c[0]))
    iteration = hyperband_epochs(max_epochs, factor) * steps
    return HyperbandPlan(max_epochs, factor, steps, member_steps // iteration,
                         hyperband_rounds(max_epochs, factor))


def plan_fixed_trials(member_steps: int, horizon_steps: int,
                      factor: int = HYPERBAND_FACTOR) -> FixedTrialsPlan:
    """Trials of a fixed length for Bayesian optimisation and Optuna: Hyperband's max_epochs
    checks, as many trials as the budget holds at Hyperband's longest trial, the checks
    stretched so that they spend it."""
    hyperband = plan_hyperband(member_steps, horizon_steps, factor)
    trials = member_steps // hyperband.longest_trial_steps
    steps = member_steps // (trials * hyperband.max_epochs)
    return FixedTrialsPlan(hyperband.max_epochs, steps, trials)


def horizon(context) -> int:
    """The steps one model of the context's dataset can use: `options["horizon"]` (an
    integer >= 1), else `HORIZONS[dataset]`."""
    if "horizon" in context.options:
        return _check_steps("options['horizon']", context.options["horizon"])
    return HORIZONS[context.dataset]


def startup_trials(default: int, planned: int) -> int:
    """Random trials before a model-based sampler takes over: its `default`, at most half of
    the `planned` trials (at least one)."""
    return max(1, min(int(default), planned // 2))
