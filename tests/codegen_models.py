"""The code generator's model matrix: small Keras models that exercise every supported op.

Each entry builds a Keras model; ``convert`` turns it into a full-int8 .tflite the way
`tinyml quantize` does (representative data, int8 I/O, optional per-tensor dense layers).
The matrix is built once per test session (TF import ~2 s, ~0.5 s per conversion).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Spec:
    build: Callable[[], object]
    per_channel: bool = True
    float_io: bool = False


def _seq(input_shape: tuple[int, ...], *layers: object) -> object:
    import keras

    return keras.Sequential([keras.Input(input_shape), *layers])


def _func(input_shape: tuple[int, ...], body: Callable[[object], object]) -> object:
    import keras

    x = keras.Input(input_shape)
    return keras.Model(x, body(x))


def _L():  # noqa: N802 - short alias for keras.layers in the table below
    import keras

    return keras.layers


def _residual(x: object) -> object:
    L = _L()
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(4, 1)(x)
    return L.Activation("relu")(L.Add()([a, b]))


def _branches(op: str) -> Callable[[object], object]:
    def body(x: object) -> object:
        L = _L()
        a = L.Conv2D(3, 3, padding="same")(x)
        b = L.Conv2D(3, 1, activation="relu")(x)
        return {"sub": L.Subtract(), "mul": L.Multiply(), "concat": L.Concatenate()}[op]([a, b])

    return body


def _add_broadcast(x: object) -> object:
    L = _L()
    a = L.Conv2D(3, 1)(x)
    return L.Add()([a, L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(3, 1)(x))])


def _relus(x: object) -> object:
    L = _L()
    joined = L.Concatenate()([L.Conv2D(3, 1)(x), L.Conv2D(2, 1)(x)])
    return L.Activation("relu6")(L.GlobalAveragePooling2D()(L.Activation("relu")(joined)))


def _vib_like() -> object:
    L = _L()
    return _seq((64, 3), L.Conv1D(8, 7, strides=2, activation="relu"), L.MaxPooling1D(2),
                L.Conv1D(16, 5, padding="same", activation="relu"), L.GlobalAveragePooling1D(),
                L.Dense(7, activation="relu"), L.Dense(3, activation="softmax"))


MODELS: dict[str, Spec] = {
    "dense_pc": Spec(lambda: _seq((17,), _L().Dense(7, activation="relu"), _L().Dense(3))),
    "dense_pt": Spec(lambda: _seq((17,), _L().Dense(7, activation="relu"), _L().Dense(3)), per_channel=False),
    "dense_relu6_pt": Spec(lambda: _seq((3,), _L().Dense(1, activation="relu6"), _L().Dense(7)),
                           per_channel=False),
    "dense_3d": Spec(lambda: _seq((4, 7), _L().Dense(3, activation="relu"))),
    "conv_same_relu": Spec(lambda: _seq((9, 9, 3), _L().Conv2D(7, 3, padding="same", activation="relu"))),
    "conv_valid_stride": Spec(lambda: _seq((11, 10, 1), _L().Conv2D(17, (3, 2), strides=2))),
    "conv_stride_same_odd": Spec(lambda: _seq((7, 8, 2), _L().Conv2D(3, 4, strides=(2, 3), padding="same",
                                                                       activation="relu6"))),
    "conv_dilated": Spec(lambda: _seq((12, 12, 2), _L().Conv2D(3, 3, dilation_rate=2, padding="same"))),
    "conv_dilated_valid": Spec(lambda: _seq((13, 11, 1), _L().Conv2D(4, 3, dilation_rate=(2, 3)))),
    "conv_groups": Spec(lambda: _seq((6, 6, 4), _L().Conv2D(6, 3, groups=2, padding="same"))),
    "conv1d_cnn": Spec(_vib_like),
    # remainders of the cortex-m4-dsp kernels: depth % 4, rows % 4 and % 64, every group count % 4,
    # patches starting on an odd int16, one-row kernels on 2-D inputs, max pools over 4 + 2 channels
    "dense_odd_rows": Spec(lambda: _seq((13,), _L().Dense(6, activation="relu"), _L().Dense(70), _L().Dense(5),
                                        _L().Dense(7))),
    "dense_odd_groups_pt": Spec(lambda: _seq((20,), _L().Dense(4), _L().Dense(9)), per_channel=False),
    "conv1d_odd_start": Spec(lambda: _seq((17, 3), _L().Conv1D(5, 3, padding="same", activation="relu"),
                                          _L().Conv1D(6, 5, strides=3))),
    "conv_rows_2d": Spec(lambda: _seq((4, 5, 3), _L().Conv2D(6, (1, 3), padding="same"),
                                      _L().Conv2D(4, (3, 1), strides=(2, 1)))),
    "maxpool_6ch_relu": Spec(lambda: _seq((7, 9, 6), _L().Conv2D(6, 1), _L().MaxPooling2D((2, 3), strides=(1, 2),
                                                                                   padding="same"),
                                          _L().Activation("relu"))),
    "depthwise": Spec(lambda: _seq((8, 8, 3), _L().DepthwiseConv2D(3, depth_multiplier=2, padding="same"))),
    "depthwise_s2_relu6": Spec(lambda: _seq((9, 9, 7), _L().DepthwiseConv2D(3, strides=2, activation="relu6"))),
    "depthwise_dilated": Spec(lambda: _seq((10, 10, 3), _L().DepthwiseConv2D(3, dilation_rate=2,
                                                                               padding="same"))),
    "separable": Spec(lambda: _seq((8, 8, 3), _L().SeparableConv2D(5, 3, activation="relu"))),
    "maxpool_same": Spec(lambda: _seq((9, 9, 3), _L().Conv2D(3, 1), _L().MaxPooling2D(3, strides=2,
                                                                                        padding="same"))),
    "avgpool": Spec(lambda: _seq((8, 7, 3), _L().Conv2D(3, 1), _L().AveragePooling2D(2))),
    "avgpool_same": Spec(lambda: _seq((7, 7, 2), _L().Conv2D(2, 1), _L().AveragePooling2D(3, strides=1,
                                                                                           padding="same"))),
    "gap_softmax": Spec(lambda: _seq((6, 6, 3), _L().Conv2D(10, 3), _L().GlobalAveragePooling2D(),
                                     _L().Softmax())),
    "global_max": Spec(lambda: _seq((5, 5, 3), _L().Conv2D(4, 1), _L().GlobalMaxPooling2D())),
    "flatten_dense": Spec(lambda: _seq((6, 6, 1), _L().Conv2D(3, 3, activation="relu"), _L().Flatten(),
                                       _L().Dense(5, activation="softmax"))),
    "reshape": Spec(lambda: _seq((12,), _L().Reshape((3, 4)), _L().Dense(2))),
    "residual_add": Spec(lambda: _func((6, 6, 3), _residual)),
    "add_broadcast": Spec(lambda: _func((5, 4, 2), _add_broadcast)),
    "sub": Spec(lambda: _func((5, 5, 2), _branches("sub"))),
    "mul": Spec(lambda: _func((5, 5, 2), _branches("mul"))),
    "concat": Spec(lambda: _func((5, 5, 2), _branches("concat"))),
    "pad": Spec(lambda: _seq((5, 6, 2), _L().ZeroPadding2D(((1, 2), (0, 3))), _L().Conv2D(3, 3))),
    "transpose": Spec(lambda: _seq((4, 6, 2), _L().Permute((2, 3, 1)), _L().Flatten(), _L().Dense(3))),
    "sigmoid_tanh": Spec(lambda: _seq((9,), _L().Dense(8, activation="sigmoid"), _L().Dense(6, activation="tanh"))),
    "leaky_hswish": Spec(lambda: _seq((9,), _L().Dense(8), _L().LeakyReLU(0.2), _L().Dense(6),
                                      _L().Activation("hard_swish"))),
    "relu_layers": Spec(lambda: _func((4, 4, 2), _relus)),
    "crop2d": Spec(lambda: _seq((7, 6, 2), _L().Conv2D(2, 1), _L().Cropping2D(((1, 2), (0, 1))), _L().Conv2D(3, 1))),
    "step_shrink_slice": Spec(lambda: _seq((7, 5, 2), _L().Conv2D(3, 1),
                                           _L().Lambda(lambda t: t[:, ::2, 1:, :]),
                                           _L().Lambda(lambda t: t[:, 1, :, :]))),
    "float_io": Spec(lambda: _seq((10,), _L().Dense(6, activation="relu"), _L().Dense(2)), float_io=True),
}


def convert(model: object, per_channel: bool = True, float_io: bool = False, seed: int = 0,
            n_calib: int = 64) -> tuple[bytes, np.ndarray]:
    """Full-int8 conversion as `tinyml quantize` does it; returns (tflite bytes, calibration data)."""
    import tensorflow as tf

    shape = tuple(int(d) for d in model.inputs[0].shape[1:])  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    calib = rng.normal(0.0, 1.0, size=(n_calib, *shape)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(n_calib))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    if not per_channel:
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    with contextlib.redirect_stdout(io.StringIO()):
        return conv.convert(), calib


def build(name: str, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """Build, randomly initialise (seeded) and convert one matrix (or DILATED) model."""
    import keras

    keras.utils.set_random_seed(seed)
    spec = MODELS[name] if name in MODELS else DILATED[name]
    model = spec.build()
    rng = np.random.default_rng(seed + 1)
    for w in model.weights:  # type: ignore[attr-defined]
        if "bias" in w.path:  # Keras starts biases at zero; make them matter
            w.assign(rng.normal(0.0, 0.3, size=w.shape).astype(np.float32))
    return convert(model, spec.per_channel, spec.float_io, seed)


def dilated(dims: int, depthwise: bool, dilation: int, padding: str,
            input_shape: tuple[int, ...] | None = None) -> Callable[[], object]:
    """The issue-11 family: a strided conv, then a dilated conv (which the converter lowers to
    SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND), pooling, a conv, global max pooling, softmax
    over 3 classes; ``input_shape`` defaults to (60, 2) for 1-D and (22, 21, 1) for 2-D."""
    def build() -> object:
        L = _L()
        if dims == 1:
            dilated = (L.SeparableConv1D(6, 3, dilation_rate=dilation, padding=padding, activation="relu")
                       if depthwise else L.Conv1D(6, 3, dilation_rate=dilation, padding=padding, activation="relu"))
            return _seq(input_shape or (60, 2), L.Conv1D(4, 5, strides=3, padding="same", activation="relu"), dilated,
                        L.AveragePooling1D(2), L.Conv1D(5, 2, activation="relu"), L.GlobalMaxPooling1D(),
                        L.Dense(3, activation="softmax"))
        dilated = (L.DepthwiseConv2D((3, 2), dilation_rate=dilation, padding=padding, activation="relu")
                   if depthwise else L.Conv2D(5, (2, 3), dilation_rate=dilation, padding=padding, activation="relu"))
        return _seq(input_shape or (22, 21, 1), L.Conv2D(3, 3, strides=2, padding="same", activation="relu"), dilated,
                    L.AveragePooling2D(2), L.Conv2D(4, 1, activation="relu"), L.GlobalMaxPooling2D(),
                    L.Dense(3, activation="softmax"))

    return build


# each dilation with 'same' and 'valid'; 1-D and 2-D, regular and depthwise alternate so that every
# dilation and every padding meets both of each (6 models keep the session's conversions few)
DILATED: dict[str, Spec] = {
    f"dil{d}_{pad}_{dims}d_{'dw' if dw else 'conv'}": Spec(dilated(dims, dw, d, pad))
    for d, pad, dims, dw in ((2, "same", 1, True), (2, "valid", 2, False), (3, "same", 2, False),
                             (3, "valid", 1, True), (4, "same", 1, False), (4, "valid", 2, True))
}
