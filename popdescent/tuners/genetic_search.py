"""`GeneticSearch`: KerasTuner tuner driven by `GeneticOracle`."""

import time
import zlib

import keras
import keras_tuner

from popdescent.tuners.genetic_oracle import GeneticOracle


class GeneticSearch(keras_tuner.Tuner):
    """Genetic search over whole trainings, for the `build(hp)` functions KerasTuner users write.

    Tournament selection, two-point crossover and bounded mutation (seed 004), optional
    surrogate-proposed "invasive species" (seed 001) and islands with ring migration. It is a
    plain `keras_tuner.Tuner`: `search`, `results_summary`, `get_best_models`, reloading an
    interrupted project and KerasTuner's chief/worker mode (`KERASTUNER_TUNER_ID`,
    `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`) work as for `RandomSearch`. The trial
    budget is `population_size * islands * generations`.

    Args:
        hypermodel: a `build(hp)` function or `keras_tuner.HyperModel`.
        objective: as in `keras_tuner.Tuner`, e.g. `"val_loss"`.
        idle_wait: seconds a worker waits before asking again while the oracle finishes a
            generation elsewhere (distributed mode only).
        **kwargs: `keras_tuner.Tuner` arguments (`directory`, `project_name`, `overwrite`...).

    `population_size`, `generations`, `tournament_size`, `elites`, `mutation_probability`,
    `mutation_widths`, `float_mutation_scale`, `categorical_trees`, `tree_base`, `invasive`,
    `surrogate`, `invasive_candidates`, `islands`, `migration_interval`, `migrants` and `seed`
    are `GeneticOracle`'s; `hyperparameters`, `tune_new_entries`, `allow_new_entries`,
    `max_retries_per_trial` and `max_consecutive_failed_trials` are as in
    `keras_tuner.RandomSearch`.

    With an integer `seed`, each trial seeds Python, NumPy and TensorFlow from (seed, trial id)
    before its model is built, so two searches with the same seed on one machine build and
    train the same models, reach the same scores and therefore propose the same later
    generations. Without a seed trials are unseeded, as in KerasTuner.

    Example:

    ```python
    def build(hp):
        model = keras.Sequential([keras.Input((4,))])
        for _ in range(hp.Int("layers", 1, 3)):
            model.add(keras.layers.Dense(hp.Int("units", 4, 16), activation="relu"))
        model.add(keras.layers.Dense(1))
        model.compile("adam", "mse")
        return model

    tuner = GeneticSearch(build, "val_loss", population_size=3, generations=2,
                          tournament_size=2, seed=0, directory="/tmp/ga", overwrite=True)
    x = np.random.rand(32, 4)
    tuner.search(x, x.sum(axis=1), validation_split=0.25, epochs=1, verbose=0)
    tuner.results_summary()
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        population_size=5,
        generations=20,
        tournament_size=3,
        elites=1,
        mutation_probability=None,
        mutation_widths=None,
        float_mutation_scale=0.15,
        categorical_trees=None,
        tree_base=2.0,
        invasive=0,
        surrogate=None,
        invasive_candidates=1000,
        islands=1,
        migration_interval=5,
        migrants=1,
        seed=None,
        idle_wait=0.5,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        **kwargs,
    ):
        if not idle_wait >= 0:
            raise ValueError(f"idle_wait must be >= 0 seconds, got {idle_wait!r}")
        self.idle_wait = idle_wait
        self.seed = None if seed is None else int(seed)
        self._requests_without_trial = 0
        oracle = GeneticOracle(
            objective=objective,
            population_size=population_size,
            generations=generations,
            tournament_size=tournament_size,
            elites=elites,
            mutation_probability=mutation_probability,
            mutation_widths=mutation_widths,
            float_mutation_scale=float_mutation_scale,
            categorical_trees=categorical_trees,
            tree_base=tree_base,
            invasive=invasive,
            surrogate=surrogate,
            invasive_candidates=invasive_candidates,
            islands=islands,
            migration_interval=migration_interval,
            migrants=migrants,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, **kwargs)
        # The space is known once the tuner has built the hypermodel; a worker checks its
        # local copy of the oracle before `self.oracle` became a gRPC client.
        if self.hypermodel is not None:
            oracle.check_search_space()

    def pre_create_trial(self):
        # BaseTuner.search asks again at once when the oracle answers IDLE (a generation is
        # finishing on other workers); a second request with no trial in between means that.
        if self._requests_without_trial:
            time.sleep(self.idle_wait)
        self._requests_without_trial += 1

    def on_trial_begin(self, trial):
        self._requests_without_trial = 0
        if self.seed is not None:
            keras.utils.set_random_seed(trial_seed(self.seed, trial.trial_id))
        super().on_trial_begin(trial)

    def results_summary(self, num_trials=10):
        """KerasTuner's summary, plus each trial's origin and the surrogate's trials."""
        if not isinstance(self.oracle, GeneticOracle):  # A worker sees only a gRPC client.
            return super().results_summary(num_trials)
        print("Results summary")
        print(f"Results in {self.project_dir}")
        print(f"Showing {num_trials} best trials")
        print(f"{self.oracle.objective}")
        for trial in self.oracle.get_best_trials(num_trials):
            print()
            trial.summary()
            print(f"Origin: {self.oracle.describe(trial.trial_id)}")
        invasive = sorted(
            trial_id
            for trial_id, record in self.oracle.lineage.items()
            if record["origin"] == "invasive"
        )
        print()
        if invasive:
            print(
                f"Invasive species (proposed by the surrogate): {len(invasive)} of "
                f"{len(self.oracle.lineage)} trials: {', '.join(invasive)}"
            )
        else:
            print("Invasive species (proposed by the surrogate): none")


def trial_seed(seed, trial_id) -> int:
    """The seed of one trial: a pure function of (search seed, trial id), below 2**31.

    Trial ids are strings ("00", "01", ...); CRC32 maps them to integers the same way in
    every process, unlike Python's salted `hash`.
    """
    return (int(seed) * 1_000_003 + zlib.crc32(str(trial_id).encode())) % (2**31)
