"""Bit packing of signed b-bit weight codes (b = 2..8), the encoding of weights in a bundle.

Layout (``docs/bundle-format.md``, "Bit packing"): the flattened (C order) codes are written
as consecutive b-bit two's complement fields, LSB-first. Read the packed bytes as one
little-endian unsigned integer ``N``; code ``i`` is the field ``(N >> (i * b)) & (2^b - 1)``,
sign-extended from bit ``b - 1``. Equivalently, bit ``k`` of the stream is bit ``k % 8`` of
byte ``k // 8``, and field ``i`` occupies stream bits ``i*b .. i*b + b - 1`` with its least
significant bit first. ``count`` codes take ``ceil(count * b / 8)`` bytes; the unused high
bits of the last byte are zero.

Example (b = 4): codes ``[1, -1, 2, -3]`` pack to bytes ``F1 D2``.
Example (b = 3): codes ``[1, -1, 3, -2, 0]`` pack to bytes ``F9 0C``.

Eight codes of b bits fill exactly b bytes, so packing works on groups of eight codes held
in one little-endian uint64: fully vectorised, no Python loop over elements.
"""
from __future__ import annotations

import numpy as np

MIN_BITS = 2
MAX_BITS = 8

_LE_U64 = np.dtype("<u8")


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    bits = int(bits)
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return bits


def code_range(bits: int, narrow: bool = True) -> tuple[int, int]:
    """The signed codes a ``bits``-bit field may hold: narrow ``±(2^(b-1) - 1)`` or full."""
    bits = _check_bits(bits)
    hi = (1 << (bits - 1)) - 1
    return (-hi if narrow else -hi - 1), hi


def packed_size(count: int, bits: int) -> int:
    """Bytes taken by ``count`` codes of ``bits`` bits: ``ceil(count * bits / 8)``."""
    return (int(count) * _check_bits(bits) + 7) // 8


def pack_bits(values: np.ndarray, bits: int, *, narrow: bool = True) -> bytes:
    """Pack signed integer codes (any shape, flattened in C order) into b-bit fields.

    ``narrow=True`` (weights) requires codes in ``-(2^(b-1) - 1) .. 2^(b-1) - 1``;
    ``narrow=False`` also allows ``-2^(b-1)``. Raises ``ValueError`` naming the bits.
    """
    bits = _check_bits(bits)
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise ValueError(f"{bits}-bit packing needs integer codes, got dtype {arr.dtype}")
    flat = arr.reshape(-1)
    count = flat.size
    if count == 0:
        return b""
    lo, hi = code_range(bits, narrow)
    vmin, vmax = int(flat.min()), int(flat.max())
    if vmin < lo or vmax > hi:
        kind = "narrow-range " if narrow else ""
        raise ValueError(f"{bits}-bit {kind}codes must lie in [{lo}, {hi}], got values in "
                         f"[{vmin}, {vmax}]")
    # two's complement, truncated to b bits (values are in range, so the int8 wrap is exact)
    fields = flat.astype(np.int8).view(np.uint8)
    if bits == 8:
        return fields.tobytes()
    mask = np.uint8((1 << bits) - 1)
    groups = (count + 7) // 8
    codes = np.zeros(groups * 8, dtype=np.uint8)
    np.bitwise_and(fields, mask, out=codes[:count])
    codes = codes.reshape(groups, 8).astype(np.uint64)
    acc = codes[:, 0].copy()
    for j in range(1, 8):  # 8 vectorised steps, one per field slot in the group
        acc |= codes[:, j] << np.uint64(j * bits)
    raw = acc.astype(_LE_U64).view(np.uint8).reshape(groups, 8)[:, :bits]
    return raw.tobytes()[: packed_size(count, bits)]


def unpack_bits(data: bytes | bytearray | memoryview, bits: int, count: int) -> np.ndarray:
    """The ``count`` signed codes (int8, flat) packed at ``bits`` bits in ``data``.

    ``data`` must hold at least ``ceil(count * bits / 8)`` bytes; only those are read.
    """
    bits = _check_bits(bits)
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    need = packed_size(count, bits)
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < need:
        raise ValueError(f"{count} codes of {bits} bits need {need} bytes, got {buf.size}")
    if count == 0:
        return np.zeros(0, dtype=np.int8)
    if bits == 8:
        return buf[:need].view(np.int8).copy()
    groups = (count + 7) // 8
    raw = np.zeros((groups, 8), dtype=np.uint8)
    flat_raw = np.zeros(groups * bits, dtype=np.uint8)
    flat_raw[:need] = buf[:need]
    raw[:, :bits] = flat_raw.reshape(groups, bits)
    acc = raw.view(_LE_U64).reshape(groups)
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((groups, 8), dtype=np.int16)
    for j in range(8):
        out[:, j] = (acc >> np.uint64(j * bits)) & mask
    flat = out.reshape(-1)[:count]
    flat -= (flat >> (bits - 1)) << bits  # sign-extend: subtract 2^b where bit b-1 is set
    return flat.astype(np.int8)
