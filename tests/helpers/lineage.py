"""Follows the learning rates each member's weights were trained with, from outside the
library: what `Population.exported_schedule` must reproduce."""

import keras


class RateRecorder(keras.callbacks.Callback):
    """After every batch, each slot's optimizer rate (the rate that batch's update used)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append([float(m.optimizer.learning_rate.numpy()) for m in self.model.members])


class FollowLines(keras.callbacks.Callback):
    """Each slot's line of rates, followed forward: every batch appends its rate; a
    replacement copies the parent's line (a restart empties it); a shrink drops the lines
    that leave; a survivor that goes back to the weights of an earlier check (a cool-down's
    rewind, the restored best) goes back to the line it had then. Put it after `recorder`."""

    def __init__(self, recorder):
        super().__init__()
        self.recorder = recorder
        self.lines = None
        self.at_checks = {}  # member-steps of a survivor check -> the survivor's line then

    def on_train_batch_end(self, batch, logs=None):
        rates = self.recorder.rates[-1]
        if self.lines is None:
            self.lines = [[] for _ in rates]
        for slot, rate in enumerate(rates):
            self.lines[slot].append(rate)

    def on_epoch_end(self, epoch, logs=None):
        entry = self.model.lineage[-1]
        old = [list(line) for line in self.lines]
        for slot, member in enumerate(entry["members"]):
            if member["replaced"]:
                self.lines[slot] = [] if member.get("restarted") else list(old[member["parent"]])
        if "kept" in entry:
            self.lines[:] = [self.lines[i] for i in entry["kept"]]
        if "survivor_loss" in entry:
            self.at_checks[entry["gradient_steps"]] = list(self.lines[0])
        if "cooldown" in entry:
            self.lines[0] = list(self.at_checks[entry["cooldown"]["from_gradient_steps"]])
        if "restored_best" in entry:
            self.lines[0] = list(self.at_checks[entry["restored_best"]["gradient_steps"]])
