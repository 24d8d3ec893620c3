"""keras/src/callbacks/tensorboard_test.py (keras 3.15.1) on a Population.

A population logs more than a model: each member's loss (`loss_0`, ...), the population's
`best_loss` and `nonfinite_members`, and the member-step count. Upstream asserts the exact set
of scalar tags; here its set must be among those written and every other tag one of the
population's own (`population_tags`). Not ported: the projector (its config names one model's
embedding layer), the profiler traces (seconds of profiling for no population-specific
behaviour), the custom-summary and graph-writing tests (they test Keras' summary ops, which a
population does not change) and the non-blocking test (it counts Keras' own numpy calls)."""

import collections
import os
import re

import numpy as np
import pytest
from keras import callbacks, layers, optimizers
from keras.optimizers import schedules
from tensorflow.core.util import event_pb2
from tensorflow.python.lib.io import tf_record

from tests.keras_callbacks.conftest import population

_ObservedSummary = collections.namedtuple("_ObservedSummary", ("logdir", "tag"))
_SummaryFile = collections.namedtuple("_SummaryFile", ("scalars", "images", "histograms"))

# What a population writes beside a model's tags: per-member values and population counts.
POPULATION_TAG = re.compile(r"(batch|epoch|evaluation)_("
                            r"loss_\d+|best_loss|nonfinite_members|gradient_steps"
                            r"|loss_\d+_vs_iterations|best_loss_vs_iterations"
                            r"|nonfinite_members_vs_iterations)$")


def list_summaries(logdir):
    """Every summary under `logdir`, by kind, as upstream's `list_summaries` reads them."""
    scalars, images, histograms = set(), set(), set()
    for dirpath, _, filenames in os.walk(logdir):
        for filename in filenames:
            if not filename.startswith("events.out."):
                continue
            for record in tf_record.tf_record_iterator(os.path.join(dirpath, filename)):
                event = event_pb2.Event.FromString(record)
                for value in event.summary.value:
                    kind = value.WhichOneof("value")
                    if kind == "tensor":
                        kind = value.metadata.plugin_data.plugin_name
                    container = {"simple_value": scalars, "scalars": scalars, "image": images,
                                 "images": images, "histo": histograms,
                                 "histograms": histograms}.get(kind)
                    if container is not None:
                        container.add(_ObservedSummary(logdir=dirpath, tag=value.tag))
    return _SummaryFile(scalars, images, histograms)


def assert_model_tags(observed, expected):
    """Upstream's scalar set is written, and every other tag is a population's own."""
    assert expected <= observed, sorted(expected - observed)
    others = {s.tag for s in observed - expected}
    assert all(POPULATION_TAG.match(tag) for tag in others), sorted(others)


def strip_layer_names(summaries):
    return {s._replace(tag=s.tag.split("/")[-1]) for s in summaries}


@pytest.fixture
def dirs(tmp_path):
    logdir = str(tmp_path / "tb")
    return logdir, os.path.join(logdir, "train"), os.path.join(logdir, "validation")


def get_model(optimizer="sgd"):
    return population(lambda: [layers.Flatten(), layers.Dense(1)], (10, 10, 1),
                      optimizer=optimizer, loss="mse")


XY = (np.ones((10, 10, 10, 1)), np.ones((10, 1)))


def basic_tags(train_dir, validation_dir):
    return {_ObservedSummary(train_dir, "epoch_loss"),
            _ObservedSummary(validation_dir, "epoch_loss"),
            _ObservedSummary(train_dir, "epoch_learning_rate"),
            _ObservedSummary(validation_dir, "evaluation_loss_vs_iterations")}


def test_tensorboard_basic(dirs):
    logdir, train_dir, validation_dir = dirs
    get_model().fit(*XY, batch_size=2, epochs=2, validation_data=XY, verbose=0,
                    callbacks=[callbacks.TensorBoard(logdir)])
    assert_model_tags(list_summaries(logdir).scalars, basic_tags(train_dir, validation_dir))


def test_tensorboard_across_invocations(dirs):
    logdir, train_dir, validation_dir = dirs
    model, tb_cbk = get_model(), callbacks.TensorBoard(logdir)
    for _ in (1, 2):
        model.fit(*XY, batch_size=2, epochs=2, validation_data=XY, verbose=0,
                  callbacks=[tb_cbk])
    assert_model_tags(list_summaries(logdir).scalars, basic_tags(train_dir, validation_dir))


def test_tensorboard_no_spurious_event_files(dirs):
    logdir, train_dir, _ = dirs
    get_model().fit(*XY, batch_size=2, epochs=2, verbose=0,
                    callbacks=[callbacks.TensorBoard(logdir)])
    runs = {os.path.basename(dirpath) for dirpath, _, filenames in os.walk(train_dir)
            if any(name.startswith("events.out.") for name in filenames)}
    assert runs == {"train"}


def test_tensorboard_batch_metrics(dirs):
    logdir, train_dir, validation_dir = dirs
    get_model().fit(*XY, batch_size=2, epochs=2, validation_data=XY, verbose=0,
                    callbacks=[callbacks.TensorBoard(logdir, update_freq=1)])
    assert_model_tags(list_summaries(logdir).scalars,
                      basic_tags(train_dir, validation_dir)
                      | {_ObservedSummary(train_dir, "batch_loss")})


def test_tensorboard_learning_rate_schedules(dirs):
    logdir, train_dir, _ = dirs
    get_model(optimizers.SGD(schedules.CosineDecay(0.01, 1))).fit(
        *XY, batch_size=2, epochs=2, verbose=0, callbacks=[callbacks.TensorBoard(logdir)])
    assert_model_tags(list_summaries(logdir).scalars,
                      {_ObservedSummary(train_dir, "epoch_loss"),
                       _ObservedSummary(train_dir, "epoch_learning_rate")})


def test_tensorboard_global_step(dirs):
    logdir, train_dir, _ = dirs
    get_model(optimizers.SGD(schedules.CosineDecay(0.01, 1))).fit(
        *XY, batch_size=2, epochs=2, verbose=0, callbacks=[callbacks.TensorBoard(
            logdir, update_freq=1, profile_batch=0, write_steps_per_second=True)])
    assert_model_tags(list_summaries(logdir).scalars, {
        _ObservedSummary(train_dir, "batch_loss"),
        _ObservedSummary(train_dir, "epoch_loss"),
        _ObservedSummary(train_dir, "epoch_learning_rate"),
        _ObservedSummary(train_dir, "epoch_steps_per_second"),
        _ObservedSummary(train_dir, "batch_steps_per_second")})


def test_tensorboard_weight_histograms(dirs):
    logdir, train_dir, validation_dir = dirs
    get_model().fit(*XY, batch_size=2, epochs=2, validation_data=XY, verbose=0,
                    callbacks=[callbacks.TensorBoard(logdir, histogram_freq=1)])
    summary_file = list_summaries(logdir)
    assert_model_tags(summary_file.scalars, basic_tags(train_dir, validation_dir))
    assert strip_layer_names(summary_file.histograms) == {
        _ObservedSummary(train_dir, "histogram")}


def test_tensorboard_weight_images(dirs):
    logdir, train_dir, validation_dir = dirs
    x, y = np.ones((10, 10, 10, 1)), np.ones((10, 1))
    model = population(lambda: [layers.Conv2D(3, 10), layers.GlobalAveragePooling2D(),
                                layers.Dense(1)], (10, 10, 1), optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=2, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=[callbacks.TensorBoard(logdir, histogram_freq=1, write_images=True)])
    summary_file = list_summaries(logdir)
    assert_model_tags(summary_file.scalars, basic_tags(train_dir, validation_dir))
    assert strip_layer_names(summary_file.histograms) == {
        _ObservedSummary(train_dir, "histogram")}
    assert strip_layer_names(summary_file.images) == {_ObservedSummary(train_dir, "image")}


def test_the_learning_rate_written_is_the_one_the_callbacks_act_on(dirs, tmp_path):
    """Issue 31 (not upstream): plain-rate members write the reference rate, which
    ReduceLROnPlateau moves; before, no epoch_learning_rate was written at all."""
    logdir, train_dir, _ = dirs
    model = get_model(optimizers.SGD(0.01))
    history = model.fit(*XY, batch_size=2, epochs=3, verbose=0, callbacks=[
        callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=100),
        callbacks.TensorBoard(logdir)])
    assert _ObservedSummary(train_dir, "epoch_learning_rate") in list_summaries(logdir).scalars
    # logged before each reduction, as for a model: the first epoch is the first best
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005])
