"""Fixed-point requantization primitives (TFLite / gemmlowp semantics), vectorised in numpy.

Every function here is bit-exact with the definitions in ``docs/arithmetic.md``: the C kernels
implement the same arithmetic and are held to it with tolerance 0. Inputs may be numpy arrays
or Python integers and broadcast against each other (a per-channel multiplier is applied by
shaping ``m0`` / ``shift`` so that they broadcast along the channel axis). Intermediates are
int64; results are int32.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    "INT32_MAX", "INT32_MIN", "multiply_by_quantized_multiplier", "quantize_multiplier",
    "quantize_multipliers", "rounding_divide_by_pot", "saturating_rounding_doubling_high_mul",
]


def _as_int32_operand(x, what: str) -> np.ndarray:
    """``x`` as an int64 array, checked to hold int32 values only."""
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{what}: expected integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        raise OverflowError(f"{what}: value outside int32 [{a.min()}, {a.max()}]")
    return a


# --------------------------------------------------------------------------- offline: M -> (M0, shift)

def quantize_multiplier(m: float) -> tuple[int, int]:
    """A real multiplier as (M0, shift): ``m ≈ M0 · 2^(shift − 31)``, M0 a Q31 int32.

    ``frexp`` gives m = q · 2^shift with |q| in [0.5, 1); M0 = round-half-away-from-zero(q · 2^31).
    A rounding up to 2^31 is renormalised to (2^30, shift + 1); shift < −31 (|m| below about
    2^-32) flushes to (0, 0); m == 0 gives (0, 0).
    """
    m = float(m)
    if not math.isfinite(m):
        raise ValueError(f"quantize_multiplier: multiplier must be finite, got {m}")
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    # q · 2^31 is exact in double; adding 0.5 to its magnitude is exact too (|q · 2^31| < 2^31
    # and q has 53 significant bits), so floor gives round-half-away-from-zero exactly.
    scaled = abs(q) * float(1 << 31)
    q_fixed = int(math.floor(scaled + 0.5))
    if q < 0:
        q_fixed = -q_fixed
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        q_fixed, shift = 0, 0
    return int(q_fixed), int(shift)


def quantize_multipliers(m) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`quantize_multiplier`: (M0 int32 array, shift int32 array), same shape."""
    m = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise ValueError("quantize_multipliers: multipliers must be finite")
    q, shift = np.frexp(m)
    shift = shift.astype(np.int64)
    scaled = np.abs(q) * float(1 << 31)
    q_fixed = np.floor(scaled + 0.5).astype(np.int64)
    q_fixed = np.where(q < 0, -q_fixed, q_fixed)
    full = q_fixed == (1 << 31)
    q_fixed = np.where(full, q_fixed // 2, q_fixed)
    shift = np.where(full, shift + 1, shift)
    flush = (shift < -31) | (m == 0.0)
    q_fixed = np.where(flush, 0, q_fixed)
    shift = np.where(flush, 0, shift)
    return q_fixed.astype(np.int32), shift.astype(np.int32)


# --------------------------------------------------------------------------- runtime primitives

def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """SRDHM (NEON ``VQRDMULH``): ``(a·b + nudge) / 2^31`` with C truncating division.

    nudge = 2^30 if a·b ≥ 0 else 1 − 2^30, i.e. round(a·b / 2^31) with ties towards +inf. The
    only overflow, a == b == INT32_MIN, saturates to INT32_MAX.
    """
    a = _as_int32_operand(a, "saturating_rounding_doubling_high_mul(a)")
    b = _as_int32_operand(b, "saturating_rounding_doubling_high_mul(b)")
    ab = a * b  # |ab| <= 2^62: exact in int64, and ab + nudge cannot overflow
    v = ab + np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    # C division truncates towards zero; >> floors, so correct negatives with a remainder.
    q = (v >> 31) + ((v < 0) & ((v & np.int64((1 << 31) - 1)) != 0))
    q = np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), q)
    return q.astype(np.int32)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero (gemmlowp RoundingDivideByPOT).

    mask = 2^e − 1; remainder = x & mask; threshold = (mask >> 1) + (x < 0);
    result = (x >> e) + (remainder > threshold), with an arithmetic shift. ``exponent`` may be
    an array (0…31) broadcasting against ``x``.
    """
    x = _as_int32_operand(x, "rounding_divide_by_pot(x)")
    e = np.asarray(exponent)
    if e.dtype.kind not in "iub":
        raise TypeError(f"rounding_divide_by_pot: exponent must be integer, got dtype {e.dtype}")
    e = e.astype(np.int64)
    if e.size and (e.min() < 0 or e.max() > 31):
        raise ValueError(f"rounding_divide_by_pot: exponent must be in 0..31, got "
                         f"[{e.min()}, {e.max()}]")
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return ((x >> e) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(x, m0, shift) -> np.ndarray:
    """x · M in the TFLite double-rounding form: RDBPOT(SRDHM(x · 2^left, M0), right).

    left = max(shift, 0), right = max(−shift, 0). ``x · 2^left`` must fit int32 (the C kernels
    shift in int32); an OverflowError is raised otherwise.
    """
    x = _as_int32_operand(x, "multiply_by_quantized_multiplier(x)")
    shift = np.asarray(shift)
    if shift.dtype.kind not in "iub":
        raise TypeError(f"multiply_by_quantized_multiplier: shift must be integer, got {shift.dtype}")
    shift = shift.astype(np.int64)
    if shift.size and shift.max() > 31:
        raise ValueError(f"multiply_by_quantized_multiplier: left shift {shift.max()} > 31")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = x << left
    if shifted.size and (shifted.min() < INT32_MIN or shifted.max() > INT32_MAX):
        raise OverflowError("multiply_by_quantized_multiplier: x · 2^left_shift overflows int32 "
                            f"(range [{shifted.min()}, {shifted.max()}])")
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m0), right)
