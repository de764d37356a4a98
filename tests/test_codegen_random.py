"""Property: for random small architectures, the generated C equals TFLM on random inputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.codegen_models import convert
from tinyml.codegen import generate, host
from tinyml.codegen.verify import reference_outputs

ACT = st.sampled_from([None, "relu", "relu6"])


@st.composite
def architectures(draw: st.DrawFn) -> dict:
    h = draw(st.integers(3, 9))
    w = draw(st.integers(3, 9))
    c = draw(st.sampled_from([1, 2, 3, 7]))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "dwconv", "maxpool", "avgpool"]))
        k = draw(st.integers(1, 3))
        layers.append({"kind": kind, "k": k, "stride": draw(st.integers(1, 2)),
                       "padding": draw(st.sampled_from(["same", "valid"])), "act": draw(ACT),
                       "filters": draw(st.sampled_from([1, 3, 4, 17]))})
    head = draw(st.sampled_from(["gap", "flatten"]))
    dense = draw(st.lists(st.tuples(st.integers(1, 9), ACT), max_size=2))
    softmax = draw(st.booleans())
    return {"input": (h, w, c), "layers": layers, "head": head, "dense": dense, "softmax": softmax,
            "per_channel": draw(st.booleans())}


def _keras(arch: dict) -> object:
    import keras

    L = keras.layers
    x = inp = keras.Input(arch["input"])
    for spec in arch["layers"]:
        size = min(x.shape[1], x.shape[2])
        pad = spec["padding"] if spec["padding"] == "same" or size >= spec["k"] else "same"
        if spec["kind"] == "conv":
            x = L.Conv2D(spec["filters"], spec["k"], strides=spec["stride"], padding=pad,
                         activation=spec["act"])(x)
        elif spec["kind"] == "dwconv":
            x = L.DepthwiseConv2D(spec["k"], strides=spec["stride"], padding=pad, activation=spec["act"])(x)
        elif min(x.shape[1], x.shape[2]) >= max(spec["k"], 1):
            pool = L.MaxPooling2D if spec["kind"] == "maxpool" else L.AveragePooling2D
            x = pool(max(spec["k"], 1), strides=spec["stride"], padding=pad)(x)
    x = L.GlobalAveragePooling2D()(x) if arch["head"] == "gap" else L.Flatten()(x)
    for units, act in arch["dense"]:
        x = L.Dense(units, activation=act)(x)
    if arch["softmax"]:
        x = L.Softmax()(L.Dense(4)(x))
    return keras.Model(inp, x)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(arch=architectures())
def test_random_architecture_is_bit_exact(arch: dict) -> None:
    import keras

    keras.utils.set_random_seed(1)
    model = _keras(arch)
    rng = np.random.default_rng(2)
    for w in model.weights:
        if "bias" in w.path:
            w.assign(rng.normal(0.0, 0.3, size=w.shape).astype(np.float32))
    tflite, _ = convert(model, per_channel=arch["per_channel"])
    gen = generate(tflite, prefix="rnd")
    inputs = rng.integers(-128, 128, size=(300, gen.report["input"]["size"]), dtype=np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        exe = host.build(gen, Path(tmp))
        got = host.run(exe, inputs, gen.report["output"]["size"])
    want = reference_outputs(tflite, inputs)
    assert int((got != want).sum()) == 0, arch
