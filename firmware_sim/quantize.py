"""Post-training int8 quantization of a float network: calibrate, then quantize.

Everything is symmetric (zero point 0), so a zero stays a zero and the MAC array can skip it:

* weights of Linear/Conv1d/LSTM/GRU: int8 in [-127, 127], one scale per output row (``per_channel``,
  the default) or per tensor; ``scale = max|w| / 127``. Zeros in the float weights (pruning masks)
  stay exactly zero.
* biases: int32 at ``scale_x * scale_w[row]`` so they add straight into the accumulator.
* activations: int8 with ``scale = max|x| / 127`` over the calibration samples; Relu and the shape
  ops keep their input's scale (they then compute nothing), Sigmoid/Tanh outputs use ``1/127``,
  an Embedding's output is its table (per-tensor scale).
* LSTM/GRU: the hidden state (``y``, ``h_n`` and an ``h0`` graph input) shares one scale; gate
  pre-activations get their own calibrated scales (capped at ±8, where sigmoid and tanh are flat),
  stored as the layer's ``gate_scales``; the LSTM cell state is int16 at the power of two
  ``2**cell_exponent`` that holds its calibrated range.
* LayerNorm: the scale ``γ`` int16 per tensor (``max|γ| / 32767``), the bias int32 at
  ``s_γ * 2**LAYER_NORM_Z_EXPONENT`` (the product ``γ z``'s scale), the output calibrated.

>>> import numpy as np
>>> from firmware_sim.network import DType, Layer, Network, Op, Tensor
>>> x = Tensor("x", (1, 2), DType.FLOAT32)
>>> w = Tensor("w", (1, 2), DType.FLOAT32, np.array([[1.0, 0.0]], np.float32))
>>> y = Tensor("y", (1, 1), DType.FLOAT32)
>>> net = Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), (0,), (2,))
>>> q = quantize(net, calibrate(net, [{"x": np.array([[0.5, -1.0]], np.float32)}]))
>>> q.tensors[1].data.tolist(), q.tensors[0].scale == float(np.float32(1 / 127))
([[127, 0]], True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from firmware_sim import fixedpoint as fx
from firmware_sim.network import (
    CONV_OPS,
    GATES,
    MOVE_OPS,
    DType,
    Layer,
    Network,
    NetworkError,
    Op,
    Quant,
    Tensor,
)
from firmware_sim.reference import evaluate_float

Array = NDArray[np.generic]

GATE_RANGE_LIMIT = 8.0  # |pre-activation| beyond which sigmoid and tanh are flat to within 2**-9
MIN_RANGE = 1e-6  # a tensor that is always 0 still gets a usable scale


class QuantizeError(ValueError):
    """The float network cannot be quantized as it is (a shared state input, a constant operand...)."""


@dataclass
class Calibration:
    """Largest magnitudes seen on the calibration samples."""

    tensor_max: dict[int, float] = field(default_factory=dict)  # tensor id -> max |x|
    internal_max: dict[tuple[int, str], float] = field(default_factory=dict)  # (layer, name) -> max |x|
    samples: int = 0

    def tensor(self, index: int) -> float:
        return self.tensor_max.get(index, 0.0)

    def internal(self, layer: int, name: str) -> float:
        return self.internal_max.get((layer, name), 0.0)


def calibrate(network: Network, samples: Iterable[Mapping[str, Array]]) -> Calibration:
    """Run the float network on each sample and keep every tensor's and cell internal's max |x|."""
    result = Calibration()

    def observe(layer: int, name: str, values: NDArray[np.float64]) -> None:
        key = (layer, name)
        result.internal_max[key] = max(result.internal_max.get(key, 0.0), _max_abs(values))

    for sample in samples:
        values = evaluate_float(network, sample, observe)
        for index, value in values.items():
            if not network.tensors[index].is_constant:
                result.tensor_max[index] = max(result.tensor_max.get(index, 0.0), _max_abs(value))
        result.samples += 1
    if result.samples == 0:
        raise QuantizeError("calibration needs at least one sample")
    return result


def _max_abs(values: Array) -> float:
    array = np.asarray(values, np.float64)
    return float(np.max(np.abs(array))) if array.size else 0.0


def activation_scale(max_abs: float) -> float:
    return float(np.float32(max(max_abs, MIN_RANGE) / 127.0))


def gate_scale(max_abs: float) -> float:
    return float(np.float32(min(max(max_abs, MIN_RANGE), GATE_RANGE_LIMIT) / 127.0))


def cell_exponent(max_abs: float) -> int:
    """Smallest ``e`` with ``max_abs <= 32767 * 2**e``."""
    return math.ceil(math.log2(max(max_abs, 2.0**-20) / fx.INT16_MAX))


def quantize_weight(values: Array, rows: int) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Symmetric int8 with one scale per row of ``values.reshape(rows, -1)`` (``rows=1``: per tensor)."""
    flat = np.asarray(values, np.float64).reshape(rows, -1)
    max_abs = np.max(np.abs(flat), axis=1) if flat.size else np.zeros(rows)
    scales = np.where(max_abs > 0, max_abs / 127.0, 1.0 / 127.0).astype(np.float32)
    q = np.clip(np.round(flat / scales.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    return q.reshape(values.shape), scales


def quantize_int16(values: Array) -> tuple[NDArray[np.int16], float]:
    """Symmetric int16 with one scale (LayerNorm's scale vector: elementwise, so 16 bits are cheap)."""
    array = np.asarray(values, np.float64)
    max_abs = float(np.max(np.abs(array))) if array.size else 0.0
    scale = float(np.float32(max_abs / fx.INT16_MAX if max_abs > 0 else 1.0 / fx.INT16_MAX))
    q = np.clip(np.round(array / scale), -fx.INT16_MAX, fx.INT16_MAX).astype(np.int16)
    return q, scale


def quantize_bias(values: Array, scales: NDArray[np.float64]) -> NDArray[np.int32]:
    q = np.round(np.asarray(values, np.float64) / scales)
    return np.clip(q, fx.INT32_MIN, fx.INT32_MAX).astype(np.int32)


@dataclass(frozen=True)
class QuantizeOptions:
    per_channel: bool = True  # one weight scale per output row instead of per tensor
    tie_states: bool = True  # streaming state inputs take their <name>_out output's representation


class _Builder:
    """Collects the quantized tensors; a constant consumed twice is quantized twice."""

    def __init__(self, network: Network) -> None:
        self.source = network
        self.tensors: list[Tensor | None] = [None] * len(network.tensors)

    def put(self, index: int, tensor: Tensor) -> int:
        if self.tensors[index] is None:
            self.tensors[index] = tensor
            return index
        if self.tensors[index] == tensor:
            return index
        self.tensors.append(tensor)
        return len(self.tensors) - 1

    def activation(self, index: int, dtype: DType, quant: Quant | None) -> None:
        tensor = self.source.tensors[index]
        existing = self.tensors[index]
        if (
            existing is not None
            and existing.quant is not None
            and quant is not None
            and existing.quant != quant
        ):
            raise QuantizeError(
                f"tensor {tensor.name!r} needs two different scales (e.g. a state input shared by two layers)"
            )
        self.tensors[index] = replace(tensor, dtype=dtype, quant=quant, data=None)

    def scale(self, index: int) -> float:
        tensor = self.tensors[index]
        if tensor is None or tensor.quant is None:
            raise QuantizeError(f"tensor {self.source.tensors[index].name!r} has no scale yet")
        return tensor.quant.per_tensor_scale


STATE_OUTPUT_SUFFIX = "_out"  # the ASR export contract: state input <name>, its next value <name>_out


def tied_states(network: Network) -> list[tuple[str, str]]:
    """(input, output) name pairs of streaming states: graph input ``x`` and graph output ``x_out``."""
    outputs = set(network.output_names())
    return [
        (name, name + STATE_OUTPUT_SUFFIX)
        for name in network.input_names()
        if name + STATE_OUTPUT_SUFFIX in outputs
    ]


def quantize(
    network: Network, calibration: Calibration, options: QuantizeOptions = QuantizeOptions()
) -> Network:
    """The int8 network for float ``network``, with activation scales from ``calibration``.

    A streaming state (graph input ``x`` with graph output ``x_out``) gets the representation of its
    output, so a chunk's int8 output state is the next chunk's input as it is. The output's scale
    can depend on the input's (a cache that is a slice of its own input), so this repeats until
    they agree (a few rounds at most); ``tie_states=False`` leaves both calibrated independently.
    """
    network.validate()
    if network.is_quantized:
        raise QuantizeError("the network is already quantized")
    pairs = tied_states(network) if options.tie_states else []
    if pairs:  # one scale must cover what the state holds on the way in and on the way out
        merged = dict(calibration.tensor_max)
        for name, output in pairs:
            ids = (network.index_of(name), network.index_of(output))
            widest = max(calibration.tensor(i) for i in ids)
            for index in (*ids, _scale_source(network, ids[1])):
                merged[index] = widest
        calibration = Calibration(merged, calibration.internal_max, calibration.samples)
    overrides: dict[str, Quant] = {}
    for _ in range(4):
        result = _quantize_once(network, calibration, options, overrides)
        wanted = {}
        for name, output in pairs:
            source, target = result.tensors[result.index_of(name)], result.tensors[result.index_of(output)]
            if source.dtype == target.dtype == DType.INT8 and target.quant is not None:
                wanted[name] = target.quant
        if (
            wanted == {k: overrides[k] for k in wanted if k in overrides}
            and wanted.keys() <= overrides.keys()
        ):
            return result
        overrides = wanted
    return result


def _scale_source(network: Network, index: int) -> int:
    """The tensor whose calibrated range decides ``index``'s scale (through ops that inherit it)."""
    producers = {out: layer for layer in network.layers for out in layer.outputs if out >= 0}
    while index in producers and producers[index].op in (*MOVE_OPS, Op.RELU, Op.REDUCE_MAX):
        index = producers[index].inputs[0]
    return index


def _quantize_once(
    network: Network, calibration: Calibration, options: QuantizeOptions, overrides: Mapping[str, Quant]
) -> Network:
    builder = _Builder(network)
    state_inputs = {i for layer in network.layers if layer.op in GATES for i in layer.inputs[4:]}
    for index in network.inputs:
        tensor = network.tensors[index]
        if index in state_inputs:
            continue  # the recurrent layer gives it the hidden/cell state's representation
        if tensor.dtype == DType.INT32:
            builder.activation(index, DType.INT32, None)
        elif tensor.name in overrides:
            builder.activation(index, DType.INT8, overrides[tensor.name])
        else:
            builder.activation(
                index, DType.INT8, Quant.per_tensor(activation_scale(calibration.tensor(index)))
            )
    layers = [
        _quantize_layer(builder, position, layer, calibration, options)
        for position, layer in enumerate(network.layers)
    ]
    missing = [network.tensors[i].name for i, t in enumerate(builder.tensors) if t is None]
    tensors = tuple(t for t in builder.tensors if t is not None)
    if missing:  # constants nothing consumes: drop them and renumber
        keep = [i for i, t in enumerate(builder.tensors) if t is not None]
        remap = {old: new for new, old in enumerate(keep)} | {-1: -1}
        layers = [
            replace(
                layer,
                inputs=tuple(remap[i] for i in layer.inputs),
                outputs=tuple(remap[i] for i in layer.outputs),
            )
            for layer in layers
        ]
        result = Network(
            tensors,
            tuple(layers),
            tuple(remap[i] for i in network.inputs),
            tuple(remap[i] for i in network.outputs),
            network.name,
        )
    else:
        result = Network(tensors, tuple(layers), network.inputs, network.outputs, network.name)
    result.validate()
    return result


def _quantize_layer(
    builder: _Builder, position: int, layer: Layer, calibration: Calibration, options: QuantizeOptions
) -> Layer:
    source = builder.source
    op = layer.op
    inputs = list(layer.inputs)

    def constant(slot: int) -> Tensor:
        tensor = source.tensors[layer.inputs[slot]]
        if tensor.data is None:
            raise QuantizeError(f"{op.name} input {slot} ({tensor.name!r}) must be a constant")
        return tensor

    def calibrated_output(slot: int = 0) -> None:
        index = layer.outputs[slot]
        builder.activation(index, DType.INT8, Quant.per_tensor(activation_scale(calibration.tensor(index))))

    if op in (Op.LINEAR, *CONV_OPS):
        weight = constant(1)
        assert weight.data is not None
        rows = weight.shape[0] if options.per_channel else 1
        q, scales = quantize_weight(weight.data, rows)
        quant = Quant.per_channel(scales, 0) if options.per_channel else Quant.per_tensor(float(scales[0]))
        inputs[1] = builder.put(layer.inputs[1], replace(weight, dtype=DType.INT8, data=q, quant=quant))
        if layer.inputs[2] >= 0:
            bias = constant(2)
            assert bias.data is not None
            bias_scales = builder.scale(layer.inputs[0]) * quant.scales_for((weight.shape[0],))
            inputs[2] = builder.put(
                layer.inputs[2],
                replace(
                    bias,
                    dtype=DType.INT32,
                    data=quantize_bias(bias.data, bias_scales),
                    quant=Quant.per_channel(bias_scales, 0),
                ),
            )
        calibrated_output()
        return replace(layer, inputs=tuple(inputs))
    if op in GATES:
        return _quantize_recurrent(builder, position, layer, calibration, options)
    if op is Op.LAYER_NORM:
        gamma = constant(1)
        assert gamma.data is not None
        q16, gamma_scale = quantize_int16(gamma.data)
        inputs[1] = builder.put(
            layer.inputs[1], replace(gamma, dtype=DType.INT16, data=q16, quant=Quant.per_tensor(gamma_scale))
        )
        if layer.inputs[2] >= 0:
            beta = constant(2)
            assert beta.data is not None
            beta_scale = float(np.float32(gamma_scale * 2.0**fx.LAYER_NORM_Z_EXPONENT))
            inputs[2] = builder.put(
                layer.inputs[2],
                replace(
                    beta,
                    dtype=DType.INT32,
                    data=quantize_bias(beta.data, np.full(beta.shape, beta_scale)),
                    quant=Quant.per_tensor(beta_scale),
                ),
            )
        calibrated_output()
        return replace(layer, inputs=tuple(inputs))
    if op is Op.EMBEDDING:
        table = constant(0)
        assert table.data is not None
        q, scales = quantize_weight(table.data, 1)
        quant = Quant.per_tensor(float(scales[0]))
        inputs[0] = builder.put(layer.inputs[0], replace(table, dtype=DType.INT8, data=q, quant=quant))
        builder.activation(layer.outputs[0], DType.INT8, quant)
        return replace(layer, inputs=tuple(inputs))
    for slot, index in enumerate(layer.inputs):  # elementwise: constant operands become int8 tensors
        tensor = source.tensors[index]
        if tensor.data is not None:
            if op in MOVE_OPS:
                raise QuantizeError(f"{op.name} of a constant: fold it before quantizing")
            q, scales = quantize_weight(tensor.data, 1)
            inputs[slot] = builder.put(
                index, replace(tensor, dtype=DType.INT8, data=q, quant=Quant.per_tensor(float(scales[0])))
            )
    if op in (Op.ADD, Op.MUL, Op.REDUCE_MEAN, Op.CONCAT):
        calibrated_output()
    elif op in (Op.TANH, Op.SIGMOID):
        builder.activation(layer.outputs[0], DType.INT8, Quant.per_tensor(fx.SIGMOID_TANH_OUTPUT_SCALE))
    else:  # Relu, ReduceMax and the shape ops keep the input's representation
        x = builder.tensors[inputs[0]]
        assert x is not None
        builder.activation(layer.outputs[0], x.dtype, x.quant)
    return replace(layer, inputs=tuple(inputs))


def _quantize_recurrent(
    builder: _Builder, position: int, layer: Layer, calibration: Calibration, options: QuantizeOptions
) -> Layer:
    source = builder.source
    gates = GATES[layer.op]
    hidden = layer.attr_int("hidden_size")
    directions = layer.direction.count
    rows = (directions, gates * hidden)
    inputs = list(layer.inputs)
    state_inputs = [i for i in layer.inputs[4:] if i >= 0]
    for index in state_inputs:
        if index not in source.inputs:
            raise QuantizeError(
                f"{layer.op.name} initial state {source.tensors[index].name!r} must be a graph input"
            )

    h_ids = [layer.outputs[0], layer.outputs[1], layer.inputs[4]]
    h_scale = activation_scale(max(calibration.tensor(i) for i in h_ids if i >= 0))
    h_quant = Quant.per_tensor(h_scale)
    for index in h_ids:
        if index >= 0:
            builder.activation(index, DType.INT8, h_quant)
    attrs = dict(layer.attrs)
    if layer.op is Op.LSTM:
        e = cell_exponent(calibration.internal(position, "cell"))
        attrs["cell_exponent"] = e
        c_quant = Quant.per_tensor(2.0**e)
        for index in (layer.outputs[2], layer.inputs[5]):
            if index >= 0:
                builder.activation(index, DType.INT16, c_quant)
    names = "iofc" if layer.op is Op.LSTM else "zrn"
    attrs["gate_scales"] = tuple(
        gate_scale(calibration.internal(position, f"{d}.{name}")) for d in range(directions) for name in names
    )

    x_scale = builder.scale(layer.inputs[0])
    weight_quants: list[Quant] = []
    for slot in (1, 2):
        tensor = source.tensors[layer.inputs[slot]]
        if tensor.data is None:
            raise NetworkError(f"{layer.op.name} weights must be constants")
        q, scales = quantize_weight(tensor.data, math.prod(rows) if options.per_channel else 1)
        quant = Quant.per_channel(scales, 1) if options.per_channel else Quant.per_tensor(float(scales[0]))
        weight_quants.append(quant)
        inputs[slot] = builder.put(layer.inputs[slot], replace(tensor, dtype=DType.INT8, data=q, quant=quant))
    if layer.inputs[3] >= 0:
        bias = source.tensors[layer.inputs[3]]
        assert bias.data is not None
        bias_scales = np.concatenate(
            [x_scale * weight_quants[0].scales_for(rows), h_scale * weight_quants[1].scales_for(rows)], axis=1
        )
        inputs[3] = builder.put(
            layer.inputs[3],
            replace(
                bias,
                dtype=DType.INT32,
                data=quantize_bias(bias.data, bias_scales),
                quant=Quant.per_channel(bias_scales, 1),
            ),
        )
    return replace(layer, inputs=tuple(inputs), attrs=attrs)


# ------------------------------------------------------------------------------ at the graph's edges


def quantize_value(tensor: Tensor, values: Array) -> Array:
    """A float value for graph input ``tensor`` in its integer representation (ids pass through)."""
    array = np.asarray(values)
    if tensor.dtype == DType.INT32:
        if not np.issubdtype(array.dtype, np.integer):
            raise NetworkError(f"input {tensor.name!r} takes integer ids, got {array.dtype}")
        return array.astype(np.int32)
    if tensor.quant is None:
        raise NetworkError(f"input {tensor.name!r} has no quantization parameters")
    low, high = (fx.INT16_MIN, fx.INT16_MAX) if tensor.dtype == DType.INT16 else (fx.INT8_MIN, fx.INT8_MAX)
    q = fx.round_half_up(array.astype(np.float64) / tensor.quant.per_tensor_scale)
    return np.clip(q, low, high).astype(tensor.dtype.numpy)


def dequantize_value(tensor: Tensor, values: Array) -> NDArray[np.float32]:
    if tensor.quant is None:
        return np.asarray(values).astype(np.float32)
    return (np.asarray(values, np.float64) * tensor.quant.per_tensor_scale).astype(np.float32)


def quantize_inputs(network: Network, inputs: Mapping[str, Array]) -> dict[str, Array]:
    """Float inputs by name → the integer inputs the int8 network takes; integer arrays of the right
    dtype are taken as already quantized."""
    result: dict[str, Array] = {}
    for index in network.inputs:
        tensor = network.tensors[index]
        if tensor.name not in inputs:
            raise NetworkError(f"missing input {tensor.name!r} (given: {sorted(inputs)})")
        value = np.asarray(inputs[tensor.name])
        result[tensor.name] = value if value.dtype == tensor.dtype.numpy else quantize_value(tensor, value)
    return result


def dequantize_outputs(network: Network, outputs: Mapping[str, Array]) -> dict[str, NDArray[np.float32]]:
    return {
        name: dequantize_value(network.tensors[network.index_of(name)], value)
        for name, value in outputs.items()
    }
