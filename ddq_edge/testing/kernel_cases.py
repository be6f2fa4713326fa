"""Edge cases for the runtime's fast kernel sets (``generic``, ``neon``): single-op graphs that
aim at the fast paths' tiles, tails and numeric limits, to be compared bit for bit with the
numpy reference like the random grid of :mod:`ddq_edge.testing.random_graphs`.

The random grid keeps its graphs small and its multipliers tame. These cases add what it does
not reach on purpose:

* 1×1 and k×k convolutions (the GEMM path) with channel counts that leave a partial block of 8
  output channels, input channel counts that split the pixels into several panels, pixel
  counts that leave 1–7 pixels in the last tile, strides, dilations and asymmetric padding;
* depthwise 3×3 convolutions (stride 1 or 2 each way) on maps from 1×1 to 19×17, with channel
  counts that leave a partial block of 8 channels and paddings of 0–2 on each side;
* fully_connected with 1 to 1283 inputs (vector tails);
* accumulators at the int32 limit: weights all ±max, inputs all at the end of the grid away
  from the zero point, biases that fill the loader's accumulator bound exactly;
* requantization multipliers from about 2^−31 (shifts down to −31) up to 2^21, a different one
  per output channel, and output zero points 0 and 255 with narrow activation ranges.

Every graph is quantize → op → dequantize with an input scale of 1, so an input value k is
the code k + zero point exactly. Outputs of the numpy reference fit int32 by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Op, QuantParams, Tensor
from ..reference.ops import conv_accumulate

__all__ = ["KernelCase", "kernel_cases"]

INT32_MAX = 2 ** 31 - 1


@dataclass
class KernelCase:
    name: str
    graph: Graph
    x: np.ndarray  # float32 input batch (N, ...)


def _grid(bits: int, zero_point: int, scale: float = 1.0) -> QuantParams:
    return QuantParams(np.array([scale], np.float32), int(zero_point), bits, 0, (1 << bits) - 1)


def _codes(rng: np.random.Generator, shape: tuple[int, ...], grid: QuantParams, extreme: bool) -> np.ndarray:
    """Input codes: uniform over the grid, or all at the end farthest from the zero point."""
    if extreme:
        far = grid.qmax if grid.qmax - grid.zero_point >= grid.zero_point - grid.qmin else grid.qmin
        return np.full(shape, far, np.int64)
    return rng.integers(grid.qmin, grid.qmax + 1, size=shape).astype(np.int64)


def _weights(rng: np.random.Generator, shape: tuple[int, ...], bits: int, extreme: str | None) -> np.ndarray:
    wmax = (1 << (bits - 1)) - 1
    if extreme == "max":
        return np.full(shape, wmax, np.int8)
    if extreme == "min":
        return np.full(shape, -wmax, np.int8)
    return rng.integers(-wmax, wmax + 1, size=shape).astype(np.int8)


def _single_op_graph(name: str, kind: str, x_codes: np.ndarray, in_grid: QuantParams, w: np.ndarray,
                     bias: np.ndarray, acc: np.ndarray, attrs: dict, rng: np.random.Generator,
                     multiplier: float | None, out_zp: int | None, relu: bool) -> KernelCase:
    """quantize → kind → dequantize. Weight scales s_w[o] in [1/2, 2] give every output channel
    its own requantization multiplier M[o] = s_w[o] · m (s_in = 1), where m is `multiplier` or
    spreads the accumulators over about ±100 codes."""
    total = acc + bias.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    peak = max(float(np.abs(total).max()), 1.0)
    m = multiplier if multiplier is not None else 100.0 / peak
    # the reference's MBQM result must fit int32: keep |total · M[o]| well inside it
    m = min(m, 2.0 ** 29 / peak)
    out_scale = np.float32(1.0 / m)
    zp = int(rng.integers(0, 256)) if out_zp is None else out_zp
    out_grid = QuantParams(np.array([out_scale], np.float32), zp, 8, 0, 255)
    act_min = zp if relu else 0
    act_max = 255 if not relu else int(min(255, zp + rng.integers(1, 60)))
    g = Graph()
    shape = (1,) + x_codes.shape[1:]
    g.add_tensor(Tensor("x", shape, "float32"))
    g.add_tensor(Tensor("q", shape, "uint8", in_grid))
    w_scales = (2.0 ** rng.uniform(-1.0, 1.0, size=w.shape[0])).astype(np.float32)
    w_grid = QuantParams(w_scales, 0, 8, -127, 127)
    g.add_tensor(Tensor("w", w.shape, "int8", w_grid, w))
    g.add_tensor(Tensor("b", bias.shape, "int32", None, bias.astype(np.int32)))
    out_shape = (1,) + acc.shape[1:]
    g.add_tensor(Tensor("y", out_shape, "uint8", out_grid))
    g.add_tensor(Tensor("out", out_shape, "float32"))
    g.add_op(Op("quantize", "quant", ["x"], ["q"]))
    g.add_op(Op(kind, kind, ["q", "w", "b"], ["y"], {**attrs, "act_min": act_min, "act_max": act_max}))
    g.add_op(Op("dequantize", "deq", ["y"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {"generator": "ddq_edge.testing.kernel_cases", "case": name}
    g.validate()
    x = (x_codes - in_grid.zero_point).astype(np.float32)  # scale 1: value k quantizes to k + zp
    return KernelCase(name, g, x)


def _bias(rng: np.random.Generator, w: np.ndarray, span: int, acc: np.ndarray, mode: str) -> np.ndarray:
    """Biases: "random" (about the accumulators' spread), "zero", "bound" (the largest the
    loader's accumulator bound allows, Σ|w[o]| · span + |bias[o]| = 2^31 − 1, with the sign of
    the channel's accumulators) or "large" (uniform within that bound)."""
    o = w.shape[0]
    room = INT32_MAX - np.abs(w.reshape(o, -1).astype(np.int64)).sum(1) * span
    if mode == "bound":
        sign = np.where(acc.reshape(acc.shape[0], o, -1).sum((0, 2)) < 0, -1, 1)
        return (sign * room).astype(np.int64)
    if mode == "large":
        return rng.integers(-room, room + 1).astype(np.int64)
    if mode == "zero":
        return np.zeros(o, np.int64)
    spread = max(float(np.abs(acc).std()), 1.0)
    return np.rint(rng.normal(0.0, spread, size=o)).astype(np.int64)


def _conv_case(rng, name, *, c, h, w, o, k=(1, 1), stride=(1, 1), padding=(0, 0, 0, 0),
               dilation=(1, 1), groups=1, in_bits=8, in_zp=None, w_bits=8, extreme=False,
               w_extreme=None, bias="random", multiplier=None, out_zp=None, relu=False,
               batch=2) -> KernelCase:
    in_grid = _grid(in_bits, rng.integers(0, (1 << in_bits)) if in_zp is None else in_zp)
    x = _codes(rng, (batch, c, h, w), in_grid, extreme)
    wt = _weights(rng, (o, c // groups) + tuple(k), w_bits, w_extreme)
    acc = conv_accumulate(x - in_grid.zero_point, wt, stride, padding, dilation, groups)
    span = max(in_grid.qmax - in_grid.zero_point, in_grid.zero_point - in_grid.qmin)
    b = _bias(rng, wt, span, acc, bias)
    attrs = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}
    return _single_op_graph(name, "conv2d", x, in_grid, wt, b, acc, attrs, rng, multiplier, out_zp, relu)


def _fc_case(rng, name, *, features, o, in_bits=8, in_zp=None, extreme=False, w_extreme=None,
             bias="random", multiplier=None, out_zp=None, relu=False) -> KernelCase:
    """quantize → fully_connected → dequantize (8-bit weights)."""
    in_grid = _grid(in_bits, rng.integers(0, (1 << in_bits)) if in_zp is None else in_zp)
    x = _codes(rng, (2, features), in_grid, extreme)
    wt = _weights(rng, (o, features), 8, w_extreme)
    acc = (x - in_grid.zero_point) @ wt.astype(np.int64).T
    span = max(in_grid.qmax - in_grid.zero_point, in_grid.zero_point - in_grid.qmin)
    b = _bias(rng, wt, span, acc, bias)
    return _single_op_graph(name, "fully_connected", x, in_grid, wt, b, acc, {}, rng, multiplier,
                            out_zp, relu)


def kernel_cases(seed: int = 0) -> list[KernelCase]:
    """The edge cases, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    cases = []
    add = cases.append
    # ---- the GEMM path: 1×1
    add(_conv_case(rng, "1x1 tails", c=13, h=5, w=7, o=21))
    add(_conv_case(rng, "1x1 one pixel", c=9, h=1, w=1, o=17))
    add(_conv_case(rng, "1x1 four pixels", c=80, h=2, w=2, o=33))
    add(_conv_case(rng, "1x1 many panels", c=300, h=11, w=11, o=13))  # 24-pixel panels, last 1 pixel
    add(_conv_case(rng, "1x1 wide", c=16, h=19, w=23, o=40, in_bits=4, w_bits=4))
    add(_conv_case(rng, "1x1 stride 2 padded", c=24, h=9, w=10, o=11, stride=(2, 2), padding=(1, 0, 2, 1)))
    add(_conv_case(rng, "1x1 stride 2x1", c=8, h=7, w=9, o=8, stride=(2, 1), padding=(0, 2, 0, 0)))
    add(_conv_case(rng, "1x1 bottom padding only", c=5, h=1, w=1, o=9, padding=(0, 0, 2, 0)))
    # ---- the GEMM path: other kernels (im2col)
    add(_conv_case(rng, "3x3 first layer", c=3, h=16, w=15, o=16, k=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1)))
    add(_conv_case(rng, "3x3 dilated", c=6, h=12, w=9, o=10, k=(3, 3), dilation=(2, 3), padding=(2, 1, 0, 2)))
    add(_conv_case(rng, "5x5 padded", c=4, h=6, w=5, o=7, k=(5, 5), padding=(2, 2, 2, 2)))
    add(_conv_case(rng, "1x3 stride 1x2", c=7, h=5, w=13, o=9, k=(1, 3), stride=(1, 2), padding=(0, 1, 0, 0)))
    add(_conv_case(rng, "3x1 more padding than input", c=2, h=2, w=3, o=5, k=(3, 1), padding=(2, 2, 2, 2)))
    # ---- the depthwise 3×3 path
    for i, (hw, stride, padding) in enumerate([
            ((1, 1), (1, 1), (1, 1, 1, 1)), ((2, 2), (1, 1), (1, 1, 1, 1)), ((2, 2), (2, 2), (1, 1, 1, 1)),
            ((4, 4), (1, 1), (1, 1, 1, 1)), ((4, 4), (2, 2), (0, 0, 1, 1)), ((3, 5), (1, 2), (2, 0, 1, 2)),
            ((7, 6), (2, 1), (0, 1, 2, 0)), ((8, 8), (1, 1), (0, 0, 0, 0)), ((16, 16), (2, 2), (1, 1, 1, 1)),
            ((19, 17), (1, 1), (2, 2, 2, 2)), ((9, 3), (2, 2), (0, 0, 0, 0))]):
        c = (3, 8, 19, 16, 33, 5, 12, 9, 24, 11, 17)[i]
        add(_conv_case(rng, f"dw3x3 {hw} s{stride} p{padding}", c=c, h=hw[0], w=hw[1], o=c, k=(3, 3),
                       stride=stride, padding=padding, groups=c, in_bits=int(rng.integers(2, 9)),
                       w_bits=int(rng.integers(2, 9))))
    # ---- fully_connected
    for features in (1, 7, 15, 16, 17, 33, 1283):
        add(_fc_case(rng, f"fc {features}", features=features, o=int(rng.integers(1, 20))))
    # ---- int32 limits: extreme inputs and weights, biases at the accumulator bound
    for zp in (0, 255):
        for w_extreme in ("max", "min"):
            add(_conv_case(rng, f"1x1 bound zp{zp} w{w_extreme}", c=40, h=3, w=5, o=12, in_zp=zp, extreme=True,
                           w_extreme=w_extreme, bias="bound"))
            add(_conv_case(rng, f"dw3x3 bound zp{zp} w{w_extreme}", c=11, h=5, w=4, o=11, k=(3, 3), groups=11,
                           padding=(1, 1, 1, 1), in_zp=zp, extreme=True, w_extreme=w_extreme, bias="bound"))
            add(_conv_case(rng, f"3x3 bound zp{zp} w{w_extreme}", c=5, h=4, w=4, o=9, k=(3, 3), padding=(0, 1, 1, 0),
                           in_zp=zp, extreme=True, w_extreme=w_extreme, bias="bound"))
            add(_fc_case(rng, f"fc bound zp{zp} w{w_extreme}", features=300, o=10, in_zp=zp, extreme=True,
                         w_extreme=w_extreme, bias="bound"))
    # ---- multipliers: tiny ones on accumulators near 2^31 (outputs of a few codes: the
    # rounding), large ones on small accumulators (most saturate), output zero points at both
    # ends, narrow activation ranges
    for i, m in enumerate((1.5 * 2.0 ** -31, 2.0 ** -28, 2.0 ** -24, 0.3, 7.0, 1000.0, 2.0 ** 20)):
        zp = (0, 255, 128, 0, 255, 3, 250)[i]
        relu = i % 2 == 1
        big = m < 2.0 ** -20
        kw = dict(multiplier=m, out_zp=zp, relu=relu, bias="large" if big else "zero" if m > 1 else "random",
                  in_bits=2 if m > 1 else 8, w_bits=2 if m > 1 else 8)
        add(_conv_case(rng, f"1x1 m{m:g}", c=17, h=3, w=6, o=10, **kw))
        add(_conv_case(rng, f"dw3x3 m{m:g}", c=10, h=5, w=6, o=10, k=(3, 3), groups=10, padding=(1, 1, 1, 1), **kw))
        kw.pop("w_bits")
        add(_fc_case(rng, f"fc m{m:g}", features=20, o=9, **kw))
    return cases
