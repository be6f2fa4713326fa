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

def multiply_by_quantized_multiplier(x, m0, shift) -> np.ndarray:
    """``x · M0 · 2^(shift − 31)`` rounded once, to nearest with ties upwards.

    ``(int64(x) · M0 + 2^(t − 1)) >> t`` with ``t = 31 − shift`` (arithmetic shift). One
    rounding, half up — the same rule as training's ``floor(v + 1/2)`` — rather than TFLite's
    default two (SRDHM then RDBPOT), which can be a whole code off on the small accumulators
    of low-bit layers (docs/arithmetic.md §5). The result must fit int32 (OverflowError).
    """
    x = _as_int32_operand(x, "multiply_by_quantized_multiplier(x)")
    m0 = _as_int32_operand(m0, "multiply_by_quantized_multiplier(m0)")
    shift = np.asarray(shift)
    if shift.dtype.kind not in "iub":
        raise TypeError(f"multiply_by_quantized_multiplier: shift must be integer, got {shift.dtype}")
    shift = shift.astype(np.int64)
    if shift.size and shift.max() > 30:
        raise ValueError(f"multiply_by_quantized_multiplier: shift {shift.max()} > 30")
    t = 31 - shift
    result = (x * m0 + (np.int64(1) << (t - 1))) >> t
    if result.size and (result.min() < INT32_MIN or result.max() > INT32_MAX):
        raise OverflowError("multiply_by_quantized_multiplier: result overflows int32 "
                            f"(range [{result.min()}, {result.max()}])")
    return result.astype(np.int32)
