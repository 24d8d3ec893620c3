"""`MemberBoard`: each member of a `Population` as its own TensorBoard run, with HParams.

Keras' `TensorBoard` callback sees one model: it logs the population's aggregate and the
strategies' per-member keys (`loss_0`, `learning_rate_0`, ...) as separate tags of one run,
so members' curves cannot be overlaid and the HParams dashboard is empty. This callback writes
one run per member instead, so TensorBoard draws the members' curves in one chart and lists
their hyperparameters side by side in its HParams table.
"""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf

__all__ = ["MemberBoard"]


class MemberBoard(keras.callbacks.Callback):
    """Writes every member's loss, fitness and hyperparameters to its own TensorBoard run.

    After every iteration, run `member_<origin>` under `log_dir` gets the scalars `loss`
    (the member's mean training loss of the iteration), `fitness` (when a strategy measured
    it) and one scalar per live hyperparameter. The run is named by the member's origin, the
    slot it was created in, which stays its name when a shrinking population renumbers the
    slots. When training ends each run also gets an HParams record of the member's final
    hyperparameters and metrics, and `log_dir` the HParams experiment, so TensorBoard's
    HParams dashboard tables the members.

    `Population.fit` runs strategies first, so the fitness they log this iteration is here.

    Args:
        log_dir: directory of the runs (created if missing), e.g. the `log_dir` given to
            Keras' `TensorBoard`, which keeps the population's aggregate in its own runs.

    Example:

    ```python
    pop.fit(x, y, epochs=10, steps_per_epoch=50, validation_data=(x_val, y_val),
            callbacks=[pd.PopDescent(), pd.MemberBoard("logs/members")])
    # tensorboard --logdir logs/members
    ```
    """

    def __init__(self, log_dir):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a path, got {type(log_dir).__name__}")
        self.log_dir = os.fspath(log_dir)
        self._writers = {}
        self._last = {}

    def _writer(self, origin):
        if origin not in self._writers:
            self._writers[origin] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, f"member_{origin}"))
        return self._writers[origin]

    def _member_scalars(self, index, logs):
        scalars = {"loss": logs.get(f"loss_{index}")}
        if f"fitness_{index}" in logs:
            scalars["fitness"] = logs[f"fitness_{index}"]
        scalars.update(self.model.hyperparameters_of(index))
        return {name: float(value) for name, value in scalars.items()
                if value is not None and math.isfinite(float(value))}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = int(self.model.gradient_steps)
        for index, origin in enumerate(self.model.origins):
            scalars = self._member_scalars(index, logs)
            with self._writer(origin).as_default(step=step):
                for name, value in scalars.items():
                    tf.summary.scalar(name, value)
            self._last[origin] = scalars

    def on_train_end(self, logs=None):
        from tensorboard.plugins.hparams import api as hparams_api

        names = sorted(self.model.priors)
        metrics = ("loss", "fitness")
        with tf.summary.create_file_writer(self.log_dir).as_default():
            hparams_api.hparams_config(
                hparams=[hparams_api.HParam(name) for name in names],
                metrics=[hparams_api.Metric(name, display_name=name) for name in metrics])
        for origin, scalars in self._last.items():
            with self._writer(origin).as_default():
                hparams_api.hparams({name: scalars[name] for name in names if name in scalars},
                                    trial_id=f"member_{origin}")
        for writer in self._writers.values():
            writer.flush()
