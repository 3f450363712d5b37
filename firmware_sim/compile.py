"""Compile an ONNX (or PyTorch) model into a weight image: import, calibrate, quantize, write.

``import_onnx`` turns an ONNX float graph into the float ``Network``: MatMul/Gemm (+ a following
bias Add) become Linear, Conv with 1-D kernels Conv1d, Gather on a constant table Embedding, LSTM,
GRU and LayerNormalization (last axis) map one to one (ONNX layouts and gate orders are the IR's),
and the glue ``torch.onnx.export`` emits around them (Shape/Gather/Concat/Expand chains building
zero initial states, Squeeze, Transpose, Reshape with a constant shape, Identity, Dropout) is
folded away or kept as shape ops.
Anything else is a ``CompileError`` naming the node.

``compile_model`` then calibrates on sample inputs, quantizes (``quantize.py``) and checks the
result: the float IR against onnxruntime (the importer is right) and the int8 network against the
float IR (quantization is sane); both figures are in the returned ``CompileReport``.

onnx/onnxruntime (and torch for ``.pt`` files) are build-time tools: imported here, never by the
executor or the service.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware_sim import reference
from firmware_sim.network import GATES, Direction, DType, Layer, Network, Op, Tensor
from firmware_sim.quantize import (
    QuantizeOptions,
    calibrate,
    dequantize_outputs,
    quantize,
    quantize_inputs,
)

Array = NDArray[Any]
Sample = dict[str, Array]
PRUNABLE_OPS = (Op.LINEAR, Op.CONV1D, Op.CONV2D, Op.LSTM, Op.GRU)


class CompileError(ValueError):
    """The model uses something the edge processor cannot run, or the inputs to compile are unusable."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - the train extra is installed in development
        raise CompileError("compiling needs the onnx package (pip install -e '.[train]')") from error
    return onnx


# --------------------------------------------------------------------------------------- ONNX import


class _Dynamic:
    """A shape-derived value that is only known at run time (e.g. ``Shape`` of a dynamic input)."""


class _ZeroFill:
    """An all-zero tensor whose shape is only known at run time (``Expand(0, Shape(...))``)."""


_DYNAMIC = _Dynamic()
_ZERO_FILL = _ZeroFill()
_FOLDABLE = {
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Gather",
    "Cast",
    "Reshape",
    "Transpose",
    "Slice",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Identity",
    "Range",
    "Equal",
    "Where",
    "ConstantOfShape",
    "Expand",
    "Shape",
}


def _attributes(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _shape_of(value_type: Any) -> tuple[int, ...] | None:
    tensor_type = value_type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor_type.shape.dim
    )


class _Importer:
    def __init__(self, model: Any) -> None:
        onnx = _onnx()
        with contextlib.suppress(Exception):
            model = onnx.shape_inference.infer_shapes(model)
        self.graph = model.graph
        self.numpy_helper = onnx.numpy_helper
        self.consts: dict[str, Any] = {i.name: onnx.numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for info in (*self.graph.value_info, *self.graph.input, *self.graph.output):
            shape = _shape_of(info.type)
            if shape is not None:
                self.shapes[info.name] = shape
        self.alias: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        self.constant_ids: dict[str, int] = {}
        self.tensors: list[Tensor] = []
        self.layers: list[Layer] = []
        self.producer: dict[int, int] = {}  # tensor id -> index of the layer writing it
        self.consumers: dict[str, int] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
        for output in self.graph.output:
            self.consumers[output.name] = self.consumers.get(output.name, 0) + 1

    # -------------------------------------------------------------- tensors

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def value(self, name: str) -> Any:
        """A constant's array, ``_DYNAMIC``/``_ZERO_FILL``, or None for an activation."""
        return self.consts.get(self.resolve(name))

    def activation(self, name: str) -> int:
        name = self.resolve(name)
        if name not in self.ids:
            raise CompileError(f"tensor {name!r} is used before any supported node produces it")
        return self.ids[name]

    def new_activation(self, name: str, dtype: DType = DType.FLOAT32) -> int:
        if not name:
            return -1
        self.tensors.append(Tensor(name, self.shapes.get(name, ()), dtype))
        self.ids[name] = len(self.tensors) - 1
        return self.ids[name]

    def constant(self, name: str, data: Array) -> int:
        """A float constant tensor; the same name and data used twice (tied weights) is one tensor."""
        array = np.ascontiguousarray(np.asarray(data, np.float32))
        tensor = Tensor(name, tuple(array.shape), DType.FLOAT32, array)
        if name in self.constant_ids and self.tensors[self.constant_ids[name]] == tensor:
            return self.constant_ids[name]
        self.tensors.append(tensor)
        self.constant_ids[name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def emit(self, op: Op, inputs: Sequence[int], outputs: Sequence[int], **attrs: Any) -> Layer:
        layer = Layer(op, tuple(inputs), tuple(outputs), attrs)
        self.layers.append(layer)
        for index in outputs:
            if index >= 0:
                self.producer[index] = len(self.layers) - 1
        return layer

    # -------------------------------------------------------------- nodes

    def run(self, name: str) -> Network:
        inputs = []
        for graph_input in self.graph.input:
            if graph_input.name in self.consts:
                continue  # old exporters list initializers as inputs too
            elem = graph_input.type.tensor_type.elem_type
            dtype = DType.FLOAT32 if elem == 1 else DType.INT32 if elem in (6, 7) else None
            if dtype is None:
                raise CompileError(
                    f"graph input {graph_input.name!r}: element type {elem} is not float or integer"
                )
            inputs.append(self.new_activation(graph_input.name, dtype))
        for node in self.graph.node:
            self.node(node)
        outputs = []
        for graph_output in self.graph.output:
            resolved = self.resolve(graph_output.name)
            if resolved not in self.ids:
                raise CompileError(f"graph output {graph_output.name!r} is a constant or not computed")
            index = self.ids[resolved]
            if self.tensors[index].name != graph_output.name and graph_output.name not in self.ids:
                tensor = self.tensors[index]  # keep the graph's output name on the tensor
                self.tensors[index] = Tensor(graph_output.name, tensor.shape, tensor.dtype)
                self.ids[graph_output.name] = index
            outputs.append(index)
        network = Network(tuple(self.tensors), tuple(self.layers), tuple(inputs), tuple(outputs), name)
        return _drop_unused(network)

    def node(self, node: Any) -> None:
        op_type = node.op_type
        where = f"{op_type} node {node.name or node.output[0]!r}"
        attrs = _attributes(node)
        ins = list(node.input)
        if op_type == "Constant":
            self.consts[node.output[0]] = self._constant_value(attrs, where)
            return
        if op_type in ("Identity", "Dropout"):
            self.alias[node.output[0]] = self.resolve(ins[0])
            return
        values = [self.value(i) if i else None for i in ins]
        is_const = [v is not None for v in values]
        if op_type == "Shape":
            shape = self.shapes.get(self.resolve(ins[0]))
            data = self.value(ins[0])
            if isinstance(data, np.ndarray):
                shape = data.shape
            known = shape is not None and all(d >= 0 for d in shape)
            self.consts[node.output[0]] = np.array(shape, np.int64) if known else _DYNAMIC
            return
        if op_type in _FOLDABLE and ins and all(is_const[i] for i, name in enumerate(ins) if name):
            self.consts[node.output[0]] = self._fold(op_type, values, attrs, where)
            return
        handler = getattr(self, f"_op_{op_type}", None)
        if handler is None:
            raise CompileError(f"{where}: ONNX op {op_type} is not supported by the edge processor")
        handler(node, attrs, where)

    def _constant_value(self, attrs: dict[str, Any], where: str) -> Any:
        if "value" in attrs:
            return self.numpy_helper.to_array(attrs["value"])
        for key, dtype in (
            ("value_float", np.float32),
            ("value_floats", np.float32),
            ("value_int", np.int64),
            ("value_ints", np.int64),
        ):
            if key in attrs:
                return np.array(attrs[key], dtype)
        raise CompileError(f"{where}: unsupported Constant attributes {sorted(attrs)}")

    def _fold(self, op_type: str, values: list[Any], attrs: dict[str, Any], where: str) -> Any:
        """Evaluate a node on constants (the exporter's shape arithmetic)."""
        zeros_of_dynamic_shape = (
            op_type == "Expand" and isinstance(values[0], np.ndarray) and not np.any(values[0])
        ) or (op_type == "ConstantOfShape" and not np.any(_constant_of_shape_fill(attrs)))
        if zeros_of_dynamic_shape and isinstance(values[-1], _Dynamic):
            return _ZERO_FILL
        if any(isinstance(v, _Dynamic) for v in values):
            return _DYNAMIC
        if any(isinstance(v, _ZeroFill) for v in values):
            raise CompileError(f"{where}: computes on a run-time-shaped zero tensor")
        try:
            return _fold_numpy(op_type, values, attrs)
        except CompileError:
            raise
        except Exception as error:
            raise CompileError(f"{where}: cannot evaluate on constants ({error})") from error

    def _static(self, name: str, where: str) -> Array:
        value = self.value(name)
        if not isinstance(value, np.ndarray):
            raise CompileError(f"{where}: input {name!r} must be a constant known at compile time")
        return value

    # -------------------------------------------------------------- MAC layers

    def _op_MatMul(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        weight = self.value(node.input[1])
        if not isinstance(weight, np.ndarray) or weight.ndim != 2:
            raise CompileError(f"{where}: only activation × constant 2-D matrix products are supported")
        w = self.constant(f"{node.input[1]}.T", weight.T)
        self.emit(Op.LINEAR, (self.activation(node.input[0]), w, -1), (self.new_activation(node.output[0]),))

    def _op_Gemm(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            raise CompileError(f"{where}: only Gemm with alpha=beta=1 and transA=0 is supported")
        weight = self._static(node.input[1], where)
        w = self.constant(node.input[1], weight if attrs.get("transB", 0) else weight.T)
        bias = -1
        if len(node.input) > 2 and node.input[2]:
            b = self._static(node.input[2], where)
            bias = self.constant(
                node.input[2], np.broadcast_to(b, (weight.shape[0 if attrs.get("transB", 0) else 1],))
            )
        self.emit(
            Op.LINEAR, (self.activation(node.input[0]), w, bias), (self.new_activation(node.output[0]),)
        )

    def _op_Conv(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        weight = self._static(node.input[1], where)
        spatial = weight.ndim - 2
        if spatial not in (1, 2):
            raise CompileError(f"{where}: only 1-D and 2-D convolutions are supported")
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise CompileError(f"{where}: auto_pad is not supported; export with explicit pads")
        pads = tuple(int(p) for p in attrs.get("pads", (0,) * (2 * spatial)))
        strides = tuple(int(v) for v in attrs.get("strides", (1,) * spatial))
        dilations = tuple(int(v) for v in attrs.get("dilations", (1,) * spatial))
        bias = -1
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node.input[2], self._static(node.input[2], where))
        ins = (self.activation(node.input[0]), self.constant(node.input[1], weight), bias)
        outs = (self.new_activation(node.output[0]),)
        group = int(attrs.get("group", 1))
        if spatial == 1:
            self.emit(Op.CONV1D, ins, outs, stride=strides[0], dilation=dilations[0], pads=pads, group=group)
        else:
            self.emit(Op.CONV2D, ins, outs, strides=strides, dilations=dilations, pads=pads, group=group)

    def _recurrent(self, node: Any, attrs: dict[str, Any], where: str, op: Op) -> None:
        if attrs.get("layout", 0) or attrs.get("clip") is not None or attrs.get("input_forget", 0):
            raise CompileError(f"{where}: layout/clip/input_forget are not supported")
        if op is Op.GRU and attrs.get("linear_before_reset", 0) != 1:
            raise CompileError(f"{where}: only GRU with linear_before_reset=1 (PyTorch's form) is supported")
        activations = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
        default = ["Sigmoid", "Tanh", "Tanh"] if op is Op.LSTM else ["Sigmoid", "Tanh"]
        if activations and [a.lower() for a in activations] != [
            a.lower() for a in default * (len(activations) // len(default))
        ]:
            raise CompileError(f"{where}: only the default gate activations are supported, got {activations}")
        direction_name = attrs.get("direction", b"forward")
        direction_name = direction_name.decode() if isinstance(direction_name, bytes) else direction_name
        direction = {
            "forward": Direction.FORWARD,
            "reverse": Direction.REVERSE,
            "bidirectional": Direction.BIDIRECTIONAL,
        }[direction_name]
        ins = list(node.input) + [""] * 8
        if ins[4]:
            raise CompileError(f"{where}: sequence_lens is not supported (run one sequence at a time)")
        if op is Op.LSTM and ins[7]:
            raise CompileError(f"{where}: peephole connections (input P) are not supported")
        w = self.constant(ins[1], self._static(ins[1], where))
        r = self.constant(ins[2], self._static(ins[2], where))
        b = self.constant(ins[3], self._static(ins[3], where)) if ins[3] else -1
        states = [self._state(ins[5], where)] + ([self._state(ins[6], where)] if op is Op.LSTM else [])
        outs = [self.new_activation(name) for name in list(node.output) + [""] * (3 - len(node.output))]
        outs = outs[: 3 if op is Op.LSTM else 2]
        self.emit(
            op,
            (self.activation(ins[0]), w, r, b, *states),
            outs,
            hidden_size=int(attrs["hidden_size"]),
            direction=int(direction),
        )

    def _state(self, name: str, where: str) -> int:
        """An initial state: absent when it is (or expands) zeros, else it must be a graph input."""
        if not name:
            return -1
        value = self.value(name)
        if isinstance(value, _ZeroFill) or (isinstance(value, np.ndarray) and not np.any(value)):
            return -1
        if value is not None:
            raise CompileError(f"{where}: a non-zero constant initial state is not supported")
        return self.activation(name)

    def _op_LSTM(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._recurrent(node, attrs, where, Op.LSTM)

    def _op_GRU(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._recurrent(node, attrs, where, Op.GRU)

    def _op_Gather(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        data, indices = self.value(node.input[0]), self.value(node.input[1])
        axis = int(attrs.get("axis", 0))
        if isinstance(data, np.ndarray) and indices is None:
            if data.ndim != 2 or axis != 0:
                raise CompileError(f"{where}: a constant table must be [V, D] gathered along axis 0")
            table_id = self.constant(node.input[0], data)
            self.emit(
                Op.EMBEDDING,
                (table_id, self.activation(node.input[1])),
                (self.new_activation(node.output[0]),),
            )
            return
        if data is None and isinstance(indices, np.ndarray) and indices.ndim <= 1:
            self.emit(
                Op.GATHER,
                (self.activation(node.input[0]),),
                (self.new_activation(node.output[0]),),
                axis=axis,
                indices=tuple(int(i) for i in indices.reshape(-1)),
                scalar=int(indices.ndim == 0),
            )
            return
        raise CompileError(f"{where}: only embeddings (constant table, id input) and constant-index Gather")

    def _op_Slice(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        if len(node.input) > 1:
            starts, ends = self._static(node.input[1], where), self._static(node.input[2], where)
            axes = self._static(node.input[3], where) if len(node.input) > 3 and node.input[3] else None
            steps = self._static(node.input[4], where) if len(node.input) > 4 and node.input[4] else None
        else:  # opset < 10: attributes
            starts, ends = np.array(attrs["starts"]), np.array(attrs["ends"])
            axes, steps = (np.array(attrs["axes"]) if "axes" in attrs else None), None
        count = len(starts)
        limit = 2**62  # ONNX writes "to the end" as INT64_MAX; Python slices clamp any large value
        self.emit(
            Op.SLICE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            starts=tuple(int(np.clip(v, -limit, limit)) for v in starts),
            ends=tuple(int(np.clip(v, -limit, limit)) for v in ends),
            axes=tuple(int(v) for v in (axes if axes is not None else range(count))),
            steps=tuple(int(v) for v in (steps if steps is not None else [1] * count)),
        )

    # -------------------------------------------------------------- elementwise and shape ops

    def _op_Add(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        if self._fold_bias(node):
            return
        self._binary(node, Op.ADD, where)

    def _op_Mul(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._binary(node, Op.MUL, where)

    def _op_Concat(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._binary(node, Op.CONCAT, where, axis=int(attrs["axis"]))

    def _reduce(self, node: Any, attrs: dict[str, Any], where: str, op: Op) -> None:
        if len(node.input) > 1 and node.input[1]:
            axes = tuple(int(a) for a in self._static(node.input[1], where).reshape(-1))
        elif "axes" in attrs:
            axes = tuple(int(a) for a in attrs["axes"])
        else:
            raise CompileError(f"{where}: reducing over every axis is not supported; give axes")
        self.emit(
            op,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            axes=axes,
            keepdims=int(attrs.get("keepdims", 1)),
        )

    def _op_ReduceMean(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._reduce(node, attrs, where, Op.REDUCE_MEAN)

    def _op_ReduceMax(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._reduce(node, attrs, where, Op.REDUCE_MAX)

    def _op_Cast(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        """Casts between integer types (ids) or between float types change nothing here."""
        source = self.tensors[self.activation(node.input[0])]
        target = _onnx().helper.tensor_dtype_to_np_dtype(int(attrs["to"]))
        if np.issubdtype(target, np.integer) != (source.dtype == DType.INT32):
            raise CompileError(f"{where}: casts between integers and floats are not supported")
        self.alias[node.output[0]] = self.resolve(node.input[0])

    def _binary(self, node: Any, op: Op, where: str, **attrs: Any) -> None:
        ids = []
        for name in node.input:
            value = self.value(name)
            if isinstance(value, np.ndarray):
                ids.append(self.constant(name, value))
            elif value is not None:
                raise CompileError(f"{where}: operand {name!r} has a run-time shape")
            else:
                ids.append(self.activation(name))
        self.emit(op, ids, (self.new_activation(node.output[0]),), **attrs)

    def _fold_bias(self, node: Any) -> bool:
        """``Add(MatMul/Conv output, constant)`` with the product used only here: the layer's bias."""
        for slot in (0, 1):
            bias = self.value(node.input[1 - slot])
            name = self.resolve(node.input[slot])
            if not isinstance(bias, np.ndarray) or bias is None or name not in self.ids:
                continue
            index = self.ids[name]
            position = self.producer.get(index)
            if position is None or self.consumers.get(node.input[slot], 0) != 1:
                continue
            layer = self.layers[position]
            if layer.op not in (Op.LINEAR, Op.CONV1D) or layer.inputs[2] >= 0:
                continue
            channels = self.tensors[layer.inputs[1]].shape[0]
            squeezed = np.squeeze(bias)
            if (layer.op is Op.LINEAR and bias.shape[-1:] == (channels,) and squeezed.size == channels) or (
                layer.op is Op.CONV1D and squeezed.size == channels and bias.ndim >= 2 and bias.shape[-1] == 1
            ):
                pass
            else:
                continue
            bias_id = self.constant(node.input[1 - slot], squeezed.reshape(channels))
            self.layers[position] = Layer(
                layer.op, (layer.inputs[0], layer.inputs[1], bias_id), layer.outputs, layer.attrs
            )
            self.alias[node.output[0]] = name
            return True
        return False

    def _unary(self, node: Any, op: Op) -> None:
        self.emit(op, (self.activation(node.input[0]),), (self.new_activation(node.output[0]),))

    def _op_LayerNormalization(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        """ONNX LayerNormalization (opset 17; ``nn.LayerNorm`` exports as it) over the last axis only."""
        x = self.activation(node.input[0])
        rank = len(self.tensors[x].shape)
        axis = int(attrs.get("axis", -1))
        if axis not in (-1, rank - 1) or rank == 0:
            raise CompileError(f"{where}: LayerNormalization over axis {axis}; only the last axis works")
        if len(node.output) > 1 and any(node.output[1:]):
            raise CompileError(f"{where}: the Mean/InvStdDev outputs are not supported")
        scale = self._static(node.input[1], where).reshape(-1)
        bias = -1
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node.input[2], self._static(node.input[2], where).reshape(-1))
        self.emit(
            Op.LAYER_NORM,
            (x, self.constant(node.input[1], scale), bias),
            (self.new_activation(node.output[0]),),
            epsilon=float(attrs.get("epsilon", 1e-5)),
        )

    def _op_Relu(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._unary(node, Op.RELU)

    def _op_Tanh(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._unary(node, Op.TANH)

    def _op_Sigmoid(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self._unary(node, Op.SIGMOID)

    def _op_Transpose(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        if "perm" not in attrs:
            raise CompileError(f"{where}: Transpose needs an explicit perm")
        self.emit(
            Op.TRANSPOSE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            perm=tuple(int(p) for p in attrs["perm"]),
        )

    def _op_Reshape(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        shape = self._static(node.input[1], where)
        self.emit(
            Op.RESHAPE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            shape=tuple(int(d) for d in shape),
        )

    def _op_Flatten(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        if attrs.get("axis", 1) != 1:
            raise CompileError(f"{where}: only Flatten with axis=1 is supported")
        self.emit(
            Op.RESHAPE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            shape=(0, -1),
        )

    def _axes(self, node: Any, attrs: dict[str, Any], where: str) -> tuple[int, ...]:
        if len(node.input) > 1 and node.input[1]:
            return tuple(int(a) for a in self._static(node.input[1], where).reshape(-1))
        if "axes" in attrs:
            return tuple(int(a) for a in attrs["axes"])
        raise CompileError(f"{where}: axes must be given (squeezing every unit dim is not supported)")

    def _op_Squeeze(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self.emit(
            Op.SQUEEZE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            axes=self._axes(node, attrs, where),
        )

    def _op_Unsqueeze(self, node: Any, attrs: dict[str, Any], where: str) -> None:
        self.emit(
            Op.UNSQUEEZE,
            (self.activation(node.input[0]),),
            (self.new_activation(node.output[0]),),
            axes=self._axes(node, attrs, where),
        )


def _fold_numpy(op_type: str, values: list[Any], attrs: dict[str, Any]) -> Array:
    """The handful of ONNX ops exporters use for shape arithmetic, on numpy constants."""
    a = values[0]
    if op_type == "Unsqueeze":
        axes = values[1] if len(values) > 1 and values[1] is not None else attrs["axes"]
        out = a
        for axis in sorted(int(x) % (a.ndim + len(axes)) for x in np.asarray(axes).reshape(-1)):
            out = np.expand_dims(out, axis)
        return np.asarray(out)
    if op_type == "Squeeze":
        axes = values[1] if len(values) > 1 and values[1] is not None else attrs.get("axes")
        return np.asarray(
            np.squeeze(a, None if axes is None else tuple(int(x) for x in np.asarray(axes).reshape(-1)))
        )
    if op_type == "Concat":
        return np.concatenate([np.asarray(v) for v in values], axis=int(attrs["axis"]))
    if op_type == "Gather":
        return np.asarray(np.take(a, np.asarray(values[1]).astype(np.int64), axis=int(attrs.get("axis", 0))))
    if op_type == "Cast":
        from onnx import helper

        return np.asarray(a.astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"]))))
    if op_type == "Reshape":
        shape = [a.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(values[1])]
        return np.asarray(a.reshape(shape))
    if op_type == "Transpose":
        return np.asarray(np.transpose(a, attrs.get("perm")))
    if op_type == "Identity":
        return np.asarray(a)
    if op_type in ("Add", "Sub", "Mul", "Div", "Equal"):
        b = values[1]
        if op_type == "Div" and np.issubdtype(np.asarray(a).dtype, np.integer):
            return np.asarray(np.floor_divide(a, b))
        operation = {
            "Add": np.add,
            "Sub": np.subtract,
            "Mul": np.multiply,
            "Div": np.divide,
            "Equal": np.equal,
        }
        return np.asarray(operation[op_type](a, b))
    if op_type == "Where":
        return np.asarray(np.where(values[0], values[1], values[2]))
    if op_type == "Range":
        return np.arange(values[0], values[1], values[2])
    if op_type == "Slice":
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
        index = [slice(None)] * a.ndim
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
            index[int(ax)] = slice(int(s), int(e), int(st))
        return np.asarray(a[tuple(index)])
    if op_type == "ConstantOfShape":
        fill = _constant_of_shape_fill(attrs)
        return np.full(tuple(int(d) for d in a), fill.reshape(-1)[0], fill.dtype)
    if op_type == "Expand":
        return np.asarray(a * np.ones(tuple(int(d) for d in values[1]), a.dtype))
    raise CompileError(f"cannot fold {op_type}")


def _constant_of_shape_fill(attrs: dict[str, Any]) -> Array:
    fill = attrs.get("value")
    if fill is None:
        return np.zeros(1, np.float32)
    return np.asarray(_onnx().numpy_helper.to_array(fill))


def _drop_unused(network: Network) -> Network:
    """Remove layers whose results nothing reads (exporter leftovers), then unmentioned tensors."""
    needed = set(network.outputs)
    live_layers: list[Layer] = []
    for layer in reversed(network.layers):
        if any(i in needed for i in layer.outputs):
            live_layers.append(layer)
            needed.update(i for i in layer.inputs if i >= 0)
    network = Network(
        network.tensors, tuple(reversed(live_layers)), network.inputs, network.outputs, network.name
    )
    used = set(network.inputs) | set(network.outputs)
    for layer in network.layers:
        used.update(i for i in (*layer.inputs, *layer.outputs) if i >= 0)
    keep = [i for i in range(len(network.tensors)) if i in used]
    remap = {old: new for new, old in enumerate(keep)} | {-1: -1}
    layers = tuple(
        Layer(
            layer.op,
            tuple(remap[i] for i in layer.inputs),
            tuple(remap[i] for i in layer.outputs),
            layer.attrs,
        )
        for layer in network.layers
    )
    result = Network(
        tuple(network.tensors[i] for i in keep),
        layers,
        tuple(remap[i] for i in network.inputs),
        tuple(remap[i] for i in network.outputs),
        network.name,
    )
    result.validate()
    return result


def import_onnx(path: Path) -> Network:
    """The float ``Network`` of an ONNX file."""
    onnx = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as error:
        raise CompileError(f"{path}: not a readable ONNX model ({error})") from error
    return _Importer(model).run(Path(path).stem)


# ----------------------------------------------------------------------------------- PyTorch models


def export_torch(path: Path, example: Sample, out: Path) -> Path:
    """Export a whole pickled ``nn.Module`` or a TorchScript file to ONNX with static shapes."""
    try:
        import torch
    except ImportError as error:
        raise CompileError("compiling a .pt model needs torch (pip install -e '.[train]')") from error
    try:
        module = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    except Exception:
        try:
            module = torch.load(str(path), weights_only=False)
        except Exception as error:
            raise CompileError(f"{path}: not a loadable PyTorch model ({error})") from error
    if not isinstance(module, torch.nn.Module):
        raise CompileError(
            f"{path}: holds a {type(module).__name__}, not a module; a state_dict has no architecture: "
            "save the whole module (torch.save(model)) or export ONNX yourself"
        )
    module.eval()
    names = sorted(example)
    args = tuple(
        torch.from_numpy(
            np.asarray(example[n]).astype(
                np.int64 if np.issubdtype(example[n].dtype, np.integer) else np.float32
            )
        )
        for n in names
    )
    try:
        torch.onnx.export(module, args, str(out), input_names=names, dynamo=False)
    except Exception as error:
        raise CompileError(f"{path}: torch.onnx.export failed ({error})") from error
    return out


# -------------------------------------------------------------------------------------- calibration


def load_samples(path: Path, network: Network) -> list[Sample]:
    """Calibration samples from ``.npy`` (one-input networks) or ``.npz`` (a key per input name).

    An array with one more dim than the input holds one example per leading index; one with the
    input's rank is split along its first (batch) dim into examples of batch size 1.
    """
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CompileError(f"{path}: not a readable .npy/.npz file ({error})") from error
    names = network.input_names()
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            raise CompileError(f"the network has inputs {names}: give an .npz with one array per input")
        arrays = {names[0]: loaded}
    else:
        arrays = {key: loaded[key] for key in loaded.files}
        missing = sorted(set(names) - set(arrays))
        if missing:
            raise CompileError(f"{path}: no arrays for inputs {missing} (has {sorted(arrays)})")
    split: dict[str, list[Array]] = {}
    for index in network.inputs:
        tensor = network.tensors[index]
        array = arrays[tensor.name]
        if array.ndim == len(tensor.shape) + 1:
            examples = [array[i] for i in range(array.shape[0])]
        elif array.ndim == len(tensor.shape):
            examples = [array[i : i + 1] for i in range(array.shape[0])]
        else:
            raise CompileError(
                f"input {tensor.name!r} has rank {len(tensor.shape)}; {path} holds {array.shape}"
            )
        split[tensor.name] = [_as_input(tensor, example) for example in examples]
    counts = {len(v) for v in split.values()}
    if len(counts) != 1 or 0 in counts:
        raise CompileError(f"{path}: every input needs the same, non-zero number of examples")
    return [{name: split[name][i] for name in split} for i in range(counts.pop())]


def _as_input(tensor: Tensor, value: Array) -> Array:
    if tensor.dtype == DType.INT32:
        if not np.issubdtype(value.dtype, np.integer):
            raise CompileError(
                f"input {tensor.name!r} takes integer ids, the calibration data is {value.dtype}"
            )
        return value.astype(np.int32)
    return value.astype(np.float32)


def synthetic_samples(network: Network, count: int = 8, seed: int = 0) -> list[Sample]:
    """Stand-in calibration data (unit Gaussians; uniform ids over the embedding's vocabulary).

    Dynamic dims become 1 for a leading (batch) dim and 8 elsewhere.
    """
    rng = np.random.default_rng(seed)
    vocabulary = {
        layer.inputs[1]: network.tensors[layer.inputs[0]].shape[0]
        for layer in network.layers
        if layer.op is Op.EMBEDDING
    }
    samples = []
    for _ in range(count):
        sample: Sample = {}
        for index in network.inputs:
            tensor = network.tensors[index]
            shape = tuple(
                d if d >= 0 else (1 if axis == 0 and len(tensor.shape) > 1 else 8)
                for axis, d in enumerate(tensor.shape)
            )
            if tensor.dtype == DType.INT32:
                sample[tensor.name] = rng.integers(0, vocabulary.get(index, 2), size=shape).astype(np.int32)
            else:
                sample[tensor.name] = rng.normal(size=shape).astype(np.float32)
        samples.append(sample)
    return samples


# ------------------------------------------------------------------------------------------ compile


def prune(network: Network, sparsity: float) -> Network:
    """Zero the smallest-magnitude ``sparsity`` fraction of each weight matrix (not biases/tables).

    For experiments only: the shipped models carry the masks of gradual sparsification.
    """
    if not 0.0 <= sparsity < 1.0:
        raise CompileError(f"prune fraction must be in [0, 1), got {sparsity}")
    weight_ids = {
        layer.inputs[slot]
        for layer in network.layers
        if layer.op in PRUNABLE_OPS
        for slot in ((1, 2) if layer.op in GATES else (1,))
    }
    tensors = list(network.tensors)
    for index in weight_ids:
        tensor = tensors[index]
        assert tensor.data is not None
        magnitudes = np.abs(tensor.data).reshape(-1)
        cut = round(sparsity * magnitudes.size)
        if cut == 0:
            continue
        threshold_order = np.argsort(magnitudes, kind="stable")[:cut]
        pruned = tensor.data.copy().reshape(-1)
        pruned[threshold_order] = 0
        tensors[index] = Tensor(
            tensor.name, tensor.shape, tensor.dtype, pruned.reshape(tensor.shape), tensor.quant
        )
    return network.with_tensors(tuple(tensors))


@dataclass(frozen=True)
class CompileReport:
    network: Network  # the int8 network written to the image
    float_network: Network
    samples: int
    synthetic_calibration: bool
    onnx_max_abs_diff: float | None  # float IR vs onnxruntime on the first sample (None: not checked)
    int8_relative_error: dict[str, float] = field(default_factory=dict)  # max |int8 - float| / max |float|


def compile_model(
    path: Path,
    calibration: Path | None = None,
    options: QuantizeOptions | None = None,
    prune_fraction: float = 0.0,
) -> CompileReport:
    """Import ``path`` (.onnx, or .pt with ``calibration`` giving example inputs), quantize, check."""
    path = Path(path)
    suffix = path.suffix.lower()
    with tempfile.TemporaryDirectory() as scratch:
        if suffix in (".pt", ".pth"):
            if calibration is None:
                raise CompileError("a .pt model needs --calibration: its example inputs define the graph")
            example = _npz_or_npy_first(calibration)
            onnx_path = export_torch(path, example, Path(scratch) / "model.onnx")
        elif suffix == ".onnx":
            onnx_path = path
        else:
            raise CompileError(f"{path}: expected a .onnx or .pt model")
        float_network = import_onnx(onnx_path)
        synthetic = calibration is None
        samples = (
            synthetic_samples(float_network)
            if calibration is None
            else load_samples(calibration, float_network)
        )
        onnx_diff = _onnx_parity(onnx_path, float_network, samples[0])
    if prune_fraction:
        float_network = prune(float_network, prune_fraction)
    network = quantize(float_network, calibrate(float_network, samples), options or QuantizeOptions())
    errors: dict[str, float] = {}
    for sample in samples:
        expected = reference.run_float(float_network, sample)
        got = dequantize_outputs(network, reference.run(network, quantize_inputs(network, sample)))
        for name, value in expected.items():
            scale = float(np.max(np.abs(value))) or 1.0
            errors[name] = max(errors.get(name, 0.0), float(np.max(np.abs(got[name] - value))) / scale)
    return CompileReport(network, float_network, len(samples), synthetic, onnx_diff, errors)


def _npz_or_npy_first(path: Path) -> Sample:
    """The first example of a calibration file, before the network (and its input names) is known."""
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CompileError(f"{path}: not a readable .npy/.npz file ({error})") from error
    if isinstance(loaded, np.ndarray):
        return {"input": loaded[:1]}
    return {key: loaded[key][:1] for key in loaded.files}


def _onnx_parity(onnx_path: Path, network: Network, sample: Mapping[str, Array]) -> float | None:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover
        return None
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {}
    for graph_input in session.get_inputs():
        value = np.asarray(sample[graph_input.name])
        feeds[graph_input.name] = value.astype(np.int64) if "int64" in graph_input.type else value
    expected = session.run(None, feeds)
    got = reference.run_float(network, sample)
    names = [o.name for o in session.get_outputs()]
    return max(
        float(np.max(np.abs(got[name] - value))) if value.size else 0.0
        for name, value in zip(names, expected, strict=True)
    )
