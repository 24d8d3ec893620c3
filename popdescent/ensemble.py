"""`ensemble_model`: the k fittest members of a population as one compiled Keras model.

A population ends with k trained models; averaging their predicted probabilities costs no
training at all. The ensemble is a functional model over fresh copies of the members (so
training the population further does not change it). For members whose loss takes logits
(`from_logits=True`), each member's output goes through a softmax, the probabilities are
averaged, and the ensemble outputs their log, which is again a valid logit vector
(softmax(log p) = p): it is compiled with the members' own loss and drops in wherever a
member did. Members whose loss takes probabilities are averaged as they are.
"""

from __future__ import annotations

import keras
import numpy as np

from popdescent.validation import check_integer

__all__ = ["ensemble_model"]


def _takes_logits(member) -> bool:
    loss = member.loss
    if getattr(loss, "from_logits", None) is not None:
        return bool(loss.from_logits)
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    return bool(config.get("from_logits", False))


def _independent_copy(member, name):
    copy = keras.models.clone_model(member)
    copy.set_weights(member.get_weights())
    copy.name = name  # clones keep their original's name; a functional model needs unique ones
    return copy


def ensemble_model(population, k=None) -> keras.Model:
    """A compiled `keras.Model` averaging the predicted probabilities of the `k` fittest
    members (by the last recorded fitness; default every member), with the members' loss."""
    k = population.size if k is None else check_integer(
        "k", k, minimum=1, maximum=population.size)
    if population.fitness is None:
        raise ValueError("no fitness recorded yet: fit with a strategy callback first, or call "
                         "pop.evaluate_fitness(x_val, y_val)")
    fitness = np.where(np.isnan(population.fitness), -np.inf, population.fitness)
    chosen = [int(i) for i in np.argsort(-fitness, kind="stable")[:k]]
    members = [_independent_copy(population.member(i), f"member_{i}") for i in chosen]
    template = population.member(chosen[0])
    logits = _takes_logits(template)
    inputs = [keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
              for tensor in template.inputs]
    single = inputs[0] if len(inputs) == 1 else inputs
    outputs = [member(single) for member in members]
    if logits:
        outputs = [keras.ops.softmax(output, axis=-1) for output in outputs]
    mean = keras.ops.mean(keras.ops.stack(outputs), axis=0)
    if logits:
        mean = keras.ops.log(keras.ops.maximum(mean, keras.backend.epsilon() ** 2))
    ensemble = keras.Model(single, mean, name=f"ensemble_of_{k}")
    ensemble.compile(loss=template.loss, metrics=None)
    ensemble.members_chosen = chosen
    return ensemble
