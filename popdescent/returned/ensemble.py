"""Ensembles of trained Keras models: greedy ensemble selection on validation data, and the
chosen mixture as one compiled Keras model.

A population ends with several trained models; mixing their predictions costs no training.
`greedy_selection` is Caruana et al.'s ensemble selection (ICML 2004): starting from nothing,
add -- with replacement -- the candidate whose addition gives the mixture the lowest
validation loss, `size` times, and keep the best prefix. Its first pick is the single best
candidate, so the ensemble it returns never scores worse on the validation data than the best
member alone; with replacement, a good member can weigh more than a weak one.

Outputs are mixed where averaging means something: for members whose loss takes logits
(`from_logits=True`) each output goes through a softmax, the probabilities are averaged and
the mixture outputs their log, which is again a valid logit vector (softmax(log p) = p), so it
is compiled with the members' own loss and drops in wherever a member did. Members whose loss
takes probabilities, or a regression loss, are averaged as they are.
"""

from __future__ import annotations

import keras
import numpy as np

from popdescent.inputs.array_inputs import count_examples, take
from popdescent.validation import check_integer

__all__ = ["greedy_selection", "takes_logits", "mixable_outputs", "mixture_loss",
           "mixture_model", "select_mixture"]

# Probabilities are floored here before their log: a member certain of a wrong class would
# otherwise make the mixture's loss infinite.
_FLOOR = keras.backend.epsilon() ** 2


def greedy_selection(outputs, loss, size) -> np.ndarray:
    """How often each candidate enters the ensemble (Caruana et al., 2004).

    Args:
        outputs: one array per candidate, its predictions on the validation data in the
            space where they are averaged (probabilities for a classifier).
        loss: maps a mixture (an array shaped like one output) to its validation loss.
        size: at most this many additions, with replacement (>= 1).

    Returns:
        An int array, one count per candidate: the prefix of the greedy sequence with the
        lowest loss (the shortest one on ties), so never worse than the best candidate. A
        candidate whose own mixtures are non-finite is never chosen.
    """
    size = check_integer("size", size, minimum=1)
    if not len(outputs):
        raise ValueError("greedy_selection needs at least one candidate, got none")
    total = np.zeros_like(np.asarray(outputs[0], dtype=np.float64))
    counts = np.zeros(len(outputs), dtype=int)
    best_loss, best_counts = np.inf, None
    for step in range(1, size + 1):
        trial = [loss((total + output) / step) for output in outputs]
        trial = np.where(np.isfinite(trial), trial, np.inf)
        chosen = int(np.argmin(trial))
        if not np.isfinite(trial[chosen]):
            break
        total += outputs[chosen]
        counts[chosen] += 1
        if trial[chosen] < best_loss:
            best_loss, best_counts = float(trial[chosen]), counts.copy()
    if best_counts is None:
        raise ValueError("every candidate's validation loss is non-finite: nothing to select")
    return best_counts


def takes_logits(model) -> bool:
    """Whether `model`'s compiled loss reads logits (`from_logits=True`)."""
    loss = model.loss
    if getattr(loss, "from_logits", None) is not None:
        return bool(loss.from_logits)
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return bool(config.get("from_logits", False))


def _to_mixable(output, logits):
    return keras.ops.softmax(output, axis=-1) if logits else output


def _from_mixable(mixture, logits):
    return keras.ops.log(keras.ops.maximum(mixture, _FLOOR)) if logits else mixture


def mixable_outputs(models, x, batch_size=256) -> list:
    """Each model's predictions on `x` (inference mode, in batches) in the space where they
    are averaged: softmax probabilities for a logits loss, else the outputs themselves."""
    count = count_examples(x)
    outputs = []
    for model in models:
        logits = takes_logits(model)
        parts = [keras.ops.convert_to_numpy(_to_mixable(
            model(take(x, slice(start, start + batch_size)), training=False), logits))
            for start in range(0, count, batch_size)]
        outputs.append(np.concatenate(parts).astype(np.float64))
    return outputs


def mixture_loss(template, y):
    """`loss(mixture)`: `template`'s compiled loss of a mixture of mixable outputs on labels
    `y` (the mixture mapped back to logits where the loss takes them)."""
    logits = takes_logits(template)
    compiled = template.loss
    function = keras.losses.get(compiled) if isinstance(compiled, str) else compiled

    def loss(mixture):
        prediction = _from_mixable(keras.ops.convert_to_tensor(mixture, "float32"), logits)
        return float(keras.ops.convert_to_numpy(function(y, prediction)))

    return loss


def mixture_model(models, weights=None, name="ensemble") -> keras.Model:
    """A compiled `keras.Model` whose output is the `weights`-weighted mean of the models'
    mixable outputs (mapped back to logits for a logits loss), over independent copies of
    the models (training them further does not change it), compiled with the first model's
    loss and metrics, so that its `evaluate` returns what a member's does."""
    weights = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(models) or not (weights >= 0).all() or not weights.sum() > 0:
        raise ValueError(f"weights must be one non-negative number per model with a positive "
                         f"sum, got {weights.tolist()} for {len(models)} models")
    pairs = [(model, w) for model, w in zip(models, weights / weights.sum()) if w > 0]
    template = pairs[0][0]
    logits = takes_logits(template)
    inputs = [keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
              for tensor in template.inputs]
    single = inputs[0] if len(inputs) == 1 else inputs
    mixed = None
    for position, (model, weight) in enumerate(pairs):
        copy = _independent_copy(model, f"{name}_member_{position}")
        term = keras.ops.multiply(_to_mixable(copy(single), logits), float(weight))
        mixed = term if mixed is None else keras.ops.add(mixed, term)
    ensemble = keras.Model(single, _from_mixable(mixed, logits), name=name)
    config = template.get_compile_config() or {}
    ensemble.compile(loss=template.loss,
                     metrics=keras.saving.deserialize_keras_object(config.get("metrics")))
    return ensemble


def select_mixture(candidates, validation_data, size, batch_size=256):
    """Greedy selection of up to `size` additions among `candidates` (compiled models) on
    `validation_data` = (x, y): (the counts, the mixture's validation loss)."""
    x, y = validation_data
    outputs = mixable_outputs(candidates, x, batch_size)
    loss = mixture_loss(candidates[0], y)
    counts = greedy_selection(outputs, loss, size)
    mixture = sum(c * o for c, o in zip(counts, outputs)) / counts.sum()
    return counts, loss(mixture)


def _independent_copy(model, name):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.name = name  # clones keep their original's name; a functional model needs unique ones
    return copy
