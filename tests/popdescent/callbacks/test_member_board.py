"""MemberBoard: every member is its own TensorBoard run with its curves and an HParams record,
so TensorBoard shows members side by side (issue 15)."""

import glob

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

import popdescent as pd
from tests.helpers.models import make_model


def scalars_and_hparams(run_directory):
    """{tag: [(step, value)]} of the run's scalars, and its HParams session values."""
    scalars, hparams = {}, {}
    for path in glob.glob(str(run_directory / "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        hparams = {name: v.number_value for name, v in
                                   data.session_start_info.hparams.items()}
                elif value.HasField("tensor"):
                    scalars.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
    return scalars, hparams


def test_each_member_is_a_run_with_its_own_curves_and_final_hyperparameters(data, tmp_path):
    x, y, x_val, y_val = data
    pop = pd.Population(make_model(), size=3, seed=0,
                        hyperparameters={"learning_rate": pd.LogUniform(1e-3, 1e-1)})
    losses = []

    class Losses(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append([logs[f"loss_{i}"] for i in range(3)])

    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=2, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.MemberBoard(tmp_path), pd.PopDescent(elites=1, cv_batch_size=16),
                       Losses()])

    for index in range(3):
        scalars, hparams = scalars_and_hparams(tmp_path / f"member_{index}")
        # The member's own loss at every iteration, stepped by the population's step count.
        assert [step for step, _ in scalars["loss"]] == [6, 12, 18]
        np.testing.assert_allclose([v for _, v in scalars["loss"]],
                                   [row[index] for row in losses], rtol=1e-6)
        assert len(scalars["fitness"]) == 3
        # The HParams record holds the member's final learning rate, mutated or not.
        final_rate = pop.hyperparameters_of(index)["learning_rate"]
        assert scalars["learning_rate"][-1][1] == pytest.approx(final_rate, rel=1e-6)
        assert hparams == {"learning_rate": pytest.approx(final_rate, rel=1e-6)}
    # Different members, different curves: the runs are not copies of one another.
    assert len({tuple(v for _, v in scalars_and_hparams(tmp_path / f"member_{i}")[0]["loss"])
                for i in range(3)}) == 3


def test_a_bad_log_dir_is_refused_at_construction():
    with pytest.raises(TypeError, match="log_dir must be a path, got int"):
        pd.MemberBoard(3)
