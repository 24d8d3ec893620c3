"""`Population.fit` takes what `keras.Model.fit` takes: arrays, lists and dicts of arrays,
sample and class weights, validation_split, tf.data datasets, PyDatasets and generators."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.helpers.models import fast_model, toy_problem

import popdescent as pd
from popdescent.inputs.dataset_inputs import fitness_pool

X, Y, X_VAL, Y_VAL = toy_problem()
BATCH, STEPS, SIZE = 16, 3, 3


class Batches(keras.utils.PyDataset):
    """The training arrays in six fixed batches, read by index."""

    def __len__(self):
        return len(X) // BATCH

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} is not in [0, {len(self)})")
        window = slice(index * BATCH, (index + 1) * BATCH)
        return X[window], Y[window]


def endless_batches():
    step = 0
    while True:
        window = slice(step % 6 * BATCH, (step % 6 + 1) * BATCH)
        yield X[window], Y[window]
        step += 1


def dataset(x=X, y=Y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


# kind -> (fit arguments)
INPUTS = {
    "arrays": lambda: {"x": X, "y": Y, "batch_size": BATCH,
                       "validation_data": (X_VAL, Y_VAL)},
    "tf.data": lambda: {"x": dataset(), "validation_data": dataset(X_VAL, Y_VAL)},
    "PyDataset": lambda: {"x": Batches(), "validation_data": (X_VAL, Y_VAL)},
    "generator": lambda: {"x": endless_batches(), "validation_data": (X_VAL, Y_VAL)},
    "validation_split": lambda: {"x": X, "y": Y, "batch_size": BATCH, "validation_split": 0.25},
}


@pytest.mark.parametrize("kind", list(INPUTS))
def test_each_input_kind_trains_two_iterations_of_exactly_steps_per_epoch(kind):
    pop = pd.Population(fast_model(), size=SIZE, seed=0)
    steps = 4  # 8 steps in all: the 6 batches of a pass run out in the second iteration
    pop.fit(**INPUTS[kind](), epochs=2, steps_per_epoch=steps, verbose=0,
            callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    assert pop.gradient_steps == 2 * steps * SIZE
    assert np.isfinite(pop.history.history["loss"]).all()  # no empty batch trained on
    assert len(pop.lineage) == 2 and np.isfinite(pop.fitness).sum() >= 1


def member_weights(pop):
    return [np.array(w) for member in pop.members for w in member.get_weights()]


def test_arrays_and_the_same_batches_as_a_dataset_give_the_same_weights():
    """Tolerance 0: the dataset holds the arrays' first-iteration batches in the order the
    population documents (pass p is `default_rng((data_seed, p)).permutation(len(x))`), so the
    fused step computes the same floats."""
    from_arrays = pd.Population(fast_model(), size=SIZE, seed=4)
    from_arrays.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0)
    order = np.random.default_rng((int(from_arrays.data_seed), 0)).permutation(len(X))
    order = order[:STEPS * BATCH]
    from_dataset = pd.Population(fast_model(), size=SIZE, seed=4)
    from_dataset.fit(dataset(X[order], Y[order]), epochs=1, steps_per_epoch=STEPS, verbose=0)
    for a, b in zip(member_weights(from_arrays), member_weights(from_dataset), strict=True):
        np.testing.assert_array_equal(a, b)


def two_input_model(dict_input):
    left, right = keras.Input((2,), name="left"), keras.Input((2,), name="right")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([left, right]))
    logits = keras.layers.Dense(3, name="logits")(hidden)
    model = keras.Model({"left": left, "right": right} if dict_input else [left, right], logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def split(x, dict_input):
    return {"left": x[:, :2], "right": x[:, 2:]} if dict_input else [x[:, :2], x[:, 2:]]


@pytest.mark.parametrize("dict_input", [False, True], ids=["list", "dict"])
def test_two_input_model_trains_saves_and_reloads(dict_input, tmp_path):
    pop = pd.Population(two_input_model(dict_input), size=SIZE, seed=0)
    before = member_weights(pop)
    pop.fit(split(X, dict_input), Y, batch_size=BATCH, epochs=2, steps_per_epoch=STEPS,
            verbose=0, validation_data=(split(X_VAL, dict_input), Y_VAL),
            callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    assert not all(np.array_equal(a, b) for a, b in zip(before, member_weights(pop)))
    path = tmp_path / "population.keras"
    pop.save(path)
    loaded = pd.load_population(path)
    for a, b in zip(member_weights(pop), member_weights(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(pop.predict(split(X_VAL, dict_input), verbose=0),
                    loaded.predict(split(X_VAL, dict_input), verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_nested_dataset_with_sample_weights_trains_a_dict_input_model():
    """A tf.data dataset of ({"left": ..., "right": ...}, y, sample_weight) trains, and its
    sample weights reach the loss."""
    weights = (Y == 0).astype("float32")
    pipeline = tf.data.Dataset.from_tensor_slices((split(X, True), Y, weights)).batch(BATCH)
    weighted = pd.Population(two_input_model(True), size=2, seed=3)
    weighted.fit(pipeline, epochs=2, steps_per_epoch=STEPS, verbose=0,
                 validation_data=(split(X_VAL, True), Y_VAL),
                 callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    assert weighted.gradient_steps == 2 * STEPS * 2
    # the weights reach the loss: the same batches unweighted end elsewhere
    unweighted = pd.Population(two_input_model(True), size=2, seed=3)
    unweighted.fit(pipeline.map(lambda x, y, w: (x, y)), epochs=2, steps_per_epoch=STEPS,
                   verbose=0, validation_data=(split(X_VAL, True), Y_VAL),
                   callbacks=[pd.PopDescent(elites=1, cv_batch_size=16)])
    assert not all(np.array_equal(a, b) for a, b in
                   zip(member_weights(weighted), member_weights(unweighted)))


def test_class_weight_trains_as_the_same_sample_weights():
    table = {0: 1.0, 1: 2.0, 2: 0.5}
    with_classes = pd.Population(fast_model(), size=SIZE, seed=1)
    with_classes.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0,
                     class_weight=table)
    with_samples = pd.Population(fast_model(), size=SIZE, seed=1)
    with_samples.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0,
                     sample_weight=np.array([table[int(c)] for c in Y], dtype="float32"))
    unweighted = pd.Population(fast_model(), size=SIZE, seed=1)
    unweighted.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0)
    for a, b in zip(member_weights(with_classes), member_weights(with_samples), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in
                   zip(member_weights(with_classes), member_weights(unweighted)))


def test_class_weight_weighs_a_dataset_as_it_weighs_arrays():
    table = {0: 1.0, 1: 2.0, 2: 0.5}
    order = np.random.default_rng((int(pd.Population(fast_model(), size=SIZE, seed=1)
                                       .data_seed), 0)).permutation(len(X))[:STEPS * BATCH]
    from_arrays = pd.Population(fast_model(), size=SIZE, seed=1)
    from_arrays.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=STEPS, verbose=0,
                    class_weight=table)
    from_dataset = pd.Population(fast_model(), size=SIZE, seed=1)
    from_dataset.fit(dataset(X[order], Y[order]), epochs=1, steps_per_epoch=STEPS, verbose=0,
                     class_weight=table)
    # tolerance 0, as for unweighted batches: the same weights, looked up in numpy or tf.data
    for a, b in zip(member_weights(from_arrays), member_weights(from_dataset), strict=True):
        np.testing.assert_array_equal(a, b)


def test_class_weight_on_a_two_output_model_is_refused_before_training():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(3, name="a")(inputs),
                                 keras.layers.Dense(3, name="b")(inputs)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pop = pd.Population(model, size=2, seed=0)
    with pytest.raises(ValueError, match="class_weight applies to a single-output model"):
        pop.fit(X, [Y, Y], batch_size=BATCH, epochs=1, steps_per_epoch=1, verbose=0,
                class_weight={0: 1.0, 1: 1.0, 2: 1.0})
    assert pop.gradient_steps == 0


def test_validation_split_holds_out_the_last_examples_before_shuffling():
    pop = pd.Population(fast_model(), size=SIZE, seed=0)
    pop.fit(X, Y, batch_size=BATCH, epochs=1, steps_per_epoch=1, verbose=0,
            validation_split=0.25)
    np.testing.assert_array_equal(pop.validation_data[0], X[72:])
    np.testing.assert_array_equal(pop.training_data.x, X[:72])


def test_fitness_pool_reads_a_bounded_number_of_examples_of_an_endless_dataset():
    endless = dataset(X_VAL, Y_VAL).repeat()
    x_pool, y_pool = fitness_pool("validation_data", endless, steps=1000, limit=40)
    assert len(x_pool) == len(y_pool) == 40
    np.testing.assert_array_equal(x_pool, X_VAL[:40])
