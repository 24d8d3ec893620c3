"""History and ProgbarLogger on a Population. Keras 3.15.1 has no test files of their own
(`keras/src/callbacks/history.py`, `progbar_logger.py`); these assert what a Keras user reads
from them on a model, and what a population adds."""

import numpy as np
from keras import callbacks, layers

from tests.keras_callbacks.conftest import population


def classifier():
    return population(lambda: [layers.Dense(8, activation="relu"), layers.Dense(3)], (4,),
                      loss="sparse_categorical_crossentropy", optimizer="adam",
                      metrics=["accuracy"])


DATA = (np.random.random((32, 4)), np.random.randint(0, 3, 32))


def test_history_has_one_value_per_epoch_for_every_key():
    history = classifier().fit(*DATA, batch_size=8, epochs=3, validation_data=DATA,
                               verbose=0)
    assert history.epoch == [0, 1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(
        history.history)
    assert all(len(values) == 3 for values in history.history.values())
    # the population's own: each member's, and the best member's (accuracy: the largest)
    for epoch in range(3):
        members = [history.history[f"val_accuracy_{i}"][epoch] for i in range(3)]
        assert history.history["val_best_accuracy"][epoch] == max(members)
        assert np.isclose(history.history["val_accuracy"][epoch], np.mean(members))


def test_history_is_the_model_history_attribute():
    model = classifier()
    history = model.fit(*DATA, batch_size=8, epochs=2, verbose=0)
    assert model.history is history and history.model is model


def test_progbar_logger_prints_the_population_keys(capsys):
    classifier().fit(*DATA, batch_size=8, epochs=2, validation_data=DATA, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch 1/2") == 1 and out.count("Epoch 2/2") == 1
    for key in ("loss:", "accuracy:", "val_accuracy:", "best_accuracy:", "loss_0:"):
        assert key in out


def test_progbar_logger_counts_steps(capsys):
    classifier().fit(*DATA, batch_size=8, epochs=1, verbose=1,
                     callbacks=[callbacks.ProgbarLogger()])
    assert "4/4" in capsys.readouterr().out  # 32 examples in batches of 8
