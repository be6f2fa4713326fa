"""Reference integer ops: one function per IR op kind, integer codes in, integer codes out.

These are the executable spec of ``docs/arithmetic.md``. Every function works on numpy arrays
and on the :class:`~ddq_edge.ir.QuantParams` of the tensors involved (passed explicitly);
nothing here depends on a Graph.

Conventions: activations are NCHW (or NC) b-bit codes in uint8, ``real = scale·(q − zp)``, any
batch size; weights are int8 codes (O, I/groups, kh, kw) with zero point 0 and one scale per
output channel; biases are int32 at ``s_in · s_w[c]``. Requantization multipliers are derived
here from the float32 scales, in double (see the ``*_multiplier*`` helpers).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..ir import QuantParams
from .fixed_point import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                          quantize_multiplier, quantize_multipliers)

__all__ = [
    "act_range", "add", "add_multipliers", "avg_pool", "conv2d", "conv_multipliers", "dequantize",
    "fully_connected", "global_avg_pool", "global_avg_pool_multiplier", "max_pool", "quantize",
    "requantize", "requantize_multiplier", "reshape", "ADD_LEFT_SHIFT",
]

ADD_LEFT_SHIFT = 20


# --------------------------------------------------------------------------- helpers

def _scale64(qp: QuantParams) -> np.ndarray:
    """The float32 scale(s) of ``qp`` widened exactly to float64."""
    return np.asarray(qp.scale, dtype=np.float32).astype(np.float64).reshape(-1)


def _tensor_scale64(qp: QuantParams, what: str) -> float:
    s = _scale64(qp)
    if s.size != 1:
        raise ValueError(f"{what}: expected a per-tensor scale, got {s.size} scales")
    return float(s[0])


def _pair(v, what: str) -> tuple[int, int]:
    t = tuple(int(a) for a in (v if isinstance(v, (list, tuple, np.ndarray)) else (v, v)))
    if len(t) != 2:
        raise ValueError(f"{what}: expected 2 values, got {v!r}")
    return t


def _padding4(p, what: str) -> tuple[int, int, int, int]:
    t = tuple(int(a) for a in p)
    if len(t) != 4 or min(t) < 0:
        raise ValueError(f"{what}: padding must be [top, left, bottom, right] >= 0, got {p!r}")
    return t


def _check_act(act_min: int, act_max: int, out_qp: QuantParams, what: str) -> tuple[int, int]:
    act_min, act_max = int(act_min), int(act_max)
    if not (out_qp.qmin <= act_min <= act_max <= out_qp.qmax):
        raise ValueError(f"{what}: activation range [{act_min}, {act_max}] not inside the output "
                         f"grid [{out_qp.qmin}, {out_qp.qmax}]")
    return act_min, act_max


def _check_int32(acc: np.ndarray, what: str) -> None:
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{what}: int32 accumulator overflow (range [{acc.min()}, "
                            f"{acc.max()}])")


def _finish(y: np.ndarray, out_qp: QuantParams, act_min: int, act_max: int) -> np.ndarray:
    """``clamp(y + zp_out, act_min, act_max)`` as uint8 codes."""
    return np.clip(y.astype(np.int64) + int(out_qp.zero_point), act_min, act_max).astype(np.uint8)


def _centered(x: np.ndarray, qp: QuantParams) -> np.ndarray:
    """``x − zp`` as int64 (activation codes relative to the zero point)."""
    return np.asarray(x).astype(np.int64) - int(qp.zero_point)


def _weight_scales(w_qp: QuantParams, n_out: int, what: str) -> np.ndarray:
    if int(w_qp.zero_point) != 0:
        raise ValueError(f"{what}: weight zero point must be 0, got {w_qp.zero_point}")
    s = _scale64(w_qp)
    if s.size == 1:
        return np.full(n_out, s[0])
    if s.size != n_out:
        raise ValueError(f"{what}: {s.size} weight scales for {n_out} output channels")
    return s


# --------------------------------------------------------------------------- multipliers

def conv_multipliers(x_qp: QuantParams, w_qp: QuantParams, out_qp: QuantParams,
                     n_out: int) -> np.ndarray:
    """conv2d / fully_connected: ``M[c] = (f64(s_in) · f64(s_w[c])) / f64(s_out)``, shape (n_out,)."""
    s_w = _weight_scales(w_qp, n_out, "conv_multipliers")
    s_in = _tensor_scale64(x_qp, "conv_multipliers(input)")
    s_out = _tensor_scale64(out_qp, "conv_multipliers(output)")
    return (s_in * s_w) / s_out


def requantize_multiplier(x_qp: QuantParams, out_qp: QuantParams) -> float:
    """requantize: ``M = f64(s_in) / f64(s_out)``."""
    return (_tensor_scale64(x_qp, "requantize_multiplier(input)")
            / _tensor_scale64(out_qp, "requantize_multiplier(output)"))


def global_avg_pool_multiplier(x_qp: QuantParams, out_qp: QuantParams, n: int) -> float:
    """global_avg_pool over n = H·W elements: ``M = f64(s_in) / (f64(s_out) · n)``."""
    return (_tensor_scale64(x_qp, "global_avg_pool_multiplier(input)")
            / (_tensor_scale64(out_qp, "global_avg_pool_multiplier(output)") * float(n)))


def add_multipliers(a_qp: QuantParams, b_qp: QuantParams, out_qp: QuantParams
                    ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """add: ((M0, shift) for input a, for input b, for the output), every shift <= 0.

    twice_max = 2·max(s_a, s_b); m_a = s_a / twice_max; m_b = s_b / twice_max;
    m_out = twice_max / (2^ADD_LEFT_SHIFT · s_out), all in double from the float32 scales.
    """
    s_a = _tensor_scale64(a_qp, "add_multipliers(a)")
    s_b = _tensor_scale64(b_qp, "add_multipliers(b)")
    s_out = _tensor_scale64(out_qp, "add_multipliers(output)")
    twice_max = 2.0 * max(s_a, s_b)
    result = []
    for name, m in (("a", s_a / twice_max), ("b", s_b / twice_max),
                    ("output", twice_max / (float(1 << ADD_LEFT_SHIFT) * s_out))):
        m0, shift = quantize_multiplier(m)
        if shift > 0:
            raise ValueError(f"add: multiplier for {name} is {m} >= 1 (shift {shift} > 0); "
                             "the output scale is too small for the inputs' scales")
        result.append((m0, shift))
    return tuple(result)  # type: ignore[return-value]


# --------------------------------------------------------------------------- graph edges

def quantize(x: np.ndarray, qp: QuantParams) -> np.ndarray:
    """float32 → uint8 codes: ``clamp(floor(x / s + 0.5) + zp, qmin, qmax)`` in float32.

    The order is fixed: float32 division, + float32 0.5, floor, + zp, clamp. NaN gives the zero
    point; ±inf clamp to qmax / qmin.
    """
    x = np.asarray(x).astype(np.float32)
    s = np.asarray(qp.scale, dtype=np.float32).reshape(-1)
    if s.size != 1:
        raise ValueError("quantize: expected a per-tensor scale")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        v = np.floor(x / s[0] + np.float32(0.5)) + np.float32(qp.zero_point)
        v = np.clip(v, np.float32(qp.qmin), np.float32(qp.qmax))
    v = np.where(np.isnan(v), np.float32(qp.zero_point), v)
    return v.astype(np.uint8)


def dequantize(q: np.ndarray, qp: QuantParams) -> np.ndarray:
    """codes → float32: ``float32(q − zp) · float32(scale)``."""
    s = np.asarray(qp.scale, dtype=np.float32).reshape(-1)
    if s.size != 1:
        raise ValueError("dequantize: expected a per-tensor scale")
    return (np.asarray(q).astype(np.int32) - np.int32(qp.zero_point)).astype(np.float32) * s[0]


def act_range(out_qp: QuantParams, relu: bool = False, relu6: bool = False) -> tuple[int, int]:
    """Output-code clamp bounds folding ReLU / ReLU6 into [qmin, qmax].

    ReLU (and ReLU6) raise the minimum to the zero point; ReLU6 lowers the maximum to the code of
    6.0 under :func:`quantize` (floor(6/s + 0.5) + zp, float32).
    """
    lo, hi = int(out_qp.qmin), int(out_qp.qmax)
    if relu or relu6:
        lo = max(lo, int(out_qp.zero_point))
    if relu6:
        s = np.asarray(out_qp.scale, dtype=np.float32).reshape(-1)[0]
        with np.errstate(over="ignore"):
            six = np.floor(np.float32(6.0) / s + np.float32(0.5)) + np.float32(out_qp.zero_point)
        hi = int(min(float(hi), float(six)))
    lo = min(lo, hi)
    return lo, hi


# --------------------------------------------------------------------------- conv / fc

def _requantize_acc(acc: np.ndarray, m: np.ndarray, channel_axis: int, out_qp: QuantParams,
                    act_min: int, act_max: int) -> np.ndarray:
    m0, shift = quantize_multipliers(m)
    bshape = [1] * acc.ndim
    bshape[channel_axis] = -1
    y = multiply_by_quantized_multiplier(acc, m0.reshape(bshape), shift.reshape(bshape))
    return _finish(y, out_qp, act_min, act_max)


def conv_accumulate(x_centered: np.ndarray, w: np.ndarray, stride: Sequence[int] = (1, 1),
                    padding: Sequence[int] = (0, 0, 0, 0), dilation: Sequence[int] = (1, 1),
                    groups: int = 1) -> np.ndarray:
    """Σ w · x over NCHW ``x_centered`` (codes minus the zero point; padding contributes 0) and
    (O, I/groups, kh, kw) integer weights: the exact int64 accumulator, checked to fit int32."""
    x_centered = np.asarray(x_centered).astype(np.int64)
    w = np.asarray(w)
    if x_centered.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: expected 4-D input and weight, got {x_centered.shape} and {w.shape}")
    n, c, h, wd = x_centered.shape
    o, cg, kh, kw = w.shape
    groups = int(groups)
    sh, sw = _pair(stride, "conv2d stride")
    dh, dw = _pair(dilation, "conv2d dilation")
    pt, pl, pb, pr = _padding4(padding, "conv2d")
    if groups < 1 or c != cg * groups or o % groups != 0:
        raise ValueError(f"conv2d: input channels {c}, weight {w.shape}, groups {groups} disagree")
    if min(sh, sw, dh, dw) < 1:
        raise ValueError("conv2d: stride and dilation must be >= 1")
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    hp, wp = h + pt + pb, wd + pl + pr
    if hp < eh or wp < ew:
        raise ValueError(f"conv2d: padded input {hp}x{wp} smaller than the kernel extent {eh}x{ew}")
    oh, ow = (hp - eh) // sh + 1, (wp - ew) // sw + 1
    og = o // groups

    xc = np.pad(x_centered, ((0, 0), (0, 0), (pt, pb), (pl, pr)))  # zero = the zero point
    win = np.lib.stride_tricks.sliding_window_view(xc, (eh, ew), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow]  # (N, C, OH, OW, kh, kw)
    # im2col per group: (G, N·OH·OW, Cg·kh·kw), contiguous
    cols = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = np.ascontiguousarray(cols).reshape(groups, n * oh * ow, cg * kh * kw)
    wm = w.astype(np.int64).reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    acc = np.matmul(cols, wm)  # (G, N·OH·OW, Og), exact in int64
    _check_int32(acc, "conv2d")
    return acc.reshape(groups, n, oh, ow, og).transpose(1, 0, 4, 2, 3).reshape(n, o, oh, ow)


def conv2d(x: np.ndarray, x_qp: QuantParams, w: np.ndarray, w_qp: QuantParams,
           bias: np.ndarray | None, out_qp: QuantParams, stride: Sequence[int] = (1, 1),
           padding: Sequence[int] = (0, 0, 0, 0), dilation: Sequence[int] = (1, 1),
           groups: int = 1, act_min: int | None = None, act_max: int | None = None) -> np.ndarray:
    """2-D convolution of uint8 NCHW codes with int8 (O, I/groups, kh, kw) weights.

    acc[n,o,y,x] = Σ w · (x − zp_in) + bias[o] (int32; padded positions contribute 0), then
    ``clamp(MBQM(acc, M[o]) + zp_out, act_min, act_max)``.
    """
    w = np.asarray(w)
    act_min = out_qp.qmin if act_min is None else act_min
    act_max = out_qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, out_qp, "conv2d")
    acc = conv_accumulate(_centered(x, x_qp), w, stride, padding, dilation, groups)
    o = w.shape[0]
    if bias is not None:
        acc = acc + np.asarray(bias).astype(np.int64).reshape(1, o, 1, 1)
        _check_int32(acc, "conv2d")
    m = conv_multipliers(x_qp, w_qp, out_qp, o)
    return _requantize_acc(acc, m, 1, out_qp, act_min, act_max)


def fully_connected(x: np.ndarray, x_qp: QuantParams, w: np.ndarray, w_qp: QuantParams,
                    bias: np.ndarray | None, out_qp: QuantParams, act_min: int | None = None,
                    act_max: int | None = None) -> np.ndarray:
    """(N, I) uint8 codes × (O, I) int8 weights → (N, O) uint8 codes (same arithmetic as conv2d)."""
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"fully_connected: input {x.shape} and weight {w.shape} disagree")
    o = w.shape[0]
    act_min = out_qp.qmin if act_min is None else act_min
    act_max = out_qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, out_qp, "fully_connected")
    acc = _centered(x, x_qp) @ w.astype(np.int64).T
    _check_int32(acc, "fully_connected")
    if bias is not None:
        acc = acc + np.asarray(bias).astype(np.int64).reshape(1, o)
        _check_int32(acc, "fully_connected")
    m = conv_multipliers(x_qp, w_qp, out_qp, o)
    return _requantize_acc(acc, m, 1, out_qp, act_min, act_max)


# --------------------------------------------------------------------------- elementwise

def add(a: np.ndarray, a_qp: QuantParams, b: np.ndarray, b_qp: QuantParams, out_qp: QuantParams,
        act_min: int | None = None, act_max: int | None = None) -> np.ndarray:
    """Residual add of two uint8 code tensors on different grids (TFLite ADD, left shift 20)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"add: shapes differ: {a.shape} and {b.shape}")
    act_min = out_qp.qmin if act_min is None else act_min
    act_max = out_qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, out_qp, "add")
    (ma, sa), (mb, sb), (mo, so) = add_multipliers(a_qp, b_qp, out_qp)
    ya = multiply_by_quantized_multiplier(_centered(a, a_qp) << ADD_LEFT_SHIFT, ma, sa)
    yb = multiply_by_quantized_multiplier(_centered(b, b_qp) << ADD_LEFT_SHIFT, mb, sb)
    total = ya.astype(np.int64) + yb.astype(np.int64)
    _check_int32(total, "add")
    return _finish(multiply_by_quantized_multiplier(total, mo, so), out_qp, act_min, act_max)


def requantize(x: np.ndarray, x_qp: QuantParams, out_qp: QuantParams,
               act_min: int | None = None, act_max: int | None = None) -> np.ndarray:
    """Move codes to another grid: ``clamp(MBQM(x − zp_in, s_in/s_out) + zp_out, act_min, act_max)``."""
    act_min = out_qp.qmin if act_min is None else act_min
    act_max = out_qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, out_qp, "requantize")
    m0, shift = quantize_multiplier(requantize_multiplier(x_qp, out_qp))
    y = multiply_by_quantized_multiplier(_centered(x, x_qp), m0, shift)
    return _finish(y, out_qp, act_min, act_max)


def reshape(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Reshape to ``shape`` (its batch dimension, stored as 1, is replaced by x's batch size)."""
    x = np.asarray(x)
    target = (x.shape[0],) + tuple(int(d) for d in shape[1:])
    if int(np.prod(target[1:], dtype=np.int64)) != int(np.prod(x.shape[1:], dtype=np.int64)):
        raise ValueError(f"reshape: cannot reshape {x.shape} to {tuple(shape)} (batch kept)")
    return x.reshape(target)


# --------------------------------------------------------------------------- pooling

def _pool_windows(x: np.ndarray, kernel, stride, padding, fill: int, what: str):
    """Padded sliding windows (N, C, OH, OW, kh, kw) and the valid-element count (OH, OW)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{what}: expected a 4-D NCHW input, got {x.shape}")
    kh, kw = _pair(kernel, f"{what} kernel")
    sh, sw = _pair(stride, f"{what} stride")
    pt, pl, pb, pr = _padding4(padding, what)
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"{what}: kernel and stride must be >= 1")
    h, w = x.shape[2:]
    hp, wp = h + pt + pb, w + pl + pr
    if hp < kh or wp < kw:
        raise ValueError(f"{what}: padded input {hp}x{wp} smaller than the kernel {kh}x{kw}")
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::sh, ::sw][:, :, :oh, :ow]
    valid = np.pad(np.ones((h, w), np.int64), ((pt, pb), (pl, pr)))
    count = np.lib.stride_tricks.sliding_window_view(valid, (kh, kw))[::sh, ::sw][:oh, :ow]
    count = count.sum(axis=(-2, -1))
    if count.size and count.min() == 0:
        raise ValueError(f"{what}: a pooling window lies entirely in the padding")
    return win, count


def avg_pool(x: np.ndarray, qp: QuantParams, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int] = (0, 0, 0, 0), act_min: int | None = None,
             act_max: int | None = None) -> np.ndarray:
    """Average of the codes over the non-padded part of each window (input/output share ``qp``).

    acc = Σ q over the n valid elements; out = acc > 0 ? (acc + n/2)/n : (acc − n/2)/n with C
    truncating division; then clamp to [act_min, act_max].
    """
    act_min = qp.qmin if act_min is None else act_min
    act_max = qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, qp, "avg_pool")
    win, n = _pool_windows(x, kernel, stride, padding, 0, "avg_pool")
    acc = win.sum(axis=(-2, -1))
    _check_int32(acc, "avg_pool")
    half = n // 2
    num = np.where(acc > 0, acc + half, acc - half)
    q = np.abs(num) // n  # C division truncates towards zero
    out = np.where(num < 0, -q, q)
    return np.clip(out, act_min, act_max).astype(np.uint8)


def max_pool(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int] = (0, 0, 0, 0)) -> np.ndarray:
    """Maximum code over each window; padded positions never win (input/output share one grid)."""
    x = np.asarray(x)
    win, _ = _pool_windows(x, kernel, stride, padding, -1, "max_pool")  # codes are >= 0
    return win.max(axis=(-2, -1)).astype(x.dtype)


def global_avg_pool(x: np.ndarray, x_qp: QuantParams, out_qp: QuantParams,
                    act_min: int | None = None, act_max: int | None = None) -> np.ndarray:
    """Mean over H×W: acc = Σ (x − zp_in); ``clamp(MBQM(acc, s_in/(s_out·H·W)) + zp_out)``; (N, C, 1, 1)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"global_avg_pool: expected a 4-D NCHW input, got {x.shape}")
    act_min = out_qp.qmin if act_min is None else act_min
    act_max = out_qp.qmax if act_max is None else act_max
    act_min, act_max = _check_act(act_min, act_max, out_qp, "global_avg_pool")
    count = x.shape[2] * x.shape[3]
    acc = _centered(x, x_qp).sum(axis=(2, 3), keepdims=True)
    _check_int32(acc, "global_avg_pool")
    m0, shift = quantize_multiplier(global_avg_pool_multiplier(x_qp, out_qp, count))
    return _finish(multiply_by_quantized_multiplier(acc, m0, shift), out_qp, act_min, act_max)
