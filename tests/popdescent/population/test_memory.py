"""300 iterations of a small population do not grow process memory: nothing (model, traced
function, dataset) is re-created and kept per iteration.

Measured on the development machine: +2 to +3 MiB of RSS over the last 250 iterations and 6
new Python objects per iteration (the lineage record and History's logs). Keeping one
re-created fitness function per iteration, for comparison, costs about 1 MiB and ~960
objects per iteration, far beyond both bounds.
"""

import gc

import keras
import pytest
from tests.helpers.models import make_model

import popdescent as pd

ITERATIONS = 300
WARM_UP = 50
BOUND_MIB = 40  # generous: RSS moves with the allocator; a retained function is ~1 MiB each
BOUND_OBJECTS_PER_ITERATION = 100  # the lineage and History add ~6


def resident_mib():
    """This process's resident set size (VmRSS in /proc/self/status), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


class Measure(keras.callbacks.Callback):
    """RSS and live Python objects (after a full collection) at a few iterations."""

    def __init__(self, at):
        super().__init__()
        self.at, self.rss, self.objects, self.traces = set(at), {}, {}, {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 in self.at:
            gc.collect()
            self.rss[epoch + 1] = resident_mib()
            self.objects[epoch + 1] = len(gc.get_objects())
            self.traces[epoch + 1] = self.model.traces


@pytest.mark.slow
def test_three_hundred_iterations_do_not_grow_memory(data, tmp_path):
    x, y, _, _ = data
    pop = pd.Population(make_model(), size=4, seed=0, hyperparameters={
        "learning_rate": pd.LogUniform(1e-3, 1e-2), "l2": pd.LogUniform(1e-6, 1e-3)})
    measure = Measure(at=[WARM_UP, ITERATIONS // 2, ITERATIONS])
    pop.fit(x, y, batch_size=16, epochs=ITERATIONS, steps_per_epoch=1, verbose=0,
            callbacks=[pd.PopDescent(elites=2, cv_batch_size=16, cross_validation=False),
                       pd.BackupAndRestore(tmp_path / "backup"), measure])

    assert pop.gradient_steps == ITERATIONS * 4
    assert len(pop.lineage) == ITERATIONS
    assert measure.traces[ITERATIONS] == measure.traces[WARM_UP]  # the step never retraced
    growth = measure.rss[ITERATIONS] - measure.rss[WARM_UP]
    objects = (measure.objects[ITERATIONS] - measure.objects[WARM_UP]) / (ITERATIONS - WARM_UP)
    print(f"\nRSS after {WARM_UP} iterations {measure.rss[WARM_UP]:.1f} MiB, after "
          f"{ITERATIONS // 2} {measure.rss[ITERATIONS // 2]:.1f} MiB, after {ITERATIONS} "
          f"{measure.rss[ITERATIONS]:.1f} MiB: {growth:+.1f} MiB over the last "
          f"{ITERATIONS - WARM_UP} iterations; {objects:.1f} new Python objects per iteration")
    assert growth < BOUND_MIB
    assert objects < BOUND_OBJECTS_PER_ITERATION
