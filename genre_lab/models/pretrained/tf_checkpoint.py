"""Read TensorFlow (V2, "tensor bundle") checkpoints with numpy alone.

A checkpoint `PREFIX` is two files: `PREFIX.index`, a LevelDB-format sorted table mapping each
tensor name to a `BundleEntryProto` (dtype, shape, shard, byte offset, size, CRC32C), and
`PREFIX.data-0000N-of-0000M`, the raw little-endian tensor bytes. Both formats are small and
fixed, so this module parses them directly: the PyPI reader `tensorflow-checkpoint-reader`
(last release 2023) pins protobuf<3.19, which clashes with MLflow's protobuf, and its generated
protobuf modules refuse to load under protobuf 4+ (tried: "Descriptors cannot be created
directly"). TensorFlow itself must not become a dependency of genre_lab.

Every byte read is checked: the table's block CRCs and each tensor's CRC32C, so a truncated
or altered file fails with an error naming it instead of yielding wrong weights.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # compression type byte + masked CRC32C

# tensorflow/core/framework/types.proto -> numpy (little-endian)
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


class CheckpointError(ValueError):
    """A checkpoint file that is missing, malformed or fails its checksum."""


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of LevelDB tables and TF tensor bundles."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    """Undo LevelDB's CRC masking: masked = rotr(crc, 15) + 0xa282ead8."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint longer than 64 bits")


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Protobuf wire format -> [(field number, int or bytes)]; only the types TF bundles use."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    if pos != len(buf):
        raise CheckpointError("truncated protobuf message")
    return fields


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None


def _entry(name: str, raw: bytes) -> TensorEntry:
    dtype_id, shape, shard, offset, size, crc, sliced = 0, [], 0, 0, 0, None, False
    for number, value in _proto_fields(raw):
        if number == 1:
            dtype_id = value
        elif number == 2:
            for dim_field, dim in _proto_fields(value):
                if dim_field == 2:  # TensorShapeProto.dim
                    shape.append(next((v for f, v in _proto_fields(dim) if f == 1), 0))
                elif dim_field == 3 and dim:
                    raise CheckpointError(f"tensor {name!r} has an unknown rank")
        elif number == 3:
            shard = value
        elif number == 4:
            offset = value
        elif number == 5:
            size = value
        elif number == 6:
            crc = value
        elif number == 7:
            sliced = True
    if sliced:
        raise CheckpointError(f"tensor {name!r} is stored in slices (partitioned variable), not supported")
    if dtype_id not in _DTYPES:
        raise CheckpointError(f"tensor {name!r} has TF dtype id {dtype_id}, not supported")
    return TensorEntry(_DTYPES[dtype_id], tuple(int(s) for s in shape), shard, offset, size, crc)


def _read_block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size
    if end + _BLOCK_TRAILER > len(data):
        raise CheckpointError(f"{path}: block at {offset} runs past the end of the file (truncated?)")
    block, kind = data[offset:end], data[end]
    (masked,) = struct.unpack_from("<I", data, end + 1)
    if crc32c(block + bytes([kind])) != _unmask(masked):
        raise CheckpointError(f"{path}: checksum mismatch in block at byte {offset}")
    if kind != 0:
        raise CheckpointError(f"{path}: compressed table blocks (type {kind}) are not supported")
    return block


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (keys are prefix-compressed against the previous)."""
    if len(block) < 4:
        raise CheckpointError("table block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def checkpoint_prefix(path: str | Path) -> str:
    """`path` is a checkpoint prefix (`model.ckpt` for `model.ckpt.index`) or a folder whose
    files are named `.index`/`.data-*` with an empty prefix, as in the musicnn wheel."""
    path = Path(path)
    return f"{path}/" if path.is_dir() else str(path)


class TFCheckpoint:
    """Tensors of a TF V2 checkpoint: `names`, `entries[name]` and `tensor(name)`."""

    def __init__(self, path: str | Path) -> None:
        prefix = checkpoint_prefix(path)
        self.index_path = Path(f"{prefix}.index")
        if not self.index_path.is_file():
            raise CheckpointError(f"no checkpoint index at {self.index_path}")
        data = self.index_path.read_bytes()
        if len(data) < _FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
            raise CheckpointError(f"{self.index_path} is not a TensorFlow checkpoint index (bad table magic)")
        footer = data[-_FOOTER_SIZE:]
        _, _, pos = _handle(footer, 0)  # metaindex: unused by tensor bundles
        index_offset, index_size, _ = _handle(footer, pos)
        self.entries: dict[str, TensorEntry] = {}
        num_shards = 1
        for _, handle in _block_entries(_read_block(data, index_offset, index_size, self.index_path)):
            offset, size, _ = _handle(handle, 0)
            for key, value in _block_entries(_read_block(data, offset, size, self.index_path)):
                if key == b"":  # BundleHeaderProto
                    for number, field in _proto_fields(value):
                        if number == 1:
                            num_shards = field
                        elif number == 2 and field != 0:
                            raise CheckpointError(f"{self.index_path}: big-endian bundles are not supported")
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _entry(name, value)
        self._data_paths = {s: Path(f"{prefix}.data-{s:05d}-of-{num_shards:05d}") for s in range(num_shards)}
        self._data: dict[int, bytes] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self.entries)

    def tensor(self, name: str) -> np.ndarray:
        if name not in self.entries:
            raise KeyError(f"{self.index_path}: no tensor named {name!r}")
        entry = self.entries[name]
        if entry.shard not in self._data:
            path = self._data_paths.get(entry.shard)
            if path is None or not path.is_file():
                raise CheckpointError(f"checkpoint data file {path} for tensor {name!r} is missing")
            self._data[entry.shard] = path.read_bytes()
        data = self._data[entry.shard]
        raw = data[entry.offset:entry.offset + entry.size]
        if len(raw) != entry.size:
            raise CheckpointError(f"{self._data_paths[entry.shard]}: tensor {name!r} runs past the end (truncated?)")
        if entry.crc32c is not None and crc32c(raw) != _unmask(entry.crc32c):
            raise CheckpointError(f"{self._data_paths[entry.shard]}: checksum mismatch for tensor {name!r}")
        array = np.frombuffer(raw, dtype=entry.dtype)
        if array.size != int(np.prod(entry.shape, dtype=np.int64)):
            raise CheckpointError(f"tensor {name!r}: {array.size} values for shape {entry.shape}")
        return array.reshape(entry.shape).copy()
