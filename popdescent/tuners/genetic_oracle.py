"""`GeneticOracle`: a generational genetic algorithm as a KerasTuner `Oracle`."""

import numpy as np
import keras_tuner
from keras_tuner.engine import trial as trial_module

from popdescent.tuners import genes
from popdescent.tuners import invasive as invasive_module
from popdescent.tuners import operators

_FINISHED = (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED)


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return int(value)


class GeneticOracle(keras_tuner.Oracle):
    """Generational GA over any `hp.Int`/`hp.Float`/`hp.Choice`/`hp.Boolean` space.

    Generation 0 draws `islands * population_size` random members. Each later generation
    keeps, per island, a pool of `population_size` parents (the `elites` best of parents and
    children, then the best children), picks two parents by tournament, cuts their gene
    vectors at two points, and mutates each gene with probability `mutation_probability`:
    integers by a uniform step in `±width`, floats by `N(0, float_mutation_scale * range)` in
    KerasTuner's `[0, 1]` embedding (so log-sampled floats move in log space), categorical
    genes uniformly or over a tree (`categorical_trees`, seed 004). With `invasive=n`, `n`
    members of every island's next generation are proposed by a surrogate fit on all evaluated
    trials (seed 001). Every `migration_interval` generations each island's `migrants` best
    replace the worst of the next island (ring). A generation starts only when the previous
    one has finished, so workers of KerasTuner's distributed mode get `IDLE` meanwhile.

    Args:
        objective: as in `keras_tuner.Oracle`.
        population_size: members per island and generation, >= 2.
        generations: number of generations, the random one included; the trial budget is
            `population_size * islands * generations`.
        tournament_size: `tau`, in `[1, population_size]`.
        elites: best members kept across generations, in `[0, population_size - 1]`.
        mutation_probability: chance that each gene mutates, in `(0, 1]`; defaults to
            `1 / number of genes`.
        mutation_widths: `{name: width}`. For an `hp.Int`, a step in `[-width, width]` (in
            value units; grid positions for log-sampled ints); for an `hp.Float`, the standard
            deviation as a fraction of the range. Int default `max(1, range / 8)`.
        float_mutation_scale: default float standard deviation as a fraction of the range.
        categorical_trees: `{name: tree}`, a nested dict/list whose leaves are exactly the
            choices of that `hp.Choice`; see `operators.ACTIVATION_TREE`.
        tree_base: `b > 1` of the tree distance `log_b(hops)`; larger explores more.
        invasive: surrogate-proposed members per island and generation,
            in `[0, population_size - 1]`.
        surrogate: object with `fit(x, y)` / `predict(x)`; defaults to `MLPSurrogate`.
        invasive_candidates: random candidates the surrogate scores per generation.
        islands: number of sub-populations, >= 1.
        migration_interval: generations between migrations, >= 1.
        migrants: members each island sends, in `[0, population_size - 1]`.
        seed: integer seed; the plan of generation `g` draws from `default_rng([seed, g])`.

    `hyperparameters`, `allow_new_entries`, `tune_new_entries`, `max_retries_per_trial` and
    `max_consecutive_failed_trials` are as in `keras_tuner.Oracle`.
    """

    def __init__(
        self,
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
        hyperparameters=None,
        allow_new_entries=True,
        tune_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
    ):
        self.population_size = _check_int("population_size", population_size, 2)
        self.generations = _check_int("generations", generations, 1)
        self.tournament_size = _check_int(
            "tournament_size (tau)", tournament_size, 1, self.population_size
        )
        self.elites = _check_int("elites", elites, 0, self.population_size - 1)
        if mutation_probability is not None and not 0 < mutation_probability <= 1:
            raise ValueError(
                f"mutation_probability must be in (0, 1] or None, got {mutation_probability!r}"
            )
        self.mutation_probability = mutation_probability
        self.mutation_widths = dict(mutation_widths or {})
        if not float_mutation_scale > 0:
            raise ValueError(f"float_mutation_scale must be > 0, got {float_mutation_scale!r}")
        self.float_mutation_scale = float(float_mutation_scale)
        self.categorical_trees = dict(categorical_trees or {})
        self.tree_base = tree_base
        # Validates b and every tree's shape now; the leaves are checked against the choices
        # once the search space is known (`check_search_space`).
        self._tree_probabilities = {
            name: operators.tree_distance_probabilities(tree, tree_base)
            for name, tree in self.categorical_trees.items()
        }
        operators.check_tree_base(tree_base)
        self.islands = _check_int("islands", islands, 1)
        self.invasive = _check_int("invasive", invasive, 0, self.population_size - 1)
        self.invasive_candidates = _check_int(
            "invasive_candidates", invasive_candidates, max(1, self.invasive * self.islands)
        )
        self.surrogate = surrogate
        if surrogate is not None and not (
            hasattr(surrogate, "fit") and hasattr(surrogate, "predict")
        ):
            raise ValueError(f"surrogate must have fit(x, y) and predict(x), got {surrogate!r}")
        self.migration_interval = _check_int("migration_interval", migration_interval, 1)
        self.migrants = _check_int("migrants", migrants, 0, self.population_size - 1)
        super().__init__(
            objective=objective,
            max_trials=self.population_size * self.islands * self.generations,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed is not None:  # keras_tuner.Oracle replaces a falsy seed (0) by a random one.
            self.seed = self._seed_state = int(seed)
        self.generation = 0
        self.pools = [[] for _ in range(self.islands)]
        self.planned = []
        # trial_id -> {generation, island, origin, parents, cuts, predicted_rank}
        self.lineage = {}
        self.migrations = []

    # -- search space ----------------------------------------------------------------------

    def check_search_space(self):
        """Raises `ValueError` if trees or widths do not fit the hyperparameters they name."""
        genes.check_trees_and_widths(
            self.hyperparameters.space, self.categorical_trees, self.mutation_widths
        )

    def _genes(self):
        return genes.gene_space(self.hyperparameters.space)

    def _genes_of(self, values):
        return genes.genes_of(self.hyperparameters.space, values)

    def _to_values(self, gene_values):
        return genes.to_values(self.hyperparameters.space, gene_values)

    def _sample_genes(self, rng):
        return genes.sample_genes(self.hyperparameters.space, rng)

    def _encode(self, gene_values):
        return genes.encode(self.hyperparameters.space, gene_values)

    def _mutate(self, gene_values, rng, force=False):
        """Each gene mutates with `mutation_probability`; `force` adds one random gene."""
        gene_values = list(gene_values)
        hps = self._genes()
        probability = self.mutation_probability or 1.0 / max(1, len(hps))
        chosen = [k for k in range(len(hps)) if rng.random() < probability]
        if force and hps:
            chosen.append(int(rng.integers(len(hps))))
        for k in chosen:
            hp = hps[k]
            gene_values[k] = genes.mutate_gene(
                hp,
                gene_values[k],
                rng,
                width=self.mutation_widths.get(hp.name),
                float_scale=self.float_mutation_scale,
                probabilities=self._tree_probabilities.get(hp.name),
            )
        return gene_values

    # -- generations -------------------------------------------------------------------------

    def _score(self, trial_id):
        """Lower is better; failed, missing or NaN scores are `+inf`."""
        trial = self.trials[trial_id]
        if trial.status != trial_module.TrialStatus.COMPLETED or trial.score is None:
            return np.inf
        score = float(trial.score)
        if np.isnan(score):
            return np.inf
        return -score if self.objective.direction == "max" else score

    def _members(self, generation):
        return [t for t, record in self.lineage.items() if record["generation"] == generation]

    def populate_space(self, trial_id):
        members = self._members(self.generation)
        if len(members) >= self.population_size * self.islands and not self.planned:
            if not all(self.trials[t].status in _FINISHED for t in members):
                return {"status": trial_module.TrialStatus.IDLE}
            self._plan_next_generation()
        if self.generation == 0:
            slot = len(members)
            rng = np.random.default_rng([self.seed, 0, slot])
            values = self._unique_random_values(rng, self._tried_so_far)
            child = {"island": slot // self.population_size, "origin": "initial"}
        else:
            child = self.planned.pop(0)
            values = child.pop("values")
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        self.lineage[trial_id] = {"generation": self.generation, **child}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _unique_random_values(self, rng, taken):
        for _ in range(self._max_collisions + 1):
            values = self._to_values(self._sample_genes(rng))
            if self._compute_values_hash(values) not in taken:
                return values
        return None

    def _plan_next_generation(self):
        """Decide the whole next generation: survivors, migrants, invasive and GA children."""
        self.check_search_space()
        scores = {trial_id: self._score(trial_id) for trial_id in self.trials}
        members = self._members(self.generation)
        for island in range(self.islands):
            children = [t for t in members if self.lineage[t]["island"] == island]
            self.pools[island] = operators.next_pool(
                self.pools[island], children, scores, self.population_size, self.elites
            )
        self.generation += 1
        if self.islands > 1 and self.migrants and self.generation % self.migration_interval == 0:
            before = [list(pool) for pool in self.pools]
            self.pools = operators.ring_migration(self.pools, scores, self.migrants)
            arrived = [[t for t in pool if t not in old] for pool, old in zip(self.pools, before)]
            self.migrations.append({"generation": self.generation, "arrived": arrived})
        rng = np.random.default_rng([self.seed, self.generation])
        taken = set(self._tried_so_far)
        invasive = self._invasive_children(rng, taken)
        planned = []
        for island in range(self.islands):
            arrivals = [c for c in invasive if c["island"] == island]
            for _ in range(self.population_size - len(arrivals)):
                planned.append(self._offspring(island, scores, rng, taken))
            planned.extend(arrivals)
        self.planned = planned

    def _offspring(self, island, scores, rng, taken):
        pool = self.pools[island]
        pool_scores = [scores[t] for t in pool]
        first = operators.tournament(pool_scores, min(self.tournament_size, len(pool)), rng)
        second = first
        if len(pool) > 1:
            size = min(self.tournament_size, len(pool) - 1)
            second = operators.tournament(pool_scores, size, rng, exclude=(first,))
        child, cuts = operators.two_point_crossover(
            self._genes_of(self.trials[pool[first]].hyperparameters.values),
            self._genes_of(self.trials[pool[second]].hyperparameters.values),
            rng,
        )
        child = self._mutate(child, rng)
        values = self._to_values(child)
        origin = "offspring"
        for _ in range(self._max_collisions):
            if self._compute_values_hash(values) not in taken:
                break
            child = self._mutate(child, rng, force=True)
            values = self._to_values(child)
        if self._compute_values_hash(values) in taken:
            values, origin = self._unique_random_values(rng, taken), "random"
        if values is not None:
            taken.add(self._compute_values_hash(values))
        return {
            "values": values,
            "island": island,
            "origin": origin,
            "parents": [pool[first], pool[second]],
            "cuts": list(cuts),
        }

    def _invasive_children(self, rng, taken):
        """The surrogate's best predicted unseen candidates, dealt round-robin to islands."""
        count = self.invasive * self.islands
        evaluated = [t for t in self.trials if np.isfinite(self._score(t))]
        if count == 0 or len(evaluated) < 2:
            return []
        features = [
            self._encode(self._genes_of(self.trials[t].hyperparameters.values)) for t in evaluated
        ]
        candidates, seen = [], set(taken)
        for _ in range(self.invasive_candidates):
            values = self._to_values(self._sample_genes(rng))
            key = self._compute_values_hash(values)
            if key not in seen:
                seen.add(key)
                candidates.append(values)
        if not candidates:
            return []
        surrogate = self.surrogate or invasive_module.MLPSurrogate(
            seed=self.seed + self.generation
        )
        order, predictions = invasive_module.propose(
            surrogate,
            features,
            [self._score(t) for t in evaluated],
            [self._encode(self._genes_of(values)) for values in candidates],
            min(count, len(candidates)),
        )
        children = []
        for rank, (index, predicted) in enumerate(zip(order, predictions)):
            taken.add(self._compute_values_hash(candidates[index]))
            children.append(
                {
                    "values": candidates[index],
                    "island": rank % self.islands,
                    "origin": "invasive",
                    "predicted_rank": predicted,
                }
            )
        return children

    # -- reporting and state -----------------------------------------------------------------

    def describe(self, trial_id):
        """One line saying where a trial came from."""
        record = self.lineage.get(trial_id)
        if record is None:
            return "origin unknown (not created by this oracle)"
        where = f"generation {record['generation']}, island {record['island']}"
        if record["origin"] == "initial":
            return f"{where}: random initial member"
        if record["origin"] == "invasive":
            return (
                f"{where}: invasive species, proposed by the surrogate "
                f"(predicted rank {record['predicted_rank']:.3f})"
            )
        if record["origin"] == "random":
            return f"{where}: random (every mutation of the parents' child was already tried)"
        first, second = record["parents"]
        return f"{where}: offspring of trials {first} x {second}, cuts at {record['cuts']}"

    def get_state(self):
        state = super().get_state()
        state["genetic"] = {
            "generation": self.generation,
            "pools": self.pools,
            "planned": self.planned,
            "lineage": self.lineage,
            "migrations": self.migrations,
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        genetic = state["genetic"]
        self.generation = genetic["generation"]
        self.pools = genetic["pools"]
        self.planned = genetic["planned"]
        self.lineage = genetic["lineage"]
        self.migrations = genetic["migrations"]

