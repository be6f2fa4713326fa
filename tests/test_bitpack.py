"""Bit packing of signed b-bit weight codes (docs/bundle-format.md, "Bit packing")."""
import time

import numpy as np
import pytest

from ddq_edge.bitpack import code_range, pack_bits, packed_size, unpack_bits


def _reference_pack(codes, bits):
    """The spec, literally: the bytes are one little-endian integer of b-bit fields."""
    n = 0
    for i, code in enumerate(int(c) for c in codes):
        n |= (code & ((1 << bits) - 1)) << (i * bits)
    return n.to_bytes((len(codes) * bits + 7) // 8, "little")


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1001])
def test_round_trip_and_reference_layout(bits, count):
    rng = np.random.default_rng(bits * 1000 + count)
    lo, hi = code_range(bits)
    codes = rng.integers(lo, hi + 1, count).astype(np.int8)
    packed = pack_bits(codes, bits)
    assert isinstance(packed, bytes)
    assert len(packed) == packed_size(count, bits) == (count * bits + 7) // 8
    assert packed == _reference_pack(codes, bits)
    out = unpack_bits(packed, bits, count)
    assert out.dtype == np.int8 and out.shape == (count,)
    np.testing.assert_array_equal(out, codes)
    np.testing.assert_array_equal(unpack_bits(memoryview(packed), bits, count), codes)


@pytest.mark.parametrize("bits", range(2, 9))
def test_extremes_and_multidimensional_input(bits):
    lo, hi = code_range(bits)
    codes = np.array([[lo, hi, 0], [-1, 1, hi]], dtype=np.int8)
    packed = pack_bits(codes, bits)
    np.testing.assert_array_equal(unpack_bits(packed, bits, codes.size), codes.reshape(-1))
    # full range (non-narrow) allows -2^(b-1)
    full = np.array([lo - 1, hi, 0, lo - 1], dtype=np.int8)
    np.testing.assert_array_equal(unpack_bits(pack_bits(full, bits, narrow=False), bits, 4), full)


def test_known_bytes_pin_the_bit_order():
    # 4 bits: fields 0x1, 0xF, 0x2, 0xD, LSB first -> F1 D2
    assert pack_bits(np.array([1, -1, 2, -3], np.int8), 4) == bytes([0xF1, 0xD2])
    # 3 bits: 001 111 011 110 000 -> stream 0b000_110_011_111_001 = 0x0CF9 -> F9 0C
    assert pack_bits(np.array([1, -1, 3, -2, 0], np.int8), 3) == bytes([0xF9, 0x0C])
    # 2 bits: 1, -1(11), 0, 1 -> 0b01_00_11_01 = 0x4D
    assert pack_bits(np.array([1, -1, 0, 1], np.int8), 2) == bytes([0x4D])
    # 5 bits: 15 (01111), -15 (10001) -> 0b10001_01111 = 0x22F -> 2F 02
    assert pack_bits(np.array([15, -15], np.int8), 5) == bytes([0x2F, 0x02])
    # 8 bits: plain two's complement bytes
    assert pack_bits(np.array([127, -127, -1], np.int8), 8) == bytes([0x7F, 0x81, 0xFF])
    # the unused high bits of the last byte are zero
    assert pack_bits(np.array([-1], np.int8), 3) == bytes([0x07])


def test_other_integer_containers_are_accepted():
    codes = np.array([3, -3, 0, 1], dtype=np.int32)
    assert pack_bits(codes, 3) == pack_bits(codes.astype(np.int8), 3)


@pytest.mark.parametrize("bits", range(2, 9))
def test_out_of_range_codes_raise_naming_the_bits(bits):
    lo, hi = code_range(bits)
    with pytest.raises(ValueError, match=f"{bits}-bit"):
        pack_bits(np.array([0, hi + 1], np.int16), bits)
    with pytest.raises(ValueError, match=f"{bits}-bit narrow-range"):
        pack_bits(np.array([lo - 1, 0], np.int16), bits)  # -2^(b-1) is outside the narrow range
    with pytest.raises(ValueError, match=f"{bits}-bit"):
        pack_bits(np.array([lo - 2], np.int16), bits, narrow=False)


@pytest.mark.parametrize("bits", [0, 1, 9, 16, -4, 2.0, "4", True])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits"):
        pack_bits(np.zeros(4, np.int8), bits)
    with pytest.raises(ValueError, match="bits"):
        unpack_bits(b"\0\0\0\0", bits, 4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="integer codes"):
        pack_bits(np.array([0.5, 1.0]), 4)
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(b"\x00", 4, 3)
    with pytest.raises(ValueError, match="count"):
        unpack_bits(b"\x00", 4, -1)
    # extra bytes are ignored: only ceil(count*bits/8) are read
    np.testing.assert_array_equal(unpack_bits(bytes([0xF1, 0xD2, 0xAA]), 4, 4), [1, -1, 2, -3])


def test_three_million_codes_pack_fast():
    rng = np.random.default_rng(0)
    codes = rng.integers(-7, 8, 3_000_000).astype(np.int8)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        packed = pack_bits(codes, 4)
        best = min(best, time.perf_counter() - start)
    print(f"pack 3M 4-bit codes: {best * 1000:.1f} ms")
    assert best < 0.5
    np.testing.assert_array_equal(unpack_bits(packed, 4, codes.size), codes)
    codes3 = np.clip(codes, -3, 3)
    start = time.perf_counter()
    pack_bits(codes3, 3)
    assert time.perf_counter() - start < 0.5
