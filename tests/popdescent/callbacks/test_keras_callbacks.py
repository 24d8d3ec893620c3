"""Keras' own callbacks beside the strategies: they run after the strategies and see what
those log, and TensorBoard's weight histograms of different members do not collide."""

import keras
from tests.helpers.models import make_model

import popdescent as pd
from tests.helpers.callbacks import summary_tags


def fit(pop, data, callbacks, epochs=2):
    x, y, x_val, y_val = data
    return pop.fit(x, y, batch_size=16, epochs=epochs, steps_per_epoch=2, verbose=0,
                   validation_data=(x_val, y_val), callbacks=list(callbacks))


def test_tensorboard_listed_before_the_strategy_logs_the_strategys_fitness(data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=0)
    fit(pop, data, [keras.callbacks.TensorBoard(tmp_path),
                    pd.PopDescent(elites=2, cv_batch_size=16)])
    tags = set(summary_tags(tmp_path))
    assert {"epoch_best_fitness", "epoch_fitness_0", "epoch_learning_rate_2"} <= tags


def test_tensorboard_weight_histograms_of_the_members_do_not_collide(data, tmp_path):
    pop = pd.Population(make_model(), size=3, seed=0)
    fit(pop, data, [keras.callbacks.TensorBoard(tmp_path, histogram_freq=1)], epochs=1)
    histograms = [tag for tag in summary_tags(tmp_path) if tag.endswith("/histogram")]
    assert len(histograms) == 3 * 4  # 3 members x (2 kernels + 2 biases), once each
    assert len(set(histograms)) == len(histograms), sorted(histograms)


def test_members_of_a_builder_and_of_a_loaded_population_have_distinct_weight_paths(
        tmp_path):
    def build(index):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")],
                                 name="net")  # every member named alike
        model.compile(optimizer="adam", loss="mse")
        return model

    pop = pd.Population(build, size=3, seed=0)
    pop.save(tmp_path / "pop.keras")
    for population in (pop, pd.load_population(tmp_path / "pop.keras")):
        paths = [weight.path for member in population.members for weight in member.weights]
        assert len(set(paths)) == len(paths) == 3 * 2, paths
