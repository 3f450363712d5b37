"""The numpy reference: what every layer computes, written as plainly as possible.

``run`` executes a quantized network with the int8 arithmetic of ``fixedpoint`` (int8 × int8 products,
32-bit saturating accumulators, integer requantization, table gates). It is the bit-exact oracle for
the executor. ``run_float`` executes a float network with the same ONNX semantics; the compiler
checks the importer against onnxruntime with it and the quantizer calibrates with it (``observe``
sees the gate pre-activations and cell states, which are not graph tensors).

Integer LSTM step (per direction; ``e`` = ``cell_exponent``, gates in ONNX order i, o, f, c)::

    pre_g = sat8(rq(W_g x + bW_g, s_x s_W / s_g) + rq(R_g h + bR_g, s_h s_R / s_g))
    i, o, f = sigmoid_lut_g(pre)   c~ = tanh_lut_c(pre_c)          (int8, scale 2**-7)
    c = sat16((f c) >> 7 + (i c~) >> (14 + e))                     (int16, scale 2**e)
    h = sat8(rq(o * tanh_lut10(sat10(c >> (-7 - e))), 2**-14 / s_h))  (>> rounds half up)

Integer GRU step (gates z, r, n; ONNX ``linear_before_reset=1``)::

    z, r = sigmoid_lut(sat8(rq(W x + bW) + rq(R h + bR)))           (pre-activation scales s_z, s_r)
    n = tanh_lut(sat8(rq(W_n x + bW_n, .. / s_n) + (r * rq(R_n h + bR_n, .. / s_n)) >> 7))
    n_h = rq(n, 2**-7 / s_h);   h = sat8(n_h + (z (h - n_h)) >> 7)

Integer LayerNorm over the last axis of ``N`` values ``q`` (int8 at ``s_x``; scale ``γ`` int16 at
``s_γ``, bias ``β`` int32 at ``s_γ 2**-10``; ``Z = LAYER_NORM_Z_EXPONENT = -10``)::

    S1 = Σ q,  S2 = Σ q²                                    (32-bit accumulators)
    d = N q - S1                                            (N (x - mean) / s_x, exact)
    v = max(N S2 - S1² + ε_q, 1),  ε_q = round(ε N² / s_x²)  (64-bit; N² var / s_x², exact but ε)
    m, sh = rsqrt(v)                                        (1/sqrt(v) ≈ m 2**-sh, fixedpoint.rsqrt)
    z = sat16((d m) >> (sh + Z))                            ((x - mean)/sqrt(var + ε) at 2**Z)
    y = sat8(rq(sat32(γ z + β), s_γ 2**Z / s_y))

Only the rsqrt is approximate (relative error < 2**-9, an overestimate) and ``z`` is rounded to
2**-10, so a constant row gives exactly ``rq(β)``, and ``y`` stays within a unit of the int8 result
of the exact float formula on the same int8 input (the tests hold it to that).

>>> import numpy as np
>>> from firmware_sim.network import DType, Layer, Network, Op, Quant, Tensor
>>> x = Tensor("x", (1, 2), DType.INT8, quant=Quant.per_tensor(0.5))
>>> w = Tensor("w", (1, 2), DType.INT8, np.array([[2, 0]], np.int8), Quant.per_tensor(0.25))
>>> y = Tensor("y", (1, 1), DType.INT8, quant=Quant.per_tensor(0.125))
>>> net = Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), (0,), (2,))
>>> run(net, {"x": np.array([[3, 5]], np.int8)})["y"].tolist()  # 1.5 * 0.5 = 0.75 = 6 * 0.125
[[6]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_sim import fixedpoint as fx
from firmware_sim.network import (
    CONV_OPS,
    GATES,
    ConvGeometry,
    DType,
    ExecutionError,
    Layer,
    Network,
    Op,
    Quant,
    apply_shape_op,
    check_ids,
    check_input,
    check_layer_norm_input,
    conv_patches,
    reduced_axes,
    time_steps,
)

Array = NDArray[np.generic]
Observer = Callable[[int, str, NDArray[np.float64]], None]


# --------------------------------------------------------------------------------------------- int8


def run(network: Network, inputs: Mapping[str, Array]) -> dict[str, Array]:
    """Outputs by name of the quantized ``network`` on integer ``inputs`` (by input name)."""
    values = evaluate(network, inputs)
    return {network.tensors[i].name: values[i] for i in network.outputs}


def evaluate(network: Network, inputs: Mapping[str, Array]) -> dict[int, Array]:
    """Every tensor's value (by id), constants included; for tests that look inside."""
    if not network.is_quantized:
        raise ExecutionError("reference.run needs a quantized network; use run_float for a float one")
    values = _bind_inputs(network, inputs)
    for layer in network.layers:
        results = _INT_OPS[layer.op](network, layer, values)
        for index, result in zip(layer.outputs, results, strict=True):
            if index >= 0:
                values[index] = result
    return values


def _bind_inputs(network: Network, inputs: Mapping[str, Array]) -> dict[int, Array]:
    values: dict[int, Array] = {}
    for index, tensor in enumerate(network.tensors):
        if tensor.data is not None:
            values[index] = tensor.data
    for index in network.inputs:
        values[index] = check_input(network.tensors[index], inputs)
    return values


def _scale(network: Network, index: int) -> float:
    return network.tensors[index].scale


def _quant(network: Network, index: int) -> Quant:
    quant = network.tensors[index].quant
    if quant is None:
        raise ExecutionError(f"tensor {network.tensors[index].name!r} has no quantization parameters")
    return quant


def _int64(value: Array) -> NDArray[np.int64]:
    return np.asarray(value, np.int64)


def int_matmul(x: Array, weight: Array) -> NDArray[np.int64]:
    """``x @ weight.T`` exactly, for integer operands: float64 BLAS is exact while every partial
    sum stays below 2**53, which int8/int16 products over any realistic depth do."""
    return np.rint(np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T).astype(np.int64)


def _rq_rows(acc: NDArray[np.int64], factors: NDArray[np.float64]) -> NDArray[np.int64]:
    """Requantize the last axis of ``acc`` with one real factor per row."""
    m, s = fx.quantize_multipliers(factors)
    return fx.requantize(fx.saturate_int32(acc), m, s)


def _rq(values: NDArray[Any], factor: float) -> NDArray[np.int64]:
    m, s = fx.quantize_multiplier(factor)
    return fx.requantize(values, m, s)


def _linear(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    x_id, w_id, b_id = layer.inputs
    (y_id,) = layer.outputs
    weight = network.tensors[w_id]
    acc = int_matmul(values[x_id], values[w_id])
    if b_id >= 0:
        acc = acc + _int64(values[b_id])
    factors = (
        _scale(network, x_id) * _quant(network, w_id).scales_for(weight.shape[:1]) / _scale(network, y_id)
    )
    return [fx.saturate_int8(_rq_rows(acc, factors))]


def _conv_acc(x: Array, weight: Array, bias: Array | None, layer: Layer, as_int: bool) -> NDArray[Any]:
    """Convolution as im2col + matrix product: ``[B, Cout, *out]`` (exact integers when ``as_int``)."""
    group = layer.attr_int("group")
    out_channels, per_group_in = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    if x.ndim != 2 + len(kernel) or x.shape[1] != per_group_in * group:
        raise ExecutionError(
            f"{layer.op.name} input {x.shape} does not match weight {weight.shape} (group {group})"
        )
    per_group = out_channels // group
    parts = []
    for g in range(group):
        columns = np.asarray(conv_patches(x, layer, kernel, g), np.float64)
        w = np.asarray(weight[g * per_group : (g + 1) * per_group].reshape(per_group, -1), np.float64)
        parts.append(columns @ w.T)
    acc: NDArray[Any] = np.concatenate(parts, axis=-1)  # [B, positions, Cout]
    if as_int:
        acc = np.rint(acc).astype(np.int64)
    if bias is not None:
        acc = acc + (_int64(bias) if as_int else np.asarray(bias, np.float64))
    out = ConvGeometry.of(layer).output_shape(tuple(x.shape[2:]), kernel)
    return acc.transpose(0, 2, 1).reshape(x.shape[0], out_channels, *out)


def _conv(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    x_id, w_id, b_id = layer.inputs
    (y_id,) = layer.outputs
    weight = values[w_id]
    acc = _conv_acc(values[x_id], weight, values[b_id] if b_id >= 0 else None, layer, as_int=True)
    scales = _quant(network, w_id).scales_for(network.tensors[w_id].shape[:1])
    factors = _scale(network, x_id) * scales / _scale(network, y_id)
    per_channel = np.moveaxis(_int64(acc), 1, -1)  # requantize along the channel axis
    return [np.ascontiguousarray(np.moveaxis(fx.saturate_int8(_rq_rows(per_channel, factors)), -1, 1))]


class RecurrentScales:
    """Requantization factors of one recurrent layer, per direction and gate row."""

    def __init__(self, network: Network, layer: Layer) -> None:
        x_id, w_id, r_id = layer.inputs[:3]
        gates = GATES[layer.op]
        hidden = layer.attr_int("hidden_size")
        directions = layer.direction.count
        rows = (directions, gates * hidden)
        gate_scales = np.array(layer.attr_floats("gate_scales"), np.float64).reshape(directions, gates)
        self.gate_scales = gate_scales
        row_gate_scales = np.repeat(gate_scales, hidden, axis=1)  # [D, G*H]
        self.h_scale = _scale(network, layer.outputs[0])
        self.x_multipliers = fx.quantize_multipliers(
            _scale(network, x_id) * _quant(network, w_id).scales_for(rows) / row_gate_scales
        )
        self.h_multipliers = fx.quantize_multipliers(
            self.h_scale * _quant(network, r_id).scales_for(rows) / row_gate_scales
        )

    def x_part(self, acc: NDArray[np.int64], direction: int) -> NDArray[np.int64]:
        m, s = self.x_multipliers
        return fx.requantize(fx.saturate_int32(acc), m[direction], s[direction])

    def h_part(self, acc: NDArray[np.int64], direction: int) -> NDArray[np.int64]:
        m, s = self.h_multipliers
        return fx.requantize(fx.saturate_int32(acc), m[direction], s[direction])


def _recurrent_inputs(
    layer: Layer, values: dict[int, Array], states: int
) -> tuple[Array, Array, Array, Array | None, list[Array | None]]:
    x_id, w_id, r_id, b_id = layer.inputs[:4]
    x = values[x_id]
    if x.ndim != 3:
        raise ExecutionError(f"{layer.op.name} input must be [T, B, I], got {x.shape}")
    bias = values[b_id] if b_id >= 0 else None
    initial = [values[i] if i >= 0 else None for i in layer.inputs[4 : 4 + states]]
    return x, values[w_id], values[r_id], bias, initial


def _lstm(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    x, w, r, bias, (h0, c0) = _recurrent_inputs(layer, values, 2)
    hidden = layer.attr_int("hidden_size")
    directions = layer.direction.count
    scales = RecurrentScales(network, layer)
    e = layer.attr_int("cell_exponent")
    steps, batch, _ = x.shape
    y = np.zeros((steps, directions, batch, hidden), np.int8)
    h_n = np.zeros((directions, batch, hidden), np.int8)
    c_n = np.zeros((directions, batch, hidden), np.int16)
    cell_table = fx.cell_tanh_table()
    out_factor = fx.GATE_SCALE * fx.GATE_SCALE / scales.h_scale
    for d in range(directions):
        tables = [
            fx.activation_lut("tanh" if g == 3 else "sigmoid", scales.gate_scales[d, g], fx.GATE_SCALE)
            for g in range(4)
        ]
        bw = _int64(bias[d, : 4 * hidden]) if bias is not None else np.zeros(4 * hidden, np.int64)
        br = _int64(bias[d, 4 * hidden :]) if bias is not None else np.zeros(4 * hidden, np.int64)
        h = _int64(h0[d]) if h0 is not None else np.zeros((batch, hidden), np.int64)
        c = _int64(c0[d]) if c0 is not None else np.zeros((batch, hidden), np.int64)
        for t in time_steps(layer, d, steps):
            acc_x = int_matmul(x[t], w[d]) + bw
            acc_h = int_matmul(h, r[d]) + br
            pre = fx.saturate_int8(scales.x_part(acc_x, d) + scales.h_part(acc_h, d))
            i, o, f, g = (
                _int64(fx.lookup(tables[k], pre[:, k * hidden : (k + 1) * hidden])) for k in range(4)
            )
            c = _int64(fx.saturate_int16(fx.shift_round(f * c, 7) + fx.shift_round(i * g, 14 + e)))
            tanh_c = _int64(fx.lookup(cell_table, fx.cell_tanh_index(c, e)))
            h = _int64(fx.saturate_int8(_rq(o * tanh_c, out_factor)))
            y[t, d] = h
        h_n[d], c_n[d] = h, c
    return [y, h_n, c_n]


def _gru(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    x, w, r, bias, (h0,) = _recurrent_inputs(layer, values, 1)
    hidden = layer.attr_int("hidden_size")
    directions = layer.direction.count
    scales = RecurrentScales(network, layer)
    steps, batch, _ = x.shape
    y = np.zeros((steps, directions, batch, hidden), np.int8)
    h_n = np.zeros((directions, batch, hidden), np.int8)
    n_factor = fx.GATE_SCALE / scales.h_scale
    for d in range(directions):
        sigmoid_z = fx.activation_lut("sigmoid", scales.gate_scales[d, 0], fx.GATE_SCALE)
        sigmoid_r = fx.activation_lut("sigmoid", scales.gate_scales[d, 1], fx.GATE_SCALE)
        tanh_n = fx.activation_lut("tanh", scales.gate_scales[d, 2], fx.GATE_SCALE)
        bw = _int64(bias[d, : 3 * hidden]) if bias is not None else np.zeros(3 * hidden, np.int64)
        br = _int64(bias[d, 3 * hidden :]) if bias is not None else np.zeros(3 * hidden, np.int64)
        h = _int64(h0[d]) if h0 is not None else np.zeros((batch, hidden), np.int64)
        for t in time_steps(layer, d, steps):
            xs = scales.x_part(int_matmul(x[t], w[d]) + bw, d)
            hs = scales.h_part(int_matmul(h, r[d]) + br, d)
            z = _int64(fx.lookup(sigmoid_z, fx.saturate_int8(xs[:, :hidden] + hs[:, :hidden])))
            rr = _int64(
                fx.lookup(
                    sigmoid_r, fx.saturate_int8(xs[:, hidden : 2 * hidden] + hs[:, hidden : 2 * hidden])
                )
            )
            n_pre = fx.saturate_int8(xs[:, 2 * hidden :] + fx.shift_round(rr * hs[:, 2 * hidden :], 7))
            n_h = _rq(_int64(fx.lookup(tanh_n, n_pre)), n_factor)
            h = _int64(fx.saturate_int8(n_h + fx.shift_round(z * (h - n_h), 7)))
            y[t, d] = h
        h_n[d] = h
    return [y, h_n]


def _embedding(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    table, ids = values[layer.inputs[0]], values[layer.inputs[1]]
    check_ids(ids, table.shape[0])
    return [table[_int64(ids)]]


def _add(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    a_id, b_id = layer.inputs
    y_scale = _scale(network, layer.outputs[0])
    a = _rq(values[a_id], _scale(network, a_id) / y_scale)
    b = _rq(values[b_id], _scale(network, b_id) / y_scale)
    return [fx.saturate_int8(a + b)]


def _mul(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    a_id, b_id = layer.inputs
    factor = _scale(network, a_id) * _scale(network, b_id) / _scale(network, layer.outputs[0])
    return [fx.saturate_int8(_rq(_int64(values[a_id]) * _int64(values[b_id]), factor))]


def _relu(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    (x_id,) = layer.inputs
    factor = _scale(network, x_id) / _scale(network, layer.outputs[0])
    return [fx.saturate_int8(_rq(np.maximum(_int64(values[x_id]), 0), factor))]


def _table_op(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    (x_id,) = layer.inputs
    kind: fx.LutKind = "tanh" if layer.op is Op.TANH else "sigmoid"
    table = fx.activation_lut(kind, _scale(network, x_id), _scale(network, layer.outputs[0]))
    return [fx.lookup(table, values[x_id])]


def _shape_op(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    return [apply_shape_op(layer, values[layer.inputs[0]])]


def _reduce_mean(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    (x_id,) = layer.inputs
    x = values[x_id]
    axes = reduced_axes(layer, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:
        raise ExecutionError("ReduceMean over an empty axis")
    total = np.sum(_int64(x), axis=axes, keepdims=bool(layer.attr_int("keepdims")))
    factor = _scale(network, x_id) / (_scale(network, layer.outputs[0]) * count)
    return [fx.saturate_int8(_rq(total, factor))]


def _reduce_max(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    (x_id,) = layer.inputs
    x = values[x_id]
    if x.size == 0:
        raise ExecutionError("ReduceMax over an empty tensor")
    top = np.max(_int64(x), axis=reduced_axes(layer, x.ndim), keepdims=bool(layer.attr_int("keepdims")))
    return [fx.saturate_int8(_rq(top, _scale(network, x_id) / _scale(network, layer.outputs[0])))]


def _layer_norm(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    x_id, g_id, b_id = layer.inputs
    x, gamma = _int64(values[x_id]), _int64(values[g_id])
    count = check_layer_norm_input(x, gamma)
    s1 = np.sum(x, axis=-1, keepdims=True)
    s2 = np.sum(x * x, axis=-1, keepdims=True)
    d = count * x - s1
    epsilon = fx.layer_norm_epsilon(layer.attr_float("epsilon"), count, _scale(network, x_id))
    v = np.maximum(count * s2 - s1 * s1 + epsilon, 1)
    mantissa, shift = fx.rsqrt(v, fx.rsqrt_table())
    z = _int64(fx.saturate_int16(fx.shift_round_rows(d * mantissa, shift + fx.LAYER_NORM_Z_EXPONENT)))
    acc = gamma * z + (_int64(values[b_id]) if b_id >= 0 else 0)
    factor = _scale(network, g_id) * 2.0**fx.LAYER_NORM_Z_EXPONENT / _scale(network, layer.outputs[0])
    return [fx.saturate_int8(_rq(fx.saturate_int32(acc), factor))]


def _concat(network: Network, layer: Layer, values: dict[int, Array]) -> list[Array]:
    y_scale = _scale(network, layer.outputs[0])
    parts = [_rq(values[i], _scale(network, i) / y_scale) for i in layer.inputs]
    return [fx.saturate_int8(np.concatenate(parts, axis=layer.attr_int("axis")))]


_IntOp = Callable[[Network, Layer, dict[int, Array]], list[Array]]
_INT_OPS: dict[Op, _IntOp] = {
    Op.LINEAR: _linear,
    Op.CONV1D: _conv,
    Op.CONV2D: _conv,
    Op.LSTM: _lstm,
    Op.GRU: _gru,
    Op.EMBEDDING: _embedding,
    Op.ADD: _add,
    Op.MUL: _mul,
    Op.RELU: _relu,
    Op.TANH: _table_op,
    Op.SIGMOID: _table_op,
    Op.RESHAPE: _shape_op,
    Op.TRANSPOSE: _shape_op,
    Op.SQUEEZE: _shape_op,
    Op.UNSQUEEZE: _shape_op,
    Op.REDUCE_MEAN: _reduce_mean,
    Op.REDUCE_MAX: _reduce_max,
    Op.CONCAT: _concat,
    Op.SLICE: _shape_op,
    Op.GATHER: _shape_op,
    Op.LAYER_NORM: _layer_norm,
}


# -------------------------------------------------------------------------------------------- float


def run_float(
    network: Network, inputs: Mapping[str, Array], observe: Observer | None = None
) -> dict[str, NDArray[np.float32]]:
    """Outputs of the float ``network``; ``observe(layer, name, values)`` sees the cell internals."""
    values = evaluate_float(network, inputs, observe)
    return {network.tensors[i].name: values[i].astype(np.float32) for i in network.outputs}


def evaluate_float(
    network: Network, inputs: Mapping[str, Array], observe: Observer | None = None
) -> dict[int, Array]:
    """Every tensor's float value (float64 inside; ids stay integers)."""
    if network.is_quantized:
        raise ExecutionError("run_float needs a float network")
    values: dict[int, Array] = {}
    for index, tensor in enumerate(network.tensors):
        if tensor.data is not None:
            values[index] = tensor.data.astype(np.float64) if tensor.dtype == DType.FLOAT32 else tensor.data
    for index in network.inputs:
        value = check_input(network.tensors[index], inputs)
        values[index] = value.astype(np.float64) if value.dtype == np.float32 else value
    for position, layer in enumerate(network.layers):

        def note(name: str, value: NDArray[np.float64], position: int = position) -> None:
            if observe is not None:
                observe(position, name, value)

        results = _float_layer(layer, values, note)
        for index, result in zip(layer.outputs, results, strict=True):
            if index >= 0:
                values[index] = result
    return values


def layer_norm_float(
    x: NDArray[np.float64], scale: NDArray[np.float64], bias: NDArray[np.float64] | None, epsilon: float
) -> NDArray[np.float64]:
    """ONNX LayerNormalization over the last axis, in float64 (what the integer op approximates)."""
    centred = x - np.mean(x, axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    y: NDArray[np.float64] = centred / np.sqrt(variance + epsilon) * scale
    return y + bias if bias is not None else y


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def _float_layer(
    layer: Layer, values: dict[int, Array], note: Callable[[str, NDArray[np.float64]], None]
) -> list[Array]:
    def get(slot: int) -> NDArray[np.float64] | None:
        index = layer.inputs[slot]
        return None if index < 0 else np.asarray(values[index], np.float64)

    def need(slot: int) -> NDArray[np.float64]:
        value = get(slot)
        assert value is not None
        return value

    op = layer.op
    if op is Op.LINEAR:
        bias = get(2)
        y = need(0) @ need(1).T
        return [y + bias if bias is not None else y]
    if op in CONV_OPS:
        return [_conv_acc(need(0), need(1), get(2), layer, as_int=False)]
    if op is Op.LSTM:
        return _lstm_float(layer, need(0), need(1), need(2), get(3), get(4), get(5), note)
    if op is Op.GRU:
        return _gru_float(layer, need(0), need(1), need(2), get(3), get(4), note)
    if op is Op.EMBEDDING:
        table, ids = need(0), values[layer.inputs[1]]
        check_ids(ids, table.shape[0])
        return [table[_int64(ids)]]
    if op is Op.ADD:
        return [need(0) + need(1)]
    if op is Op.MUL:
        return [need(0) * need(1)]
    if op is Op.RELU:
        return [np.maximum(need(0), 0.0)]
    if op is Op.TANH:
        return [np.tanh(need(0))]
    if op is Op.SIGMOID:
        return [_sigmoid(need(0))]
    if op in (Op.REDUCE_MEAN, Op.REDUCE_MAX):
        x = need(0)
        reduce = np.mean if op is Op.REDUCE_MEAN else np.max
        return [reduce(x, axis=reduced_axes(layer, x.ndim), keepdims=bool(layer.attr_int("keepdims")))]
    if op is Op.LAYER_NORM:
        check_layer_norm_input(need(0), need(1))
        return [layer_norm_float(need(0), need(1), get(2), layer.attr_float("epsilon"))]
    if op is Op.CONCAT:
        return [
            np.concatenate(
                [np.asarray(values[i], np.float64) for i in layer.inputs], axis=layer.attr_int("axis")
            )
        ]
    return [apply_shape_op(layer, values[layer.inputs[0]])]


def _recurrent_shapes(
    layer: Layer, x: NDArray[np.float64], bias: NDArray[np.float64] | None, gates: int
) -> tuple[int, int, int, NDArray[np.float64]]:
    if x.ndim != 3:
        raise ExecutionError(f"{layer.op.name} input must be [T, B, I], got {x.shape}")
    hidden = layer.attr_int("hidden_size")
    directions = layer.direction.count
    if bias is None:
        bias = np.zeros((directions, 2 * gates * hidden))
    return hidden, directions, x.shape[1], bias


def _lstm_float(
    layer: Layer,
    x: NDArray[np.float64],
    w: NDArray[np.float64],
    r: NDArray[np.float64],
    bias: NDArray[np.float64] | None,
    h0: NDArray[np.float64] | None,
    c0: NDArray[np.float64] | None,
    note: Callable[[str, NDArray[np.float64]], None],
) -> list[Array]:
    hidden, directions, batch, b = _recurrent_shapes(layer, x, bias, 4)
    steps = x.shape[0]
    y = np.zeros((steps, directions, batch, hidden))
    h_n, c_n = np.zeros((directions, batch, hidden)), np.zeros((directions, batch, hidden))
    for d in range(directions):
        h = h0[d] if h0 is not None else np.zeros((batch, hidden))
        c = c0[d] if c0 is not None else np.zeros((batch, hidden))
        for t in time_steps(layer, d, steps):
            pre = x[t] @ w[d].T + h @ r[d].T + b[d, : 4 * hidden] + b[d, 4 * hidden :]
            for k, name in enumerate("iofc"):
                note(f"{d}.{name}", pre[:, k * hidden : (k + 1) * hidden])
            i, o, f = (_sigmoid(pre[:, k * hidden : (k + 1) * hidden]) for k in range(3))
            c = f * c + i * np.tanh(pre[:, 3 * hidden :])
            note("cell", c)
            h = o * np.tanh(c)
            y[t, d] = h
        h_n[d], c_n[d] = h, c
    return [y, h_n, c_n]


def _gru_float(
    layer: Layer,
    x: NDArray[np.float64],
    w: NDArray[np.float64],
    r: NDArray[np.float64],
    bias: NDArray[np.float64] | None,
    h0: NDArray[np.float64] | None,
    note: Callable[[str, NDArray[np.float64]], None],
) -> list[Array]:
    hidden, directions, batch, b = _recurrent_shapes(layer, x, bias, 3)
    steps = x.shape[0]
    y = np.zeros((steps, directions, batch, hidden))
    h_n = np.zeros((directions, batch, hidden))
    for d in range(directions):
        h = h0[d] if h0 is not None else np.zeros((batch, hidden))
        for t in time_steps(layer, d, steps):
            xs = x[t] @ w[d].T + b[d, : 3 * hidden]
            hs = h @ r[d].T + b[d, 3 * hidden :]
            z_pre = xs[:, :hidden] + hs[:, :hidden]
            r_pre = xs[:, hidden : 2 * hidden] + hs[:, hidden : 2 * hidden]
            rr = _sigmoid(r_pre)
            n_pre = xs[:, 2 * hidden :] + rr * hs[:, 2 * hidden :]
            note(f"{d}.z", z_pre)
            note(f"{d}.r", r_pre)
            note(f"{d}.n", n_pre)
            z = _sigmoid(z_pre)
            n = np.tanh(n_pre)
            h = n + z * (h - n)
            y[t, d] = h
        h_n[d] = h
    return [y, h_n]
