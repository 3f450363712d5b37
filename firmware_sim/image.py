"""The weight image: one compiled binary file per network (byte layout in ``FORMAT.md``).

A constant tensor is stored as its non-zero values packed densely plus an index of where they go,
either a bitmask (one bit per element) or a run-length index (LEB128 varints of alternating zero
and non-zero run lengths), whichever makes the tensor smaller; a tensor with too few zeros for
either to pay off is stored dense. The choice is made per tensor and recorded in its entry.
A CRC-32 over the header and payload catches corruption; ``parse_image`` refuses anything it does
not fully understand with an ``ImageError`` that says what is wrong.

>>> import numpy as np
>>> encode_values(np.array([0] * 40 + [5, 0], np.int8)).encoding.name  # index: 3 varint bytes, not 6
'RLE'
>>> encode_values(np.array([1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0], np.int8)).encoding.name
'BITMASK'
>>> encode_values(np.arange(1, 17, dtype=np.int8)).encoding.name
'DENSE'
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from firmware_sim.network import AttrValue, DType, Layer, Network, NetworkError, Op, Quant, Tensor

MAGIC = b"FWSI"
VERSION = 1
HEADER = struct.Struct(
    "<4sHHIIIIII"
)  # magic, version, header size, layers, tensors, inputs, outputs, payload, crc
HEADER_SIZE = HEADER.size  # 32
CRC_OFFSET = HEADER_SIZE - 4


class ImageError(ValueError):
    """The file is not a valid weight image (bad magic, truncated, corrupt, unknown content)."""


class Encoding(enum.IntEnum):
    NONE = 0  # an activation: no data
    DENSE = 1  # every element, zeros included
    BITMASK = 2  # ceil(n / 8) bytes, bit i (LSB first) set where element i is non-zero
    RLE = 3  # varints: zeros, non-zeros, zeros, non-zeros ... summing to n


class AttrKind(enum.IntEnum):
    INT = 1
    FLOAT = 2
    INTS = 3
    FLOATS = 4


class QuantKind(enum.IntEnum):
    NONE = 0
    PER_TENSOR = 1
    PER_CHANNEL = 2


@dataclass(frozen=True)
class EncodedTensor:
    """The stored form of one constant: packed values plus the index that places them."""

    encoding: Encoding
    numel: int
    itemsize: int
    values: bytes  # stored elements, little-endian, in flat (C) order
    index: bytes = b""

    @property
    def stored_count(self) -> int:
        return len(self.values) // self.itemsize

    @property
    def data_bytes(self) -> int:
        return len(self.values) + len(self.index)

    @property
    def dense_bytes(self) -> int:
        return self.numel * self.itemsize


# ------------------------------------------------------------------------------------ the two indexes


def varint_encode(numbers: NDArray[np.int64]) -> bytes:
    """LEB128: 7 bits per byte, low bits first, high bit set on every byte but the last."""
    values = np.asarray(numbers, np.uint64)
    if values.size == 0:
        return b""
    lengths = varint_lengths(values)
    ends = np.cumsum(lengths)
    out = np.zeros(int(ends[-1]), np.uint8)
    starts = ends - lengths
    for k in range(int(lengths.max())):
        active = lengths > k
        byte = (values[active] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lengths[active] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[active] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def varint_lengths(values: NDArray[np.integer]) -> NDArray[np.int64]:
    bits = np.zeros(values.shape, np.int64)
    remaining = np.asarray(values, np.uint64).copy()
    while np.any(remaining):
        bits += remaining > 0
        remaining >>= np.uint64(7)
    return np.maximum(bits, 1)


def varint_decode(blob: bytes) -> NDArray[np.int64]:
    data = np.frombuffer(blob, np.uint8).astype(np.uint64)
    if data.size == 0:
        return np.zeros(0, np.int64)
    last = (data & np.uint64(0x80)) == 0
    if not last[-1]:
        raise ImageError("run-length index ends in the middle of a number")
    group = np.concatenate([[0], np.cumsum(last[:-1])]).astype(np.int64)
    first = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    position = np.arange(data.size) - first[group]
    if position.max() > 9:
        raise ImageError("run-length index holds a number longer than 64 bits")
    parts = (data & np.uint64(0x7F)) << (np.uint64(7) * position.astype(np.uint64))
    return np.add.reduceat(parts, first).astype(np.int64)


def zero_runs(nonzero: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Alternating run lengths ``zeros, non-zeros, zeros, ...`` (starting with a zero run, maybe 0)."""
    if nonzero.size == 0:
        return np.zeros(0, np.int64)
    flags = nonzero.astype(np.int8)
    boundaries = np.flatnonzero(np.diff(flags)) + 1
    edges = np.concatenate([[0], boundaries, [nonzero.size]])
    runs = np.diff(edges).astype(np.int64)
    if nonzero[0]:
        runs = np.concatenate([[0], runs])
    return runs


def positions_from_runs(runs: NDArray[np.int64], numel: int) -> NDArray[np.int64]:
    if np.any(runs < 0) or int(runs.sum()) != numel:
        raise ImageError(f"run-length index covers {int(runs.sum())} elements, the tensor has {numel}")
    starts = (np.cumsum(runs) - runs)[1::2]
    lengths = runs[1::2]
    first_of_run = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (np.arange(int(lengths.sum()), dtype=np.int64) - first_of_run + np.repeat(starts, lengths)).astype(
        np.int64
    )


# ------------------------------------------------------------------------------------ tensor encoding


def encode_as(array: NDArray[np.generic], encoding: Encoding) -> EncodedTensor:
    flat = np.ascontiguousarray(array).reshape(-1)
    little = flat.astype(flat.dtype.newbyteorder("<"), copy=False)
    nonzero = flat != 0
    if encoding is Encoding.DENSE:
        return EncodedTensor(encoding, flat.size, flat.itemsize, little.tobytes())
    values = little[nonzero].tobytes()
    if encoding is Encoding.BITMASK:
        index = np.packbits(nonzero, bitorder="little").tobytes()
    elif encoding is Encoding.RLE:
        index = varint_encode(zero_runs(nonzero))
    else:
        raise ValueError(f"cannot encode data as {encoding.name}")
    return EncodedTensor(encoding, flat.size, flat.itemsize, values, index)


def encoded_sizes(array: NDArray[np.generic]) -> dict[Encoding, int]:
    """Bytes each encoding would take (values + index), without building them."""
    flat = np.asarray(array).reshape(-1)
    nonzero = flat != 0
    packed = int(nonzero.sum()) * flat.itemsize
    return {
        Encoding.DENSE: flat.size * flat.itemsize,
        Encoding.BITMASK: packed + (flat.size + 7) // 8,
        Encoding.RLE: packed + int(varint_lengths(zero_runs(nonzero)).sum()),
    }


def encode_values(array: NDArray[np.generic]) -> EncodedTensor:
    """The smallest encoding of ``array`` (ties go to the simpler one: dense, bitmask, RLE)."""
    sizes = encoded_sizes(array)
    best = min(sizes, key=lambda e: (sizes[e], e.value))
    return encode_as(array, best)


def stored_positions(encoded: EncodedTensor) -> NDArray[np.int64]:
    """Flat positions of the stored values (``arange(numel)`` for a dense tensor)."""
    if encoded.encoding is Encoding.DENSE:
        return np.arange(encoded.numel, dtype=np.int64)
    if encoded.encoding is Encoding.BITMASK:
        if len(encoded.index) != (encoded.numel + 7) // 8:
            raise ImageError(f"bitmask of {len(encoded.index)} bytes for {encoded.numel} elements")
        bits = np.unpackbits(np.frombuffer(encoded.index, np.uint8), bitorder="little")
        if np.any(bits[encoded.numel :]):
            raise ImageError("bitmask has bits set past the end of the tensor")
        return np.flatnonzero(bits[: encoded.numel]).astype(np.int64)
    if encoded.encoding is Encoding.RLE:
        return positions_from_runs(varint_decode(encoded.index), encoded.numel)
    raise ImageError(f"tensor with encoding {encoded.encoding.name} has no values")


def decode_values(encoded: EncodedTensor, dtype: DType, shape: tuple[int, ...]) -> NDArray[np.generic]:
    """The dense array, zeros filled back in."""
    positions = stored_positions(encoded)
    values = np.frombuffer(encoded.values, dtype.numpy.newbyteorder("<")).astype(dtype.numpy)
    if positions.size != values.size:
        raise ImageError(f"index places {positions.size} values but {values.size} are stored")
    if encoded.encoding is not Encoding.DENSE and np.any(values == 0):
        raise ImageError("a sparse tensor stores an explicit zero")
    dense = np.zeros(encoded.numel, dtype.numpy)
    dense[positions] = values
    return dense.reshape(shape)


# ------------------------------------------------------------------------------------------- writing


def serialize(network: Network) -> bytes:
    """The image bytes of ``network`` (validated first)."""
    try:
        network.validate()
    except NetworkError as error:
        raise ImageError(f"cannot write an invalid network: {error}") from error
    out = bytearray()
    out += _string(network.name, "H")
    out += struct.pack(f"<{len(network.inputs)}I", *network.inputs)
    out += struct.pack(f"<{len(network.outputs)}I", *network.outputs)
    for layer in network.layers:
        out += _layer_record(layer)
    for tensor in network.tensors:
        out += _tensor_record(tensor)
    header = HEADER.pack(
        MAGIC,
        VERSION,
        HEADER_SIZE,
        len(network.layers),
        len(network.tensors),
        len(network.inputs),
        len(network.outputs),
        len(out),
        0,
    )
    crc = zlib.crc32(bytes(out), zlib.crc32(header[:CRC_OFFSET]))
    return header[:CRC_OFFSET] + struct.pack("<I", crc) + bytes(out)


def write_image(network: Network, path: Path) -> int:
    """Write the image of ``network`` to ``path``; returns its size in bytes."""
    blob = serialize(network)
    Path(path).write_bytes(blob)
    return len(blob)


def _string(text: str, length_format: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<" + length_format, len(raw)) + raw


def _layer_record(layer: Layer) -> bytes:
    out = bytearray(struct.pack("<BBBB", layer.op, len(layer.inputs), len(layer.outputs), len(layer.attrs)))
    out += struct.pack(f"<{len(layer.inputs)}i{len(layer.outputs)}i", *layer.inputs, *layer.outputs)
    for name, value in sorted(layer.attrs.items()):
        out += _string(name, "B")
        out += _attr(name, value)
    return bytes(out)


def _attr(name: str, value: AttrValue) -> bytes:
    if isinstance(value, bool):
        raise ImageError(f"attribute {name!r}: booleans are not an attribute type")
    if isinstance(value, int):
        return struct.pack("<BHq", AttrKind.INT, 1, value)
    if isinstance(value, float):
        return struct.pack("<BHd", AttrKind.FLOAT, 1, value)
    if all(isinstance(v, int) for v in value):
        return struct.pack(f"<BH{len(value)}q", AttrKind.INTS, len(value), *value)
    return struct.pack(f"<BH{len(value)}d", AttrKind.FLOATS, len(value), *(float(v) for v in value))


def _tensor_record(tensor: Tensor) -> bytes:
    encoded = encode_values(tensor.data) if tensor.data is not None else None
    quant = tensor.quant
    quant_kind = (
        QuantKind.NONE if quant is None else QuantKind.PER_TENSOR if quant.axis < 0 else QuantKind.PER_CHANNEL
    )
    out = bytearray(_string(tensor.name, "H"))
    out += struct.pack(
        "<BBBB", tensor.dtype, encoded.encoding if encoded else Encoding.NONE, len(tensor.shape), quant_kind
    )
    out += struct.pack(f"<{len(tensor.shape)}i", *tensor.shape)
    if quant is not None:
        out += struct.pack("<iI", quant.axis, quant.scale.size)
        out += quant.scale.astype("<f4").tobytes() + quant.zero_point.astype("<i4").tobytes()
    if encoded is not None:
        out += struct.pack("<II", encoded.stored_count, len(encoded.index))
        out += encoded.values + encoded.index
    return bytes(out)


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ParsedImage:
    """A parsed image: the network (constants decoded) and each constant's stored form."""

    network: Network
    encoded: dict[int, EncodedTensor] = field(default_factory=dict)
    size_bytes: int = 0
    checksum: int = 0

    @property
    def dense_size_bytes(self) -> int:
        """The size of the same image with every tensor stored dense (what DRAM reads would be)."""
        saved = sum(e.dense_bytes - e.data_bytes for e in self.encoded.values())
        return self.size_bytes + saved


class _Cursor:
    def __init__(self, blob: bytes, offset: int) -> None:
        self.blob = blob
        self.offset = offset

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.offset + count > len(self.blob):
            raise ImageError(f"truncated image: {what} needs {count} bytes at offset {self.offset}")
        chunk = self.blob[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[object, ...]:
        layout = struct.Struct("<" + fmt)
        return layout.unpack(self.take(layout.size, what))

    def ints(self, fmt: str, count: int, what: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.unpack(f"{count}{fmt}", what))  # type: ignore[call-overload]

    def string(self, length_format: str, what: str) -> str:
        (length,) = self.ints(length_format, 1, what)
        try:
            return self.take(length, what).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImageError(f"{what} is not UTF-8") from error


def parse_image(blob: bytes) -> ParsedImage:
    """Parse and verify an image; raises ``ImageError`` on anything unexpected."""
    if len(blob) < HEADER_SIZE:
        raise ImageError(f"truncated image: {len(blob)} bytes, the header alone is {HEADER_SIZE}")
    magic, version, header_size, n_layers, n_tensors, n_inputs, n_outputs, payload, crc = HEADER.unpack_from(
        blob
    )
    if magic != MAGIC:
        raise ImageError(f"not a firmware_sim weight image (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ImageError(f"unsupported image version {version} (this build reads version {VERSION})")
    if header_size != HEADER_SIZE:
        raise ImageError(f"unexpected header size {header_size}")
    if len(blob) < HEADER_SIZE + payload:
        raise ImageError(f"truncated image: {len(blob)} bytes, the header promises {HEADER_SIZE + payload}")
    if len(blob) > HEADER_SIZE + payload:
        raise ImageError(f"{len(blob) - HEADER_SIZE - payload} unexpected bytes after the payload")
    actual = zlib.crc32(blob[HEADER_SIZE:], zlib.crc32(blob[:CRC_OFFSET]))
    if actual != crc:
        raise ImageError(
            f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x}): the image is corrupt"
        )

    cursor = _Cursor(blob, HEADER_SIZE)
    name = cursor.string("H", "network name")
    inputs = cursor.ints("I", n_inputs, "graph inputs")
    outputs = cursor.ints("I", n_outputs, "graph outputs")
    layers = tuple(_read_layer(cursor, position) for position in range(n_layers))
    tensors: list[Tensor] = []
    encoded: dict[int, EncodedTensor] = {}
    for index in range(n_tensors):
        tensor, stored = _read_tensor(cursor, index)
        tensors.append(tensor)
        if stored is not None:
            encoded[index] = stored
    if cursor.offset != len(blob):
        raise ImageError(f"{len(blob) - cursor.offset} bytes left over after the last tensor")
    network = Network(tuple(tensors), layers, inputs, outputs, name)
    try:
        network.validate()
    except NetworkError as error:
        raise ImageError(f"inconsistent network in image: {error}") from error
    return ParsedImage(network, encoded, len(blob), crc)


def _read_layer(cursor: _Cursor, position: int) -> Layer:
    code, n_in, n_out, n_attrs = cursor.ints("B", 4, f"layer {position}")
    try:
        op = Op(code)
    except ValueError:
        raise ImageError(f"unknown op code {code} in layer {position}") from None
    ids = cursor.ints("i", n_in + n_out, f"layer {position} tensor ids")
    attrs: dict[str, AttrValue] = {}
    for _ in range(n_attrs):
        name = cursor.string("B", f"layer {position} attribute name")
        kind_code, count = cursor.ints("B", 1, "attribute kind") + cursor.ints("H", 1, "attribute count")
        try:
            kind = AttrKind(kind_code)
        except ValueError:
            raise ImageError(f"layer {position} attribute {name!r}: unknown kind {kind_code}") from None
        if kind in (AttrKind.INT, AttrKind.INTS):
            ints = cursor.ints("q", count, f"attribute {name!r}")
            attrs[name] = ints[0] if kind is AttrKind.INT else ints
        else:
            floats = tuple(float(v) for v in cursor.unpack(f"{count}d", f"attribute {name!r}"))  # type: ignore[arg-type]
            attrs[name] = floats[0] if kind is AttrKind.FLOAT else floats
        if kind in (AttrKind.INT, AttrKind.FLOAT) and count != 1:
            raise ImageError(f"layer {position} attribute {name!r}: a scalar with {count} values")
    return Layer(op, ids[:n_in], ids[n_in:], attrs)


def _read_tensor(cursor: _Cursor, index: int) -> tuple[Tensor, EncodedTensor | None]:
    what = f"tensor {index}"
    name = cursor.string("H", f"{what} name")
    dtype_code, encoding_code, rank, quant_code = cursor.ints("B", 4, what)
    try:
        dtype, encoding, quant_kind = DType(dtype_code), Encoding(encoding_code), QuantKind(quant_code)
    except ValueError as error:
        raise ImageError(f"{what} ({name!r}): {error}") from None
    shape = cursor.ints("i", rank, f"{what} shape")
    quant = None
    if quant_kind is not QuantKind.NONE:
        axis, count = cursor.ints("i", 1, f"{what} quant axis") + cursor.ints("I", 1, f"{what} scale count")
        if (quant_kind is QuantKind.PER_TENSOR) != (axis < 0) or (
            quant_kind is QuantKind.PER_TENSOR and count != 1
        ):
            raise ImageError(f"{what} ({name!r}): inconsistent quantization axis {axis} / {count} scales")
        scale = np.frombuffer(cursor.take(4 * count, f"{what} scales"), "<f4").astype(np.float32)
        zero_point = np.frombuffer(cursor.take(4 * count, f"{what} zero points"), "<i4").astype(np.int32)
        quant = Quant(scale, zero_point, axis)
    if encoding is Encoding.NONE:
        return Tensor(name, shape, dtype, None, quant), None
    if any(d < 0 for d in shape):
        raise ImageError(f"{what} ({name!r}): a constant with a dynamic shape {shape}")
    stored, index_bytes = cursor.ints("I", 2, f"{what} sizes")
    numel = int(np.prod(shape, dtype=np.int64))
    if encoding is Encoding.DENSE and (stored != numel or index_bytes):
        raise ImageError(f"{what} ({name!r}): dense tensor with {stored} values for {numel} elements")
    values = cursor.take(stored * dtype.itemsize, f"{what} values")
    index_blob = cursor.take(index_bytes, f"{what} index")
    encoded = EncodedTensor(encoding, numel, dtype.itemsize, values, index_blob)
    return Tensor(name, shape, dtype, decode_values(encoded, dtype, shape), quant), encoded


def load_image(path: Path) -> ParsedImage:
    """Read and parse an image file (``OSError`` if it cannot be read)."""
    return parse_image(Path(path).read_bytes())


def read_image(path: Path) -> Network:
    return load_image(path).network


@dataclass(frozen=True)
class TensorSummary:
    """One row of ``inspect``: how a tensor is stored and what that saves."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    numel: int
    zeros: int
    encoding: str
    stored_bytes: int  # packed values + index
    dense_bytes: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


def summarize(image: ParsedImage) -> list[TensorSummary]:
    """Storage of every constant tensor, in tensor order."""
    rows = []
    for index, encoded in sorted(image.encoded.items()):
        tensor = image.network.tensors[index]
        assert tensor.data is not None
        rows.append(
            TensorSummary(
                index,
                tensor.name,
                tensor.dtype.name,
                tensor.shape,
                encoded.numel,
                encoded.numel - int(np.count_nonzero(tensor.data)),
                encoded.encoding.name,
                encoded.data_bytes,
                encoded.dense_bytes,
            )
        )
    return rows
