"""Dropout, augmentation and label smoothing as live per-member hyperparameters: each acts
in the fused step per member, changes with an assign (no retrace), is refused where the model
has nothing for it to act on, survives a resume bit-identically and reaches returned models."""

import keras
import numpy as np
import pytest

import popdescent as pd
from popdescent.population.live_regularization import smoothed_loss
from tests.popdescent.callbacks.test_backup import Interrupt, state_bytes

REGULARIZED = {"learning_rate": pd.LogUniform(1e-3, 1e-2), "dropout": pd.Uniform(0.1, 0.5),
               "augmentation": pd.Uniform(0.5, 2.0, bounds=(0.0, 5.0)),
               "label_smoothing": pd.Uniform(0.0, 0.2)}


def image_model(dropout=0.3, augmentation=True, loss=None):
    layers = [keras.Input((8, 8, 1))]
    if augmentation:
        layers += [keras.layers.RandomTranslation(0.2, 0.2, seed=1),
                   keras.layers.RandomRotation(0.1, seed=2), keras.layers.RandomFlip(seed=3)]
    layers += [keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")]
    if dropout is not None:
        layers.append(keras.layers.Dropout(dropout, seed=4))
    layers.append(keras.layers.Dense(4))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(96, 8, 8, 1)).astype("float32")
    y = (x[:, :4, :4, 0].mean(axis=(1, 2)) * 4).astype("int32").clip(0, 3)
    return x[:64], y[:64], x[64:], y[64:]


def test_dropout_acts_per_member_in_one_fused_step_and_changes_without_a_retrace(images):
    x, y, _, _ = images
    pop = pd.Population(image_model(augmentation=False), size=2, seed=0,
                        hyperparameters={"dropout": pd.Uniform(0.0, 0.9)})
    pop.copy_member(0, 1)
    pop.set_hyperparameters(0, {"dropout": 0.0})
    pop.set_hyperparameters(1, {"dropout": 0.9})
    member = pop.member(0)
    # Both members hold the same weights: their training losses differ by dropout alone.
    plain_loss = float(member.compute_loss(x=x, y=y, y_pred=member(x, training=False)))
    history = pop.fit(x, y, batch_size=64, epochs=1, steps_per_epoch=1, verbose=0)
    assert history.history["loss_0"][0] == pytest.approx(plain_loss, rel=1e-5)  # rate 0: none
    assert abs(history.history["loss_1"][0] - plain_loss) > 0.05
    pop.set_hyperparameters(0, {"dropout": 0.9})
    pop.fit(x, y, batch_size=64, epochs=1, steps_per_epoch=1, verbose=0)
    assert pop.traces == 1


def test_augmentation_zero_equals_no_augmentation_layer(images):
    x = images[0]
    pop = pd.Population(image_model(dropout=None), size=2, seed=0,
                        hyperparameters={"augmentation": pd.Uniform(0.0, 1.0)})
    pop.set_hyperparameters(0, {"augmentation": 0.0})
    pop.set_hyperparameters(1, {"augmentation": 1.0})
    off, on = pop.member(0), pop.member(1)
    # training=False skips the augmentation layers: the output of the same weights without them.
    np.testing.assert_allclose(off(x, training=True), off(x, training=False), atol=1e-6)
    assert not np.allclose(on(x, training=True), on(x, training=False), atol=1e-3)


def test_a_larger_magnitude_moves_the_images_further():
    # A smooth ramp: how far a translated or rotated copy is from it grows with the shift.
    ramp = np.add.outer(np.linspace(0, 1, 8), np.linspace(0, 1, 8)) / 2
    x = np.repeat(ramp[None, :, :, None], 64, axis=0).astype("float32")
    pop = pd.Population(image_model(dropout=None), size=2, seed=0,
                        hyperparameters={"augmentation": pd.Uniform(0.0, 1.0, bounds=(0, 5))})
    # The member's own (bound) translation and rotation; a flip is on or off, not scaled.
    augmentation = keras.Sequential(pop.member(0).layers[:2])
    distances = []
    for magnitude in (0.05, 0.25, 1.0):
        pop.set_hyperparameters(0, {"augmentation": magnitude})
        distances.append(float(np.mean(np.abs(augmentation(x, training=True) - x))))
    # Without the binding every draw is at the written factors: ratios near 1.
    assert distances[2] > 1.5 * distances[1] > 2.25 * distances[0], distances


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("from_logits", [True, False])
def test_label_smoothing_changes_the_loss_as_keras_own_does(sparse, from_logits, images):
    x, y, _, _ = images
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits) if sparse
            else keras.losses.CategoricalCrossentropy(from_logits=from_logits))
    model = image_model(dropout=None, augmentation=False, loss=loss)
    if not from_logits:
        model = keras.Sequential([model, keras.layers.Softmax()])
        model.compile(optimizer="adam", loss=loss)
    labels = y if sparse else keras.utils.to_categorical(y, 4)
    y_pred = model(x)
    keras_own = keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                     label_smoothing=0.2)
    expected = float(keras_own(keras.utils.to_categorical(y, 4), y_pred))
    assert float(smoothed_loss(model, labels, y_pred, None, 0.2)) == pytest.approx(expected,
                                                                                    rel=1e-5)
    assert float(smoothed_loss(model, labels, y_pred, None, 0.0)) == pytest.approx(
        float(loss(labels, y_pred)), rel=1e-5)


def test_label_smoothing_reaches_the_fused_step_loss(images):
    x, y, _, _ = images
    pop = pd.Population(image_model(dropout=None, augmentation=False), size=2, seed=0,
                        hyperparameters={"label_smoothing": pd.Uniform(0.0, 0.5)})
    pop.set_hyperparameters(0, {"label_smoothing": 0.0})
    pop.set_hyperparameters(1, {"label_smoothing": 0.5})
    expected = []
    for index, smoothing in enumerate((0.0, 0.5)):
        member = pop.member(index)
        keras_own = keras.losses.CategoricalCrossentropy(from_logits=True,
                                                         label_smoothing=smoothing)
        expected.append(float(keras_own(keras.utils.to_categorical(y, 4), member(x))))
    history = pop.fit(x, y, batch_size=64, epochs=1, steps_per_epoch=1, verbose=0)
    assert history.history["loss_0"][0] == pytest.approx(expected[0], rel=1e-5)
    assert history.history["loss_1"][0] == pytest.approx(expected[1], rel=1e-5)


@pytest.mark.parametrize("name, model, message", [
    ("dropout", lambda: image_model(dropout=None), r"hyperparameters\['dropout'\].*no keras.layers.Dropout"),
    ("augmentation", lambda: image_model(augmentation=False), r"hyperparameters\['augmentation'\].*RandomTranslation"),
    ("label_smoothing", lambda: image_model(loss="mse"), r"hyperparameters\['label_smoothing'\].*loss='mse'"),
])
def test_a_prior_for_something_the_model_lacks_is_refused(name, model, message):
    with pytest.raises(ValueError, match=message):
        pd.Population(model(), size=2, seed=0, hyperparameters={name: pd.Uniform(0.0, 0.5)})


@pytest.mark.parametrize("name, prior, message", [
    ("dropout", pd.Uniform(0.5, 1.0), r"hyperparameters\['dropout'\] must stay within \[0.0, 1.0\)"),
    ("label_smoothing", pd.Uniform(-0.1, 0.1), r"hyperparameters\['label_smoothing'\] must stay within \[0.0, 1.0\)"),
    ("augmentation", pd.Uniform(0.0, 1.0, bounds=(-1.0, 2.0)), r"hyperparameters\['augmentation'\] must stay within \[0.0, inf\)"),
])
def test_a_prior_outside_what_training_can_take_is_refused(name, prior, message):
    with pytest.raises(ValueError, match=message):
        pd.Population(image_model(), size=2, seed=0, hyperparameters={name: prior})


def test_members_start_at_what_the_user_wrote_without_priors_drawn():
    values = pd.Population(image_model(dropout=0.3), size=2, seed=0, hyperparameters={
        "dropout": pd.Fixed(0.3), "augmentation": pd.Fixed(1.0)}).hyperparameter_values()
    assert values[0]["dropout"] == pytest.approx(0.3) and values[1]["augmentation"] == 1.0


def fit_regularized(pop, data, directory, extra=()):
    x, y, x_val, y_val = data
    strategy = pd.PopDescent(elites=1, cv_batch_size=16)
    pop.fit(x, y, batch_size=16, epochs=4, steps_per_epoch=2, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.BackupAndRestore(directory), strategy, *extra])
    return strategy


def test_resume_is_bit_identical_with_every_regularization_live(images, tmp_path):
    reference = pd.Population(image_model(), size=3, seed=5, hyperparameters=REGULARIZED)
    fit_regularized(reference, images, tmp_path / "reference")
    pop = pd.Population(image_model(), size=3, seed=5, hyperparameters=REGULARIZED)
    with pytest.raises(KeyboardInterrupt):
        fit_regularized(pop, images, tmp_path / "run", extra=[Interrupt(2)])
    fresh = pd.Population(image_model(), size=3, seed=5, hyperparameters=REGULARIZED)
    fit_regularized(fresh, images, tmp_path / "run")
    assert state_bytes(fresh) == state_bytes(reference)
    assert fresh.hyperparameter_values() == reference.hyperparameter_values()
    assert fresh.lineage == reference.lineage


def test_returned_models_carry_their_members_values_and_the_compiled_metrics(images, tmp_path):
    x, y, x_val, y_val = images
    pop = pd.Population(image_model(), size=3, seed=5, hyperparameters=REGULARIZED)
    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=2, verbose=0,
            validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    values = pop.hyperparameters_of(pop.best_index())
    best = pop.best_model()
    path = tmp_path / "best.keras"
    best.save(path)
    for model in (best, keras.saving.load_model(path)):
        dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
        assert dropout[0].rate == pytest.approx(values["dropout"])
        translation = model.layers[0]
        assert translation.height_factor[1] == pytest.approx(
            min(1.0, 0.2 * values["augmentation"]))
    # A returned model trained further goes on at its tuned values: one plain Keras fit.
    best.fit(x, y, batch_size=16, epochs=1, verbose=0)
    ensemble = pop.ensemble_model(validation_data=(x_val, y_val))
    assert len(ensemble.evaluate(x_val, y_val, verbose=0)) == 2  # [loss, accuracy], as a member


def test_a_population_tuning_none_of_them_binds_nothing(images):
    pop = pd.Population(image_model(), size=2, seed=0)
    dropout = [layer for layer in pop.member(0).layers if isinstance(layer, keras.layers.Dropout)]
    assert "call" not in vars(dropout[0])  # the layer's own class method, untouched
    assert pop.live_hyperparameters.regularization == {}


def test_every_tuned_hyperparameter_is_exported_per_step_and_replays_in_a_plain_fit(images):
    x, y, x_val, y_val = images
    pop = pd.Population(image_model(), size=3, seed=5, hyperparameters=REGULARIZED)
    pop.fit(x, y, batch_size=16, epochs=3, steps_per_epoch=2, verbose=0,
            validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    best = pop.best_index()
    exported = pop.exported_hyperparameters(best)
    assert sorted(exported) == sorted(REGULARIZED)
    assert {len(series) for series in exported.values()} == {6}  # 3 iterations of 2 steps
    assert exported["learning_rate"] == list(pop.exported_schedule(best)[0].values)
    # The fittest is an elite: it trained its last iteration at the values it holds now.
    for name in ("dropout", "augmentation", "label_smoothing"):
        assert exported[name][-1] == pytest.approx(pop.hyperparameters_of(best)[name])
    replay = image_model()
    replay.compile(optimizer=keras.optimizers.Adam(pd.StepwiseSchedule(exported["learning_rate"])),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    replay.fit(np.concatenate([x, x_val]), np.concatenate([y, y_val]), batch_size=16, epochs=1,
               verbose=0)
    assert int(replay.optimizer.iterations.numpy()) == 6


def test_an_untuned_rate_is_exported_as_it_ran_beside_the_tuned_regularization(images):
    x, y, x_val, y_val = images
    pop = pd.Population(image_model(), size=2, seed=5,
                        hyperparameters={"dropout": pd.Uniform(0.1, 0.5)})
    pop.fit(x, y, batch_size=16, epochs=2, steps_per_epoch=2, verbose=0,
            validation_data=(x_val, y_val), callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    exported = pop.exported_hyperparameters()
    assert sorted(exported) == ["dropout", "learning_rate"]
    assert exported["learning_rate"] == pytest.approx([1e-3] * 4)  # the compiled rate
