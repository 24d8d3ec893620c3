"""The untuned baseline as a benchmark method: `run(context) -> MethodResult`.

What a Keras user does first: one paper model compiled with Adam at one learning rate, trained
for the whole budget (`budget.member_steps` gradient steps, all spent on one model), keeping the
checkpoint with the lowest validation loss. The learning rate is every method's default, 1e-3;
with `context.options["lr_range"]` it is the geometric middle of that range (1e-3 is the middle
of the shared range [1e-4, 1e-2]). With regularization, the model carries the paper's fixed L2
rate of 1e-3 on the hidden Dense kernel (nothing is tuned).

Validation is checked at the population methods' cadence: once per iteration's worth of
member-steps (`steps_per_iteration * population_size` steps), so the curve has a point where
theirs do and the checkpoint is chosen among `budget.iterations` candidates, each measured on
the whole validation half with `validation_loss`. A curve point is the best validation loss so
far: the loss of the model `run` would return at that moment. The batches come from an endless
seeded shuffle of the training set (`baselines.random_search.training_stream`), so exactly the
budget's steps run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras

from baselines.random_search import training_stream
from experiments.core.contract import (
    DEFAULT_LEARNING_RATE,
    MethodContext,
    MethodResult,
    build_context_model,
    geometric_middle,
    learning_rate_range,
    make_optimizer,
)
from experiments.core.evaluation import validation_loss
from experiments.core.models import paper_loss
from popdescent import BudgetSchedule, ScheduledLearningRate
from popdescent.returned.cooldown import CooldownLearningRate, StallCooldown
from popdescent.strategies.budget_aware import DEFAULT_COOLDOWN_PATIENCE
from popdescent.validation import check_integer

__all__ = ["run", "run_decayed", "train_single", "train_model", "SingleRun", "BestCheckpoint",
           "CooledCheckpoint", "FIXED_L2", "compiled_learning_rate", "cooldown_option",
           "run_details"]

# With --regularization the untuned model keeps the paper model's default L2 rate (as ESGD does).
FIXED_L2 = 1e-3


class BestCheckpoint(keras.callbacks.Callback):
    """At the end of every epoch: the model's loss on the whole validation half; keeps the
    weights of the lowest finite one, and records (gradient steps, best loss so far, seconds).
    The loss goes into the epoch's logs as `val_loss` (infinite where it is not finite), so
    callbacks after it (a tuner's checkpoint, a pruner) read the harness's measure.

    Args:
        data: the `DatasetSplits` whose validation half is measured.
        started: `time.perf_counter()` when the run began (the curve's time origin).
    """

    def __init__(self, data, started):
        super().__init__()
        self.data = data
        self.started = float(started)
        self.best_loss = math.inf
        self.best_weights = None
        self.best_steps = None
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        loss = validation_loss(self.model, self.data)
        steps = int(self.model.optimizer.iterations.numpy())
        if math.isfinite(loss) and loss < self.best_loss:
            self.best_loss = loss
            self.best_weights = self.model.get_weights()
            self.best_steps = steps
        best = self.best_loss if self.best_weights is not None else loss
        self.points.append((steps, float(best), time.perf_counter() - self.started))
        if logs is not None:
            logs["val_loss"] = loss if math.isfinite(loss) else math.inf
            logs["val_loss_best"] = best


class StopAtSteps(keras.callbacks.Callback):
    """Ends `fit` after the batch that brings the optimizer to `steps` gradient steps (Keras
    then ends the epoch, so the checkpoint still checks the last weights)."""

    def __init__(self, steps):
        super().__init__()
        self.steps = int(steps)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


class CooledCheckpoint(BestCheckpoint):
    """`BestCheckpoint` for a model on a `ScheduledLearningRate`, with the cool-down that
    `popdescent-budget`'s survivor has (`popdescent.returned.cooldown`): after `patience` checks
    in a row without a new best, the model goes back to its weights at about half of its best
    check's steps (`RewindPoints`), its rate falls linearly from the schedule's value there to
    the schedule's final value over the steps from there to the best check (at least `every`,
    at most what is left), and the run stops when the cool-down is over."""

    def __init__(self, data, started, rate: ScheduledLearningRate, patience, every):
        super().__init__(data, started)
        self.rate = rate
        self.every = int(every)
        self.cooldown = StallCooldown(patience)

    def on_epoch_end(self, epoch, logs=None):
        best_before = self.best_steps
        super().on_epoch_end(epoch, logs)
        model, cooldown, total = self.model, self.cooldown, self.rate.total_steps
        steps = int(model.optimizer.iterations.numpy())
        cooldown.points.offer(steps, model.get_weights)
        if cooldown.over(steps):
            model.stop_training = True
        elif (steps < total and self.best_weights is not None
              and cooldown.update(self.best_steps != best_before)):
            weights, self.rewound_to = cooldown.rewind(steps, self.best_steps, 0, total,
                                                       self.rate.schedule, minimum=self.every)
            model.set_weights(weights)
            model.optimizer.learning_rate = CooldownLearningRate(
                self.rate.learning_rate, cooldown.start, cooldown.length,
                cooldown.from_multiplier, self.rate.schedule.final)
            model.make_train_function(force=True)  # the step reads the new schedule

    def summary(self):
        cooldown = self.cooldown
        return None if not cooldown.begun else {
            "gradient_steps": cooldown.start, "length": cooldown.length,
            "from_gradient_steps": self.rewound_to, "from_multiplier": cooldown.from_multiplier}


def run_decayed(context: MethodContext) -> MethodResult:
    """`adam-decay`: the same single run, its rate following the budget-aware schedule that
    `popdescent-budget` applies to its members (`popdescent.BudgetSchedule()`, over the
    budget's member-steps) with the same cool-down (`CooledCheckpoint`, the library's default
    patience; `options["cooldown_patience"]`: another, or null for none): the single run a
    budget-aware population must beat. Records made before 2026-12-02 had no cool-down."""
    return run(context, schedule=BudgetSchedule(), cooldown_patience=cooldown_option(context))


def cooldown_option(context: MethodContext):
    """`options["cooldown_patience"]` (default: the library's), refused before training."""
    patience = context.options.get("cooldown_patience", DEFAULT_COOLDOWN_PATIENCE)
    if patience is not None:
        check_integer("options['cooldown_patience']", patience, minimum=1)
    return patience


def compiled_learning_rate(context: MethodContext) -> float:
    """The rate a user would pick: the middle of `options["lr_range"]` (validated), else
    every method's default 1e-3."""
    if "lr_range" in context.options:
        return geometric_middle(*learning_rate_range(context))
    return DEFAULT_LEARNING_RATE


@dataclass
class SingleRun:
    """One trained model: `model` holds its best checkpoint's weights; `gradient_steps` ran."""

    model: keras.Model
    gradient_steps: int
    checkpoint: BestCheckpoint
    learning_rate: float


def train_single(context: MethodContext, learning_rate: float, member_steps: int, seed: int,
                 schedule=None, cooldown_patience=None, started=None) -> SingleRun:
    """Trains one Adam model of the context's kind for at most `member_steps` steps (whole
    checks of `steps_per_iteration * population_size` steps; at least one), initialised and
    shuffled from `seed`, at `learning_rate` (on `schedule` over `member_steps`, cooling
    down after `cooldown_patience` checks without a new best); keeps its best checkpoint."""
    started = time.perf_counter() if started is None else started
    keras.utils.set_random_seed(seed)
    if context.regularization:
        model = build_context_model(context, regularization="dense", l2=FIXED_L2)
    else:
        model = build_context_model(context)
    return train_model(model, context, learning_rate, member_steps, seed, schedule,
                       cooldown_patience, started)


def train_model(model, context: MethodContext, learning_rate: float, member_steps: int,
                seed: int, schedule=None, cooldown_patience=None, started=None,
                steps_per_check=None, loss=None, callbacks=(), optimizer=None) -> SingleRun:
    """`train_single`'s recipe on a model built elsewhere (a tuner's trial): compiles `model`
    with Adam at `learning_rate` (on `schedule` over `member_steps`) and `loss` (default the
    paper's), trains it for at most `member_steps` steps on the stream shuffled from `seed`,
    checked on validation every `steps_per_check` steps (default: the population methods'
    cadence), and keeps its best checkpoint. `callbacks` run after the checkpoint, so they
    see its `val_loss` in the epoch's logs. `optimizer` replaces the Adam at `learning_rate`
    (the replay control's, on a replayed per-step schedule; no cool-down then)."""
    started = time.perf_counter() if started is None else started
    budget, data = context.budget, context.data
    if steps_per_check is None:
        steps_per_check = budget.steps_per_iteration * budget.population_size
    checkpoint = BestCheckpoint(data, started)
    if optimizer is None and schedule is not None:
        rate = ScheduledLearningRate(learning_rate, member_steps, schedule)
        optimizer = keras.optimizers.Adam(rate)
        if cooldown_patience is not None:
            checkpoint = CooledCheckpoint(data, started, rate, cooldown_patience,
                                          every=steps_per_check)
    elif optimizer is None:
        optimizer = make_optimizer(learning_rate)
    model.compile(optimizer=optimizer, loss=paper_loss() if loss is None else loss)
    model.fit(
        training_stream(data.x_train, data.y_train, budget.batch_size, seed),
        epochs=math.ceil(member_steps / steps_per_check),
        steps_per_epoch=min(steps_per_check, member_steps),
        # The last check comes after a shorter epoch when the checks do not divide the steps.
        callbacks=[StopAtSteps(member_steps), checkpoint, *callbacks],
        verbose=context.verbose,
        shuffle=False,  # the stream is shuffled already
    )
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)
    return SingleRun(model, int(model.optimizer.iterations.numpy()), checkpoint,
                     float(learning_rate))


def run_details(single: SingleRun, context: MethodContext, schedule, cooldown_patience) -> dict:
    """What a record says of one single run."""
    checkpoint = single.checkpoint
    budget = context.budget
    return {
        "hyperparameters": {"learning_rate": single.learning_rate,
                            **({"l2": FIXED_L2} if context.regularization else {})},
        "schedule": None if schedule is None else schedule.get_config(),
        "steps_per_check": budget.steps_per_iteration * budget.population_size,
        "checks": len(checkpoint.points),
        "best_checkpoint_steps": checkpoint.best_steps,
        "best_validation_loss": (checkpoint.best_loss
                                 if checkpoint.best_weights is not None else None),
        **({"cooldown": checkpoint.summary()} if cooldown_patience is not None else {}),
    }


def run(context: MethodContext, schedule=None, cooldown_patience=None) -> MethodResult:
    """Trains one Adam model for the whole budget; returns its best checkpoint on validation.
    With `schedule` (a `popdescent.BudgetSchedule`) the rate follows it over the budget, and
    with `cooldown_patience` too, the model cools down when it stalls (`CooledCheckpoint`)."""
    single = train_single(context, compiled_learning_rate(context), context.budget.member_steps,
                          context.seed, schedule, cooldown_patience)
    return MethodResult(model=single.model, gradient_steps=single.gradient_steps,
                        curve=single.checkpoint.points,
                        details=run_details(single, context, schedule, cooldown_patience))
