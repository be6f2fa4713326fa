"""The edge bundle (``.ddqb``): one file per model holding the integer graph.

Byte-level specification: ``docs/bundle-format.md`` (this module and that document must agree;
``tests/test_bundle.py`` pins the layout byte for byte).

In short: a 32-byte header, a section table (24 bytes an entry), then the sections STRINGS,
TENSORS (64-byte records), OPS (variable-size records with int32 attributes), IO (graph inputs
and outputs), METADATA (the only JSON) and DATA (weights bit-packed at their bit width, int32
biases, float32 scales; blobs of 64 bytes or more start 64-byte aligned). Every section has a
CRC32 (zlib) and the header has one covering itself and the section table. Little-endian.

The reader validates every offset, length, count, string, enum, reference and data size
before it builds any object; anything wrong is a :class:`BundleError` naming the file, the
place and what was expected.
"""
from __future__ import annotations

import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .bitpack import code_range, pack_bits, packed_size, unpack_bits
from .files import atomic_write_bytes
from .ir import OP_KINDS, Graph, Op, QuantParams, Tensor

# --- constants of format 1.0 (docs/bundle-format.md) ---------------------------------------
MAGIC = b"DDQB\r\n\x1a\n"
VERSION_MAJOR = 1
VERSION_MINOR = 0
HEADER_SIZE = 32
SECTION_ENTRY_SIZE = 24
TENSOR_RECORD_SIZE = 64
OP_RECORD_FIXED_SIZE = 16
ATTR_FIXED_SIZE = 8
MAX_DIMS = 6
MAX_SECTIONS = 64
SECTION_ALIGN = 8      # every section starts at a multiple of 8
DATA_ALIGN = 64        # the DATA section and every blob of >= LARGE_BLOB bytes: multiple of 64
LARGE_BLOB = 64
SMALL_ALIGN = 4        # blobs under LARGE_BLOB bytes: multiple of 4 (inside DATA)
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
UINT32_MAX = 2 ** 32 - 1

SECTION_STRINGS, SECTION_TENSORS, SECTION_OPS, SECTION_IO, SECTION_METADATA, SECTION_DATA = range(1, 7)
SECTION_NAMES = {SECTION_STRINGS: "STRINGS", SECTION_TENSORS: "TENSORS", SECTION_OPS: "OPS",
                 SECTION_IO: "IO", SECTION_METADATA: "METADATA", SECTION_DATA: "DATA"}
SECTION_ORDER = (SECTION_STRINGS, SECTION_TENSORS, SECTION_OPS, SECTION_IO, SECTION_METADATA,
                 SECTION_DATA)

# Fixed codes (never renumbered; new kinds get new codes in a later version).
DTYPE_CODES = {"float32": 0, "uint8": 1, "int8": 2, "int32": 3}
DTYPE_NAMES = {code: name for name, code in DTYPE_CODES.items()}
OP_KIND_CODES = {
    "quantize": 0, "dequantize": 1, "conv2d": 2, "fully_connected": 3, "add": 4,
    "avg_pool": 5, "global_avg_pool": 6, "max_pool": 7, "requantize": 8, "reshape": 9,
}
OP_KIND_NAMES = {code: name for name, code in OP_KIND_CODES.items()}
ATTR_INT, ATTR_INT_LIST = 0, 1
FLAG_QUANT, FLAG_CONSTANT = 0x1, 0x2

_HEADER = struct.Struct("<8sHHIQII")          # magic, major, minor, header_size, file_size, n_sections, crc
_SECTION = struct.Struct("<IIQQ")             # id, crc32, offset, length
_TENSOR = struct.Struct("<IBBBBiii6iIIIII")   # see docs/bundle-format.md, "TENSORS"
_OP = struct.Struct("<IIHBBHH")               # size, name, kind, n_in, n_out, n_attrs, reserved
_ATTR = struct.Struct("<IHH")                 # key, type, count
_PAIR = struct.Struct("<II")
_SCALE_OFFSET_FIELD, _DATA_OFFSET_FIELD = 15, 16   # indices in _TENSOR's fields
_HEADER_CRC_END = 28                          # the header CRC covers [0, 28) and [32, table end)
assert _HEADER.size == HEADER_SIZE and _SECTION.size == SECTION_ENTRY_SIZE
assert _TENSOR.size == TENSOR_RECORD_SIZE and _OP.size == OP_RECORD_FIXED_SIZE
assert _ATTR.size == ATTR_FIXED_SIZE

_RAW_DTYPES = {"float32": np.dtype("<f4"), "uint8": np.dtype("u1"), "int32": np.dtype("<i4")}


class BundleError(ValueError):
    """A bundle that cannot be read: the message names the file, the place and the problem."""


# =========================================================================== writing ===

def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer))  # bool is an int: stored as 0/1


def _int32(value: Any, what: str) -> int:
    if not _is_int(value):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"{what} = {value} does not fit in int32")
    return value


class _Strings:
    """The STRINGS section: u32 byte length, UTF-8 bytes, NUL, zero padding to 4; deduplicated."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.refs: dict[str, int] = {}

    def ref(self, text: Any, what: str) -> int:
        if not isinstance(text, str):
            raise ValueError(f"{what} must be a string, got {text!r}")
        if text in self.refs:
            return self.refs[text]
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{what} {text!r} is not encodable as UTF-8: {error.reason}") from None
        if b"\0" in raw:
            raise ValueError(f"{what} {text!r} contains a NUL character")
        offset = len(self.buf)
        self.buf += struct.pack("<I", len(raw)) + raw + b"\0"
        self.buf += b"\0" * (_align(len(self.buf), 4) - len(self.buf))
        self.refs[text] = offset
        return offset


class _Data:
    """The DATA section. Blobs under 64 bytes come first, in the order added, each at a multiple
    of 4; then blobs of 64 bytes or more, in the order added, each at a multiple of 64. (Small
    blobs together keep the alignment padding to the tail of the large ones.)"""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def add(self, blob: bytes) -> int:
        """A handle for ``blob`` (-1 for an empty blob, which is stored at offset 0)."""
        if not blob:
            return -1
        self.blobs.append(blob)
        return len(self.blobs) - 1

    def layout(self) -> tuple[bytes, list[int]]:
        buf, offsets = bytearray(), [0] * len(self.blobs)
        for large in (False, True):
            for i, blob in enumerate(self.blobs):
                if (len(blob) >= LARGE_BLOB) != large:
                    continue
                offset = _align(len(buf), DATA_ALIGN if large else SMALL_ALIGN)
                buf += b"\0" * (offset - len(buf))
                buf += blob
                offsets[i] = offset
        return bytes(buf), offsets


def _encode_data(tensor: Tensor, where: str) -> bytes:
    arr = np.asarray(tensor.data)
    if arr.shape != tensor.shape:
        raise ValueError(f"{where}: data shape {arr.shape} does not match the tensor shape {tensor.shape}")
    if tensor.dtype == "int8":
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{where}: int8 data must hold integer codes, got dtype {arr.dtype}")
        bits, narrow = (tensor.quant.bits, True) if tensor.quant is not None else (8, False)
        if not 2 <= bits <= 8:
            raise ValueError(f"{where}: int8 weight codes are packed at 2..8 bits, the tensor has {bits}")
        try:
            return pack_bits(arr, bits, narrow=narrow)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    target = _RAW_DTYPES[tensor.dtype]
    if target.kind in "iu" and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"{where}: {tensor.dtype} data must be integers, got dtype {arr.dtype}")
    cast = arr.astype(target)
    exact = (np.array_equal(cast, arr, equal_nan=True) if arr.dtype.kind == "f"
             else np.array_equal(cast, arr))
    if not exact:
        raise ValueError(f"{where}: data of dtype {arr.dtype} is not exactly representable as "
                         f"{tensor.dtype}")
    return cast.tobytes()


def _encode_tensor(key: str, tensor: Tensor, strings: _Strings, data: _Data) -> list[int]:
    """The record's fields; scale_offset and data_offset hold _Data handles until layout."""
    where = f"tensor {key!r}"
    if tensor.name != key:
        raise ValueError(f"{where}: is stored under a different name ({tensor.name!r})")
    if tensor.dtype not in DTYPE_CODES:
        raise ValueError(f"{where}: dtype {tensor.dtype!r} has no code (known: {sorted(DTYPE_CODES)})")
    shape = tensor.shape
    if len(shape) > MAX_DIMS:
        raise ValueError(f"{where}: {len(shape)} dimensions, the format allows at most {MAX_DIMS}")
    if any(d < 0 or d > INT32_MAX for d in shape):
        raise ValueError(f"{where}: shape {shape} has a dimension outside 0..2^31-1")
    if math.prod(shape) > INT32_MAX:
        raise ValueError(f"{where}: {math.prod(shape)} elements, the format allows at most 2^31-1")
    flags = bits = zero_point = qmin = qmax = scale_count = 0
    scale_blob = data_blob = -1
    if tensor.quant is not None:
        q = tensor.quant
        flags |= FLAG_QUANT
        if not _is_int(q.bits) or not 1 <= int(q.bits) <= (8 if tensor.dtype in ("uint8", "int8") else 32):
            raise ValueError(f"{where}: quant bits {q.bits!r} out of range for {tensor.dtype}")
        bits = int(q.bits)
        zero_point = _int32(q.zero_point, f"{where}: zero_point")
        qmin = _int32(q.qmin, f"{where}: qmin")
        qmax = _int32(q.qmax, f"{where}: qmax")
        if qmin > qmax:
            raise ValueError(f"{where}: qmin {qmin} > qmax {qmax}")
        scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
        if scale.size == 0:
            raise ValueError(f"{where}: quant scale is empty")
        scale_count = scale.size
        scale_blob = data.add(scale.astype("<f4").tobytes())
    data_size = 0
    if tensor.data is not None:
        flags |= FLAG_CONSTANT
        blob = _encode_data(tensor, where)
        data_blob, data_size = data.add(blob), len(blob)
    dims = list(shape) + [0] * (MAX_DIMS - len(shape))
    return [strings.ref(key, f"{where}: name"), DTYPE_CODES[tensor.dtype], len(shape), flags, bits,
            zero_point, qmin, qmax, *dims, scale_count, scale_blob, data_blob, data_size, 0]


def _encode_op(op: Op, index: dict[str, int], strings: _Strings) -> bytes:
    where = f"op {op.name!r} ({op.kind})"
    if op.kind not in OP_KIND_CODES or op.kind not in OP_KINDS:
        raise ValueError(f"{where}: kind {op.kind!r} has no code in bundle format "
                         f"{VERSION_MAJOR}.{VERSION_MINOR}")
    n_in, n_out = OP_KINDS[op.kind]
    if len(op.inputs) != n_in or len(op.outputs) != n_out:
        raise ValueError(f"{where}: takes {n_in} input(s) and {n_out} output(s), got "
                         f"{len(op.inputs)} and {len(op.outputs)}")
    refs = []
    for name in list(op.inputs) + list(op.outputs):
        if name not in index:
            raise ValueError(f"{where}: refers to unknown tensor {name!r}")
        refs.append(index[name])
    name_ref = strings.ref(op.name, f"{where}: name")  # interned before the attribute keys
    attrs = bytearray()
    if len(op.attrs) > 0xFFFF:
        raise ValueError(f"{where}: {len(op.attrs)} attributes, at most 65535")
    for key, value in op.attrs.items():
        what = f"{where}: attribute {key!r}"
        if not isinstance(key, str) or not key:
            raise ValueError(f"{where}: attribute names must be non-empty strings, got {key!r}")
        if _is_int(value):
            kind, values = ATTR_INT, [value]
        elif isinstance(value, (list, tuple, np.ndarray)) and np.ndim(value) == 1 and all(_is_int(v) for v in value):
            kind, values = ATTR_INT_LIST, list(value)
        else:
            raise ValueError(f"{what} must be an int or a list of ints, got {value!r}")
        if len(values) > 0xFFFF:
            raise ValueError(f"{what}: {len(values)} values, at most 65535")
        ints = [_int32(v, what) for v in values]
        attrs += _ATTR.pack(strings.ref(key, what), kind, len(ints))
        attrs += struct.pack(f"<{len(ints)}i", *ints)
    size = OP_RECORD_FIXED_SIZE + 4 * len(refs) + len(attrs)
    head = _OP.pack(size, name_ref, OP_KIND_CODES[op.kind],
                    n_in, n_out, len(op.attrs), 0)
    return head + struct.pack(f"<{len(refs)}I", *refs) + bytes(attrs)


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, (np.integer, np.floating, np.bool_)):
                k = k.item()
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ValueError(f"{where}: key {k!r} is not a string")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/Infinity: written as null
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"{where}: {type(value).__name__} value {value!r} is not JSON-serialisable")


def encode_metadata(metadata: dict[str, Any]) -> bytes:
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    text = json.dumps(_jsonable(metadata, "metadata"), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))
    return text.encode("utf-8")


def encode_bundle(graph: Graph) -> bytes:
    """The complete bundle bytes of ``graph`` (deterministic). Raises ``ValueError`` if the
    graph cannot be stored."""
    graph.validate()
    strings, data = _Strings(), _Data()
    index = {name: i for i, name in enumerate(graph.tensors)}
    if len(index) > UINT32_MAX // TENSOR_RECORD_SIZE:
        raise ValueError(f"{len(index)} tensors is too many")
    records = [_encode_tensor(name, tensor, strings, data) for name, tensor in graph.tensors.items()]
    data_bytes, offsets = data.layout()
    if len(data_bytes) > UINT32_MAX:
        raise ValueError("the constants exceed the 4 GiB that 32-bit data offsets address")
    tensors = bytearray(_PAIR.pack(len(index), TENSOR_RECORD_SIZE))
    for fields in records:
        for slot in (_SCALE_OFFSET_FIELD, _DATA_OFFSET_FIELD):
            fields[slot] = offsets[fields[slot]] if fields[slot] >= 0 else 0
        tensors += _TENSOR.pack(*fields)
    ops = bytearray(_PAIR.pack(len(graph.ops), 0))
    for op in graph.ops:
        ops += _encode_op(op, index, strings)
    io_refs = []
    for role, names in (("input", graph.inputs), ("output", graph.outputs)):
        for name in names:
            if name not in index:
                raise ValueError(f"graph {role} {name!r} is not a tensor of the graph")
            io_refs.append(index[name])
    io = _PAIR.pack(len(graph.inputs), len(graph.outputs)) + struct.pack(f"<{len(io_refs)}I", *io_refs)
    meta = encode_metadata(graph.metadata)
    if len(strings.buf) > UINT32_MAX:
        raise ValueError("the names exceed the 4 GiB that 32-bit string offsets address")
    payloads = {SECTION_STRINGS: bytes(strings.buf), SECTION_TENSORS: bytes(tensors),
                SECTION_OPS: bytes(ops), SECTION_IO: io, SECTION_METADATA: meta,
                SECTION_DATA: data_bytes}
    offset = HEADER_SIZE + SECTION_ENTRY_SIZE * len(SECTION_ORDER)
    entries = []
    for sid in SECTION_ORDER:
        offset = _align(offset, DATA_ALIGN if sid == SECTION_DATA else SECTION_ALIGN)
        entries.append((sid, zlib.crc32(payloads[sid]), offset, len(payloads[sid])))
        offset += len(payloads[sid])
    out = bytearray(offset)
    table = b"".join(_SECTION.pack(*entry) for entry in entries)
    head = _HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, offset,
                        len(entries), 0)[:_HEADER_CRC_END]
    crc = zlib.crc32(table, zlib.crc32(head))
    out[:HEADER_SIZE] = head + struct.pack("<I", crc)
    out[HEADER_SIZE:HEADER_SIZE + len(table)] = table
    for sid, _, start, length in entries:
        out[start:start + length] = payloads[sid]
    return bytes(out)


def write_bundle(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` (``.ddqb``) atomically: a temporary file in the same
    directory, then ``os.replace``. On any failure nothing is left behind and an existing
    file at ``path`` is untouched. Raises ``ValueError`` for a graph the format cannot hold."""
    path = Path(path)
    try:
        payload = encode_bundle(graph)
    except ValueError as error:
        raise ValueError(f"cannot write {path}: {error}") from None
    atomic_write_bytes(path, payload)
    return path


# =========================================================================== reading ===

class _Reader:
    """Validates and decodes one bundle; every failure is a BundleError."""

    def __init__(self, data: bytes | bytearray | memoryview, source: str) -> None:
        self.buf = bytes(data)
        self.src = source
        self.sections: dict[int, tuple[int, int, int]] = {}  # id -> (offset, length, crc)
        self.string_cache: dict[int, str] = {}

    def fail(self, message: str) -> NoReturn:
        raise BundleError(f"{self.src}: {message}")

    # -- container ---------------------------------------------------------------------
    def parse_container(self) -> None:
        buf, n = self.buf, len(self.buf)
        if n < len(MAGIC) and MAGIC.startswith(buf):
            self.fail(f"truncated: the header needs {HEADER_SIZE} bytes but the file has {n} bytes")
        if buf[:len(MAGIC)] != MAGIC:
            self.fail(f"bad magic: expected {MAGIC!r} (a .ddqb edge bundle), got {buf[:len(MAGIC)]!r}")
        if n < HEADER_SIZE:
            self.fail(f"truncated: the header needs {HEADER_SIZE} bytes but the file has {n} bytes")
        _, major, minor, header_size, file_size, count, header_crc = _HEADER.unpack_from(buf, 0)
        self.version = (major, minor)
        if major > VERSION_MAJOR:
            self.fail(f"version {major}.{minor} is newer than this reader ({VERSION_MAJOR}.x); "
                      f"upgrade ddq-edge to read it")
        if major < VERSION_MAJOR:
            self.fail(f"version {major}.{minor} is not supported (this reader reads {VERSION_MAJOR}.x)")
        self.newer_minor = minor > VERSION_MINOR
        if header_size < HEADER_SIZE or header_size % 8 or (header_size != HEADER_SIZE and not self.newer_minor):
            self.fail(f"header: header_size is {header_size}, expected {HEADER_SIZE}"
                      + (" or a larger multiple of 8" if self.newer_minor else ""))
        if count > MAX_SECTIONS:
            self.fail(f"header: section_count is {count}, at most {MAX_SECTIONS} expected")
        table_end = header_size + SECTION_ENTRY_SIZE * count
        if table_end > n:
            self.fail(f"truncated: the section table ends at byte {table_end} but the file has {n} bytes")
        crc = zlib.crc32(buf[HEADER_SIZE:table_end], zlib.crc32(buf[:_HEADER_CRC_END]))
        if crc != header_crc:
            self.fail(f"checksum mismatch in the header and section table: stored {header_crc:#010x}, "
                      f"computed {crc:#010x}")
        entries = [_SECTION.unpack_from(buf, header_size + SECTION_ENTRY_SIZE * i) for i in range(count)]
        if file_size != n:
            if n < file_size:
                for sid, _, offset, length in sorted(entries, key=lambda e: e[2] + e[3]):
                    if offset + length > n:
                        self.fail(f"truncated: section {self.section_name(sid)} ends at byte "
                                  f"{offset + length} but the file has {n} bytes")
                self.fail(f"truncated: the header records {file_size} bytes but the file has {n} bytes")
            self.fail(f"{n - file_size} unexpected bytes after the end: the header records "
                      f"{file_size} bytes but the file has {n} bytes")
        spans = []
        for sid, crc, offset, length in entries:
            name = self.section_name(sid)
            align = DATA_ALIGN if sid == SECTION_DATA else SECTION_ALIGN
            if offset % align:
                self.fail(f"section {name}: offset {offset} is not a multiple of {align}")
            if offset < table_end:
                self.fail(f"section {name}: offset {offset} lies inside the header and section table "
                          f"(which end at byte {table_end})")
            if offset + length > n:
                self.fail(f"truncated: section {name} ends at byte {offset + length} but the file "
                          f"has {n} bytes")
            if sid in self.sections:
                self.fail(f"section {name} appears more than once in the section table")
            self.sections[sid] = (offset, length, crc)
            spans.append((offset, offset + length, name))
        pos = table_end
        for start, end, name in sorted(spans):
            if start < pos:
                self.fail(f"section {name} (bytes {start}..{end}) overlaps the bytes before it, "
                          f"which end at byte {pos}")
            self.check_zero(pos, start, "between sections")
            pos = end
        self.check_zero(pos, n, "after the last section")
        for sid in SECTION_ORDER:
            if sid not in self.sections:
                self.fail(f"missing section {SECTION_NAMES[sid]}")
        view = memoryview(buf)
        for sid, (offset, length, crc) in sorted(self.sections.items(), key=lambda kv: kv[1][0]):
            actual = zlib.crc32(view[offset:offset + length])
            if actual != crc:
                self.fail(f"checksum mismatch in section {self.section_name(sid)}: stored "
                          f"{crc:#010x}, computed {actual:#010x}")
        self.table_end = table_end

    @staticmethod
    def section_name(sid: int) -> str:
        return SECTION_NAMES.get(sid, f"#{sid} (unknown)")

    def check_zero(self, start: int, end: int, where: str) -> None:
        gap = self.buf[start:end]
        if gap.count(0) != len(gap):
            first = start + next(i for i, b in enumerate(gap) if b)
            self.fail(f"padding byte {first} {where} is {self.buf[first]:#04x}, expected 0")

    def section(self, sid: int) -> tuple[int, int]:
        offset, length, _ = self.sections[sid]
        return offset, length

    # -- strings and data --------------------------------------------------------------------
    def string(self, ref: int, where: str) -> str:
        if ref in self.string_cache:
            return self.string_cache[ref]
        base, length = self.section(SECTION_STRINGS)
        if ref % 4:
            self.fail(f"{where}: string offset {ref} is not a multiple of 4")
        if ref + 4 > length:
            self.fail(f"{where}: string offset {ref} is outside section STRINGS ({length} bytes)")
        (size,) = struct.unpack_from("<I", self.buf, base + ref)
        end = ref + 4 + size
        if end + 1 > length:
            self.fail(f"{where}: string at offset {ref} of {size} bytes runs past the end of "
                      f"section STRINGS ({length} bytes)")
        raw = self.buf[base + ref + 4:base + end]
        if self.buf[base + end] != 0:
            self.fail(f"{where}: string at offset {ref} is not NUL-terminated")
        if b"\0" in raw:
            self.fail(f"{where}: string at offset {ref} contains a NUL byte")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.fail(f"{where}: string at offset {ref} is not valid UTF-8 "
                      f"({error.reason} at byte {error.start})")
        self.string_cache[ref] = text
        return text

    def blob(self, offset: int, size: int, where: str) -> int:
        """Validate a DATA blob; return its absolute file offset."""
        base, length = self.section(SECTION_DATA)
        if size == 0:
            if offset != 0:
                self.fail(f"{where}: an empty blob must have offset 0, got {offset}")
            return base
        if offset % SMALL_ALIGN:
            self.fail(f"{where}: offset {offset} in DATA is not a multiple of {SMALL_ALIGN}")
        if size >= LARGE_BLOB and offset % DATA_ALIGN:
            self.fail(f"{where}: a {size}-byte blob must start at a multiple of {DATA_ALIGN} in "
                      f"DATA, got offset {offset}")
        if offset + size > length:
            self.fail(f"{where}: bytes {offset}..{offset + size} lie outside section DATA "
                      f"({length} bytes)")
        return base + offset

    # -- sections ------------------------------------------------------------------------------
    def parse_tensors(self) -> list[Tensor]:
        base, length = self.section(SECTION_TENSORS)
        if length < 8:
            self.fail(f"section TENSORS: {length} bytes, too short for its 8-byte preamble")
        count, rsize = _PAIR.unpack_from(self.buf, base)
        if rsize < TENSOR_RECORD_SIZE or rsize % 4 or (rsize != TENSOR_RECORD_SIZE and not self.newer_minor):
            self.fail(f"section TENSORS: record_size is {rsize}, expected {TENSOR_RECORD_SIZE}")
        if length != 8 + count * rsize:
            self.fail(f"section TENSORS: {count} records of {rsize} bytes need {8 + count * rsize} "
                      f"bytes but the section has {length}")
        tensors, names = [], set()
        for i in range(count):
            (name_ref, dcode, ndim, flags, bits, zero_point, qmin, qmax, *rest) = _TENSOR.unpack_from(
                self.buf, base + 8 + i * rsize)
            dims, (scale_count, scale_offset, data_offset, data_size, reserved) = rest[:MAX_DIMS], rest[MAX_DIMS:]
            where = f"section TENSORS, tensor #{i}"
            name = self.string(name_ref, f"{where}: name")
            where = f"section TENSORS, tensor #{i} ({name!r})"
            if name in names:
                self.fail(f"{where}: duplicate tensor name")
            names.add(name)
            if dcode not in DTYPE_NAMES:
                self.fail(f"{where}: dtype code {dcode} is not one of "
                          + ", ".join(f"{c}={d}" for c, d in DTYPE_NAMES.items()))
            dtype = DTYPE_NAMES[dcode]
            if ndim > MAX_DIMS:
                self.fail(f"{where}: ndim {ndim} exceeds {MAX_DIMS}")
            if any(d < 0 for d in dims[:ndim]) or any(d != 0 for d in dims[ndim:]):
                self.fail(f"{where}: shape fields {dims} must be >= 0 for the first {ndim} "
                          f"dimension(s) and 0 after")
            shape = tuple(dims[:ndim])
            elements = math.prod(shape)
            if elements > INT32_MAX:
                self.fail(f"{where}: shape {shape} has more than 2^31-1 elements")
            if flags & ~(FLAG_QUANT | FLAG_CONSTANT):
                self.fail(f"{where}: unknown flag bits {flags:#04x} (known: 0x01 quant, 0x02 constant)")
            if reserved:
                self.fail(f"{where}: reserved field is {reserved}, expected 0")
            quant = None
            if flags & FLAG_QUANT:
                max_bits = 8 if dtype in ("uint8", "int8") else 32
                if not 1 <= bits <= max_bits:
                    self.fail(f"{where}: quant bits {bits} outside 1..{max_bits} for {dtype}")
                if qmin > qmax:
                    self.fail(f"{where}: qmin {qmin} > qmax {qmax}")
                if scale_count < 1:
                    self.fail(f"{where}: a quantized tensor needs at least one scale, scale_count is 0")
                at = self.blob(scale_offset, 4 * scale_count, f"{where}: scales")
                scale = np.frombuffer(self.buf, "<f4", count=scale_count, offset=at).astype(np.float32)
                quant = QuantParams(scale=scale, zero_point=zero_point, bits=bits, qmin=qmin, qmax=qmax)
            elif bits or zero_point or qmin or qmax or scale_count or scale_offset:
                self.fail(f"{where}: not quantized (flag 0x01 clear) but bits/zero_point/qmin/qmax/"
                          f"scale fields are not all 0")
            data = None
            if flags & FLAG_CONSTANT:
                data = self.tensor_data(dtype, quant, shape, elements, data_offset, data_size, where)
            elif data_offset or data_size:
                self.fail(f"{where}: not constant (flag 0x02 clear) but data_offset/data_size are "
                          f"{data_offset}/{data_size}, expected 0/0")
            try:
                tensors.append(Tensor(name, shape, dtype, quant, data))
            except ValueError as error:  # pragma: no cover - guarded above
                self.fail(f"{where}: {error}")
        return tensors

    def tensor_data(self, dtype: str, quant: QuantParams | None, shape: tuple[int, ...],
                    elements: int, offset: int, size: int, where: str) -> np.ndarray:
        if dtype == "int8":
            width = quant.bits if quant is not None else 8
            if not 2 <= width <= 8:
                self.fail(f"{where}: int8 constants are packed at 2..8 bits, the tensor has {width}")
            expected = packed_size(elements, width)
        else:
            width = _RAW_DTYPES[dtype].itemsize * 8
            expected = elements * _RAW_DTYPES[dtype].itemsize
        if size != expected:
            self.fail(f"{where}: data_size is {size} bytes, expected {expected} for {elements} "
                      f"{dtype} element(s) at {width} bits")
        at = self.blob(offset, size, f"{where}: data")
        if dtype != "int8":
            return np.frombuffer(self.buf, _RAW_DTYPES[dtype], count=elements, offset=at) \
                .astype(np.dtype(dtype)).reshape(shape)
        codes = unpack_bits(memoryview(self.buf)[at:at + size], width, elements)
        used = (elements * width) % 8
        if used and self.buf[at + size - 1] >> used:
            self.fail(f"{where}: the unused high bits of the last packed byte are not zero")
        if quant is not None and elements:
            lo, _ = code_range(width, narrow=True)
            low = int(codes.min())
            if low < lo:
                self.fail(f"{where}: weight code {low} is outside the {width}-bit narrow range "
                          f"[{lo}, {-lo}]")
        return codes.reshape(shape)

    def parse_ops(self, tensors: list[Tensor]) -> list[Op]:
        base, length = self.section(SECTION_OPS)
        if length < 8:
            self.fail(f"section OPS: {length} bytes, too short for its 8-byte preamble")
        count, reserved = _PAIR.unpack_from(self.buf, base)
        if reserved:
            self.fail(f"section OPS: reserved field is {reserved}, expected 0")
        if count > (length - 8) // OP_RECORD_FIXED_SIZE:
            self.fail(f"section OPS: {count} ops cannot fit in {length} bytes")
        ops, pos = [], 8
        for i in range(count):
            where = f"section OPS, op #{i}"
            if pos + OP_RECORD_FIXED_SIZE > length:
                self.fail(f"{where}: record at byte {pos} runs past the end of the section ({length} bytes)")
            size, name_ref, kcode, n_in, n_out, n_attrs, reserved = _OP.unpack_from(self.buf, base + pos)
            if size < OP_RECORD_FIXED_SIZE or size % 4 or pos + size > length:
                self.fail(f"{where}: record size {size} must be a multiple of 4, >= "
                          f"{OP_RECORD_FIXED_SIZE} and within the section ({length - pos} bytes left)")
            end = pos + size
            name = self.string(name_ref, f"{where}: name")
            if kcode not in OP_KIND_NAMES or OP_KIND_NAMES[kcode] not in OP_KINDS:
                self.fail(f"{where} ({name!r}): op kind code {kcode} is unknown to this reader "
                          f"(known: {', '.join(f'{c}={k}' for c, k in OP_KIND_NAMES.items())})")
            kind = OP_KIND_NAMES[kcode]
            where = f"section OPS, op #{i} ({name!r}, {kind})"
            if (n_in, n_out) != OP_KINDS[kind]:
                self.fail(f"{where}: {n_in} input(s) and {n_out} output(s), expected "
                          f"{OP_KINDS[kind][0]} and {OP_KINDS[kind][1]}")
            if reserved:
                self.fail(f"{where}: reserved field is {reserved}, expected 0")
            p = pos + OP_RECORD_FIXED_SIZE + 4 * (n_in + n_out)
            if p > end:
                self.fail(f"{where}: record size {size} cannot hold {n_in + n_out} tensor references")
            refs = struct.unpack_from(f"<{n_in + n_out}I", self.buf, base + pos + OP_RECORD_FIXED_SIZE)
            for j, ref in enumerate(refs):
                if ref >= len(tensors):
                    role = f"input {j}" if j < n_in else f"output {j - n_in}"
                    self.fail(f"{where}: {role} refers to tensor #{ref} but the file has "
                              f"{len(tensors)} tensors")
            attrs: dict[str, Any] = {}
            for k in range(n_attrs):
                what = f"{where}, attribute #{k}"
                if p + ATTR_FIXED_SIZE > end:
                    self.fail(f"{what}: runs past the end of the op record")
                key_ref, atype, acount = _ATTR.unpack_from(self.buf, base + p)
                key = self.string(key_ref, f"{what}: key")
                what = f"{where}, attribute {key!r}"
                if not key:
                    self.fail(f"{what}: empty attribute name")
                if key in attrs:
                    self.fail(f"{what}: duplicate attribute")
                if atype not in (ATTR_INT, ATTR_INT_LIST):
                    self.fail(f"{what}: value type {atype}, expected {ATTR_INT} (int) or "
                              f"{ATTR_INT_LIST} (int list)")
                if atype == ATTR_INT and acount != 1:
                    self.fail(f"{what}: an int attribute has count 1, got {acount}")
                if p + ATTR_FIXED_SIZE + 4 * acount > end:
                    self.fail(f"{what}: {acount} values run past the end of the op record")
                values = list(struct.unpack_from(f"<{acount}i", self.buf, base + p + ATTR_FIXED_SIZE))
                attrs[key] = values[0] if atype == ATTR_INT else values
                p += ATTR_FIXED_SIZE + 4 * acount
            if p != end and not self.newer_minor:
                self.fail(f"{where}: record size {size} but its fields take {p - pos} bytes")
            inputs = [tensors[r].name for r in refs[:n_in]]
            outputs = [tensors[r].name for r in refs[n_in:]]
            ops.append(Op(kind, name, inputs, outputs, attrs))
            pos = end
        if pos != length:
            self.fail(f"section OPS: {length - pos} unexpected bytes after the last op")
        return ops

    def parse_io(self, tensors: list[Tensor]) -> tuple[list[str], list[str]]:
        base, length = self.section(SECTION_IO)
        if length < 8:
            self.fail(f"section IO: {length} bytes, too short for its 8-byte preamble")
        n_in, n_out = _PAIR.unpack_from(self.buf, base)
        if length != 8 + 4 * (n_in + n_out):
            self.fail(f"section IO: {n_in} inputs and {n_out} outputs need {8 + 4 * (n_in + n_out)} "
                      f"bytes but the section has {length}")
        refs = struct.unpack_from(f"<{n_in + n_out}I", self.buf, base + 8)
        for j, ref in enumerate(refs):
            if ref >= len(tensors):
                role = f"graph input {j}" if j < n_in else f"graph output {j - n_in}"
                self.fail(f"section IO: {role} refers to tensor #{ref} but the file has "
                          f"{len(tensors)} tensors")
        return [tensors[r].name for r in refs[:n_in]], [tensors[r].name for r in refs[n_in:]]

    def parse_metadata(self) -> dict[str, Any]:
        base, length = self.section(SECTION_METADATA)
        raw = self.buf[base:base + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.fail(f"section METADATA: not valid UTF-8 ({error.reason} at byte {error.start})")
        try:
            meta = json.loads(text)
        except (ValueError, RecursionError) as error:
            self.fail(f"section METADATA: not valid JSON ({error})")
        if not isinstance(meta, dict):
            self.fail(f"section METADATA: expected a JSON object, got {type(meta).__name__}")
        return meta

    def graph(self) -> Graph:
        self.parse_container()
        tensors = self.parse_tensors()
        ops = self.parse_ops(tensors)
        inputs, outputs = self.parse_io(tensors)
        metadata = self.parse_metadata()
        graph = Graph(metadata=metadata, inputs=inputs, outputs=outputs)
        for tensor in tensors:
            graph.add_tensor(tensor)
        for op in ops:
            graph.add_op(op)
        try:
            graph.validate()
        except ValueError as error:
            self.fail(f"invalid graph: {error}")
        self.tensors = tensors
        return graph


def read_bundle_bytes(data: bytes | bytearray | memoryview, source: str = "<memory>") -> Graph:
    """Decode a bundle held in memory; ``source`` names it in error messages."""
    return _Reader(data, source).graph()


def _read_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise BundleError(f"{path}: cannot read: {error.strerror or error}") from None


def read_bundle(path: str | os.PathLike) -> Graph:
    """The graph stored in the bundle at ``path``. Raises :class:`BundleError`."""
    return read_bundle_bytes(_read_file(path), str(path))


def _constant_bits(tensor: Tensor) -> int:
    """Bits per element a constant needs: int8 codes at their quant bits, else the dtype width."""
    if tensor.dtype == "int8":
        return tensor.quant.bits if tensor.quant is not None else 8
    return _RAW_DTYPES[tensor.dtype].itemsize * 8


def ideal_bytes(graph: Graph) -> int:
    """Σ bits × parameters / 8 over the constants (weight codes at their bits, biases at 32,
    per-channel scales at 32): the size a bundle is measured against."""
    bits = 0
    for tensor in graph.tensors.values():
        if tensor.data is None:
            continue
        bits += _constant_bits(tensor) * tensor.data.size
        if tensor.quant is not None:
            bits += 32 * tensor.quant.scale.size
    return math.ceil(bits / 8)


def bundle_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Where the bytes of a bundle go: header, each section, DATA by kind, padding, overhead.

    ``overhead_bytes`` is the file beyond ``ideal_bytes``.
    """
    reader = _Reader(_read_file(path), str(path))
    graph = reader.graph()
    sections = {}
    for sid, (offset, length, crc) in sorted(reader.sections.items(), key=lambda kv: kv[1][0]):
        sections[reader.section_name(sid)] = {"offset": offset, "length": length, "crc32": f"{crc:08x}"}
    by_kind = {"weights": 0, "biases": 0, "scales": 0, "other_constants": 0}
    for tensor in graph.tensors.values():
        if tensor.quant is not None:
            by_kind["scales"] += 4 * tensor.quant.scale.size
        if tensor.data is None:
            continue
        width = _constant_bits(tensor)
        if tensor.dtype == "int8":
            by_kind["weights"] += packed_size(tensor.data.size, width)
        else:
            by_kind["biases" if tensor.dtype == "int32" else "other_constants"] += tensor.data.size * width // 8
    data_length = reader.sections[SECTION_DATA][1]
    by_kind["padding"] = data_length - sum(by_kind.values())
    file_bytes = len(reader.buf)
    ideal = ideal_bytes(graph)
    return {
        "path": str(path),
        "version": f"{reader.version[0]}.{reader.version[1]}",
        "file_bytes": file_bytes,
        "header_bytes": reader.table_end,
        "sections": sections,
        "section_padding_bytes": file_bytes - reader.table_end - sum(s["length"] for s in sections.values()),
        "tensors": len(graph.tensors),
        "constants": sum(t.is_constant for t in graph.tensors.values()),
        "ops": len(graph.ops),
        "data_bytes": by_kind,
        "ideal_bytes": ideal,
        "overhead_bytes": file_bytes - ideal,
        "overhead_ratio": file_bytes / ideal if ideal else None,
    }
