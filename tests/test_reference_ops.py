"""The numpy integer reference (ddq_edge.reference): fixed-point primitives and ops.

Exactness is checked against independent Python-integer / explicit-loop implementations written
here; accuracy against float64 computations on the dequantized operands.
"""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddq_edge.ir import QuantParams
from ddq_edge.reference import fixed_point as fp
from ddq_edge.reference import ops

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1


# --------------------------------------------------------------------------- exact Python models

def mbqm_exact(x: int, m0: int, shift: int) -> int:
    """floor(x · M0 / 2^(31 − shift) + 1/2) in exact rational arithmetic."""
    return math.floor(Fraction(x * m0, 2 ** (31 - shift)) + Fraction(1, 2))


def c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def f64(v) -> float:
    """A float32 scale widened to double."""
    return float(np.float32(v))


def act_qp(rng, bits: int, scale: float | None = None, zp: int | None = None) -> QuantParams:
    qmax = 2 ** bits - 1
    if scale is None:
        scale = float(rng.uniform(0.005, 0.2))
    if zp is None:
        zp = int(rng.integers(0, qmax + 1))
    return QuantParams(np.array([scale], np.float32), zp, bits, 0, qmax)


def weight_qp(rng, bits: int, n_out: int) -> QuantParams:
    qmax = 2 ** (bits - 1) - 1
    return QuantParams(rng.uniform(0.002, 0.1, n_out).astype(np.float32), 0, bits, -qmax, qmax)


def rand_codes(rng, shape, qp: QuantParams, dtype) -> np.ndarray:
    return rng.integers(qp.qmin, qp.qmax + 1, size=shape).astype(dtype)


# --------------------------------------------------------------------------- fixed point

EDGE = [I32_MIN, I32_MIN + 1, -(2 ** 30), -12345, -2, -1, 0, 1, 2, 3, 12345, 2 ** 30,
        I32_MAX - 1, I32_MAX]


def test_quantize_multiplier_known_values():
    qm = fp.quantize_multiplier
    assert qm(0.5) == (2 ** 30, 0)
    assert qm(1.0) == (2 ** 30, 1)
    assert qm(0.75) == (3 * 2 ** 29, 0)
    assert qm(0.25) == (2 ** 30, -1)
    assert qm(3.0) == (3 * 2 ** 29, 2)
    assert qm(0.0) == (0, 0)
    assert qm(2.0 ** -40) == (0, 0)          # shift -39 < -31: flushed
    assert qm(2.0 ** -32) == (2 ** 30, -31)  # shift exactly -31: kept
    assert qm(2.0 ** -33) == (0, 0)
    # just below one: q·2^31 rounds to 2^31 -> renormalised
    assert qm(1.0 - 2.0 ** -40) == (2 ** 30, 1)
    assert qm(np.nextafter(1.0, 0.0)) == (2 ** 30, 1)
    assert qm(0.5 - 2.0 ** -45) == (2 ** 30, 0)  # just below 0.5 -> q≈1 -> 2^31 -> renormalised
    # round half away from zero on an exact tie
    assert qm(0.5 + 2.0 ** -32) == (2 ** 30 + 1, 0)   # q·2^31 = 2^30 + 0.5
    assert qm(0.5 + 2.0 ** -33) == (2 ** 30, 0)       # 2^30 + 0.25
    assert qm(-0.5 - 2.0 ** -32) == (-(2 ** 30) - 1, 0)
    assert qm(-0.5) == (-(2 ** 30), 0)
    with pytest.raises(ValueError):
        qm(float("nan"))


def test_quantize_multipliers_vectorised_matches_scalar():
    rng = np.random.default_rng(2)
    m = np.concatenate([np.exp2(rng.uniform(-40, 8, 2000)), [0.0, 0.5, 1.0, 1 - 2.0 ** -40,
                                                             2.0 ** -32, 2.0 ** -33,
                                                             0.5 + 2.0 ** -32, -0.75]])
    m0, shift = fp.quantize_multipliers(m)
    assert m0.dtype == np.int32 and shift.dtype == np.int32
    assert list(zip(m0.tolist(), shift.tolist())) == [fp.quantize_multiplier(float(v)) for v in m]
    m0, shift = fp.quantize_multipliers(m.reshape(2, -1))
    assert m0.shape == (2, m.size // 2)


def test_multiply_by_quantized_multiplier_exact_and_accurate():
    rng = np.random.default_rng(3)
    for _ in range(40):
        m = float(np.exp2(rng.uniform(-34, 5)))
        m0, shift = fp.quantize_multiplier(m)
        lim = I32_MAX >> max(shift, 0)
        x = np.concatenate([rng.integers(-lim, lim, 200), [0, 1, -1, lim, -lim]])
        got = fp.multiply_by_quantized_multiplier(x, m0, shift)
        assert got.dtype == np.int32
        assert got.tolist() == [mbqm_exact(int(v), m0, shift) for v in x]
        if shift >= -31 and m0 != 0:
            err = np.abs(got.astype(np.float64) - x.astype(np.float64) * m)
            assert err.max() <= 1.0 + 1e-9 * np.abs(x).max() * m
    # per-channel along axis 1
    ms = np.array([0.3, 0.0007, 1.7])
    m0, shift = fp.quantize_multipliers(ms)
    x = rng.integers(-100000, 100000, (4, 3, 5))
    got = fp.multiply_by_quantized_multiplier(x, m0.reshape(1, 3, 1), shift.reshape(1, 3, 1))
    want = [[[mbqm_exact(int(v), int(m0[c]), int(shift[c])) for v in x[n, c]] for c in range(3)]
            for n in range(4)]
    assert got.tolist() == want
    with pytest.raises(OverflowError):
        fp.multiply_by_quantized_multiplier(2 ** 28, 2 ** 30, 4)  # 2^28 · 2^3 overflows int32


def test_single_rounding_where_double_rounding_is_a_code_off():
    """8 · 0.0614 = 0.491 must give 0; TFLite's SRDHM-then-RDBPOT would round 7.86 → 8 and
    then 8/16 = 0.5 → 1. Low-bit layers have accumulators this small."""
    m0, shift = fp.quantize_multiplier(0.061427273)
    assert (m0, shift) == (2110625029, -4)
    assert int(fp.multiply_by_quantized_multiplier(8, m0, shift)) == 0
    assert int(fp.multiply_by_quantized_multiplier(-8, m0, shift)) == 0
    assert int(fp.multiply_by_quantized_multiplier(9, m0, shift)) == 1  # 0.553
    # ties go up: 0.5 → 1, −0.5 → 0
    assert int(fp.multiply_by_quantized_multiplier(1, 2 ** 30, 0)) == 1
    assert int(fp.multiply_by_quantized_multiplier(-1, 2 ** 30, 0)) == 0


# --------------------------------------------------------------------------- quantize / dequantize

def test_quantize_rounds_half_up_and_handles_nan_inf():
    qp = QuantParams(np.array([0.5], np.float32), 10, 8, 0, 255)
    x = np.array([1.25, -1.25, 0.75, -0.75, 0.0, -0.0, 0.2499, 1000.0, -1000.0,
                  np.nan, np.inf, -np.inf], np.float32)
    got = ops.quantize(x, qp)
    assert got.dtype == np.uint8
    # 2.5 -> 3, -2.5 -> -2, 1.5 -> 2, -1.5 -> -1 (half up), NaN -> zp, ±inf clamp
    assert got.tolist() == [13, 8, 12, 9, 10, 10, 10, 255, 0, 10, 255, 0]
    qp4 = QuantParams(np.array([0.1], np.float32), 3, 4, 0, 15)
    assert ops.quantize(np.array([[np.nan, 100.0, -100.0]], np.float32), qp4).tolist() == \
        [[3, 15, 0]]


def test_quantize_is_float32_in_the_specified_order():
    rng = np.random.default_rng(5)
    s = rng.uniform(0.001, 0.1, 20000).astype(np.float32)
    k = rng.integers(-120, 120, 20000)
    x = ((k + 0.5) * s.astype(np.float64)).astype(np.float32)  # near the rounding ties
    want32 = np.floor(x / s + np.float32(0.5))
    want64 = np.floor(x.astype(np.float64) / s.astype(np.float64) + 0.5)
    differ = np.flatnonzero(want32 != want64)
    assert differ.size > 10  # float32 vs double is observable on these inputs
    idx = np.concatenate([differ[:300], np.arange(300)])
    got = [int(ops.quantize(x[i:i + 1], QuantParams(s[i:i + 1], 128, 8, 0, 255))[0]) for i in idx]
    assert got == (np.clip(want32[idx], -128, 127) + 128).astype(int).tolist()


def test_dequantize():
    qp = QuantParams(np.array([0.1], np.float32), 7, 4, 0, 15)
    q = np.arange(16, dtype=np.uint8).reshape(1, 16)
    got = ops.dequantize(q, qp)
    assert got.dtype == np.float32
    assert np.array_equal(got, (np.arange(16) - 7).astype(np.float32).reshape(1, 16)
                          * np.float32(0.1))


def test_act_range():
    qp = QuantParams(np.array([0.05], np.float32), 10, 8, 0, 255)
    assert ops.act_range(qp, relu=False, relu6=False) == (0, 255)
    assert ops.act_range(qp, relu=True, relu6=False) == (10, 255)
    six = int(np.floor(np.float32(6.0) / np.float32(0.05) + np.float32(0.5))) + 10
    assert ops.act_range(qp, relu=False, relu6=True) == (10, six)
    assert six == 130
    big = QuantParams(np.array([0.1], np.float32), 3, 4, 0, 15)  # 6.0 lies beyond qmax
    assert ops.act_range(big, relu=True, relu6=True) == (3, 15)
    # ReLU6 bound uses the quantize rounding (floor(x/s + 0.5)): 6/0.4 = 15 -> +zp
    qp2 = QuantParams(np.array([0.4], np.float32), 0, 8, 0, 255)
    assert ops.act_range(qp2, relu6=True) == (0, int(ops.quantize(np.float32([6.0]), qp2)[0]))


# --------------------------------------------------------------------------- conv2d / fc

def conv_float(x, xq, w, wq, bias, oq, stride, padding, dilation, groups):
    """Output codes (float64, unrounded) from the dequantized operands."""
    xr = (x.astype(np.float64) - xq.zero_point) * f64(xq.scale[0])
    sw = wq.scale.astype(np.float64)
    wr = w.astype(np.float64) * sw.reshape(-1, 1, 1, 1)
    pt, pl, pb, pr = padding
    xt = F.pad(torch.from_numpy(xr), (pl, pr, pt, pb))
    y = F.conv2d(xt, torch.from_numpy(wr), stride=tuple(stride), dilation=tuple(dilation),
                 groups=groups).numpy()
    y = y + (bias.astype(np.float64) * f64(xq.scale[0]) * sw).reshape(1, -1, 1, 1)
    return y / f64(oq.scale[0]) + oq.zero_point


def conv_loop(x, xq, w, wq, bias, oq, stride, padding, dilation, groups, act_min, act_max):
    n_, c_, h_, w_ = x.shape
    o_, cg, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h_ + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w_ + pl + pr - dw * (kw - 1) - 1) // sw + 1
    og = o_ // groups
    xl, wl, bl = x.tolist(), w.tolist(), bias.tolist()
    zp = xq.zero_point
    out = np.zeros((n_, o_, oh, ow), np.uint8)
    for o in range(o_):
        g = o // og
        m0, shift = fp.quantize_multiplier(f64(xq.scale[0]) * f64(wq.scale[o]) / f64(oq.scale[0]))
        for n, oy, ox in product(range(n_), range(oh), range(ow)):
            acc = bl[o]
            for ci, ky, kx in product(range(cg), range(kh), range(kw)):
                iy, ix = oy * sh - pt + ky * dh, ox * sw - pl + kx * dw
                if 0 <= iy < h_ and 0 <= ix < w_:
                    acc += wl[o][ci][ky][kx] * (xl[n][g * cg + ci][iy][ix] - zp)
            assert I32_MIN <= acc <= I32_MAX
            out[n, o, oy, ox] = min(max(mbqm_exact(acc, m0, shift) + oq.zero_point, act_min),
                                    act_max)
    return out


# (N, C, H, W, O, kh, kw, stride, padding [t, l, b, r], dilation, groups)
CONV_CASES = [
    (1, 3, 8, 8, 4, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),      # 1x1
    (2, 5, 7, 11, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),     # 3x3, batch 2, odd C, non-square
    (1, 7, 9, 6, 7, 3, 3, (2, 2), (1, 0, 1, 2), (1, 1), 7),      # depthwise, stride 2, asym pad
    (2, 6, 8, 8, 12, 3, 3, (1, 2), (0, 1, 2, 1), (1, 1), 6),     # depthwise, multiplier 2
    (1, 9, 6, 10, 6, 3, 1, (2, 1), (1, 1, 1, 1), (1, 1), 3),     # grouped, non-square kernel
    (1, 4, 9, 9, 5, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),      # dilation 2
    (2, 3, 10, 7, 8, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 1),     # 5x5, stride 2
]


def _random_conv(rng, case, wb, ab, out_bits=8, relu=False):
    n, c, h, w_, o, kh, kw, stride, padding, dilation, groups = case
    xq = act_qp(rng, ab)
    wq = weight_qp(rng, wb, o)
    x = rand_codes(rng, (n, c, h, w_), xq, np.uint8)
    w = rand_codes(rng, (o, c // groups, kh, kw), wq, np.int8)
    span = (2 ** ab) * (2 ** (wb - 1)) * 2
    bias = rng.integers(-span, span, o).astype(np.int32)
    # output grid fitted to the float result (slightly narrower, so some outputs clamp)
    oq0 = QuantParams(np.array([1.0], np.float32), 0, out_bits, 0, 2 ** out_bits - 1)
    r = conv_float(x, xq, w, wq, bias, oq0, stride, padding, dilation, groups)
    lo, hi = float(r.min()), float(r.max())
    qmax = 2 ** out_bits - 1
    s_out = max(hi - lo, 1e-6) / qmax * float(rng.uniform(0.8, 1.1))
    zp_out = int(np.clip(round(-lo / s_out), 0, qmax))
    oq = QuantParams(np.array([s_out], np.float32), zp_out, out_bits, 0, qmax)
    amin, amax = ops.act_range(oq, relu=relu)
    return x, xq, w, wq, bias, oq, stride, padding, dilation, groups, amin, amax


def test_conv2d_matches_float_within_one_code():
    rng = np.random.default_rng(10)
    exact = total = 0
    for case in CONV_CASES:
        for wb, ab in product(range(2, 9), range(2, 9)):
            args = _random_conv(rng, case, wb, ab, relu=bool(rng.integers(0, 2)))
            x, xq, w, wq, bias, oq, stride, padding, dilation, groups, amin, amax = args
            got = ops.conv2d(x, xq, w, wq, bias, oq, stride=stride, padding=padding,
                             dilation=dilation, groups=groups, act_min=amin, act_max=amax)
            ref = conv_float(x, xq, w, wq, bias, oq, stride, padding, dilation, groups)
            want = np.clip(np.floor(ref + 0.5), amin, amax)
            assert got.dtype == np.uint8 and got.shape == want.shape, (case, wb, ab)
            diff = np.abs(got.astype(np.float64) - want)
            assert diff.max() <= 1, (case, wb, ab, diff.max())
            # sharper: one rounding puts the result within 1/2 code of the exact real value,
            # up to the 2^-31 relative error of the Q31 multiplier (clamping only shrinks it)
            err = np.abs(got - np.clip(ref, amin, amax))
            assert np.all(err <= 0.5 + 1e-6 * (1 + np.abs(ref))), (case, wb, ab, err.max())
            exact += int((diff == 0).sum())
            total += diff.size
    assert exact / total > 0.999


SMALL_CONV_CASES = [
    (1, 3, 5, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 4, 5, 5, 4, 3, 3, (2, 2), (0, 1, 2, 0), (1, 1), 4),   # depthwise
    (1, 6, 4, 7, 4, 1, 3, (1, 2), (1, 2, 0, 1), (1, 1), 2),   # grouped
    (1, 2, 7, 6, 3, 2, 3, (1, 1), (1, 1, 1, 1), (2, 1), 1),   # dilation, even kernel
    (2, 1, 6, 6, 3, 3, 3, (3, 2), (0, 0, 0, 0), (1, 1), 1),
]


def test_conv2d_exactly_equals_explicit_loop():
    rng = np.random.default_rng(11)
    for i, case in enumerate(SMALL_CONV_CASES):
        for wb, ab, out_bits in [(2, 2, 2), (4, 3, 4), (8, 8, 8), (3, 8, 5), (8, 2, 8)]:
            args = _random_conv(rng, case, wb, ab, out_bits=out_bits, relu=bool(i % 2))
            got = ops.conv2d(*args[:6], stride=args[6], padding=args[7], dilation=args[8],
                             groups=args[9], act_min=args[10], act_max=args[11])
            want = conv_loop(*args)
            assert np.array_equal(got, want), (case, wb, ab, out_bits)


def test_conv2d_left_shift_multiplier_and_relu6_exact():
    """A multiplier above 1 (positive shift) and a ReLU6 clamp."""
    rng = np.random.default_rng(12)
    xq = act_qp(rng, 2, scale=0.1, zp=1)
    wq = QuantParams(np.array([0.05, 0.2, 0.01], np.float32), 0, 2, -1, 1)
    oq = QuantParams(np.array([0.0013], np.float32), 40, 8, 0, 255)  # M = 0.1·s_w/0.0013 > 1
    x = rand_codes(rng, (1, 2, 5, 5), xq, np.uint8)
    w = rand_codes(rng, (3, 2, 3, 3), wq, np.int8)
    bias = np.array([3, -2, 5], np.int32)
    amin, amax = ops.act_range(oq, relu6=True)
    args = (x, xq, w, wq, bias, oq, (1, 1), (1, 1, 1, 1), (1, 1), 1, amin, amax)
    assert fp.quantize_multipliers(ops.conv_multipliers(xq, wq, oq, 3))[1].max() > 0
    got = ops.conv2d(*args[:6], stride=args[6], padding=args[7], dilation=args[8],
                     groups=args[9], act_min=amin, act_max=amax)
    assert np.array_equal(got, conv_loop(*args))
    assert got.max() <= amax and got.min() >= amin


def test_conv2d_zero_point_padding():
    """A padded position contributes (zp − zp) = 0: an input all at the zero point gives bias only."""
    xq = QuantParams(np.array([0.1], np.float32), 7, 4, 0, 15)
    wq = QuantParams(np.array([0.5], np.float32), 0, 4, -7, 7)
    oq = QuantParams(np.array([0.05], np.float32), 100, 8, 0, 255)
    x = np.full((1, 1, 3, 3), 7, np.uint8)
    w = np.full((1, 1, 3, 3), 7, np.int8)
    got = ops.conv2d(x, xq, w, wq, np.array([0], np.int32), oq, padding=(1, 1, 1, 1))
    assert np.all(got == 100)


def test_fully_connected_exact_and_float():
    rng = np.random.default_rng(13)
    for wb, ab in [(2, 2), (4, 6), (8, 8), (3, 8)]:
        xq = act_qp(rng, ab)
        wq = weight_qp(rng, wb, 10)
        x = rand_codes(rng, (3, 37), xq, np.uint8)
        w = rand_codes(rng, (10, 37), wq, np.int8)
        bias = rng.integers(-500, 500, 10).astype(np.int32)
        real = ((x.astype(np.float64) - xq.zero_point) * f64(xq.scale[0])) @ \
            (w.astype(np.float64) * wq.scale.astype(np.float64)[:, None]).T + \
            bias * f64(xq.scale[0]) * wq.scale.astype(np.float64)
        s_out = (real.max() - real.min()) / 255
        oq = QuantParams(np.array([s_out], np.float32),
                         int(np.clip(round(-real.min() / s_out), 0, 255)), 8, 0, 255)
        got = ops.fully_connected(x, xq, w, wq, bias, oq, act_min=0, act_max=255)
        want = np.clip(np.floor(real / f64(oq.scale[0]) + oq.zero_point + 0.5), 0, 255)
        assert np.abs(got - want).max() <= 1
        # exact: fully_connected is a 1x1 conv on (N, I, 1, 1)
        as_conv = ops.conv2d(x[:, :, None, None], xq, w[:, :, None, None], wq, bias, oq,
                             act_min=0, act_max=255)
        assert np.array_equal(got, as_conv[:, :, 0, 0])
        for nn, o in [(0, 0), (2, 9), (1, 4)]:
            acc = int(bias[o]) + sum(int(w[o, i]) * (int(x[nn, i]) - xq.zero_point)
                                     for i in range(37))
            m0, sh = fp.quantize_multiplier(f64(xq.scale[0]) * f64(wq.scale[o]) / f64(oq.scale[0]))
            assert got[nn, o] == min(max(mbqm_exact(acc, m0, sh) + oq.zero_point, 0), 255)


def test_int32_overflow_raises():
    xq = QuantParams(np.array([0.1], np.float32), 0, 8, 0, 255)
    wq = QuantParams(np.array([0.01], np.float32), 0, 8, -127, 127)
    oq = QuantParams(np.array([1.0], np.float32), 0, 8, 0, 255)
    x = np.full((1, 1, 2, 2), 255, np.uint8)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    with pytest.raises(OverflowError, match="conv2d"):
        ops.conv2d(x, xq, w, wq, np.array([I32_MAX - 100], np.int32), oq)
    ops.conv2d(x, xq, w, wq, np.array([I32_MAX - 255 * 127], np.int32), oq)  # fits exactly
    # the sum of products alone overflowing
    n_in = 70000  # 70000 · 255 · 127 > 2^31
    with pytest.raises(OverflowError, match="fully_connected"):
        ops.fully_connected(np.full((1, n_in), 255, np.uint8), xq, np.full((1, n_in), 127, np.int8),
                            wq, np.zeros(1, np.int32), oq)


def test_conv2d_large_is_fast():
    import time
    rng = np.random.default_rng(14)
    xq, oq = act_qp(rng, 8), act_qp(rng, 8)
    wq = weight_qp(rng, 8, 64)
    x = rand_codes(rng, (1, 64, 32, 32), xq, np.uint8)
    w = rand_codes(rng, (64, 64, 3, 3), wq, np.int8)
    t = time.perf_counter()
    y = ops.conv2d(x, xq, w, wq, np.zeros(64, np.int32), oq, padding=(1, 1, 1, 1))
    assert y.shape == (1, 64, 32, 32)
    assert time.perf_counter() - t < 5.0  # ~0.05 s unloaded; generous for a busy machine


# --------------------------------------------------------------------------- add / requantize / pools

def test_add_exact_and_within_one_code_of_float():
    rng = np.random.default_rng(20)
    for bits_a, bits_b, bits_o in [(8, 8, 8), (4, 8, 8), (2, 3, 4), (8, 5, 6), (6, 6, 8)]:
        for _ in range(4):
            aq, bq = act_qp(rng, bits_a), act_qp(rng, bits_b, scale=float(rng.uniform(0.002, 0.5)))
            a = rand_codes(rng, (2, 3, 5, 4), aq, np.uint8)
            b = rand_codes(rng, (2, 3, 5, 4), bq, np.uint8)
            real = (a.astype(np.float64) - aq.zero_point) * f64(aq.scale[0]) + \
                (b.astype(np.float64) - bq.zero_point) * f64(bq.scale[0])
            qmax = 2 ** bits_o - 1
            s_out = (real.max() - real.min()) / qmax
            oq = QuantParams(np.array([s_out], np.float32),
                             int(np.clip(round(-real.min() / s_out), 0, qmax)), bits_o, 0, qmax)
            amin, amax = ops.act_range(oq, relu=bool(rng.integers(0, 2)))
            got = ops.add(a, aq, b, bq, oq, act_min=amin, act_max=amax)
            want = np.clip(np.floor(real / f64(oq.scale[0]) + oq.zero_point + 0.5), amin, amax)
            assert np.abs(got.astype(np.float64) - want).max() <= 1
            # exact, from scratch in Python integers
            sa, sb, so = f64(aq.scale[0]), f64(bq.scale[0]), f64(oq.scale[0])
            tm = 2 * max(sa, sb)
            (ma, ea), (mb, eb), (mo, eo) = (fp.quantize_multiplier(sa / tm),
                                            fp.quantize_multiplier(sb / tm),
                                            fp.quantize_multiplier(tm / (2 ** 20 * so)))
            for idx in np.ndindex(a.shape):
                ya = mbqm_exact((int(a[idx]) - aq.zero_point) * 2 ** 20, ma, ea)
                yb = mbqm_exact((int(b[idx]) - bq.zero_point) * 2 ** 20, mb, eb)
                y = mbqm_exact(ya + yb, mo, eo) + oq.zero_point
                assert got[idx] == min(max(y, amin), amax)


def test_multiplier_helpers_use_double_from_float32_scales():
    rng = np.random.default_rng(25)
    for _ in range(50):
        sx, so, sa, sb = (float(v) for v in rng.uniform(1e-3, 1.0, 4).astype(np.float32))
        sw = rng.uniform(1e-4, 1e-1, 6).astype(np.float32)
        xq, oq = (QuantParams(np.array([v], np.float32), 0, 8, 0, 255) for v in (sx, so))
        aq, bq = (QuantParams(np.array([v], np.float32), 0, 8, 0, 255) for v in (sa, sb))
        wq = QuantParams(sw, 0, 8, -127, 127)
        assert ops.conv_multipliers(xq, wq, oq, 6).tolist() == [(sx * float(w)) / so for w in sw]
        assert ops.requantize_multiplier(xq, oq) == sx / so
        assert ops.global_avg_pool_multiplier(xq, oq, 49) == sx / (so * 49.0)
        tm = 2.0 * max(sa, sb)
        so_add = so * 3e-3  # m_out = 2·max / (2^20 · s_out) still < 1
        oq_add = QuantParams(np.array([so_add], np.float32), 0, 8, 0, 255)
        so_add = float(np.float32(so_add))
        assert ops.add_multipliers(aq, bq, oq_add) == (
            fp.quantize_multiplier(sa / tm), fp.quantize_multiplier(sb / tm),
            fp.quantize_multiplier(tm / (2.0 ** 20 * so_add)))


def test_add_rejects_too_small_output_scale():
    aq = QuantParams(np.array([1.0], np.float32), 0, 8, 0, 255)
    oq = QuantParams(np.array([1e-7], np.float32), 0, 8, 0, 255)  # m_out = 2 / (2^20 · 1e-7) > 1
    with pytest.raises(ValueError):
        ops.add(np.zeros((1, 1, 1, 1), np.uint8), aq, np.zeros((1, 1, 1, 1), np.uint8), aq, oq)


def test_requantize_exact_and_within_one_code():
    rng = np.random.default_rng(21)
    for bits_in, bits_out in [(8, 8), (8, 4), (3, 8), (2, 2), (6, 5)]:
        xq = act_qp(rng, bits_in)
        x = np.arange(2 ** bits_in, dtype=np.uint8).reshape(1, 1, 1, -1)
        real = (x.astype(np.float64) - xq.zero_point) * f64(xq.scale[0])
        qmax = 2 ** bits_out - 1
        s_out = (real.max() - real.min()) / qmax * float(rng.uniform(0.7, 1.5))
        oq = QuantParams(np.array([s_out], np.float32),
                         int(np.clip(round(-real.min() / s_out), 0, qmax)), bits_out, 0, qmax)
        got = ops.requantize(x, xq, oq, act_min=0, act_max=qmax)
        want = np.clip(np.floor(real / f64(oq.scale[0]) + oq.zero_point + 0.5), 0, qmax)
        assert np.abs(got.astype(np.float64) - want).max() <= 1
        m0, sh = fp.quantize_multiplier(f64(xq.scale[0]) / f64(oq.scale[0]))
        assert got.ravel().tolist() == [min(max(mbqm_exact(int(v) - xq.zero_point, m0, sh)
                                                + oq.zero_point, 0), qmax) for v in x.ravel()]


def test_global_avg_pool_exact_and_within_one_code():
    rng = np.random.default_rng(22)
    for bits, (h, w) in [(8, (7, 7)), (4, (3, 5)), (2, (1, 1)), (8, (16, 16)), (5, (2, 9))]:
        xq = act_qp(rng, bits)
        x = rand_codes(rng, (2, 5, h, w), xq, np.uint8)
        mean = ((x.astype(np.float64) - xq.zero_point) * f64(xq.scale[0])).mean(axis=(2, 3),
                                                                                 keepdims=True)
        s_out = max(mean.max() - mean.min(), 1e-3) / 255
        oq = QuantParams(np.array([s_out], np.float32),
                         int(np.clip(round(-mean.min() / s_out), 0, 255)), 8, 0, 255)
        got = ops.global_avg_pool(x, xq, oq, act_min=0, act_max=255)
        assert got.shape == (2, 5, 1, 1) and got.dtype == np.uint8
        want = np.clip(np.floor(mean / f64(oq.scale[0]) + oq.zero_point + 0.5), 0, 255)
        assert np.abs(got.astype(np.float64) - want).max() <= 1
        m0, sh = fp.quantize_multiplier(f64(xq.scale[0]) / (f64(oq.scale[0]) * (h * w)))
        for n, c in product(range(2), range(5)):
            acc = sum(int(v) - xq.zero_point for v in x[n, c].ravel())
            assert got[n, c, 0, 0] == min(max(mbqm_exact(acc, m0, sh) + oq.zero_point, 0), 255)


def pool_loop(x, kernel, stride, padding, reduce):
    n_, c_, h_, w_ = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, padding
    oh, ow = (h_ + pt + pb - kh) // sh + 1, (w_ + pl + pr - kw) // sw + 1
    out = np.zeros((n_, c_, oh, ow), np.int64)
    for n, c, oy, ox in product(range(n_), range(c_), range(oh), range(ow)):
        vals = [int(x[n, c, iy, ix])
                for iy in range(oy * sh - pt, oy * sh - pt + kh)
                for ix in range(ox * sw - pl, ox * sw - pl + kw)
                if 0 <= iy < h_ and 0 <= ix < w_]
        out[n, c, oy, ox] = reduce(vals)
    return out


POOL_CASES = [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (1, 1), (1, 1, 1, 1)),
              ((3, 3), (2, 2), (1, 1, 1, 1)), ((3, 2), (2, 1), (0, 1, 2, 0)),
              ((5, 5), (1, 1), (2, 2, 2, 2))]


def test_avg_pool_exact_tflite_rounding():
    rng = np.random.default_rng(23)

    def tflite_avg(vals):
        acc, n = sum(vals), len(vals)
        return c_div(acc + n // 2, n) if acc > 0 else c_div(acc - n // 2, n)

    for kernel, stride, padding in POOL_CASES:
        for bits in (8, 3):
            qp = act_qp(rng, bits)
            x = rand_codes(rng, (2, 3, 7, 6), qp, np.uint8)
            amin, amax = (qp.zero_point, qp.qmax) if bits == 3 else (0, qp.qmax)
            got = ops.avg_pool(x, qp, kernel, stride, padding, act_min=amin, act_max=amax)
            want = np.clip(pool_loop(x, kernel, stride, padding, tflite_avg), amin, amax)
            assert got.dtype == np.uint8 and np.array_equal(got, want), (kernel, stride, padding)
    # rounding: (1 + 2) / 2 = 1.5 -> 2 ; (1 + 1 + 2) / 3 = 1.33 -> 1; padded cells not counted
    qp = act_qp(rng, 8, zp=0)
    x = np.array([[[[1, 2], [1, 1]]]], np.uint8)
    assert ops.avg_pool(x, qp, (1, 2), (1, 1), (0, 0, 0, 0), 0, 255).ravel().tolist() == [2, 1]
    assert ops.avg_pool(x, qp, (2, 2), (1, 1), (1, 1, 0, 0), 0, 255).ravel().tolist() == \
        [1, 2, 1, 1]


def test_max_pool_exact():
    rng = np.random.default_rng(24)
    for kernel, stride, padding in POOL_CASES:
        x = rng.integers(0, 256, (2, 3, 7, 6)).astype(np.uint8)
        got = ops.max_pool(x, kernel, stride, padding)
        assert got.dtype == np.uint8
        assert np.array_equal(got, pool_loop(x, kernel, stride, padding, max))
    x = np.zeros((1, 1, 3, 3), np.uint8)
    assert np.all(ops.max_pool(x, (3, 3), (1, 1), (1, 1, 1, 1)) == 0)


def test_reshape_keeps_batch():
    x = np.arange(2 * 4 * 1 * 1, dtype=np.uint8).reshape(2, 4, 1, 1)
    y = ops.reshape(x, (1, 4))
    assert y.shape == (2, 4) and np.array_equal(y.ravel(), x.ravel())
    with pytest.raises(ValueError):
        ops.reshape(x, (1, 5))
