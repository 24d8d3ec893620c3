"""SynchronousSelection: Ray Tune's synchronous PBT barrier, with the decision left open.

Ray's `PopulationBasedTraining(synch=True)` gathers every trial at a barrier and can restart a
trial from any trial's checkpoint with a new config (`_exploit`). What it decides there (a
quantile, a random upper trial, a perturbation by 0.8 or 1.2) is replaced here by a
subclass's `select`. One thing differs from Ray's barrier: the decision waits until every
live trial is paused, its checkpoint saved and registered. Ray's decides while the last trial
still runs; a running trial that is replaced is paused without saving, so its last checkpoint
is never registered and its next one is written to the same directory (seen here: a trial
wrote `checkpoint_000000` twice), over a checkpoint another trial may be about to restore
from. PopDescent may draw a replaced trial as another's parent, which Ray's PBT never does.
"""

from __future__ import annotations

import json
import os

from ray.tune.schedulers import PopulationBasedTraining

from popdescent.validation import check_integer

LINEAGE_FILE = "popdescent_lineage.jsonl"


class SynchronousSelection(PopulationBasedTraining):
    """Base class: every `every` reports all live trials meet; `select(tune_controller,
    trials)` decides and calls `restart` for each trial to restart, and returns a JSON record
    that is appended to `lineage` and to `popdescent_lineage.jsonl` in the experiment
    directory.

    Args:
        metric, mode: the reported metric and "min" or "max" (or from `tune.TuneConfig`).
        every: reports between two selections, >= 1.
        time_attr: the result field counting reports.
    """

    def __init__(self, metric=None, mode=None, every=1, time_attr="training_iteration"):
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        every = check_integer("every", every, minimum=1)
        self.lineage = []
        self._pending = {}
        self._checked_size = False
        super().__init__(
            time_attr=time_attr, metric=metric, mode=mode, perturbation_interval=every,
            custom_explore_fn=self._explore_is_planned, log_config=False, synch=True)

    @staticmethod
    def _explore_is_planned(config):
        raise AssertionError("a SynchronousSelection's select decides every new config")

    # ----------------------------------------------------------------- for subclasses
    def check_size(self, size: int) -> None:
        """Raises if `size` trials cannot be selected among; called before any trial runs."""

    def select(self, tune_controller, trials) -> dict:
        raise NotImplementedError

    def restart(self, tune_controller, trial, source, config) -> None:
        """`trial` restarts from `source`'s checkpoint at this barrier with `config`."""
        self._pending[trial] = config
        self._exploit(tune_controller, trial, source)

    # ----------------------------------------------------------------- checks
    def set_search_properties(self, metric, mode, **spec) -> bool:
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(
                f"{type(self).__name__} needs a metric and mode 'min' or 'max' (here or in "
                f"tune.TuneConfig), got metric={self._metric!r}, mode={self._mode!r}"
            )
        super().on_trial_add(tune_controller, trial)

    # ----------------------------------------------------------------- the barrier
    def on_trial_result(self, tune_controller, trial, result):
        """Pauses each trial when it reaches the next selection (pausing saves and registers
        its checkpoint); the selection waits for `choose_trial_to_run`."""
        for name in (self._time_attr, self._metric):
            if name not in result:
                raise RuntimeError(
                    f"{type(self).__name__} needs {name!r} in every result; trial "
                    f"{trial.trial_id} reported {sorted(result)}"
                )
        state = self._trial_state[trial]
        time = result[self._time_attr]
        if time - state.last_perturbation_time < self._perturbation_interval:
            return self.CONTINUE
        self._save_trial_state(state, time, result, trial)
        return self.PAUSE

    def choose_trial_to_run(self, tune_controller):
        if not self._checked_size:
            # Ray adds every trial of a basic search (up to 200) before it starts the first,
            # so the population's size is known here, before any trial runs.
            self.check_size(len(tune_controller.get_trials()))
            self._checked_size = True
        live = tune_controller.get_live_trials()
        if live and all(
            trial.status == trial.PAUSED and not trial.is_saving
            and self._trial_state[trial].last_train_time >= self._next_perturbation_sync
            for trial in live
        ):
            trials = sorted(live, key=lambda t: t.trial_id)
            for trial in trials:
                state = self._trial_state[trial]
                # Every checkpoint as it is at the barrier, before any restart changes a
                # trial's latest one (a restarted trial may be another's source).
                state.last_checkpoint = trial.checkpoint
                state.last_perturbation_time = state.last_train_time
            record = self.select(tune_controller, trials)
            self.lineage.append(record)
            self._write_lineage(trials[0], record)
            self._next_perturbation_sync = max(
                self._next_perturbation_sync + self._perturbation_interval,
                max(self._trial_state[t].last_train_time for t in trials))
        return super().choose_trial_to_run(tune_controller)

    def checkpoint_of(self, trial):
        """`trial`'s checkpoint at this barrier; raises if it reported none."""
        checkpoint = self._trial_state[trial].last_checkpoint
        if checkpoint is None:
            raise RuntimeError(
                f"trial {trial.trial_id} has no checkpoint: a {type(self).__name__} trainable "
                "must pass checkpoint=... to every tune.report"
            )
        return checkpoint

    def result_of(self, trial) -> dict:
        """`trial`'s result at this barrier."""
        return self._trial_state[trial].last_result

    def _get_new_config(self, trial, trial_to_clone):
        return self._pending.pop(trial), {}

    def _write_lineage(self, trial, record):
        path = getattr(trial, "local_experiment_path", None)
        if path and os.path.isdir(path):
            with open(os.path.join(path, LINEAGE_FILE), "a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")
