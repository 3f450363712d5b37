"""The network IR: tensors, layers and the graph the edge processor runs.

One small typed description serves three stages: the float network imported from ONNX (constants
float32, no quantization), the int8 network the quantizer makes from it, and the network read back
from a weight image. Layers follow ONNX semantics and layouts (LSTM/GRU gate order, ``[T, D, B, H]``
outputs, ``Conv`` on ``[B, C, L]``) so the importer is a renaming and the reference can be checked
against onnxruntime.

Tensors are referred to by their index in ``Network.tensors``; ``-1`` marks an absent optional input.
Activation shapes may contain ``-1`` (unknown until run time); constants are fully static.

>>> x = Tensor("x", (-1, 4), DType.FLOAT32)
>>> w = Tensor("w", (3, 4), DType.FLOAT32, data=np.ones((3, 4), np.float32))
>>> y = Tensor("y", (-1, 3), DType.FLOAT32)
>>> net = Network((x, w, y), (Layer(Op.LINEAR, (0, 1, -1), (2,)),), inputs=(0,), outputs=(2,))
>>> net.validate()
>>> net.is_quantized
False
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

AttrValue = int | float | tuple[int, ...] | tuple[float, ...]
Array = NDArray[np.generic]


class NetworkError(ValueError):
    """The network description is inconsistent (wrong arity, dtype, missing attribute...)."""


class ExecutionError(RuntimeError):
    """Running a network failed on its inputs (missing input, wrong dtype or shape, id out of range)."""


class DType(enum.IntEnum):
    """Element types; the values are the codes in the weight image."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    FLOAT32 = 4

    @property
    def numpy(self) -> np.dtype[np.generic]:
        return np.dtype(_NUMPY_DTYPES[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


_NUMPY_DTYPES = {DType.INT8: np.int8, DType.INT16: np.int16, DType.INT32: np.int32, DType.FLOAT32: np.float32}


class Op(enum.IntEnum):
    """Layer types; the values are the codes in the weight image (never renumber)."""

    LINEAR = 1  # x[..., K], weight[N, K], bias[N]? -> y[..., N]
    CONV1D = 2  # x[B, Cin, L], weight[Cout, Cin/group, K], bias[Cout]? -> y[B, Cout, Lout]
    LSTM = 3  # ONNX LSTM: x[T, B, I], W[D, 4H, I], R[D, 4H, H], B[D, 8H]?, h0?, c0? -> y, h_n, c_n
    GRU = 4  # ONNX GRU (linear_before_reset=1): x, W[D, 3H, I], R[D, 3H, H], B[D, 6H]?, h0? -> y, h_n
    EMBEDDING = 5  # table[V, D], ids[...] -> y[..., D]
    ADD = 6
    MUL = 7
    RELU = 8
    TANH = 9
    SIGMOID = 10
    RESHAPE = 11  # attr shape (ONNX semantics: 0 copies a dim, -1 is inferred)
    TRANSPOSE = 12  # attr perm
    SQUEEZE = 13  # attr axes
    UNSQUEEZE = 14  # attr axes
    REDUCE_MEAN = 15  # attrs axes, keepdims (pooling over words or frames)
    REDUCE_MAX = 16  # attrs axes, keepdims
    CONCAT = 17  # inputs 1..255, attr axis
    CONV2D = 18  # x[B, Cin, H, W], weight[Cout, Cin/group, kH, kW], bias? -> y[B, Cout, H', W']
    SLICE = 19  # attrs starts, ends, axes, steps (ONNX semantics, constants)
    GATHER = 20  # attrs axis, indices, scalar (1: one index, the axis is dropped)
    LAYER_NORM = 21  # x[..., N], scale[N], bias[N]? -> y[..., N] over the last axis; attr epsilon


class Direction(enum.IntEnum):
    FORWARD = 0
    REVERSE = 1
    BIDIRECTIONAL = 2

    @property
    def count(self) -> int:
        return 2 if self is Direction.BIDIRECTIONAL else 1


@dataclass(frozen=True)
class OpSpec:
    """Arity and attributes of one op. ``quant_attrs`` exist only in a quantized network."""

    min_inputs: int
    max_inputs: int
    outputs: int
    attrs: tuple[str, ...] = ()
    quant_attrs: tuple[str, ...] = ()
    mac: bool = False  # runs on the MAC array (matrix products), not the vector unit


OP_SPECS: Mapping[Op, OpSpec] = MappingProxyType(
    {
        Op.LINEAR: OpSpec(3, 3, 1, mac=True),
        Op.CONV1D: OpSpec(3, 3, 1, attrs=("stride", "dilation", "pads", "group"), mac=True),
        Op.LSTM: OpSpec(
            6,
            6,
            3,
            attrs=("hidden_size", "direction"),
            quant_attrs=("gate_scales", "cell_exponent"),
            mac=True,
        ),
        Op.GRU: OpSpec(5, 5, 2, attrs=("hidden_size", "direction"), quant_attrs=("gate_scales",), mac=True),
        Op.EMBEDDING: OpSpec(2, 2, 1),
        Op.ADD: OpSpec(2, 2, 1),
        Op.MUL: OpSpec(2, 2, 1),
        Op.RELU: OpSpec(1, 1, 1),
        Op.TANH: OpSpec(1, 1, 1),
        Op.SIGMOID: OpSpec(1, 1, 1),
        Op.RESHAPE: OpSpec(1, 1, 1, attrs=("shape",)),
        Op.TRANSPOSE: OpSpec(1, 1, 1, attrs=("perm",)),
        Op.SQUEEZE: OpSpec(1, 1, 1, attrs=("axes",)),
        Op.UNSQUEEZE: OpSpec(1, 1, 1, attrs=("axes",)),
        Op.REDUCE_MEAN: OpSpec(1, 1, 1, attrs=("axes", "keepdims")),
        Op.REDUCE_MAX: OpSpec(1, 1, 1, attrs=("axes", "keepdims")),
        Op.CONCAT: OpSpec(1, 255, 1, attrs=("axis",)),
        Op.CONV2D: OpSpec(3, 3, 1, attrs=("strides", "dilations", "pads", "group"), mac=True),
        Op.SLICE: OpSpec(1, 1, 1, attrs=("starts", "ends", "axes", "steps")),
        Op.GATHER: OpSpec(1, 1, 1, attrs=("axis", "indices", "scalar")),
        Op.LAYER_NORM: OpSpec(3, 3, 1, attrs=("epsilon",)),
    }
)

# Gates per direction in the packed W/R/B tensors (ONNX order: LSTM i,o,f,c; GRU z,r,h).
GATES = {Op.LSTM: 4, Op.GRU: 3}


@dataclass(frozen=True, eq=False)
class Quant:
    """Symmetric quantization parameters: ``real = scale * (q - zero_point)``.

    Per tensor: one scale. Per channel: one scale per index of the leading dims up to and including
    ``axis`` (so ``W[D, 4H, I]`` with ``axis=1`` has ``D*4H`` scales, one per output row of each
    direction). Zero points are stored for completeness and must be 0: the MAC array skips a
    product when the raw operand is 0, which is only a real zero when the quantization is symmetric.
    """

    scale: NDArray[np.float32]
    zero_point: NDArray[np.int32]
    axis: int = -1  # -1: per tensor

    @classmethod
    def per_tensor(cls, scale: float) -> Quant:
        return cls(np.array([scale], np.float32), np.zeros(1, np.int32), -1)

    @classmethod
    def per_channel(cls, scales: NDArray[np.floating], axis: int) -> Quant:
        flat = np.asarray(scales, np.float32).reshape(-1)
        return cls(flat, np.zeros(flat.size, np.int32), axis)

    @property
    def per_tensor_scale(self) -> float:
        if self.scale.size != 1:
            raise NetworkError("expected a per-tensor scale, got per-channel scales")
        return float(self.scale[0])

    def scales_for(self, lead_shape: tuple[int, ...]) -> NDArray[np.float64]:
        """The scale of every output row, shaped ``lead_shape`` (float64 so derived factors are exact).

        ``lead_shape`` is the tensor's shape up to the channel axis: ``(N,)`` for a Linear weight
        ``[N, K]``, ``(D, 4H)`` for LSTM weights ``[D, 4H, I]``.
        """
        scale = self.scale.astype(np.float64)
        if self.axis < 0:
            return np.full(lead_shape, scale[0])
        if len(lead_shape) != self.axis + 1 or scale.size != math.prod(lead_shape):
            raise NetworkError(f"per-channel scales (axis {self.axis}) do not fit rows {lead_shape}")
        return scale.reshape(lead_shape)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Quant)
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def __hash__(self) -> int:
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))


@dataclass(frozen=True, eq=False)
class Tensor:
    """A graph value: a constant (``data`` set) or an activation (``data`` is None)."""

    name: str
    shape: tuple[int, ...]
    dtype: DType
    data: NDArray[np.generic] | None = None
    quant: Quant | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def numel(self) -> int:
        if any(d < 0 for d in self.shape):
            raise NetworkError(f"tensor {self.name!r} has a dynamic shape {self.shape}")
        return math.prod(self.shape)

    @property
    def scale(self) -> float:
        """The per-tensor scale of a quantized activation."""
        if self.quant is None:
            raise NetworkError(f"tensor {self.name!r} is not quantized")
        return self.quant.per_tensor_scale

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return False
        same_data = (self.data is None and other.data is None) or (
            self.data is not None
            and other.data is not None
            and self.data.dtype == other.data.dtype
            and np.array_equal(self.data, other.data)
        )
        return (
            self.name == other.name
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.quant == other.quant
            and same_data
        )

    def __hash__(self) -> int:
        return hash((self.name, self.shape, self.dtype))


@dataclass(frozen=True)
class Layer:
    op: Op
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)

    def attr_int(self, name: str) -> int:
        value = self.attrs[name]
        if not isinstance(value, int):
            raise NetworkError(f"{self.op.name} attribute {name!r} must be an int, got {value!r}")
        return value

    def attr_float(self, name: str) -> float:
        value = self.attrs[name]
        if not isinstance(value, (int, float)):
            raise NetworkError(f"{self.op.name} attribute {name!r} must be a number, got {value!r}")
        return float(value)

    def attr_ints(self, name: str) -> tuple[int, ...]:
        value = self.attrs[name]
        if not isinstance(value, tuple) or not all(isinstance(v, int) for v in value):
            raise NetworkError(f"{self.op.name} attribute {name!r} must be a tuple of ints, got {value!r}")
        return tuple(int(v) for v in value)

    def attr_floats(self, name: str) -> tuple[float, ...]:
        value = self.attrs[name]
        if not isinstance(value, tuple):
            raise NetworkError(f"{self.op.name} attribute {name!r} must be a tuple of floats, got {value!r}")
        return tuple(float(v) for v in value)

    @property
    def direction(self) -> Direction:
        return Direction(self.attr_int("direction"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Layer)
            and self.op == other.op
            and self.inputs == other.inputs
            and self.outputs == other.outputs
            and dict(self.attrs) == dict(other.attrs)
        )

    def __hash__(self) -> int:
        return hash((self.op, self.inputs, self.outputs))


@dataclass(frozen=True)
class Network:
    tensors: tuple[Tensor, ...]
    layers: tuple[Layer, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str = "network"

    @property
    def is_quantized(self) -> bool:
        return not any(t.dtype == DType.FLOAT32 for t in self.tensors)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def input_names(self) -> list[str]:
        return [self.tensors[i].name for i in self.inputs]

    def output_names(self) -> list[str]:
        return [self.tensors[i].name for i in self.outputs]

    def index_of(self, name: str) -> int:
        for index, tensor in enumerate(self.tensors):
            if tensor.name == name:
                return index
        raise NetworkError(f"no tensor named {name!r}")

    def constants(self) -> list[int]:
        return [i for i, t in enumerate(self.tensors) if t.is_constant]

    def with_tensors(self, tensors: tuple[Tensor, ...]) -> Network:
        return replace(self, tensors=tensors)

    def validate(self) -> None:
        """Raise ``NetworkError`` unless every id, arity, attribute and dtype is consistent."""
        count = len(self.tensors)
        quantized = self.is_quantized
        produced: set[int] = set(self.inputs)
        for index in (*self.inputs, *self.outputs):
            if not 0 <= index < count:
                raise NetworkError(f"graph input/output id {index} out of range (0..{count - 1})")
        for index in self.inputs:
            if self.tensors[index].is_constant:
                raise NetworkError(f"graph input {self.tensors[index].name!r} is a constant")
        for index, tensor in enumerate(self.tensors):
            if tensor.is_constant:
                produced.add(index)
                _check_constant(tensor)
            if quantized and tensor.quant is not None and np.any(tensor.quant.zero_point != 0):
                raise NetworkError(f"tensor {tensor.name!r}: non-zero zero point (v1 is symmetric only)")
        for position, layer in enumerate(self.layers):
            spec = OP_SPECS[layer.op]
            where = f"layer {position} ({layer.op.name})"
            if (
                not spec.min_inputs <= len(layer.inputs) <= spec.max_inputs
                or len(layer.outputs) != spec.outputs
            ):
                raise NetworkError(
                    f"{where}: expected {spec.min_inputs}..{spec.max_inputs} inputs and {spec.outputs} "
                    f"outputs, got {len(layer.inputs)} and {len(layer.outputs)}"
                )
            for index in (*layer.inputs, *layer.outputs):
                if not -1 <= index < count:
                    raise NetworkError(f"{where}: tensor id {index} out of range")
            if layer.inputs[0] < 0:
                raise NetworkError(f"{where}: the first input is required")
            for index in layer.inputs:
                if index >= 0 and index not in produced:
                    raise NetworkError(
                        f"{where}: input {self.tensors[index].name!r} is used before it exists"
                    )
            for index in layer.outputs:
                if index < 0:
                    continue
                if index in produced:
                    raise NetworkError(f"{where}: output {self.tensors[index].name!r} is written twice")
                produced.add(index)
            required = spec.attrs + (spec.quant_attrs if quantized else ())
            missing = [name for name in required if name not in layer.attrs]
            if missing:
                raise NetworkError(f"{where}: missing attributes {missing}")
            _check_layer(self, layer, where, quantized)
        for index in self.outputs:
            if index not in produced:
                raise NetworkError(f"graph output {self.tensors[index].name!r} is never produced")


def _check_constant(tensor: Tensor) -> None:
    assert tensor.data is not None
    if tuple(tensor.data.shape) != tensor.shape:
        raise NetworkError(f"constant {tensor.name!r}: data shape {tensor.data.shape} != {tensor.shape}")
    if tensor.data.dtype != tensor.dtype.numpy:
        raise NetworkError(f"constant {tensor.name!r}: data dtype {tensor.data.dtype} != {tensor.dtype.name}")
    if tensor.quant is not None and tensor.quant.axis >= 0:
        expected = math.prod(tensor.shape[: tensor.quant.axis + 1])
        if tensor.quant.scale.size != expected:
            raise NetworkError(
                f"constant {tensor.name!r}: {tensor.quant.scale.size} scales for axis {tensor.quant.axis}, "
                f"expected {expected}"
            )


def _check_layer(network: Network, layer: Layer, where: str, quantized: bool) -> None:
    """Op-specific checks: constant weights, dtypes the int8 datapath expects."""
    tensors = network.tensors

    def need_constant(slot: int) -> Tensor:
        index = layer.inputs[slot]
        if index < 0 or not tensors[index].is_constant:
            raise NetworkError(f"{where}: input {slot} must be a constant")
        return tensors[index]

    def need_dtype(index: int, *dtypes: DType) -> None:
        if index >= 0 and tensors[index].dtype not in dtypes:
            names = "/".join(d.name for d in dtypes)
            raise NetworkError(f"{where}: tensor {tensors[index].name!r} must be {names}")

    int8 = DType.INT8 if quantized else DType.FLOAT32
    if layer.op in (Op.LINEAR, Op.CONV1D, Op.CONV2D):
        weight = need_constant(1)
        if layer.op is Op.CONV1D and len(weight.shape) != 3:
            raise NetworkError(f"{where}: Conv1d weight must be [Cout, Cin/group, K]")
        if layer.op is Op.CONV2D and len(weight.shape) != 4:
            raise NetworkError(f"{where}: Conv2d weight must be [Cout, Cin/group, kH, kW]")
        if layer.op in (Op.CONV1D, Op.CONV2D) and weight.shape[0] % layer.attr_int("group"):
            raise NetworkError(f"{where}: {weight.shape[0]} output channels do not split into groups")
        if layer.op is Op.LINEAR and len(weight.shape) != 2:
            raise NetworkError(f"{where}: Linear weight must be [N, K]")
        if layer.inputs[2] >= 0:
            need_constant(2)
            need_dtype(layer.inputs[2], DType.INT32 if quantized else DType.FLOAT32)
        need_dtype(layer.inputs[0], int8)
        need_dtype(layer.inputs[1], int8)
    elif layer.op in GATES:
        gates = GATES[layer.op]
        hidden = layer.attr_int("hidden_size")
        directions = layer.direction.count
        w, r = need_constant(1), need_constant(2)
        if w.shape[:2] != (directions, gates * hidden) or r.shape != (directions, gates * hidden, hidden):
            raise NetworkError(f"{where}: W/R shapes {w.shape}/{r.shape} do not match hidden_size={hidden}")
        if layer.inputs[3] >= 0 and need_constant(3).shape != (directions, 2 * gates * hidden):
            raise NetworkError(f"{where}: bias must be [{directions}, {2 * gates * hidden}]")
        for slot in (0, 1, 2):
            need_dtype(layer.inputs[slot], int8)
        need_dtype(layer.inputs[3], DType.INT32 if quantized else DType.FLOAT32)
        need_dtype(layer.inputs[4], int8)
        if layer.op is Op.LSTM:
            need_dtype(layer.inputs[5], DType.INT16 if quantized else DType.FLOAT32)
        if quantized and len(layer.attr_floats("gate_scales")) != directions * gates:
            raise NetworkError(f"{where}: gate_scales needs {directions * gates} values")
    elif layer.op is Op.EMBEDDING:
        if len(need_constant(0).shape) != 2:
            raise NetworkError(f"{where}: the embedding table must be [V, D]")
        need_dtype(layer.inputs[0], int8)
        need_dtype(layer.inputs[1], DType.INT32)
    elif layer.op is Op.LAYER_NORM:
        scale = need_constant(1)
        if len(scale.shape) != 1:
            raise NetworkError(f"{where}: the LayerNorm scale must be [N]")
        if layer.inputs[2] >= 0 and need_constant(2).shape != scale.shape:
            raise NetworkError(f"{where}: the LayerNorm bias must have the scale's shape {scale.shape}")
        if not layer.attr_float("epsilon") >= 0.0:
            raise NetworkError(f"{where}: epsilon must be >= 0")
        need_dtype(layer.inputs[0], int8)
        need_dtype(layer.inputs[1], DType.INT16 if quantized else DType.FLOAT32)
        need_dtype(layer.inputs[2], DType.INT32 if quantized else DType.FLOAT32)
    elif quantized and layer.op not in MOVE_OPS:
        for index in layer.inputs:
            need_dtype(index, DType.INT8)
    if quantized:
        for index in layer.outputs:
            if index >= 0 and tensors[index].dtype != DType.INT32 and tensors[index].quant is None:
                raise NetworkError(f"{where}: output {tensors[index].name!r} has no quantization parameters")


def reshape_target(in_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """ONNX ``Reshape`` target: ``0`` copies the input dim at that position, one ``-1`` is inferred."""
    target = [in_shape[i] if d == 0 else d for i, d in enumerate(shape)]
    if target.count(-1) > 1:
        raise ExecutionError(f"reshape {shape}: more than one -1")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        total = math.prod(in_shape)
        if known == 0 or total % known:
            raise ExecutionError(f"cannot reshape {in_shape} to {shape}")
        target[target.index(-1)] = total // known
    if math.prod(target) != math.prod(in_shape):
        raise ExecutionError(f"cannot reshape {in_shape} to {shape}")
    return tuple(target)


def check_input(tensor: Tensor, inputs: Mapping[str, Array]) -> Array:
    """The value given for graph input ``tensor``, checked against its dtype and static dims."""
    if tensor.name not in inputs:
        raise ExecutionError(f"missing input {tensor.name!r} (given: {sorted(inputs)})")
    value = np.asarray(inputs[tensor.name])
    if value.dtype != tensor.dtype.numpy:
        raise ExecutionError(f"input {tensor.name!r} must be {tensor.dtype.name}, got {value.dtype}")
    if value.ndim != len(tensor.shape) or any(
        d >= 0 and d != got for d, got in zip(tensor.shape, value.shape, strict=True)
    ):
        raise ExecutionError(f"input {tensor.name!r} must have shape {tensor.shape}, got {value.shape}")
    return value


def check_layer_norm_input(x: Array, scale: Array) -> int:
    """The normalised length ``N``: the last axis of ``x`` must match the ``[N]`` scale."""
    if x.ndim == 0 or x.shape[-1] != scale.shape[0]:
        raise ExecutionError(f"LayerNorm input {x.shape} does not end in the scale's {scale.shape[0]} values")
    return int(x.shape[-1])


def check_ids(ids: Array, vocabulary: int) -> None:
    if ids.size and (int(np.min(ids)) < 0 or int(np.max(ids)) >= vocabulary):
        raise ExecutionError(
            f"embedding id out of range 0..{vocabulary - 1}: {int(np.min(ids))}..{int(np.max(ids))}"
        )


CONV_OPS = (Op.CONV1D, Op.CONV2D)
MOVE_OPS = (Op.RESHAPE, Op.TRANSPOSE, Op.SQUEEZE, Op.UNSQUEEZE, Op.SLICE, Op.GATHER)  # move values only


@dataclass(frozen=True)
class ConvGeometry:
    """Strides, dilations and pads of a convolution, one entry per spatial dim."""

    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    group: int

    @classmethod
    def of(cls, layer: Layer) -> ConvGeometry:
        pads = layer.attr_ints("pads")
        if layer.op is Op.CONV1D:
            return cls(
                (layer.attr_int("stride"),),
                (layer.attr_int("dilation"),),
                pads[:1],
                pads[1:2],
                layer.attr_int("group"),
            )
        return cls(
            layer.attr_ints("strides"),
            layer.attr_ints("dilations"),
            pads[:2],
            pads[2:4],
            layer.attr_int("group"),
        )

    def output_shape(self, spatial: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[int, ...]:
        out = []
        for size, k, stride, dilation, begin, end in zip(
            spatial, kernel, self.strides, self.dilations, self.pads_begin, self.pads_end, strict=True
        ):
            span = dilation * (k - 1) + 1
            length = (size + begin + end - span) // stride + 1
            if length < 1:
                raise ExecutionError(f"convolution input {spatial} is smaller than the kernel span {span}")
            out.append(length)
        return tuple(out)


def conv_patches(x: Array, layer: Layer, kernel: tuple[int, ...], g: int) -> Array:
    """im2col for group ``g``: ``[B, positions, Cin/group * prod(kernel)]`` (channel, then taps).

    ``x`` is ``[B, Cin, L]`` (Conv1d) or ``[B, Cin, H, W]`` (Conv2d); padding is zeros.
    """
    geometry = ConvGeometry.of(layer)
    batch, channels = x.shape[:2]
    spatial = tuple(x.shape[2:])
    if len(spatial) != len(kernel):
        raise ExecutionError(f"{layer.op.name} input {x.shape} does not match a {len(kernel)}-D kernel")
    out = geometry.output_shape(spatial, kernel)
    per_group = channels // geometry.group
    part = x[:, g * per_group : (g + 1) * per_group]
    padded = np.pad(part, ((0, 0), (0, 0), *zip(geometry.pads_begin, geometry.pads_end, strict=True)))
    taps = [
        np.arange(n)[:, None] * stride + np.arange(k)[None, :] * dilation
        for n, k, stride, dilation in zip(out, kernel, geometry.strides, geometry.dilations, strict=True)
    ]
    if len(kernel) == 1:
        patches = padded[:, :, taps[0]]  # [B, C, L', K]
        patches = patches.transpose(0, 2, 1, 3)
    else:
        rows, cols = taps
        patches = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # [B, C, H', W', kH, kW]
        patches = patches.transpose(0, 2, 3, 1, 4, 5)
    return patches.reshape(batch, int(np.prod(out)), per_group * int(np.prod(kernel)))


def time_steps(layer: Layer, direction: int, steps: int) -> range:
    """Time order of direction ``direction`` (0 or 1) of a recurrent layer."""
    reverse = layer.direction is Direction.REVERSE or (
        layer.direction is Direction.BIDIRECTIONAL and direction == 1
    )
    return range(steps - 1, -1, -1) if reverse else range(steps)


def reduced_axes(layer: Layer, rank: int) -> tuple[int, ...]:
    """The axes a Reduce layer folds, made non-negative."""
    return tuple(sorted({a % rank for a in layer.attr_ints("axes")}))


def apply_shape_op(layer: Layer, x: Array) -> Array:
    """The ``MOVE_OPS``: they move values and compute nothing (shared by every mode)."""
    if layer.op is Op.SLICE:
        index = [slice(None)] * x.ndim
        for start, end, axis, step in zip(
            layer.attr_ints("starts"),
            layer.attr_ints("ends"),
            layer.attr_ints("axes"),
            layer.attr_ints("steps"),
            strict=True,
        ):
            index[axis % x.ndim] = slice(start, end, step)
        return np.ascontiguousarray(x[tuple(index)])
    if layer.op is Op.GATHER:
        axis = layer.attr_int("axis") % x.ndim
        indices = np.array(layer.attr_ints("indices"), np.int64)
        if np.any((indices < -x.shape[axis]) | (indices >= x.shape[axis])):
            raise ExecutionError(f"Gather index {indices.tolist()} out of range for axis of {x.shape[axis]}")
        taken = np.take(x, indices[0] if layer.attr_int("scalar") else indices, axis=axis)
        return np.ascontiguousarray(taken)
    if layer.op is Op.RESHAPE:
        return x.reshape(reshape_target(x.shape, layer.attr_ints("shape")))
    if layer.op is Op.TRANSPOSE:
        return np.ascontiguousarray(x.transpose(layer.attr_ints("perm")))
    axes = layer.attr_ints("axes")
    rank = x.ndim + (len(axes) if layer.op is Op.UNSQUEEZE else 0)
    axes = tuple(a % rank for a in axes)
    if layer.op is Op.SQUEEZE:
        if any(x.shape[a] != 1 for a in axes):
            raise ExecutionError(f"cannot squeeze axes {axes} of shape {x.shape}")
        return x.squeeze(axes)
    return np.expand_dims(x, axes)
