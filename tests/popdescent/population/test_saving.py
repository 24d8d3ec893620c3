"""pop.save("x.keras") / pd.load_population round-trips the population with safe_mode on;
damaged, tampered and foreign files give a clear error naming the file."""

import json
import zipfile

import keras
import numpy as np
import pytest
from tests.helpers.models import make_model

import popdescent as pd

PRIORS = {"learning_rate": pd.LogUniform(1e-4, 1e-2, bounds=(1e-6, 1e-1)),
          "l2": pd.Choice([0.0, 1e-5, 1e-4])}


def fit(pop, data, epochs=2):
    x, y, x_val, y_val = data
    pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=3, verbose=0,
            validation_data=(x_val, y_val),
            callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])


def state(pop):
    return [keras.ops.convert_to_numpy(v) for v in pop.state_variables()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    data = (x[:64], y[:64], x[64:], y[64:])
    pop = pd.Population(make_model(), size=3, seed=4, hyperparameters=PRIORS)
    fit(pop, data)
    path = tmp_path_factory.mktemp("saving") / "population.keras"
    pop.save(path)
    return pop, path, data


def test_round_trip_keeps_weights_optimizer_state_hyperparameters_and_priors(saved):
    pop, path, _ = saved
    loaded = pd.load_population(path)  # safe_mode is on by default
    assert isinstance(loaded, pd.Population) and loaded.size == pop.size
    assert loaded.priors == pop.priors
    assert loaded.hyperparameter_values() == pop.hyperparameter_values()
    assert loaded.gradient_steps == pop.gradient_steps == 2 * 3 * 3
    for index in range(pop.size):
        original, copy = pop.member(index), loaded.member(index)
        assert all(np.array_equal(a, b)
                   for a, b in zip(original.get_weights(), copy.get_weights()))
        assert len(copy.optimizer.variables) == len(original.optimizer.variables) > 2
        for a, b in zip(original.optimizer.variables, copy.optimizer.variables):
            assert np.array_equal(a.numpy(), b.numpy())  # step count, learning rate, slots


def test_loaded_population_trains_on_exactly_like_the_original(saved):
    pop, path, data = saved
    x, y, _, _ = data
    loaded = pd.load_population(path)
    twin = pd.load_population(path)  # not `pop`: keep the module's fixture untouched
    loaded.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=3, verbose=0)
    twin.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=3, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(state(loaded), state(twin)))
    assert any(not np.array_equal(a, b) for a, b in zip(state(loaded), state(pop)))


def test_keras_load_model_works_too(saved):
    _, path, _ = saved
    assert isinstance(keras.saving.load_model(path), pd.Population)


def rewrite(path, target, name, change):
    """Copies the .keras archive at `path` to `target` with entry `name` changed."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as copy:
        for item in source.infolist():
            content = source.read(item.filename)
            copy.writestr(item, change(content) if item.filename == name else content)
    return target


def with_lambda_layer(config_bytes):
    """The first member gets a Lambda layer holding marshalled Python bytecode."""
    config = json.loads(config_bytes)
    member = config["config"]["members"][0]
    layers = member["config"]["layers"]
    lambda_layer = keras.saving.serialize_keras_object(
        keras.layers.Lambda(lambda t: t * 2, name="payload"))
    layers.insert(1, lambda_layer)
    return json.dumps(config).encode()


def test_truncated_file_is_refused_naming_it(saved, tmp_path):
    _, path, _ = saved
    broken = tmp_path / "truncated.keras"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError,
                       match=f"could not load a population from '{broken}'.*truncated"):
        pd.load_population(broken)


def test_flipped_bytes_are_detected(saved, tmp_path):
    _, path, _ = saved
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 64] = bytes(b ^ 0xFF for b in content[middle:middle + 64])
    broken = tmp_path / "flipped.keras"
    broken.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=f"could not load a population from '{broken}'"):
        pd.load_population(broken)


def test_code_smuggled_into_the_config_is_refused_in_safe_mode(saved, tmp_path):
    _, path, _ = saved
    tampered = rewrite(path, tmp_path / "lambda.keras", "config.json", with_lambda_layer)
    with pytest.raises(ValueError, match=f"'{tampered}'.*safe_mode"):
        pd.load_population(tampered)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    _, path, _ = saved

    def wider(config_bytes):
        text = config_bytes.decode()
        return text.replace('"units": 8', '"units": 9').encode()

    tampered = rewrite(path, tmp_path / "wider.keras", "config.json", wider)
    with pytest.raises(ValueError, match=f"could not load a population from '{tampered}'"):
        pd.load_population(tampered)


def test_optimizer_state_that_does_not_fit_is_refused(saved, tmp_path):
    _, path, _ = saved

    def sgd(config_bytes):  # SGD has 2 variables where the saved Adam state has 10
        config = json.loads(config_bytes)
        for member in config["config"]["members"]:
            member["compile_config"]["optimizer"] = "sgd"
        return json.dumps(config).encode()

    tampered = rewrite(path, tmp_path / "sgd.keras", "config.json", sgd)
    with pytest.raises(ValueError, match=f"'{tampered}'.*Skipping variable loading"):
        pd.load_population(tampered)


def test_a_plain_model_file_is_not_a_population(tmp_path):
    path = tmp_path / "plain.keras"
    model = make_model()
    model.fit(np.zeros((8, 4)), np.zeros(8), verbose=0)
    model.save(path)
    with pytest.raises(ValueError, match="holds a Sequential, not a popdescent Population"):
        pd.load_population(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no population file at"):
        pd.load_population(tmp_path / "nothing.keras")
