"""KerasTuner RandomSearch as a benchmark method: `run(context) -> MethodResult` (the tuner
and its bookkeeping are `baselines.random_search`).

The real `keras_tuner.RandomSearch`, set up as the paper describes it: 25 trials of 2
executions each, learning rate log-uniform in [1e-4, 1e-2] (or `options["lr_range"]`; Adam,
every method's local optimizer), with regularization also an L2 rate log-uniform in [1e-6,
1e-1] on the hidden Dense kernel (`experiments.methods.search_space.paper_space`, the first
dimensions of the other tuners' space; the paper's model, without the user's guess of
`options["guess"]`), trials scored on validation loss; then the best configuration
is retrained for up to 20 epochs with EarlyStopping(val_loss, patience 2,
restore_best_weights=True).

Each execution and each retraining epoch is one "epoch" of `steps_per_epoch` steps: a full
pass over the training data at paper scale (938 steps on Fashion-MNIST, as in the paper),
shortened by the budget's share of the paper-scale budget at smaller scales. The data is a
repeating `tf.data` stream, because Keras 3's `fit(x, y, steps_per_epoch=S)` on arrays stops
when the arrays run out instead of wrapping around. Gradient steps are counted from what ran:
each trained model's optimizer iteration count, searches and retraining alike.

Departures from the paper's code, on purpose: objective val_loss (the code used val_accuracy),
L2 sampled log-uniformly (the code: linearly on [1e-5, 0.1]), retraining steps counted in the
budget (the paper left them out), restore_best_weights=True.
"""

from __future__ import annotations

import math
import time

import keras

from baselines.random_search import (
    PATIENCE,
    BestLossCurve,
    RecordingHyperModel,
    random_search_tuner,
    training_stream,
)
from experiments.core.contract import (
    LEARNING_RATE_RANGE,
    MethodContext,
    MethodResult,
    get_budget,
    learning_rate_range,
    make_optimizer,
    model_name,
)
from experiments.core.evaluation import validation_loss
from experiments.core.models import INPUT_SHAPES, build_model, paper_loss
from experiments.methods.search_space import keras_tuner_values, paper_space

__all__ = ["run", "PaperHyperModel", "search_schedule", "SEARCH"]

# (trials, executions per trial, most retraining epochs) per scale; smoke runs in seconds.
SEARCH = {"paper": (25, 2, 20), "small": (25, 2, 20), "smoke": (2, 2, 3)}


class PaperHyperModel(RecordingHyperModel):
    """The paper's model with a tuned Adam learning rate (and L2 rate); `fit` records every
    execution's hyperparameters, gradient steps, validation loss and the seconds since
    `started` (default: when the hypermodel is made) in `executions`. `model` is "cnn" (the
    dataset's CNN) or "mlp" (the tiny stand-in for tests, see `model_name`)."""

    def __init__(self, dataset, regularization, data, learning_rate_range=LEARNING_RATE_RANGE,
                 started=None, model="cnn"):
        super().__init__(lambda model: validation_loss(model, data), started,
                         name="paper_model")
        self.dataset = dataset
        self.regularization = regularization
        self.data = data
        self.learning_rate_range = tuple(float(rate) for rate in learning_rate_range)
        self.model_name = dataset if model == "cnn" else "mlp"
        self.input_shape = INPUT_SHAPES[dataset] if model == "mlp" else None

    def build(self, hp):
        values = keras_tuner_values(hp, paper_space(self.learning_rate_range,
                                                    self.regularization))
        if self.regularization:
            model = build_model(self.model_name, regularization="dense", l2=values["l2"],
                                input_shape=self.input_shape)
        else:
            model = build_model(self.model_name, regularization="none",
                                input_shape=self.input_shape)
        model.compile(optimizer=make_optimizer(values["learning_rate"]), loss=paper_loss())
        return model


def search_schedule(context: MethodContext) -> dict:
    """Trials, executions, steps per epoch and retraining epochs at the context's scale."""
    trials, executions, retrain_epochs = SEARCH[context.scale]
    paper = get_budget(context.dataset, "paper")
    share = context.budget.member_steps / paper.member_steps
    full_epoch = math.ceil(len(context.data.x_train) / context.budget.batch_size)
    return {"trials": trials, "executions_per_trial": executions,
            "steps_per_epoch": max(1, round(full_epoch * share)),
            "retrain_epochs": retrain_epochs}


def run(context: MethodContext) -> MethodResult:
    """Random search with KerasTuner, then the best configuration retrained."""
    started = time.perf_counter()
    search_space = learning_rate_range(context)  # validates lr_range before training
    model_name(context)  # validates the model option before training
    keras.utils.set_random_seed(context.seed)
    schedule = search_schedule(context)
    data, budget = context.data, context.budget
    hypermodel = PaperHyperModel(context.dataset, context.regularization, data, search_space,
                                 started, model=context.options.get("model", "cnn"))
    tuner = random_search_tuner(hypermodel, schedule["trials"],
                                schedule["executions_per_trial"], context.seed,
                                context.work_dir / "keras_tuner")
    stream = training_stream(data.x_train, data.y_train, budget.batch_size, context.seed)
    fit_arguments = {"steps_per_epoch": schedule["steps_per_epoch"],
                     "validation_data": (data.x_val, data.y_val),
                     "validation_batch_size": 500, "verbose": context.verbose,
                     "shuffle": False}  # the stream is shuffled already
    tuner.search(stream, epochs=1, **fit_arguments)

    curve, steps, best = [], 0, math.inf
    per_trial = schedule["executions_per_trial"]
    for start in range(0, len(hypermodel.executions), per_trial):
        for execution in hypermodel.executions[start:start + per_trial]:
            steps += execution["gradient_steps"]
            best = min(best, execution["validation_loss"])
        curve.append((steps, float(best), execution["seconds"]))
    search_steps = steps

    best_hyperparameters = tuner.get_best_hyperparameters(1)[0]
    keras.utils.set_random_seed(context.seed)
    model = hypermodel.build(best_hyperparameters)
    retraining = BestLossCurve(lambda trained: validation_loss(trained, data), search_steps,
                               started=started)
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE,
                                             restore_best_weights=True)
    history = model.fit(stream, epochs=schedule["retrain_epochs"],
                        callbacks=[stopping, retraining], **fit_arguments)
    retrain_steps = int(model.optimizer.iterations.numpy())
    curve.extend(retraining.points)
    completed = [trial for trial in tuner.oracle.trials.values() if trial.status == "COMPLETED"]
    return MethodResult(
        model=model,
        gradient_steps=search_steps + retrain_steps,
        curve=curve,
        details={
            **schedule,
            "trials_completed": len(completed),
            "search_steps": search_steps,
            "retrain_steps": retrain_steps,
            "retrain_epochs_run": len(history.epoch),
            "hyperparameters": {k: float(v) for k, v in best_hyperparameters.values.items()},
            "best_trial_score": float(tuner.oracle.get_best_trials(1)[0].score),
            "executions": hypermodel.executions,
            "objective": "val_loss",
        },
    )
