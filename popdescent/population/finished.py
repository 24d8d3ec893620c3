"""`FinishedMembers`: the members a population has finished training, kept beside it.

A budget-aware population that spends its budget past the horizon one model can use trains
members one after another; each, when done, leaves the fused step with the weights of its best
check. They are what `best_model`, `ensemble_model` and `soup_model` choose among. Each is an
independent compiled Keras model with what the choice needs: its validation loss (measured by
the strategy on its fitness data, the same samples for all), its origin, its hyperparameters,
how it started ("survivor", "child", "fresh") and the key of the weights it started from
(members that share one can be averaged into a soup).

The container is plain data plus models: backups store each model's serialized config and
weights, and a population's `save` writes them with the population.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import keras
import numpy as np

from popdescent.population import members as members_lib

__all__ = ["FinishedMember", "finished_copy", "finished_state", "restore_finished"]


@dataclass
class FinishedMember:
    """One finished member (see the module docstring). `start_point` is None for a member
    that shares its starting weights with no other."""

    origin: int
    model: keras.Model = field(repr=False)
    loss: float
    gradient_steps: int
    hyperparameters: dict
    start: str
    start_point: str | None = None
    own_steps: int | None = None

    def info(self) -> dict:
        """Everything but the model, JSON-serialisable."""
        data = asdict(self)
        data.pop("model")
        return data


def finished_copy(member: keras.Model, weights, origin: int) -> keras.Model:
    """An independent compiled copy of `member` holding `weights`, built in `origin`'s name
    scope (its weight paths stay distinct from the live members')."""
    with members_lib.member_scope(origin):
        copy = keras.models.clone_model(member)
    copy.set_weights(weights)
    copy.compile_from_config(member.get_compile_config())
    return copy


def finished_state(finished) -> tuple:
    """(arrays, meta) for a backup: each model's weights and its serialized config."""
    arrays, meta = {}, []
    for position, entry in enumerate(finished):
        for index, weight in enumerate(entry.model.get_weights()):
            arrays[f"finished_{position:03d}_{index:04d}"] = np.asarray(weight)
        meta.append({**entry.info(),
                     "config": json.loads(json.dumps(
                         keras.saving.serialize_keras_object(entry.model)))})
    return arrays, meta


def restore_finished(arrays, meta, weights=True) -> list:
    """The `FinishedMember`s of `finished_state`'s output (without their weights when
    `weights` is False: a loaded population's come with its own)."""
    finished = []
    for position, entry in enumerate(meta or []):
        entry = dict(entry)
        with members_lib.member_scope(entry["origin"]):
            model = keras.saving.deserialize_keras_object(entry.pop("config"))
        if weights:
            prefix = f"finished_{position:03d}_"
            model.set_weights([arrays[name] for name in sorted(arrays)
                               if name.startswith(prefix)])
        finished.append(FinishedMember(model=model, **entry))
    return finished
