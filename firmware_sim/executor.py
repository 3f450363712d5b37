"""The simulated edge processor: loads a weight image into on-chip SRAM and runs it, counting.

Loading decodes every constant from its stored form (packed non-zeros + bitmask or run-length
index) into a dense array at its place in SRAM, zeros filled back in, and derives the integer
requantization multipliers and the activation tables; it fails with ``SramOverflowError`` when the
dense weights and those parameters do not fit. Running moves each layer's work onto two units:

* the MAC array (Linear, Conv1d, the matrix products of LSTM/GRU): int8 × int8 → int32, ``mac_lanes``
  products per cycle, a product with a zero weight *or* a zero activation is skipped;
* the vector unit (requantization, table lookups, gate arithmetic, elementwise layers, moves).

Live activations count against the SRAM left after the weights; exceeding it is an
``SramOverflowError`` too. Every counter follows the rules in ``cost.py``. Results are bit-exact
with ``reference.run`` (the tests hold it to that on every layer type and sparsity).

>>> import numpy as np
>>> from firmware_sim.network import DType, Layer, Network, Op, Quant, Tensor
>>> x = Tensor("x", (1, 4), DType.INT8, quant=Quant.per_tensor(0.5))
>>> weights = np.array([[1, 0, 0, 2], [0, 0, 0, 0]], np.int8)
>>> w = Tensor("w", (2, 4), DType.INT8, weights, Quant.per_tensor(1.0))
>>> y = Tensor("y", (1, 2), DType.INT8, quant=Quant.per_tensor(0.5))
>>> machine = Executor.from_network(Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), (0,), (2,)))
>>> result = machine.run({"x": np.array([[3, 0, 5, 1]], np.int8)})
>>> result.outputs["y"].tolist(), result.counters.macs_issued, result.counters.macs_skipped
([[5, 0]], 2, 6)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from firmware_sim import fixedpoint as fx
from firmware_sim.cost import CostModel, Counters
from firmware_sim.image import ParsedImage, load_image, parse_image, serialize, stored_positions
from firmware_sim.network import (
    CONV_OPS,
    GATES,
    Array,
    ConvGeometry,
    ExecutionError,
    Layer,
    Network,
    Op,
    apply_shape_op,
    check_ids,
    check_input,
    check_layer_norm_input,
    conv_patches,
    reduced_axes,
    time_steps,
)

IntArray = NDArray[np.int64]
AnyArray = fx.AnyArray
SRAM_ALIGNMENT = 16  # bytes; every tensor starts on a 16-byte boundary
MULTIPLIER_BYTES = 8  # per requantized row: a 32-bit multiplier and a 32-bit shift


class SramOverflowError(ExecutionError):
    """The network does not fit into the processor's on-chip SRAM."""


def _aligned(nbytes: int) -> int:
    return -(-nbytes // SRAM_ALIGNMENT) * SRAM_ALIGNMENT


@dataclass
class _Meter:
    """Mutable tallies of one layer; frozen into ``Counters`` when the layer is done."""

    macs_issued: int = 0
    macs_skipped: int = 0
    mac_cycles: int = 0
    vector_ops: int = 0
    vector_cycles: int = 0
    dram_bytes_read: int = 0
    dram_bytes_read_dense: int = 0
    dram_bytes_written: int = 0
    dram_cycles: int = 0
    sram_bytes_read: int = 0
    sram_bytes_written: int = 0

    def counters(self, cost: CostModel) -> Counters:
        return cost.priced(Counters(**{f.name: int(getattr(self, f.name)) for f in fields(self)}))


class MacArray:
    """``lanes`` int8 MACs per cycle; the non-zero products of one output are packed onto the lanes.

    ``operands`` caches, per weight matrix in SRAM, its float64 copy and its non-zero mask: the
    products are summed with BLAS in float64, which is exact for int8 × int8 sums (far below 2**53);
    a zero operand contributes nothing, so the dense sum equals the sum over the issued products.
    """

    def __init__(self, lanes: int, meter: _Meter, operands: dict[tuple[int, ...], tuple[AnyArray, AnyArray]]):
        self.lanes = lanes
        self.meter = meter
        self.operands = operands

    def _weight_operands(self, weight: AnyArray) -> tuple[AnyArray, AnyArray]:
        key = (weight.__array_interface__["data"][0], *weight.shape, *weight.strides)
        if key not in self.operands:
            self.operands[key] = (weight.astype(np.float64), (weight != 0).astype(np.float32))
        return self.operands[key]

    def matmul(self, weight: AnyArray, rows: AnyArray) -> IntArray:
        """``rows @ weight.T`` as int64 accumulators (each row is one input vector)."""
        count, depth = rows.shape
        outputs = weight.shape[0]
        if weight.shape[1] != depth:
            raise ExecutionError(f"matrix product of [{count}, {depth}] with weights {weight.shape}")
        dense, nonzero = self._weight_operands(weight)
        issued = np.rint((rows != 0).astype(np.float32) @ nonzero.T).astype(np.int64)  # [M, N] pairs
        total_issued = int(issued.sum())
        self.meter.macs_issued += total_issued
        self.meter.macs_skipped += count * outputs * depth - total_issued
        self.meter.mac_cycles += int(np.sum(-(-issued // self.lanes)))
        self.meter.sram_bytes_read += count * weight.nbytes + rows.nbytes
        return np.rint(rows.astype(np.float64) @ dense.T).astype(np.int64)


class VectorUnit:
    """Elementwise integer instructions, ``lanes`` elements per cycle; each call is one instruction."""

    def __init__(self, lanes: int, meter: _Meter) -> None:
        self.lanes = lanes
        self.meter = meter

    def _issue(self, result: NDArray[np.generic]) -> None:
        self.meter.vector_ops += result.size
        self.meter.vector_cycles += math.ceil(result.size / self.lanes)

    def requantize(self, acc: AnyArray, m: IntArray, s: IntArray, bias: AnyArray | None = None) -> IntArray:
        """Add the bias, saturate to the 32-bit accumulator, multiply and shift."""
        total = acc if bias is None else acc + bias
        result = fx.requantize(fx.saturate_int32(total), m, s)
        self._issue(result)
        return result

    def add(self, a: AnyArray, b: AnyArray | int) -> IntArray:
        result = np.asarray(a, np.int64) + np.asarray(b, np.int64)
        self._issue(result)
        return result

    def sub(self, a: AnyArray, b: AnyArray) -> IntArray:
        result = np.asarray(a, np.int64) - np.asarray(b, np.int64)
        self._issue(result)
        return result

    def mul(self, a: AnyArray, b: AnyArray | int) -> IntArray:
        result = np.asarray(a, np.int64) * np.asarray(b, np.int64)
        self._issue(result)
        return result

    def shift_round(self, x: AnyArray, shift: int) -> IntArray:
        result = fx.shift_round(x, shift)
        self._issue(result)
        return result

    def relu(self, x: AnyArray) -> IntArray:
        result = np.maximum(np.asarray(x, np.int64), 0)
        self._issue(result)
        return result

    def saturate8(self, x: AnyArray) -> NDArray[np.int8]:
        result = fx.saturate_int8(x)
        self._issue(result)
        return result

    def saturate16(self, x: AnyArray) -> NDArray[np.int16]:
        result = fx.saturate_int16(x)
        self._issue(result)
        return result

    def cell_tanh_index(self, c: AnyArray, cell_exponent: int) -> IntArray:
        result = fx.cell_tanh_index(c, cell_exponent)
        self._issue(result)
        return result

    def lookup(self, table: NDArray[np.int8], q: AnyArray) -> NDArray[np.int8]:
        result = fx.lookup(table, q)
        self._issue(result)
        return result

    def reduce_sum(self, x: AnyArray) -> IntArray:
        """Sum over the last axis into a 32-bit accumulator: one add per element."""
        self._issue(np.asarray(x))
        result: IntArray = np.sum(np.asarray(x, np.int64), axis=-1, keepdims=True)
        return result

    def rsqrt(self, v: AnyArray, table: AnyArray) -> tuple[IntArray, IntArray]:
        """Leading-zero count, even shift and table lookup: three instructions per value."""
        mantissa, shift = fx.rsqrt(v, table)
        for _ in range(3):
            self._issue(mantissa)
        return mantissa, shift

    def shift_round_rows(self, x: AnyArray, shift: IntArray) -> IntArray:
        result = fx.shift_round_rows(x, shift)
        self._issue(result)
        return result

    def maximum(self, x: AnyArray, low: int) -> IntArray:
        result = np.maximum(np.asarray(x, np.int64), low)
        self._issue(result)
        return result

    def move(self, x: Array) -> None:
        """A copy through the unit (transposes, gathers)."""
        self._issue(x)


@dataclass
class _Plan:
    """What the loader derives for one layer: requantization multipliers and activation tables."""

    multipliers: dict[str, tuple[IntArray, IntArray]] = field(default_factory=dict)
    tables: dict[str, NDArray[np.int8]] = field(default_factory=dict)
    wide_tables: dict[str, IntArray] = field(default_factory=dict)  # int32 entries (LayerNorm's rsqrt)
    constants: dict[str, int] = field(default_factory=dict)  # integer constants (LayerNorm's epsilon)

    def multiplier(self, name: str, factors: NDArray[np.float64] | float) -> None:
        self.multipliers[name] = fx.quantize_multipliers(np.asarray(factors, np.float64))

    @property
    def param_bytes(self) -> int:
        return (
            sum(m.size * MULTIPLIER_BYTES for m, _ in self.multipliers.values())
            + sum(t.nbytes for t in self.tables.values())
            + sum(t.size * 4 for t in self.wide_tables.values())
            + len(self.constants) * 8
        )


@dataclass(frozen=True)
class RunResult:
    outputs: dict[str, Array]
    counters: Counters  # the whole run: input/output DRAM transfers and every layer
    layer_counters: tuple[Counters, ...]  # one per layer, in order


class Executor:
    """A loaded processor: construct once per image, then ``run`` any number of times."""

    def __init__(self, image: ParsedImage, cost: CostModel | None = None) -> None:
        self.cost = cost if cost is not None else CostModel()
        self.image = image
        self.network = network = image.network
        if not network.is_quantized:
            raise ExecutionError(
                "the executor runs quantized images only (compile with firmware_sim compile)"
            )
        self.plans = [self._plan(layer) for layer in network.layers]
        placements: dict[int, int] = {}
        offset = 0
        for index in network.constants():
            placements[index] = offset
            offset += _aligned(image.encoded[index].dense_bytes)
        self.weight_bytes = offset
        self.resident_bytes = offset + sum(_aligned(plan.param_bytes) for plan in self.plans)
        if self.resident_bytes > self.cost.sram_bytes:
            raise SramOverflowError(
                f"the image needs {self.resident_bytes / 1024:.1f} KiB of SRAM for its dense weights and "
                f"parameters; the processor has {self.cost.sram_kib} KiB (raise sram_kib or prune)"
            )
        self.sram = np.zeros(max(offset, 1), np.uint8)
        self.mac_operands: dict[tuple[int, ...], tuple[AnyArray, AnyArray]] = {}
        self.weights: dict[int, Array] = {}
        meter = _Meter(dram_bytes_read=image.size_bytes, dram_bytes_read_dense=image.dense_size_bytes)
        for index, start in placements.items():
            self.weights[index] = self._load_tensor(index, start, image, meter)
        meter.sram_bytes_written += self.resident_bytes
        meter.dram_cycles += self.cost.dram_cycles(image.size_bytes)
        self.load_counters = meter.counters(self.cost)

    @classmethod
    def from_network(cls, network: Network, cost: CostModel | None = None) -> Executor:
        """Compile ``network`` to an image in memory and load that (what the chip would see)."""
        return cls(parse_image(serialize(network)), cost)

    @classmethod
    def from_path(cls, path: Path, cost: CostModel | None = None) -> Executor:
        """Load an image file (``OSError`` if unreadable, ``ImageError`` if invalid)."""
        return cls(load_image(path), cost)

    def _load_tensor(self, index: int, start: int, image: ParsedImage, meter: _Meter) -> Array:
        """Scatter the stored values into a zeroed SRAM region: the zeros come back by themselves."""
        tensor = self.network.tensors[index]
        encoded = image.encoded[index]
        region = self.sram[start : start + encoded.dense_bytes].view(tensor.dtype.numpy)
        values = np.frombuffer(encoded.values, tensor.dtype.numpy.newbyteorder("<"))
        region[stored_positions(encoded)] = values
        meter.vector_ops += values.size
        meter.vector_cycles += math.ceil(values.size / self.cost.vector_lanes)
        return region.reshape(tensor.shape)

    # ------------------------------------------------------------------------------------ loading

    def _scale(self, index: int) -> float:
        return self.network.tensors[index].scale

    def _row_scales(self, index: int, rows: tuple[int, ...]) -> NDArray[np.float64]:
        quant = self.network.tensors[index].quant
        if quant is None:
            raise ExecutionError(f"weights {self.network.tensors[index].name!r} are not quantized")
        return quant.scales_for(rows)

    def _plan(self, layer: Layer) -> _Plan:
        plan = _Plan()
        op, ins, outs = layer.op, layer.inputs, layer.outputs
        if op in (Op.LINEAR, *CONV_OPS):
            rows = (self.network.tensors[ins[1]].shape[0],)
            plan.multiplier(
                "out", self._scale(ins[0]) * self._row_scales(ins[1], rows) / self._scale(outs[0])
            )
        elif op in GATES:
            gates, hidden = GATES[op], layer.attr_int("hidden_size")
            directions = layer.direction.count
            gate_rows = (directions, gates * hidden)
            gate_scales = np.array(layer.attr_floats("gate_scales"), np.float64).reshape(directions, gates)
            per_row = np.repeat(gate_scales, hidden, axis=1)
            h_scale = self._scale(outs[0])
            plan.multiplier("x", self._scale(ins[0]) * self._row_scales(ins[1], gate_rows) / per_row)
            plan.multiplier("h", h_scale * self._row_scales(ins[2], gate_rows) / per_row)
            kinds: tuple[fx.LutKind, ...] = (
                ("sigmoid", "sigmoid", "sigmoid", "tanh") if op is Op.LSTM else ("sigmoid", "sigmoid", "tanh")
            )
            for d in range(directions):
                for g, gate_kind in enumerate(kinds):
                    plan.tables[f"{d}.{g}"] = fx.activation_lut(gate_kind, gate_scales[d, g], fx.GATE_SCALE)
            if op is Op.LSTM:
                plan.tables["cell"] = fx.cell_tanh_table()
                plan.multiplier("h_out", fx.GATE_SCALE * fx.GATE_SCALE / h_scale)
            else:
                plan.multiplier("n_to_h", fx.GATE_SCALE / h_scale)
        elif op is Op.ADD:
            plan.multiplier("a", self._scale(ins[0]) / self._scale(outs[0]))
            plan.multiplier("b", self._scale(ins[1]) / self._scale(outs[0]))
        elif op is Op.MUL:
            plan.multiplier("out", self._scale(ins[0]) * self._scale(ins[1]) / self._scale(outs[0]))
        elif op in (Op.RELU, Op.REDUCE_MAX):
            plan.multiplier("out", self._scale(ins[0]) / self._scale(outs[0]))
        elif op is Op.CONCAT:
            for slot, index in enumerate(ins):
                plan.multiplier(f"in{slot}", self._scale(index) / self._scale(outs[0]))
        elif op is Op.LAYER_NORM:
            count = self.network.tensors[ins[1]].shape[0]
            plan.constants["epsilon"] = fx.layer_norm_epsilon(
                layer.attr_float("epsilon"), count, self._scale(ins[0])
            )
            plan.wide_tables["rsqrt"] = fx.rsqrt_table()
            plan.multiplier("out", self._scale(ins[1]) * 2.0**fx.LAYER_NORM_Z_EXPONENT / self._scale(outs[0]))
        elif op in (Op.TANH, Op.SIGMOID):
            kind: fx.LutKind = "tanh" if op is Op.TANH else "sigmoid"
            plan.tables["f"] = fx.activation_lut(kind, self._scale(ins[0]), self._scale(outs[0]))
        return plan

    # ------------------------------------------------------------------------------------ running

    def run(self, inputs: Mapping[str, Array]) -> RunResult:
        """Run on integer inputs by name (see ``quantize.quantize_inputs`` for float ones)."""
        network = self.network
        values: dict[int, Array] = {}
        io = _Meter()
        for index in network.inputs:
            value = check_input(network.tensors[index], inputs)
            values[index] = value
            io.dram_bytes_read += value.nbytes
            io.dram_bytes_read_dense += value.nbytes
            io.sram_bytes_written += value.nbytes
        last_use = self._last_uses()
        live = sum(v.nbytes for v in values.values())
        self._check_fits(live, "the inputs")
        layer_counters = []
        for position, layer in enumerate(network.layers):
            meter = _Meter()
            step = _Step(self, layer, self.plans[position], values, meter)
            results = _HANDLERS[layer.op](step)
            for index, result in zip(layer.outputs, results, strict=True):
                if index >= 0:
                    values[index] = result
                    live += result.nbytes
            self._check_fits(live, f"layer {position} ({layer.op.name})")
            for index in {i for i in layer.inputs if i >= 0 and last_use.get(i) == position}:
                live -= values.pop(index).nbytes
            layer_counters.append(meter.counters(self.cost))
        outputs = {network.tensors[i].name: values[i] for i in network.outputs}
        for value in outputs.values():
            io.dram_bytes_written += value.nbytes
            io.sram_bytes_read += value.nbytes
        io.dram_cycles = self.cost.dram_cycles(io.dram_bytes_read) + self.cost.dram_cycles(
            io.dram_bytes_written
        )
        total = io.counters(self.cost)
        for counters in layer_counters:
            total = total + counters
        return RunResult(outputs, total, tuple(layer_counters))

    def _last_uses(self) -> dict[int, int]:
        """Position of the last layer reading each activation (graph outputs live to the end)."""
        last: dict[int, int] = {}
        for position, layer in enumerate(self.network.layers):
            for index in layer.inputs:
                if index >= 0 and not self.network.tensors[index].is_constant:
                    last[index] = position
        for index in self.network.outputs:
            last[index] = len(self.network.layers)
        return last

    def _check_fits(self, live: int, where: str) -> None:
        if self.resident_bytes + live > self.cost.sram_bytes:
            raise SramOverflowError(
                f"{where}: {live} bytes of live activations on top of {self.resident_bytes} bytes of weights "
                f"exceed the {self.cost.sram_kib} KiB of SRAM (shorter inputs or a larger sram_kib)"
            )


class _Step:
    """One layer's execution context: its inputs, weights in SRAM, plan and the two units."""

    def __init__(self, machine: Executor, layer: Layer, plan: _Plan, values: dict[int, Array], meter: _Meter):
        self.machine = machine
        self.layer = layer
        self.plan = plan
        self.values = values
        self.meter = meter
        self.mac = MacArray(machine.cost.mac_lanes, meter, machine.mac_operands)
        self.vector = VectorUnit(machine.cost.vector_lanes, meter)

    def input(self, slot: int) -> Array:
        """An activation or a weight, read from SRAM."""
        index = self.layer.inputs[slot]
        if index < 0:
            raise ExecutionError(f"{self.layer.op.name}: input {slot} is absent")
        weights = self.machine.weights
        return weights[index] if index in weights else self.values[index]

    def optional(self, slot: int) -> Array | None:
        return None if self.layer.inputs[slot] < 0 else self.input(slot)

    def read(self, value: Array) -> Array:
        self.meter.sram_bytes_read += value.nbytes
        return value

    def write(self, value: Array) -> Array:
        self.meter.sram_bytes_written += value.nbytes
        return value


def _linear(step: _Step) -> list[Array]:
    x, weight, bias = step.input(0), step.input(1), step.optional(2)
    if x.shape[-1] != weight.shape[1]:
        raise ExecutionError(f"Linear input {x.shape} does not match weights {weight.shape}")
    acc = step.mac.matmul(weight, x.reshape(-1, weight.shape[1]))
    m, s = step.plan.multipliers["out"]
    bias64 = None if bias is None else step.read(bias).astype(np.int64)
    y = step.vector.saturate8(step.vector.requantize(acc, m, s, bias64))
    return [step.write(y.reshape(*x.shape[:-1], weight.shape[0]))]


def _conv(step: _Step) -> list[Array]:
    x, weight, bias = step.input(0), step.input(1), step.optional(2)
    group = step.layer.attr_int("group")
    out_channels, per_group_in = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    if x.ndim != 2 + len(kernel) or x.shape[1] != per_group_in * group:
        raise ExecutionError(f"{step.layer.op.name} input {x.shape} does not match weight {weight.shape}")
    per_group = out_channels // group
    parts = []
    for g in range(group):
        patches = conv_patches(x, step.layer, kernel, g)  # address generation: no copies counted
        batch, positions, depth = patches.shape
        w = weight[g * per_group : (g + 1) * per_group].reshape(per_group, depth)
        rows = patches.reshape(batch * positions, depth)
        parts.append(step.mac.matmul(w, rows).reshape(batch, positions, per_group))
    acc = np.concatenate(parts, axis=-1)  # [B, positions, Cout]
    m, s = step.plan.multipliers["out"]
    bias64 = None if bias is None else step.read(bias).astype(np.int64)
    y = step.vector.saturate8(step.vector.requantize(acc, m, s, bias64))
    out = ConvGeometry.of(step.layer).output_shape(tuple(x.shape[2:]), kernel)
    return [step.write(np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(x.shape[0], out_channels, *out))]


def _recurrent_setup(step: _Step, gates: int) -> tuple[Array, Array, Array, IntArray, int, int]:
    x, w, r = step.input(0), step.input(1), step.input(2)
    if x.ndim != 3 or x.shape[2] != w.shape[2]:
        raise ExecutionError(f"{step.layer.op.name} input must be [T, B, {w.shape[2]}], got {x.shape}")
    hidden = step.layer.attr_int("hidden_size")
    bias = step.optional(3)
    directions = step.layer.direction.count
    bias64 = (
        np.zeros((directions, 2 * gates * hidden), np.int64)
        if bias is None
        else step.read(bias).astype(np.int64)
    )
    return x, w, r, bias64, hidden, directions


def _lstm(step: _Step) -> list[Array]:
    x, w, r, bias, hidden, directions = _recurrent_setup(step, 4)
    h0, c0 = step.optional(4), step.optional(5)
    e = step.layer.attr_int("cell_exponent")
    steps, batch, _ = x.shape
    vec, plan = step.vector, step.plan
    mx, sx = plan.multipliers["x"]
    mh, sh = plan.multipliers["h"]
    m_out, s_out = plan.multipliers["h_out"]
    y = np.zeros((steps, directions, batch, hidden), np.int8)
    h_n = np.zeros((directions, batch, hidden), np.int8)
    c_n = np.zeros((directions, batch, hidden), np.int16)
    for d in range(directions):
        h = step.read(h0[d]).copy() if h0 is not None else np.zeros((batch, hidden), np.int8)
        c = step.read(c0[d]).astype(np.int64) if c0 is not None else np.zeros((batch, hidden), np.int64)
        for t in time_steps(step.layer, d, steps):
            gates_x = vec.requantize(step.mac.matmul(w[d], x[t]), mx[d], sx[d], bias[d, : 4 * hidden])
            gates_h = vec.requantize(step.mac.matmul(r[d], h), mh[d], sh[d], bias[d, 4 * hidden :])
            pre = vec.saturate8(vec.add(gates_x, gates_h))
            i, o, f, g = (
                vec.lookup(plan.tables[f"{d}.{k}"], pre[:, k * hidden : (k + 1) * hidden]) for k in range(4)
            )
            c = vec.saturate16(
                vec.add(vec.shift_round(vec.mul(f, c), 7), vec.shift_round(vec.mul(i, g), 14 + e))
            ).astype(np.int64)
            index = vec.cell_tanh_index(c, e)
            h = vec.saturate8(
                vec.requantize(vec.mul(o, vec.lookup(plan.tables["cell"], index)), m_out, s_out)
            )
            y[t, d] = step.write(h)
            step.meter.sram_bytes_written += c.size * 2
        h_n[d], c_n[d] = h, c
    return [y, step.write(h_n), step.write(c_n)]


def _gru(step: _Step) -> list[Array]:
    x, w, r, bias, hidden, directions = _recurrent_setup(step, 3)
    h0 = step.optional(4)
    steps, batch, _ = x.shape
    vec, plan = step.vector, step.plan
    mx, sx = plan.multipliers["x"]
    mh, sh = plan.multipliers["h"]
    m_n, s_n = plan.multipliers["n_to_h"]
    y = np.zeros((steps, directions, batch, hidden), np.int8)
    h_n = np.zeros((directions, batch, hidden), np.int8)
    z_part, r_part, n_part = slice(0, hidden), slice(hidden, 2 * hidden), slice(2 * hidden, 3 * hidden)
    for d in range(directions):
        h = step.read(h0[d]).copy() if h0 is not None else np.zeros((batch, hidden), np.int8)
        for t in time_steps(step.layer, d, steps):
            xs = vec.requantize(step.mac.matmul(w[d], x[t]), mx[d], sx[d], bias[d, : 3 * hidden])
            hs = vec.requantize(step.mac.matmul(r[d], h), mh[d], sh[d], bias[d, 3 * hidden :])
            z = vec.lookup(plan.tables[f"{d}.0"], vec.saturate8(vec.add(xs[:, z_part], hs[:, z_part])))
            reset = vec.lookup(plan.tables[f"{d}.1"], vec.saturate8(vec.add(xs[:, r_part], hs[:, r_part])))
            n_pre = vec.saturate8(vec.add(xs[:, n_part], vec.shift_round(vec.mul(reset, hs[:, n_part]), 7)))
            n = vec.lookup(plan.tables[f"{d}.2"], n_pre)
            n_h = vec.requantize(n.astype(np.int64), m_n, s_n)
            h = vec.saturate8(vec.add(n_h, vec.shift_round(vec.mul(z, vec.sub(h.astype(np.int64), n_h)), 7)))
            y[t, d] = step.write(h)
        h_n[d] = h
    return [y, step.write(h_n)]


def _embedding(step: _Step) -> list[Array]:
    table, ids = step.input(0), step.read(step.input(1))
    check_ids(ids, table.shape[0])
    rows = table[np.asarray(ids, np.int64)]
    step.read(rows)
    step.vector.move(rows)
    return [step.write(rows)]


def _add(step: _Step) -> list[Array]:
    a, b = step.read(step.input(0)), step.read(step.input(1))
    ma, sa = step.plan.multipliers["a"]
    mb, sb = step.plan.multipliers["b"]
    vec = step.vector
    return [
        step.write(
            vec.saturate8(
                vec.add(
                    vec.requantize(a.astype(np.int64), ma, sa), vec.requantize(b.astype(np.int64), mb, sb)
                )
            )
        )
    ]


def _mul(step: _Step) -> list[Array]:
    a, b = step.read(step.input(0)), step.read(step.input(1))
    m, s = step.plan.multipliers["out"]
    vec = step.vector
    return [step.write(vec.saturate8(vec.requantize(vec.mul(a, b), m, s)))]


def _relu(step: _Step) -> list[Array]:
    x = step.read(step.input(0))
    m, s = step.plan.multipliers["out"]
    vec = step.vector
    return [step.write(vec.saturate8(vec.requantize(vec.relu(x), m, s)))]


def _table(step: _Step) -> list[Array]:
    x = step.read(step.input(0))
    return [step.write(step.vector.lookup(step.plan.tables["f"], x))]


def _shape(step: _Step) -> list[Array]:
    x = step.input(0)
    y = apply_shape_op(step.layer, x)
    if step.layer.op in (Op.TRANSPOSE, Op.SLICE, Op.GATHER):  # the others only relabel the same bytes
        step.read(x)
        step.vector.move(y)
        step.write(y)
    return [y]


def _reduce_mean(step: _Step) -> list[Array]:
    x = step.read(step.input(0))
    axes = reduced_axes(step.layer, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:
        raise ExecutionError("ReduceMean over an empty axis")
    total = np.sum(x.astype(np.int64), axis=axes, keepdims=bool(step.layer.attr_int("keepdims")))
    step.vector.move(x)  # one accumulate per element
    # The divisor depends on the run's length, so this multiplier is derived per run (by the host).
    factor = step.machine.network.tensors[step.layer.inputs[0]].scale / (
        step.machine.network.tensors[step.layer.outputs[0]].scale * count
    )
    m, s = fx.quantize_multipliers(np.array(factor))
    y = step.vector.saturate8(step.vector.requantize(total, m, s))
    return [step.write(y)]


def _reduce_max(step: _Step) -> list[Array]:
    x = step.read(step.input(0))
    if x.size == 0:
        raise ExecutionError("ReduceMax over an empty tensor")
    top = np.max(
        x.astype(np.int64),
        axis=reduced_axes(step.layer, x.ndim),
        keepdims=bool(step.layer.attr_int("keepdims")),
    )
    step.vector.move(x)  # one compare per element
    m, s = step.plan.multipliers["out"]
    return [step.write(step.vector.saturate8(step.vector.requantize(top, m, s)))]


def _layer_norm(step: _Step) -> list[Array]:
    x, gamma, beta = step.read(step.input(0)), step.read(step.input(1)), step.optional(2)
    count = check_layer_norm_input(x, gamma)
    vec, plan = step.vector, step.plan
    s1 = vec.reduce_sum(x)
    s2 = vec.reduce_sum(vec.mul(x, x))
    d = vec.sub(vec.mul(x, count), s1)
    variance = vec.add(vec.sub(vec.mul(s2, count), vec.mul(s1, s1)), plan.constants["epsilon"])
    mantissa, shift = vec.rsqrt(vec.maximum(variance, 1), plan.wide_tables["rsqrt"])
    z = vec.saturate16(vec.shift_round_rows(vec.mul(d, mantissa), shift + fx.LAYER_NORM_Z_EXPONENT))
    m, s = plan.multipliers["out"]
    bias64 = None if beta is None else step.read(beta).astype(np.int64)
    return [step.write(vec.saturate8(vec.requantize(vec.mul(gamma, z), m, s, bias64)))]


def _concat(step: _Step) -> list[Array]:
    parts = []
    for slot in range(len(step.layer.inputs)):
        m, s = step.plan.multipliers[f"in{slot}"]
        parts.append(step.vector.requantize(step.read(step.input(slot)).astype(np.int64), m, s))
    y = step.vector.saturate8(np.concatenate(parts, axis=step.layer.attr_int("axis")))
    return [step.write(y)]


_HANDLERS: dict[Op, Callable[[_Step], list[Array]]] = {
    Op.LINEAR: _linear,
    Op.CONV1D: _conv,
    Op.CONV2D: _conv,
    Op.LSTM: _lstm,
    Op.GRU: _gru,
    Op.EMBEDDING: _embedding,
    Op.ADD: _add,
    Op.MUL: _mul,
    Op.RELU: _relu,
    Op.TANH: _table,
    Op.SIGMOID: _table,
    Op.RESHAPE: _shape,
    Op.TRANSPOSE: _shape,
    Op.SQUEEZE: _shape,
    Op.UNSQUEEZE: _shape,
    Op.REDUCE_MEAN: _reduce_mean,
    Op.REDUCE_MAX: _reduce_max,
    Op.CONCAT: _concat,
    Op.SLICE: _shape,
    Op.GATHER: _shape,
    Op.LAYER_NORM: _layer_norm,
}
