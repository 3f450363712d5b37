"""The weight image: round trip, per-tensor encoding choice, and refusal of damaged files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from firmware_sim import synthetic
from firmware_sim.image import (
    CRC_OFFSET,
    HEADER_SIZE,
    EncodedTensor,
    Encoding,
    ImageError,
    decode_values,
    encode_as,
    encode_values,
    encoded_sizes,
    parse_image,
    read_image,
    serialize,
    summarize,
    varint_decode,
    varint_encode,
    write_image,
)
from firmware_sim.network import DType
from firmware_sim.quantize import calibrate, quantize


def quantized(kind: synthetic.LayerKind = "bilstm", sparsity: float = 0.7, zero_rows: int = 4):
    network, samples = synthetic.single_layer(
        kind, np.random.default_rng(5), sparsity=sparsity, zero_rows=zero_rows
    )
    return quantize(network, calibrate(network, samples))


def with_crc(blob: bytes) -> bytes:
    """Re-sign a deliberately edited image so only the edit itself can be rejected."""
    crc = zlib.crc32(blob[HEADER_SIZE:], zlib.crc32(blob[:CRC_OFFSET]))
    return blob[:CRC_OFFSET] + struct.pack("<I", crc) + blob[HEADER_SIZE:]


@pytest.mark.parametrize("kind", synthetic.LAYER_KINDS)
def test_write_then_read_gives_back_the_same_network(kind: synthetic.LayerKind, tmp_path: Path) -> None:
    network = quantized(kind)
    path = tmp_path / "net.img"
    size = write_image(network, path)
    assert size == path.stat().st_size
    assert read_image(path) == network


def test_float_networks_round_trip_too() -> None:
    network, _ = synthetic.single_layer("conv1d", np.random.default_rng(0))
    assert parse_image(serialize(network)).network == network


@pytest.mark.parametrize("encoding", [Encoding.DENSE, Encoding.BITMASK, Encoding.RLE])
@pytest.mark.parametrize("dtype", [DType.INT8, DType.INT16, DType.INT32])
def test_every_encoding_decodes_to_the_original(encoding: Encoding, dtype: DType) -> None:
    rng = np.random.default_rng(1)
    for size in (1, 7, 8, 9, 1000):
        for zeros in (0.0, 0.5, 0.97, 1.0):
            values = rng.integers(-100, 100, size=size).astype(dtype.numpy)
            values[rng.random(size) < zeros] = 0
            encoded = encode_as(values, encoding)
            assert encoded.data_bytes == encoded_sizes(values)[encoding]
            np.testing.assert_array_equal(decode_values(encoded, dtype, (size,)), values)


def test_rle_wins_on_long_zero_runs_and_bitmask_on_scattered_zeros() -> None:
    pruned_rows = np.ones((64, 64), np.int8)
    pruned_rows[8:] = 0  # whole rows gone: a handful of long runs
    assert encode_values(pruned_rows).encoding is Encoding.RLE
    scattered = np.ones(4096, np.int8)
    scattered[::2] = 0  # every other element: 4096 runs would cost more than 512 mask bytes
    assert encode_values(scattered).encoding is Encoding.BITMASK
    assert encode_values(np.ones(4096, np.int8)).encoding is Encoding.DENSE
    assert encode_values(np.zeros(4096, np.int8)).data_bytes == 2  # one run: zeros=4096 (varint 2 bytes)


def test_the_image_records_the_smaller_encoding_per_tensor() -> None:
    network = quantized("bilstm", sparsity=0.5, zero_rows=60)
    image = parse_image(serialize(network))
    rows = {row.name: row for row in summarize(image)}
    for index, encoded in image.encoded.items():
        sizes = encoded_sizes(network.tensors[index].data)
        assert encoded.data_bytes == min(sizes.values())
        assert rows[network.tensors[index].name].encoding == encoded.encoding.name
    assert {e.encoding for e in image.encoded.values()} >= {Encoding.BITMASK, Encoding.DENSE}
    assert image.size_bytes < image.dense_size_bytes


def test_varints_round_trip() -> None:
    numbers = np.array([0, 1, 127, 128, 16383, 16384, 2**35 + 3], np.int64)
    blob = varint_encode(numbers)
    assert len(blob) == 1 + 1 + 1 + 2 + 2 + 3 + 6
    np.testing.assert_array_equal(varint_decode(blob), numbers)


def test_any_flipped_byte_is_a_checksum_mismatch() -> None:
    blob = serialize(quantized())
    for offset in (8, CRC_OFFSET, HEADER_SIZE, len(blob) // 2, len(blob) - 1):  # header, CRC, payload
        for bit in (0x01, 0x80):
            damaged = bytearray(blob)
            damaged[offset] ^= bit
            with pytest.raises(ImageError, match="checksum mismatch"):
                parse_image(bytes(damaged))


@pytest.mark.parametrize("keep", [0, 3, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 10, -1])
def test_truncated_images_are_refused(keep: int) -> None:
    blob = serialize(quantized())
    with pytest.raises(ImageError, match="truncated"):
        parse_image(blob[:keep])


def test_bad_magic_version_and_trailing_bytes_are_refused(tmp_path: Path) -> None:
    blob = serialize(quantized())
    with pytest.raises(ImageError, match="not a firmware_sim weight image"):
        parse_image(b"ONNX" + blob[4:])
    with pytest.raises(ImageError, match="version 9"):
        parse_image(blob[:4] + struct.pack("<H", 9) + blob[6:])
    with pytest.raises(ImageError, match="unexpected bytes"):
        parse_image(blob + b"\0")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(40))
    with pytest.raises(ImageError, match="magic"):
        read_image(path)


def test_an_unknown_op_code_is_named() -> None:
    blob = bytearray(serialize(quantized("linear")))
    name_length = struct.unpack_from("<H", blob, HEADER_SIZE)[0]
    layer_table = HEADER_SIZE + 2 + name_length + 4 * 2  # one graph input, one graph output
    assert blob[layer_table] == 1  # LINEAR
    blob[layer_table] = 200
    with pytest.raises(ImageError, match="unknown op code 200 in layer 0"):
        parse_image(with_crc(bytes(blob)))


def test_inconsistent_content_with_a_valid_checksum_is_still_refused() -> None:
    network = quantized("linear", sparsity=0.5, zero_rows=0)
    blob = serialize(network)
    image = parse_image(blob)
    encoded = next(e for e in image.encoded.values() if e.encoding is Encoding.BITMASK)
    tampered_mask = bytes([encoded.index[0] ^ 0x01]) + encoded.index[1:]  # one more or fewer non-zero
    position = blob.index(encoded.values + encoded.index)
    edited = blob[: position + len(encoded.values)] + tampered_mask + blob[position + encoded.data_bytes :]
    with pytest.raises(ImageError, match=r"index places \d+ values but \d+ are stored"):
        parse_image(with_crc(edited))


def test_decoding_rejects_malformed_indexes() -> None:
    values = np.array([5, 6], np.int8).tobytes()
    with pytest.raises(ImageError, match="past the end"):
        decode_values(EncodedTensor(Encoding.BITMASK, 3, 1, values, bytes([0b00011000])), DType.INT8, (3,))
    with pytest.raises(ImageError, match="covers 5 elements"):
        decode_values(
            EncodedTensor(Encoding.RLE, 4, 1, values, varint_encode(np.array([3, 2]))), DType.INT8, (4,)
        )
    with pytest.raises(ImageError, match="middle of a number"):
        decode_values(EncodedTensor(Encoding.RLE, 4, 1, values, bytes([0x82])), DType.INT8, (4,))


def test_inspect_summary_reports_sparsity_and_sizes() -> None:
    network = quantized("linear", sparsity=0.9, zero_rows=0)
    rows = {row.name: row for row in summarize(parse_image(serialize(network)))}
    weight = rows["w"]
    assert weight.sparsity == pytest.approx(0.9, abs=0.01)
    assert weight.dense_bytes == 16 * 19
    assert weight.stored_bytes < weight.dense_bytes
