"""`FusedTrainStep`: how a population's members train together in one compiled step.

A mixin of `Population`, as Keras' own `Trainer` is of `keras.Model`: one gradient tape over
the sum of every member's (penalised, scaled) loss, so one forward and one backward pass per
batch for all members, then each member's own optimizer update, optionally XLA-compiled. It
reads the population's `members`, `live_hyperparameters`, `_l2_kernels`, `_loss_trackers`,
`_population_optimizer` and `traces`; it knows nothing of any tuning algorithm.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from popdescent.inputs.dataset_inputs import is_stream
from popdescent.population.live_regularization import smoothed_loss
from popdescent.validation import check_integer

__all__ = ["FusedTrainStep"]

# Below this many trainable parameters per member, the optimizer update is a small part of a
# step and XLA's compile time (about a second per member on a 2-core CPU) does not pay back
# in a short run; see Population.compile.
_XLA_UPDATE_MIN_PARAMETERS = 100_000


def _masked_mean(values, finite):
    """The mean of `values` where `finite`, or of all of them when none is."""
    count = ops.sum(ops.cast(finite, values.dtype))
    mean = ops.sum(ops.where(finite, values, ops.zeros_like(values))) / ops.maximum(
        count, ops.ones_like(count))
    return ops.where(count > 0, mean, ops.mean(values))


def _population_metrics(values_by_name, directions, finite):
    """Each compiled metric by its plain name over the population: its mean over the members
    whose loss is finite (as `loss` is), and `best_<name>`, the best member's value (the
    largest for a metric Keras maximises, the smallest otherwise; none when Keras does not
    say). The plain names are what Keras' callbacks monitor (`val_accuracy`), and the mean
    moves as the population does, as `loss` does."""
    logs = {}
    for name, values in values_by_name.items():
        stacked = ops.stack([ops.cast(v, "float32") for v in values])
        logs[name] = _masked_mean(stacked, finite)
        direction = directions.get(name)
        if direction == "up":
            logs[f"best_{name}"] = ops.max(ops.where(finite, stacked, ops.full_like(stacked, -np.inf)))
        elif direction == "down":
            logs[f"best_{name}"] = ops.min(ops.where(finite, stacked, ops.full_like(stacked, np.inf)))
    return logs


def metric_directions(member) -> dict:
    """Name -> "up" or "down" for each compiled metric of `member` that says which way is
    better (Keras' `_direction`, which its callbacks read too)."""
    directions = {}
    for metric in member.metrics:
        inner = getattr(metric, "metrics", None)
        for m in (inner if isinstance(inner, (list, tuple)) else [metric]):
            direction = getattr(m, "_direction", None)
            if direction in ("up", "down"):
                directions[m.name] = direction
    return directions


def _population_losses(losses):
    """The population's `loss` (mean) and `best_loss` (minimum) over its finite members, and
    `nonfinite_members`, how many members' losses are NaN or infinite.

    One diverged member would otherwise make the mean infinite, and
    `keras.callbacks.TerminateOnNaN` would end a run that a strategy heals by replacing that
    member. When no member is finite, both are over all members, so non-finite: then
    TerminateOnNaN does stop the run.
    """
    finite = ops.isfinite(losses)
    finite_count = ops.sum(ops.cast(finite, losses.dtype))
    any_finite = finite_count > 0
    mean = ops.sum(ops.where(finite, losses, ops.zeros_like(losses))) / ops.maximum(
        finite_count, ops.ones_like(finite_count))
    best = ops.min(ops.where(finite, losses, ops.full_like(losses, np.inf)))
    return {
        "loss": ops.where(any_finite, mean, ops.mean(losses)),
        "best_loss": ops.where(any_finite, best, ops.min(losses)),
        "nonfinite_members": ops.cast(ops.shape(losses)[0], losses.dtype) - finite_count,
    }


def _symbolic(leaf):
    """A `keras.KerasTensor` of `leaf`'s shape (any batch size) and dtype."""
    leaf = leaf if hasattr(leaf, "shape") and hasattr(leaf, "dtype") else np.asarray(leaf)
    shape = tuple(leaf.shape)
    return keras.KerasTensor((None, *shape[1:]), keras.backend.standardize_dtype(leaf.dtype))


class FusedTrainStep:
    """`compile`, `train_step`, `test_step` and the logs of a `Population` (see the module)."""

    def compile(self, jit_compile=False, steps_per_execution=1, run_eagerly=False,
                jit_compile_updates="auto", **kwargs):
        """Sets how the fused step runs. Members keep their own optimizers and losses.

        Args:
            jit_compile: True compiles the whole fused step with XLA (Keras' meaning). Off by
                default: on CPU, TensorFlow's oneDNN convolutions and their gradients took
                less time than XLA's, and XLA's fork-join threads suffer more when the cores
                are shared (see experiments/throughput.py).
            steps_per_execution: steps run per call of the compiled function (Keras' meaning);
                callbacks' per-batch hooks see every `steps_per_execution`-th batch.
            run_eagerly: run the step eagerly, for debugging.
            jit_compile_updates: True compiles each member's optimizer update with XLA, the
                rest of the step staying on TensorFlow's kernels. An update is a chain of
                elementwise operations over every weight (Adam: about a dozen full-size passes
                through memory) that XLA fuses into one pass: on the paper's FMNIST CNN, Adam's
                update took a quarter of the CPU time. Compiling costs about a second per
                member, so `"auto"` (the default) turns it on only for members of at least
                100,000 trainable parameters. It has no effect with `jit_compile` or
                `run_eagerly`; set it False for an optimizer that XLA cannot compile.
        """
        if kwargs:
            raise ValueError(
                "a Population is compiled through its members; compile accepts only "
                "jit_compile, steps_per_execution, run_eagerly and jit_compile_updates, got "
                f"{sorted(kwargs)}"
            )
        if not (jit_compile is True or jit_compile is False or jit_compile == "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto', got {jit_compile!r}")
        check_integer("steps_per_execution", steps_per_execution, minimum=1)
        if not (
            jit_compile_updates is True or jit_compile_updates is False
            or jit_compile_updates == "auto"
        ):
            raise ValueError(
                f"jit_compile_updates must be True, False or 'auto', got {jit_compile_updates!r}"
            )
        super().compile(
            optimizer=None,
            loss=None,
            # Members scale their own losses (`_scaled_loss`); wrapping `optimizer` would fail.
            auto_scale_loss=False,
            jit_compile=jit_compile,
            steps_per_execution=int(steps_per_execution),
            run_eagerly=run_eagerly,
        )
        if jit_compile_updates == "auto":
            smallest = min(
                sum(int(np.prod(v.shape)) for v in member.trainable_variables)
                for member in self.members
            )
            jit_compile_updates = smallest >= _XLA_UPDATE_MIN_PARAMETERS
        self.jit_compile_updates = jit_compile_updates  # resolved, as Keras does jit_compile
        self._member_updates = None
        if jit_compile_updates and not self.jit_compile and not self.run_eagerly:
            self._member_updates = [self._compiled_update(member) for member in self.members]

    @staticmethod
    def _compiled_update(member):
        def update(gradients):
            member.optimizer.apply(gradients, member.trainable_variables)

        # Called from inside the traced train step, this becomes one XLA cluster per member:
        # members' updates can still overlap with each other and with other members' backward
        # passes on TensorFlow's inter-op threads.
        return tf.function(update, jit_compile=True, reduce_retracing=True)

    @property
    def optimizer(self):
        """The population's `PopulationOptimizer`: what Keras callbacks read as
        `model.optimizer` (learning rate, member-step count). Members keep their own."""
        return getattr(self, "_population_optimizer", None)

    @optimizer.setter
    def optimizer(self, value):
        # Keras' compile assigns the optimizer it was given, None here.
        if value is not None:
            raise ValueError(
                "a Population has no optimizer to set: each member trains with the optimizer "
                f"it was compiled with; optimizer must be None, got {value!r}"
            )

    @property
    def metrics(self):
        tracked = list(self._loss_trackers) if hasattr(self, "_loss_trackers") else []
        for member in getattr(self, "members", []):
            tracked.extend(metric for metric in member.metrics if metric.name != "loss")
        return tracked

    def _penalised_loss(self, index, x, y, sample_weight):
        member = self.members[index]
        y_pred = member(x, training=True)
        smoothing = self.live_hyperparameters.regularization.get("label_smoothing")
        if smoothing is None:
            loss = member.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        else:
            loss = smoothed_loss(member, y, y_pred, sample_weight, smoothing[index])
        l2 = self.live_hyperparameters.l2
        if l2 is not None and self._l2_kernels[index]:
            squares = ops.sum(ops.stack([ops.sum(ops.square(k)) for k in self._l2_kernels[index]]))
            loss = loss + ops.cast(l2[index], loss.dtype) * squares
        return y_pred, loss

    def _scaled_loss(self, index, loss):
        # What the member differentiates, not what it reports: the logs keep the unscaled
        # loss, as the reference code reported its cross-entropy before scaling.
        loss_scale = self.live_hyperparameters.loss_scale
        if loss_scale is not None:
            loss = loss * ops.cast(loss_scale[index], loss.dtype)
        # Keras' own train step does the same: under "mixed_float16" the member's optimizer
        # is a LossScaleOptimizer that divides the gradients by its dynamic scale (and skips
        # a step whose gradients are not finite), so the loss must be multiplied by it here,
        # or every update is 2**15 times too small. Other optimizers apply their
        # `loss_scale_factor`, or return the loss unchanged.
        return self.members[index].optimizer.scale_loss(loss)

    def train_step(self, data):
        self.traces += 1
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = [self._penalised_loss(i, x, y, sample_weight) for i in range(self.size)]
            # Members share no variables, so the gradient of the sum is each member's own.
            total = ops.sum(ops.stack([
                self._scaled_loss(index, loss) for index, (_, loss) in enumerate(outputs)
            ]))
        variables = [member.trainable_variables for member in self.members]
        gradients = tape.gradient(total, variables)
        for index, (member, grads, weights) in enumerate(zip(self.members, gradients, variables)):
            self.live_hyperparameters.apply_learning_rate(index)
            if self._member_updates is None:
                member.optimizer.apply(grads, weights)
            else:
                self._member_updates[index](grads)
        self.optimizer.iterations.assign_add(self.size)
        return self._update_logs(x, y, sample_weight, outputs, self.optimizer.iterations)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = []
        for member in self.members:
            y_pred = member(x, training=False)
            loss = member.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
            outputs.append((y_pred, loss))
        return self._update_logs(x, y, sample_weight, outputs)

    def _update_logs(self, x, y, sample_weight, outputs, steps=None):
        logs, losses, by_name = {}, [], {}
        batch = ops.shape(ops.convert_to_tensor(keras.tree.flatten(x)[0]))[0]
        for index, (member, (y_pred, loss)) in enumerate(zip(self.members, outputs)):
            self._loss_trackers[index].update_state(loss, sample_weight=batch)
            losses.append(self._loss_trackers[index].result())
            logs[f"loss_{index}"] = losses[-1]
            member.compute_metrics(x, y, y_pred, sample_weight)
            for metric in member.metrics:
                if metric.name == "loss":
                    continue
                result = metric.result()
                results = result if isinstance(result, dict) else {metric.name: result}
                logs.update({f"{key}_{index}": value for key, value in results.items()})
                for key, value in results.items():
                    by_name.setdefault(key, []).append(value)
        stacked = ops.stack(losses)
        population = _population_losses(stacked)
        shared = {name: values for name, values in by_name.items()
                  if len(values) == self.size and name not in population}
        logs.update(_population_metrics(shared, metric_directions(self.members[0]),
                                        ops.isfinite(stacked)))
        logs.update(population)
        if steps is not None:
            logs["gradient_steps"] = steps
        return logs

    def _prepare_members(self, x, y):
        """Builds members' compiled metrics before a traced step would create their variables,
        from the shapes and dtypes of x and y alone (structures of arrays or `tf.TensorSpec`s):
        each member is called on symbolic `keras.KerasTensor`s, as Keras' own fit builds a
        model, so no member runs on data."""
        if isinstance(x, tf.data.Dataset):  # evaluate(dataset), Keras' validation on one
            x, y = x.element_spec[:2]
        if x is None or y is None or is_stream(x):
            return
        x_spec, y_spec = (keras.tree.map_structure(_symbolic, s) for s in (x, y))
        for member in self.members:
            unbuilt = [m for m in member.metrics
                       if m.name != "loss" and not getattr(m, "built", True)]
            if unbuilt:
                y_pred = member(x_spec, training=False)
                for metric in unbuilt:
                    metric.build(y_spec, y_pred)

    def get_compile_config(self):
        return {
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
            "run_eagerly": self.run_eagerly,
            "jit_compile_updates": self.jit_compile_updates,
        }

    def compile_from_config(self, config):
        self.compile(**config)
