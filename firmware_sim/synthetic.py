"""Random float networks with controlled sparsity, for tests and benchmarks of the executor.

Each builder returns a float ``Network`` of one layer type plus calibration samples; quantize it
with ``quantize.quantize`` to get the int8 network. Weight sparsity is exact (the given fraction of
each weight tensor is zero, ``zero_rows`` leading output rows entirely zero) and input activations
can be made sparse too, so both kinds of skipped products occur.

>>> net, samples = single_layer("linear", np.random.default_rng(0), sparsity=0.5)
>>> float(np.mean(net.tensors[1].data == 0))
0.5
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from firmware_sim.network import AttrValue, Direction, DType, Layer, Network, Op, Tensor

Array = NDArray[np.generic]
Sample = dict[str, Array]
LayerKind = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "lstm",
    "gru",
    "bilstm",
    "bigru",
    "embedding",
    "add",
    "mul",
    "relu",
    "tanh",
    "sigmoid",
    "reduce_mean",
    "reduce_max",
    "concat",
    "slice",
    "gather",
    "layer_norm",
]
LAYER_KINDS: tuple[LayerKind, ...] = get_args(LayerKind)


def sparse_weights(
    rng: np.random.Generator, shape: tuple[int, ...], sparsity: float, zero_rows: int = 0, row_axis: int = 0
) -> NDArray[np.float32]:
    """Gaussian weights (std 1/sqrt(fan-in)) with exactly ``round(sparsity * n)`` zeros."""
    fan_in = math.prod(shape[row_axis + 1 :]) or 1
    values = rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=shape)
    values[np.abs(values) < 1e-3] = 1e-3  # no accidental zeros: sparsity is exactly what was asked
    flat = values.reshape(-1)
    flat[rng.permutation(flat.size)[: round(sparsity * flat.size)]] = 0.0
    rows = values.reshape((math.prod(shape[: row_axis + 1]), -1))
    rows[:zero_rows] = 0.0
    return values.astype(np.float32)


def sparse_activations(
    rng: np.random.Generator, shape: tuple[int, ...], sparsity: float
) -> NDArray[np.float32]:
    values = rng.normal(0.0, 1.0, size=shape)
    values[rng.random(shape) < sparsity] = 0.0
    return values.astype(np.float32)


def single_layer(
    kind: LayerKind,
    rng: np.random.Generator,
    sparsity: float = 0.5,
    zero_rows: int = 0,
    activation_sparsity: float = 0.3,
    samples: int = 4,
    size: int = 16,
) -> tuple[Network, list[Sample]]:
    """A one-layer float network of ``kind`` and ``samples`` calibration inputs."""
    tensors: list[Tensor] = []

    def add(
        name: str, shape: tuple[int, ...], data: Array | None = None, dtype: DType = DType.FLOAT32
    ) -> int:
        tensors.append(Tensor(name, shape, dtype, data))
        return len(tensors) - 1

    def weights(name: str, shape: tuple[int, ...], row_axis: int = 0) -> int:
        return add(name, shape, sparse_weights(rng, shape, sparsity, zero_rows, row_axis))

    steps, batch, hidden, features = 5, 2, size, size + 3
    layers: list[Layer]
    shapes: dict[str, tuple[int, ...]]
    if kind == "linear":
        x = add("x", (-1, features))
        layers = [
            Layer(
                Op.LINEAR,
                (x, weights("w", (size, features)), add("b", (size,), _bias(rng, size))),
                (add("y", (-1, size)),),
            )
        ]
        shapes = {"x": (steps, features)}
    elif kind == "conv1d":
        x = add("x", (1, features, -1))
        layers = [
            Layer(
                Op.CONV1D,
                (x, weights("w", (size, features, 3)), add("b", (size,), _bias(rng, size))),
                (add("y", (1, size, -1)),),
                {"stride": 1, "dilation": 1, "pads": (1, 1), "group": 1},
            )
        ]
        shapes = {"x": (1, features, 9)}
    elif kind in ("lstm", "gru", "bilstm", "bigru"):
        op = Op.LSTM if kind.endswith("lstm") else Op.GRU
        gates = 4 if op is Op.LSTM else 3
        direction = Direction.BIDIRECTIONAL if kind.startswith("bi") else Direction.FORWARD
        d = direction.count
        x = add("x", (-1, batch, features))
        ins = [
            x,
            weights("W", (d, gates * hidden, features), 1),
            weights("R", (d, gates * hidden, hidden), 1),
            add("B", (d, 2 * gates * hidden), _bias(rng, d, 2 * gates * hidden)),
        ]
        ins += [add("h0", (d, batch, hidden))] + ([add("c0", (d, batch, hidden))] if op is Op.LSTM else [])
        outs = [add("y", (-1, d, batch, hidden)), add("h_n", (d, batch, hidden))]
        outs += [add("c_n", (d, batch, hidden))] if op is Op.LSTM else []
        layers = [Layer(op, tuple(ins), tuple(outs), {"hidden_size": hidden, "direction": int(direction)})]
        shapes = {"x": (steps, batch, features), "h0": (d, batch, hidden), "c0": (d, batch, hidden)}
    elif kind == "embedding":
        ids = add("ids", (1, -1), dtype=DType.INT32)
        table = add("table", (50, size), sparse_weights(rng, (50, size), sparsity, zero_rows))
        layers = [Layer(Op.EMBEDDING, (table, ids), (add("y", (1, -1, size)),))]
        shapes = {}
    elif kind == "conv2d":  # the recognizer's subsampling: 3x3, stride 2, grouped here to cover groups
        x = add("x", (1, 4, -1, 11))
        attrs: dict[str, AttrValue] = {
            "strides": (2, 2),
            "dilations": (1, 1),
            "pads": (1, 0, 0, 1),
            "group": 2,
        }
        layers = [
            Layer(
                Op.CONV2D,
                (x, weights("w", (size, 2, 3, 3)), add("b", (size,), _bias(rng, size))),
                (add("y", (1, size, -1, -1)),),
                attrs,
            )
        ]
        shapes = {"x": (1, 4, 9, 11)}
    elif kind in ("slice", "gather"):
        x = add("x", (-1, size))
        if kind == "slice":
            attrs = {"starts": (1, -4), "ends": (2**62, 2**62), "axes": (0, 1), "steps": (2, 1)}
            layers = [Layer(Op.SLICE, (x,), (add("y", (-1, 4)),), attrs)]
        else:
            layers = [
                Layer(Op.GATHER, (x,), (add("y", (size,)),), {"axis": 0, "indices": (-1,), "scalar": 1})
            ]
        shapes = {"x": (steps, size)}
    elif kind in ("reduce_mean", "reduce_max"):
        x = add("x", (-1, size))
        op = Op.REDUCE_MEAN if kind == "reduce_mean" else Op.REDUCE_MAX
        keep = int(kind == "reduce_max")
        layers = [
            Layer(op, (x,), (add("y", (1, size) if keep else (size,)),), {"axes": (0,), "keepdims": keep})
        ]
        shapes = {"x": (steps, size)}
    elif kind == "concat":
        a, b = add("a", (-1, size)), add("b", (-1, 3))
        layers = [Layer(Op.CONCAT, (a, b), (add("y", (-1, size + 3)),), {"axis": 1})]
        shapes = {"a": (steps, size), "b": (steps, 3)}
    elif kind == "layer_norm":  # the scale has both signs (and zeros, like the other weights)
        x = add("x", (-1, batch, size))
        gamma = 1.5 * sparse_weights(rng, (size,), sparsity, zero_rows)
        layers = [
            Layer(
                Op.LAYER_NORM,
                (x, add("gamma", (size,), gamma.astype(np.float32)), add("beta", (size,), _bias(rng, size))),
                (add("y", (-1, batch, size)),),
                {"epsilon": 1e-5},
            )
        ]
        shapes = {"x": (steps, batch, size)}
    elif kind in ("add", "mul"):
        a, b = add("a", (-1, size)), add("b", (-1, size))
        layers = [Layer(Op.ADD if kind == "add" else Op.MUL, (a, b), (add("y", (-1, size)),))]
        shapes = {"a": (steps, size), "b": (steps, size)}
    else:
        x = add("x", (-1, size))
        op = {"relu": Op.RELU, "tanh": Op.TANH, "sigmoid": Op.SIGMOID}[kind]
        layers = [Layer(op, (x,), (add("y", (-1, size)),))]
        shapes = {"x": (steps, size)}
    inputs = tuple(i for i, t in enumerate(tensors) if t.data is None and t.name in (*shapes, "ids"))
    outputs = tuple(i for layer in layers for i in layer.outputs)
    network = Network(tuple(tensors), tuple(layers), inputs, outputs, name=kind)
    network.validate()
    data: list[Sample] = []
    for _ in range(samples):
        sample: Sample = {
            name: sparse_activations(rng, shape, activation_sparsity if name in ("x", "a", "b") else 0.0)
            for name, shape in shapes.items()
            if name in network.input_names()
        }
        for state in ("h0", "c0"):  # states as a previous chunk leaves them: |h| < 1, modest cells
            if state in sample:
                sample[state] = np.tanh(sample[state]).astype(np.float32)
        if kind == "concat":  # parts with different ranges, so concatenating must requantize
            sample["b"] = (4.0 * np.asarray(sample["b"], np.float32)).astype(np.float32)
        if kind == "embedding":
            sample["ids"] = rng.integers(0, 50, size=(1, 7)).astype(np.int32)
        data.append(sample)
    return network, data


def _bias(rng: np.random.Generator, *shape: int) -> NDArray[np.float32]:
    return rng.normal(0.0, 0.1, size=shape).astype(np.float32)
