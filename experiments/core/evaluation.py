"""How the harness and the methods measure a model: logits, cross-entropy and accuracy, the
curve's validation loss, and the harness's evaluation of a returned model (the only place test
data is read)."""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["EVALUATION_BATCH_SIZE", "TRAIN_EVALUATION_IMAGES", "predict_logits",
           "loss_and_accuracy", "validation_loss", "evaluate", "evaluate_paper_protocol"]

# Images per forward pass when the harness or a curve point evaluates a model: big enough to
# amortise the per-call overhead, small enough to stay far from memory limits.
EVALUATION_BATCH_SIZE = 500
TRAIN_EVALUATION_IMAGES = 5000
# The reference code's evaluation subset: np.random.seed(0); np.random.choice(4999, 1600).
PAPER_PROTOCOL_IMAGES = 1600
PAPER_PROTOCOL_POOL = 4999


def predict_logits(model: keras.Model, x) -> np.ndarray:
    """The model's outputs on `x` (inference mode), as float64.

    Plain eager calls on batches of 500: no `predict` function is traced per model and per
    last-batch shape, which matters when a curve point or the harness scores many models.
    """
    batches = [
        keras.ops.convert_to_numpy(model(x[start:start + EVALUATION_BATCH_SIZE], training=False))
        for start in range(0, len(x), EVALUATION_BATCH_SIZE)
    ]
    return np.concatenate(batches).astype(np.float64)


def loss_and_accuracy(model: keras.Model, x, y) -> tuple:
    """(mean cross-entropy, accuracy) of the logits-output `model` on (x, y).

    The pure data loss, without any weight penalty, so runs with and without regularization
    and every method are measured alike (the reference code's grid search and KerasTuner
    reported `evaluate()` losses that included the L2 penalty; PopDescent's did not).
    """
    logits = predict_logits(model, x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = np.asarray(y).reshape(-1).astype(np.int64)
    losses = -log_probabilities[np.arange(len(labels)), labels]
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    return float(np.mean(losses)), accuracy


def validation_loss(model: keras.Model, data) -> float:
    """A curve point: the model's cross-entropy on the whole validation half of `data`."""
    return loss_and_accuracy(model, data.x_val, data.y_val)[0]


def _fixed_subset(count, size, seed=0):
    chosen = np.random.default_rng(seed).choice(count, size=min(size, count), replace=False)
    return np.sort(chosen)


def evaluate(model, data) -> dict:
    """The harness's honest evaluation of the returned model (test data seen only here)."""
    test_loss, test_accuracy = loss_and_accuracy(model, data.x_test, data.y_test)
    val_loss, val_accuracy = loss_and_accuracy(model, data.x_val, data.y_val)
    rows = _fixed_subset(len(data.x_train), TRAIN_EVALUATION_IMAGES)
    train_loss, train_accuracy = loss_and_accuracy(
        model, data.x_train[rows], data.y_train[rows]
    )
    return {
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "validation_loss": val_loss,
        "validation_accuracy": val_accuracy,
        "test_images": len(data.x_test),
        "train_images_evaluated": len(rows),
    }


def evaluate_paper_protocol(result, data) -> dict:
    """The reference code's evaluation, for side-by-side comparison only: it selects on TEST."""
    candidates = list(result.candidates) or [result.model]
    state = np.random.RandomState(0)  # as np.random.seed(0) in the reference code
    pool = min(PAPER_PROTOCOL_POOL, len(data.x_test), len(data.x_train))
    rows = state.choice(pool, size=min(PAPER_PROTOCOL_IMAGES, pool), replace=False)
    scores = [
        loss_and_accuracy(model, data.x_test[rows], data.y_test[rows])
        for model in candidates
    ]
    chosen = int(np.argmin([loss for loss, _ in scores]))
    train_loss, _ = loss_and_accuracy(
        candidates[chosen], data.x_train[rows], data.y_train[rows]
    )
    return {
        "note": "reference-code protocol: the candidate with the lowest loss on a 1,600-image "
        "subset of the test half is reported (selection on test data)",
        "test_loss": scores[chosen][0],
        "test_accuracy": scores[chosen][1],
        "train_loss": train_loss,
        "chosen_candidate": chosen,
        "candidates": len(candidates),
        "test_images": len(rows),
    }
