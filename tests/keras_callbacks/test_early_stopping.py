"""keras/src/callbacks/early_stopping_test.py (keras 3.15.1) on a Population."""

import numpy as np
import pytest
from keras import callbacks, layers, metrics, ops

from tests.keras_callbacks.conftest import population


def regression_population(metric_names=("mse",), optimizer="sgd"):
    return population(lambda: [layers.Dense(1, activation="relu"),
                               layers.Dense(1, activation="relu")], (5,),
                      loss="mae", optimizer=optimizer, metrics=list(metric_names))


def test_early_stopping():
    x_train, y_train = np.random.random((10, 5)), np.random.random((10, 1))
    x_test, y_test = np.random.random((10, 5)), np.random.random((10, 1))
    model = regression_population(
        ["mse", "acc", "accuracy", "hinge", metrics.F1Score(name="f1_score")], "adam")
    cases = [
        ("max", "val_mse", "max"),
        ("min", "val_loss", "min"),
        ("auto", "val_mse", "min"),
        ("auto", "loss", "min"),
        ("auto", "acc", "max"),
        ("auto", "val_accuracy", "max"),
        ("auto", "hinge", "min"),
        ("auto", "f1_score", "max"),
    ]
    for mode, monitor, expected_mode in cases:
        cbks = [callbacks.EarlyStopping(patience=0, monitor=monitor, mode=mode)]
        model.fit(x_train, y_train, batch_size=5, validation_data=(x_test, y_test),
                  callbacks=cbks, epochs=2, verbose=0)
        monitor_op = ops.greater if expected_mode == "max" else ops.less
        assert cbks[0].monitor_op == monitor_op
    with pytest.raises(ValueError):
        model.fit(x_train, y_train, batch_size=5, validation_data=(x_test, y_test),
                  callbacks=[callbacks.EarlyStopping(patience=0, monitor="unknown")],
                  epochs=2, verbose=0)


def test_early_stopping_patience():
    losses = [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5]
    for patience in [0, 1, 2, 3]:
        stopper = callbacks.EarlyStopping(monitor="loss", patience=patience)
        stopper.set_model(regression_population())
        stopper.on_train_begin()
        for epoch, loss in enumerate(losses):
            stopper.on_epoch_end(epoch=epoch, logs={"loss": loss})
            if stopper.model.stop_training:
                break
        assert stopper.stopped_epoch == max(patience, 1) + 2


def test_early_stopping_reuse():
    patience = 3
    data = np.random.random((100, 1))
    labels = np.where(data > 0.5, 1, 0)
    model = population(lambda: [layers.Dense(1, activation="relu"),
                                layers.Dense(1, activation="relu")], (1,),
                       optimizer="sgd", loss="mae", metrics=["mse"])
    stopper = callbacks.EarlyStopping(monitor="mse", patience=patience)
    history1 = model.fit(data, labels, callbacks=[stopper], verbose=0, epochs=20)
    assert len(history1.epoch) >= patience
    history2 = model.fit(data, labels, callbacks=[stopper], verbose=0, epochs=20)
    assert len(history2.epoch) >= patience


def test_early_stopping_with_baseline():
    x_train, y_train = np.random.random((10, 5)), np.random.random((10, 1))
    model = regression_population()
    patience = 3
    stopper = callbacks.EarlyStopping(monitor="mse", patience=patience, baseline=0.6)
    hist = model.fit(x_train, y_train, callbacks=[stopper], verbose=0, epochs=20)
    assert len(hist.epoch) >= patience


def test_early_stopping_with_start_from_epoch():
    x_train, y_train = np.random.random((10, 5)), np.random.random((10, 1))
    model = regression_population()
    stopper = callbacks.EarlyStopping(monitor="mse", patience=3, start_from_epoch=2)
    history = model.fit(x_train, y_train, callbacks=[stopper], verbose=0, epochs=20)
    assert len(history.epoch) >= 3 + 2
    stopper = callbacks.EarlyStopping(monitor="mse", patience=0, start_from_epoch=2)
    history = model.fit(x_train, y_train, callbacks=[stopper], verbose=0, epochs=20)
    assert len(history.epoch) >= 2


def test_a_compiled_metric_stops_a_population_as_it_stops_a_model():
    """Issue 31's reproduction: upstream has no such test; a model stops after 2 epochs."""
    x, y = np.random.random((64, 5)), np.random.random((64, 1))
    model = regression_population(["mse"], "adam")
    history = model.fit(x, y, batch_size=16, epochs=10, verbose=0, validation_data=(x, y),
                        callbacks=[callbacks.EarlyStopping(monitor="val_mse", min_delta=100,
                                                           patience=1)])
    assert len(history.epoch) == 2
    assert history.history["val_mse"] == pytest.approx(
        np.mean([history.history[f"val_mse_{i}"] for i in range(3)], axis=0))


def test_restore_best_weights_restores_every_member_of_the_best_epoch():
    """Upstream drives a dummy model; here the whole population's weights come back."""
    x, y = np.random.random((16, 5)), np.random.random((16, 1))  # noise: it overfits
    x_val, y_val = np.random.random((64, 5)), np.random.random((64, 1))
    model = population(lambda: [layers.Dense(64, activation="relu"), layers.Dense(1)], (5,),
                       loss="mse", optimizer="adam", metrics=["mse"])
    seen = []

    class Weights(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([w.copy() for w in self.model.get_weights()])

    stopper = callbacks.EarlyStopping(monitor="val_mse", patience=2, restore_best_weights=True)
    model.fit(x, y, batch_size=4, epochs=30, verbose=0, validation_data=(x_val, y_val),
              callbacks=[Weights(), stopper])
    best = stopper.best_epoch
    assert 0 < best < len(seen) - 1  # the best is neither the first epoch nor the last
    for a, b in zip(model.get_weights(), seen[best], strict=True):
        np.testing.assert_array_equal(a, b)
