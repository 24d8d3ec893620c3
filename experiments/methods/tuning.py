"""What the tuner methods (`hyperband`, `bayesian`, `optuna`) share: one trial trained with the
single run's recipe (`train_trial`), the ledger of what every finished trial ran
(`TrialLedger`), and the `MethodResult` built from it (`tuner_result`).

Every trial is an `adam-decay` run (`experiments.methods.adam.train_model`): Adam on the
budget-aware schedule over the trial's own steps, the same cool-down, validation checked at
the end of every epoch of the trial, the trial keeping its best check. Its model is built from
the trial's values (`experiments.methods.search_space`), initialised and shuffled from its own
seed (`trial_seed`: the run's seed and the trial's position, so a trial rerun after a crash
trains as it would have).

Gradient steps are counted from what ran: each trial's optimizer iterations, written to the
ledger when the trial ends. The ledger is one JSON file in the run's work directory, rewritten
atomically after every trial; a rerun after a crash keeps the entries of the trials the tuner's
own storage says finished (`TrialLedger.keep`) and counts them once, with their seconds, as the
population methods' backups do (`MethodResult.resumed`). A trial the crash interrupted runs
again; the steps it had run are not counted (the work the crash lost).
"""

from __future__ import annotations

import json
import math
import pathlib
import time

from experiments.core.contract import MethodContext, MethodResult
from experiments.core.records import atomic_write_text, json_safe
from experiments.methods.adam import cooldown_option, train_model
from experiments.methods.independent_ensemble import run_seed
from experiments.methods.search_space import trial_loss
from popdescent import BudgetSchedule

__all__ = ["TrialLedger", "train_trial", "trial_seed", "tuner_result", "resumed_from",
           "LEDGER_FILE"]

LEDGER_FILE = "trials.json"


def trial_seed(seed: int, position: int) -> int:
    """The seed of the trial at `position` (0, 1, ...) of a run seeded `seed`: trial 0 starts
    as `adam-decay` does, the others as `adam-decay-ensemble`'s further runs."""
    return run_seed(seed, position)


def train_trial(context: MethodContext, model, values: dict, epochs: int, steps_per_epoch: int,
                seed: int, started: float, callbacks=()):
    """Trains `model` (built from `values`) as one `adam-decay` trial of `epochs` checks of
    `steps_per_epoch` steps at `values["learning_rate"]`, with the trial's loss; returns the
    `SingleRun` (the model holds its best check's weights). `callbacks` see `val_loss`."""
    return train_model(model, context, float(values["learning_rate"]),
                       epochs * steps_per_epoch, seed, BudgetSchedule(),
                       cooldown_option(context), started, steps_per_check=steps_per_epoch,
                       loss=trial_loss(values), callbacks=callbacks)


class TrialLedger:
    """The finished trials of one run, in the order they finished: for each, its key (the
    tuner's trial id), values, gradient steps, checks [(steps within the trial, best loss of
    the trial so far, seconds since the run began)], best loss and status. Kept in `path` (a
    JSON file, rewritten atomically) when given.

    Args:
        path: the ledger's file, or None to keep it in memory only.
    """

    def __init__(self, path=None):
        self.path = None if path is None else pathlib.Path(path)
        self.entries = []
        if self.path is not None and self.path.exists():
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))["trials"]

    def __len__(self):
        return len(self.entries)

    @property
    def gradient_steps(self) -> int:
        return sum(entry["gradient_steps"] for entry in self.entries)

    @property
    def seconds(self) -> float:
        """Seconds since the run began when the last finished trial ended."""
        return max((entry["ended"] for entry in self.entries), default=0.0)

    def keep(self, finished) -> int:
        """Keeps only the entries whose key is in `finished` (what the tuner's storage says
        ended); returns how many it kept."""
        finished = {str(key) for key in finished}
        self.entries = [entry for entry in self.entries if entry["key"] in finished]
        self._write()
        return len(self.entries)

    def record(self, key, values, single, started, status="complete", **extra) -> dict:
        """Adds the trial `key` that trained `single` (a `SingleRun`), replacing an entry of
        the same key (a trial run again after a crash); `extra` are further JSON fields."""
        checkpoint = single.checkpoint
        entry = {
            "key": str(key),
            "values": {name: float(value) for name, value in values.items()},
            "gradient_steps": int(single.gradient_steps),
            "checks": [[int(s), float(loss), float(t)] for s, loss, t in checkpoint.points],
            "best_validation_loss": (float(checkpoint.best_loss)
                                     if checkpoint.best_weights is not None else None),
            "status": status,
            "ended": time.perf_counter() - started,
            **({"cooldown": checkpoint.summary()} if hasattr(checkpoint, "summary") else {}),
            **extra,
        }
        self.entries = [e for e in self.entries if e["key"] != entry["key"]] + [entry]
        self._write()
        return entry

    def best(self):
        """The entry with the lowest best validation loss, or None (every trial diverged)."""
        scored = [e for e in self.entries if e["best_validation_loss"] is not None]
        return min(scored, key=lambda e: e["best_validation_loss"], default=None)

    def curve(self) -> list:
        """[(gradient steps so far, best validation loss so far, seconds)], one point per
        check of every trial, in the order they ran."""
        points, spent, best = [], 0, math.inf
        for entry in self.entries:
            for steps, loss, seconds in entry["checks"]:
                best = min(best, loss)
                points.append((spent + steps, best, seconds))
            spent += entry["gradient_steps"]
        return points

    def _write(self):
        if self.path is not None:
            atomic_write_text(self.path, json.dumps(json_safe({"trials": self.entries})))


def resumed_from(ledger: TrialLedger):
    """`MethodResult.resumed` for a ledger that held finished trials at the start, else None."""
    if not len(ledger):
        return None
    return {"iteration": len(ledger), "seconds_before": ledger.seconds}


def tuner_result(context: MethodContext, ledger: TrialLedger, model, resumed,
                 details: dict) -> MethodResult:
    """The record of a tuner run: `model` (the best trial's best check, compiled), the
    ledger's steps and curve, `details` with the best trial's values and every trial."""
    best = ledger.best()
    budget = context.budget.member_steps
    return MethodResult(
        model=model,
        gradient_steps=ledger.gradient_steps,
        curve=ledger.curve(),
        details={
            **details,
            "hyperparameters": None if best is None else best["values"],
            "best_trial": None if best is None else best["key"],
            "best_validation_loss": None if best is None else best["best_validation_loss"],
            "trials_run": len(ledger),
            "unspent_member_steps": budget - ledger.gradient_steps,
            "trials": ledger.entries,
            "objective": "val_loss",
        },
        resumed=resumed,
    )
