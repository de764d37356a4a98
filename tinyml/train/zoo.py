"""The model zoo: small Keras models whose every op TFLM and the code generator support.

Only Conv1D, MaxPooling1D, GlobalAveragePooling1D, Dense, ReLU and softmax are used, which
convert to CONV_2D/EXPAND_DIMS/RESHAPE, MAX_POOL_2D, MEAN, FULLY_CONNECTED and SOFTMAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyml.errors import InputError


@dataclass(frozen=True)
class ModelKind:
    name: str
    task: str          # "classifier" or "anomaly"
    preprocess: str    # a tinyml.preprocess mode: "per_window" (windows) or "features"
    summary: str
    monitor: str = "val_loss"  # what early stopping watches
    warmup_epochs: int = 0     # epochs trained before early stopping starts watching


MODELS: dict[str, ModelKind] = {
    # On unseen operating points (the fan's held-out speeds) the CNN's validation loss rises from
    # overconfidence on the few windows it gets wrong while its accuracy still improves, so
    # early stopping on the loss kept the weights of epoch 1-3 (docs/training.md).
    "cnn1d": ModelKind("cnn1d", "classifier", "per_window",
                       "1D CNN classifier on per-window standardised raw windows and their log levels",
                       monitor="val_accuracy", warmup_epochs=15),
    "mlp": ModelKind("mlp", "classifier", "features", "dense classifier on standardised features"),
    "autoencoder": ModelKind("autoencoder", "anomaly", "features",
                             "dense autoencoder on features, trained on the normal class"),
}


def model_kind(name: str) -> ModelKind:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}", f"use one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build(name: str, input_shape: tuple[int, ...], n_classes: int) -> Any:
    """A compiled Keras model for ``name``."""
    import keras

    kind = model_kind(name)
    inputs = keras.Input(shape=input_shape, name="input")
    if name == "cnn1d":
        outputs = _cnn1d(inputs, n_classes)
    elif name == "mlp":
        outputs = _mlp(inputs, n_classes)
    else:
        outputs = _autoencoder(inputs)
    model = keras.Model(inputs, outputs, name=name)
    if kind.task == "classifier":
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    else:
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    return model


def _cnn1d(x: Any, n_classes: int, filters: tuple[int, ...] = (16, 24, 32), dense: int = 16) -> Any:
    """Strided convolutions with pooling while the sequence is long enough; about 6k parameters."""
    from keras import layers

    length = int(x.shape[1])
    for i, (f, k) in enumerate(zip(filters, (7, 5, 3), strict=True)):
        stride = 2 if i < 2 and length >= 8 else 1
        x = layers.Conv1D(f, k, strides=stride, padding="same", activation="relu")(x)
        length = -(-length // stride)
        if i < 2 and length >= 8:
            x = layers.MaxPooling1D(2)(x)
            length //= 2
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(dense, activation="relu")(x)
    return layers.Dense(n_classes, activation="softmax", name="scores")(x)


def _mlp(x: Any, n_classes: int, hidden: tuple[int, ...] = (32, 16), l2: float = 1e-3) -> Any:
    """L2 weight decay narrows the spread over seeds on unseen operating points (the fan data's
    held-out speeds, docs/benchmarks.md)."""
    from keras import layers, regularizers

    for units in hidden:
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizers.l2(l2))(x)
    return layers.Dense(n_classes, activation="softmax", name="scores")(x)


def _autoencoder(x: Any, hidden: tuple[int, ...] = (16, 8, 16)) -> Any:
    from keras import layers

    width = int(x.shape[-1])
    for units in hidden:
        x = layers.Dense(units, activation="relu")(x)
    return layers.Dense(width, name="reconstruction")(x)
