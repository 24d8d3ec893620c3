"""`ReturnedModels`: what a `Population` gives back after training.

A mixin of `Population`, as `Resizing` is: the best member as a plain compiled model, the
members mixed into an ensemble or averaged into a soup
(`popdescent.returned.population_ensembles`), a member's learning rate replayed as a schedule
(`popdescent.returned.schedules`), and the members a strategy has finished
(`popdescent.population.finished`), among which all of these choose once there are any. It
reads the population's `members`, `fitness`, `priors` and `live_hyperparameters`.
"""

from __future__ import annotations

import keras

from popdescent.population.live_regularization import carry_values

__all__ = ["ReturnedModels"]


class ReturnedModels:
    """The returned-model surface of a `Population` (see the module docstring)."""

    def finish_member(self, slot, weights, loss, gradient_steps, start, start_point=None,
                      own_steps=None):
        """Keeps an independent copy of member `slot` holding `weights` (its best check's,
        whose validation loss is `loss`) among `finished_members`; the member itself is
        untouched (a strategy lets it leave the fused step or restarts it)."""
        from popdescent.population.finished import FinishedMember, finished_copy

        origin = int(self.origins[slot])
        hyperparameters = self.hyperparameters_of(slot)
        model = finished_copy(self.members[slot], weights, origin)
        carry_values(model, hyperparameters)
        entry = FinishedMember(
            origin=origin, model=model,
            loss=float(loss), gradient_steps=int(gradient_steps),
            hyperparameters=hyperparameters, start=str(start),
            start_point=start_point, own_steps=None if own_steps is None else int(own_steps))
        self.set_finished([*self.finished_members, entry])
        return entry

    def set_finished(self, finished) -> None:
        """Replaces `finished_members` (a backup restores them so)."""
        self.finished_members = list(finished)
        while self._finished_models:
            self._finished_models.pop()
        self._finished_models.extend(entry.model for entry in self.finished_members)

    def best_model(self) -> keras.Model:
        """A plain compiled `keras.Model`: an independent copy of the fittest member, compiled
        like it with an optimizer at its live learning rate (its base rate times the scale of
        Keras' learning-rate callbacks; fresh optimizer state), its layers at its tuned
        dropout and augmentation (`popdescent.population.live_regularization.carry_values`). After
        members finished (`finished_members`), the finished member with the lowest validation
        loss."""
        if self.finished_members:
            return self._best_finished_copy()
        index = self.best_index()
        member = self.members[index]
        copy = keras.models.clone_model(member)
        copy.set_weights(member.get_weights())
        copy.compile_from_config(member.get_compile_config())
        carry_values(copy, self.hyperparameters_of(index))
        if "learning_rate" in self.priors:
            # The base rate times the scale Keras' learning-rate callbacks set (as a model's
            # optimizer keeps what ReduceLROnPlateau set), not the budget schedule's last value.
            copy.optimizer.learning_rate = (self.hyperparameters_of(index)["learning_rate"]
                                            * (self.live_hyperparameters.scale_value() or 1.0))
        return copy

    def ensemble_model(self, k=None, validation_data=None, selection="greedy") -> keras.Model:
        """One compiled `keras.Model` mixing the predictions of several members (probabilities
        averaged for a classifier; see `popdescent.returned.ensemble`).

        Args:
            k: at most this many members (default: all of them). With "greedy", at most `k`
                additions with replacement, so a member can weigh more than another.
            validation_data: (x, y) the greedy selection scores mixtures on; default the
                validation data of the last `fit` (what strategies select on).
            selection: "greedy" (default): greedy ensemble selection with replacement on the
                validation data (Caruana et al., 2004), never worse there than the best
                member alone; "fittest": the `k` fittest by the last recorded fitness,
                averaged equally (what this method did before 2026-12-05).

        The model has `members_chosen` (the member indices it mixes) and `member_weights`
        (each one's share of the mixture).
        """
        from popdescent.returned.population_ensembles import ensemble_of_members

        return ensemble_of_members(self, k, validation_data, selection)

    def _best_finished_copy(self):
        best = min(self.finished_members, key=lambda entry: entry.loss)
        copy = keras.models.clone_model(best.model)
        copy.set_weights(best.model.get_weights())
        copy.compile_from_config(best.model.get_compile_config())
        if "learning_rate" in self.priors:
            copy.optimizer.learning_rate = (best.hyperparameters["learning_rate"]
                                            * (self.live_hyperparameters.scale_value() or 1.0))
        return copy

    def soup_model(self, validation_data=None) -> keras.Model:
        """One plain compiled `keras.Model` whose weights average members that share a starting
        point: the greedy soup of Wortsman et al. (2022) over the finished members that started
        from the best one's weights, each kept only when it lowers the validation loss; the
        best member alone when none does (see `popdescent.returned.soup`). The model has
        `members_chosen` (the origins averaged)."""
        from popdescent.returned.population_ensembles import soup_of_members

        return soup_of_members(self, validation_data)

    def exported_schedule(self, index=None):
        """The learning rate member `index` (default the fittest) trained with at each of its
        gradient steps, through every copy from a parent, as a Keras LearningRateSchedule,
        and its L2 rate per step (None when l2 is not tuned); see
        `popdescent.returned.schedules`."""
        from popdescent.returned.schedules import lineage_schedule

        return lineage_schedule(self, self.best_index() if index is None else index)

    def exported_hyperparameters(self, index=None) -> dict:
        """Name -> the value of every tuned hyperparameter (learning rate as it ran, dropout,
        augmentation, label smoothing, L2, ...) at each of member `index`'s (default the
        fittest's) own gradient steps, through every copy from a parent: what one fresh model
        replays to train as the member did (see `popdescent.returned.schedules.lineage_values`)."""
        from popdescent.returned.schedules import lineage_values

        return lineage_values(self, self.best_index() if index is None else index)

