"""Dropout, augmentation and label smoothing as live per-member hyperparameters.

The regularization a Keras user writes into a model (`keras.layers.Dropout`, Keras' random
image-preprocessing layers, a cross-entropy loss) is fixed in Python floats that a traced
train step captures once. Here each member's layers are bound to backend variables instead,
so a strategy's `assign` changes them between iterations with no retrace, as the learning
rate already is:

- `"dropout"`: the rate of every `Dropout` (and `SpatialDropout*`) layer of the member.
- `"augmentation"`: a magnitude m multiplying the factors of every `RandomTranslation`,
  `RandomRotation`, `RandomZoom` and `RandomContrast` layer (each factor clipped to the range
  its layer accepts); `RandomFlip` is on while m > 0. m = 0 is no augmentation, m = 1 what
  the user wrote.
- `"label_smoothing"`: e in the member's cross-entropy, targets (1 - e) * one_hot + e / K,
  as `keras.losses.CategoricalCrossentropy(label_smoothing=e)` computes; validation (the
  fitness) keeps the plain loss.

Binding replaces the layers' `call` (dropout) or `get_random_transformation` (augmentation)
on the member's own layer objects; their configs, and so `save` and `clone_model`, keep what
the user wrote. `carry_values` writes a member's values into a plain model's layers, so a
returned model trains on, and saves, with them. This module knows nothing of populations.
"""

from __future__ import annotations

import warnings

import keras
from keras import ops

__all__ = ["REGULARIZATION_NAMES", "LabelSmoothedCrossentropy", "check_regularizable", "bind",
           "carry_values", "initial_value", "smoothed_loss", "regularization_layers"]

REGULARIZATION_NAMES = ("dropout", "augmentation", "label_smoothing")

_L = keras.layers
# Layer class -> {config attribute: the attributes its (lower, upper) factor is parsed into}
# and the range each factor may take (the layer's own check of its arguments). A pair kept
# in one attribute (RandomRotation's `factor`) names that attribute alone.
_SCALED_FACTORS = {
    _L.RandomTranslation: ({"height_factor": ("height_lower", "height_upper"),
                            "width_factor": ("width_lower", "width_upper")}, (-1.0, 1.0)),
    _L.RandomZoom: ({"height_factor": ("height_lower", "height_upper"),
                     "width_factor": ("width_lower", "width_upper")}, (-1.0, 1.0)),
    _L.RandomRotation: ({"factor": ("factor",)}, (-1.0, 1.0)),
    _L.RandomContrast: ({"factor": ("factor",)}, (0.0, 1.0)),
}
_CROSSENTROPIES = {
    "sparse_categorical_crossentropy": True, "categorical_crossentropy": False,
}


def _all_layers(model):
    """Every layer inside `model`, nested models' layers included, in a fixed order."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_all_layers(layer))
    return found


def regularization_layers(model, name) -> list:
    """The layers of `model` that hyperparameter `name` acts on (empty for label smoothing)."""
    layers = _all_layers(model)
    if name == "dropout":
        return [layer for layer in layers if isinstance(layer, _L.Dropout)]
    if name == "augmentation":
        kinds = (*_SCALED_FACTORS, _L.RandomFlip)
        return [layer for layer in layers if isinstance(layer, kinds)]
    return []


def _scaled_factors(layer):
    """(factors, bounds) of `layer`'s kind in `_SCALED_FACTORS` (subclasses included, as
    `regularization_layers` finds them)."""
    return next(entry for kind, entry in _SCALED_FACTORS.items() if isinstance(layer, kind))


def _crossentropy(model):
    """(sparse, from_logits) of a model compiled with one cross-entropy loss, else None."""
    loss = model.loss
    if isinstance(loss, str):
        sparse = _CROSSENTROPIES.get(loss)
        return None if sparse is None else (sparse, False)
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return True, bool(loss.get_config().get("from_logits", False))
    if isinstance(loss, keras.losses.CategoricalCrossentropy):
        return False, bool(loss.get_config().get("from_logits", False))
    function = getattr(loss, "__name__", None)
    if function in _CROSSENTROPIES:
        return _CROSSENTROPIES[function], False
    return None


def check_regularizable(model, name, argument) -> None:
    """Raises ValueError, naming `argument`, if `model` has nothing hyperparameter `name`
    acts on: no Dropout layer, no supported preprocessing layer, or (label smoothing) a loss
    that is not one sparse or one-hot cross-entropy."""
    if name == "label_smoothing":
        if _crossentropy(model) is None:
            raise ValueError(
                f"{argument} tunes label smoothing, which needs members compiled with one "
                "classification loss: keras.losses.SparseCategoricalCrossentropy or "
                "CategoricalCrossentropy (or their names); got loss="
                f"{model.loss!r}")
        return
    if not regularization_layers(model, name):
        what = ("keras.layers.Dropout (or SpatialDropout) layer" if name == "dropout" else
                "RandomTranslation, RandomRotation, RandomZoom, RandomContrast or "
                "RandomFlip layer")
        raise ValueError(f"{argument} tunes {name!r}, but the model has no {what} for it to "
                         "act on: add the layer, or leave the name out of hyperparameters")


def initial_value(model, name) -> float:
    """What the user wrote: the first Dropout's rate, augmentation 1, the loss's smoothing."""
    if name == "dropout":
        return float(regularization_layers(model, name)[0].rate)
    if name == "augmentation":
        return 1.0
    config = model.loss.get_config() if isinstance(model.loss, keras.losses.Loss) else {}
    return float(config.get("label_smoothing", 0.0) or 0.0)


# ----------------------------------------------------------------- live binding
def _bind_dropout(layer, rate):
    def call(inputs, training=False):
        if not training:
            return inputs
        # SpatialDropout drops whole feature maps: its noise shape depends on the input.
        noise_shape = (layer._get_noise_shape(inputs) if hasattr(layer, "_get_noise_shape")
                       else layer.noise_shape)
        shape = ops.shape(inputs)
        if noise_shape is not None:
            shape = [shape[i] if size is None else size for i, size in enumerate(noise_shape)]
        # Keras' own dropout asks `rate == 0` in Python, which a variable cannot answer in a
        # traced step; this is the same draw with the rate a tensor (rate 0 keeps everything).
        rate_value = ops.cast(rate, inputs.dtype)
        keep = keras.random.uniform(shape, seed=layer.seed_generator,
                                    dtype=inputs.dtype) >= rate_value
        return ops.where(keep, inputs / (1.0 - rate_value), ops.zeros_like(inputs))

    # `object.__setattr__`: a function is no state for Keras' attribute tracker to follow.
    object.__setattr__(layer, "call", call)


def _read_pair(layer, attributes):
    if len(attributes) == 1:
        return tuple(getattr(layer, attributes[0]))
    return tuple(getattr(layer, attribute) for attribute in attributes)


def _write_pair(layer, attributes, pair):
    if len(attributes) == 1:
        object.__setattr__(layer, attributes[0], tuple(pair))
    else:
        for attribute, value in zip(attributes, pair):
            object.__setattr__(layer, attribute, value)


def _scaled(pair, magnitude, bounds, clip):
    low, high = bounds
    return tuple(clip(value * magnitude, low, high) for value in pair)


def _bind_augmentation(layer, magnitude):
    original = layer.get_random_transformation
    if isinstance(layer, _L.RandomFlip):
        def flip_transformation(data, training=True, seed=None):
            transformation = original(data, training=training, seed=seed)
            if transformation is None:
                return None
            flips = ops.logical_and(transformation["flips"], magnitude > 0)
            return {**transformation, "flips": flips}

        object.__setattr__(layer, "get_random_transformation", flip_transformation)
        return
    factors, bounds = _scaled_factors(layer)
    pairs = [attributes for attributes in factors.values()
             if getattr(layer, attributes[0], None) is not None]

    def scaled_transformation(data, training=True, seed=None):
        if not training:
            return original(data, training=training, seed=seed)
        scale = ops.cast(magnitude, "float32")
        saved = [_read_pair(layer, attributes) for attributes in pairs]
        try:  # the layer reads its factors while drawing: scaled ones, for this draw only
            for attributes, pair in zip(pairs, saved):
                _write_pair(layer, attributes, _scaled(pair, scale, bounds, ops.clip))
            return original(data, training=training, seed=seed)
        finally:
            for attributes, pair in zip(pairs, saved):
                _write_pair(layer, attributes, pair)

    object.__setattr__(layer, "get_random_transformation", scaled_transformation)


def bind(model, name, variable) -> None:
    """Makes `model`'s layers read hyperparameter `name` from `variable` when training."""
    for layer in regularization_layers(model, name):
        (_bind_dropout if name == "dropout" else _bind_augmentation)(layer, variable)


class LabelSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy on smoothed targets (1 - e) * one_hot + e / K, for sparse (integer) or
    one-hot labels, with e a number or a `keras.Variable` read at every call (a live
    hyperparameter): what `keras.losses.CategoricalCrossentropy(label_smoothing=e)` computes,
    which Keras' sparse cross-entropy cannot.

    Args:
        smoothing: e in [0, 1), or a variable holding it.
        sparse: True for integer labels, False for one-hot ones.
        from_logits: whether predictions are logits.
        reduction: as for any Keras loss.
        name: as for any Keras loss.
    """

    def __init__(self, smoothing=0.0, sparse=True, from_logits=False,
                 reduction="sum_over_batch_size", name="label_smoothed_crossentropy"):
        super().__init__(reduction=reduction, name=name)
        if not isinstance(smoothing, keras.Variable) and not 0 <= float(smoothing) < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        self.smoothing = smoothing
        self.sparse = bool(sparse)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        num_classes = ops.shape(y_pred)[-1]
        targets = y_true
        if self.sparse:
            labels = ops.cast(y_true, "int32")
            if len(labels.shape) == len(y_pred.shape):
                labels = ops.squeeze(labels, axis=-1)
            targets = ops.one_hot(labels, num_classes, dtype=y_pred.dtype)
        smoothing = ops.cast(self.smoothing, y_pred.dtype)
        targets = (ops.cast(targets, y_pred.dtype) * (1.0 - smoothing)
                   + smoothing / ops.cast(num_classes, y_pred.dtype))
        return keras.losses.categorical_crossentropy(targets, y_pred,
                                                     from_logits=self.from_logits)

    def get_config(self):
        smoothing = self.smoothing
        if isinstance(smoothing, keras.Variable):
            smoothing = float(ops.convert_to_numpy(smoothing))
        return {**super().get_config(), "smoothing": float(smoothing), "sparse": self.sparse,
                "from_logits": self.from_logits}


def smoothed_loss(model, y, y_pred, sample_weight, smoothing):
    """`model`'s cross-entropy with labels smoothed by `smoothing` (a scalar tensor),
    reduced as its compiled loss reduces, plus the model's own losses (kernel regularizers),
    as `model.compute_loss` adds them."""
    sparse, from_logits = _crossentropy(model)
    reduction = getattr(model.loss, "reduction", "sum_over_batch_size")
    crossentropy = LabelSmoothedCrossentropy(smoothing, sparse, from_logits, reduction)
    loss = crossentropy(y, y_pred, sample_weight=sample_weight)
    if model.losses:
        loss = loss + ops.cast(ops.sum(ops.stack(model.losses)), loss.dtype)
    return loss


# ----------------------------------------------------------------- returned models
def carry_values(model, values) -> None:
    """Writes a member's live values (name -> float) into a plain model's layers, so that the
    model trains on and saves with them: each Dropout's rate, and each augmentation layer's
    factors scaled by the magnitude (the model is a fresh clone of the member, whose configs
    hold what the user wrote). Label smoothing lives in the loss, and a returned model is
    compiled with the loss the user compiled: its tuned value is in the member's
    hyperparameters, not in the returned model."""
    if "dropout" in values:
        for layer in regularization_layers(model, "dropout"):
            layer.rate = float(values["dropout"])
    if "augmentation" not in values:
        return
    magnitude = float(values["augmentation"])
    for layer in regularization_layers(model, "augmentation"):
        if isinstance(layer, _L.RandomFlip):
            if magnitude <= 0:
                warnings.warn(
                    f"augmentation magnitude 0 turns {layer.name!r} (RandomFlip) off while the "
                    "population trains, but a Keras RandomFlip has no off setting: the "
                    "returned model flips as the user wrote", stacklevel=3)
            continue
        factors, bounds = _scaled_factors(layer)
        for config_attribute, attributes in factors.items():
            if getattr(layer, attributes[0], None) is None:
                continue
            pair = _scaled(_read_pair(layer, attributes), magnitude, bounds,
                           lambda value, low, high: float(min(max(value, low), high)))
            _write_pair(layer, attributes, pair)
            setattr(layer, config_attribute, pair)
