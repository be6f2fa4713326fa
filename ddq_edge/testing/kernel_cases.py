"""Edge cases for the runtime's fast kernel sets (``generic``, ``neon``, ``neondot``, ``x86``):
single-op graphs that aim at the fast paths' tiles, tails and numeric limits, to be compared bit
for bit with the numpy reference like the random grid of :mod:`ddq_edge.testing.random_graphs`.

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
  per output channel, and output zero points 0 and 255 with narrow activation ranges;
* the int16 accumulation of low-bit GEMMs (neon's acc16 path, docs/runtime.md): weights and
  inputs of 2–6 bits, k-blocks whose bound Σ|w|·span is exactly 32767 and just above it (which
  must split the reduction: K not a multiple of the block), several k-blocks, and blocks of 8
  channels that take the int16 and the int32 path in the same op; 8 × 16 pixel tiles with
  tails of 1–15 pixels;
* the x86 GEMM's saturating maddubs (pairs of byte products at the largest admitted sum and
  just beyond), its int16 runs at exactly 32767 / −32768 and one beyond, and its 4 × 8 tiles'
  tails.

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


def _bias(rng: np.random.Generator, w: np.ndarray, span: int, acc: np.ndarray, mode: str | int) -> np.ndarray:
    """Biases: "random" (about the accumulators' spread), "zero", "bound" (the largest the
    loader's accumulator bound allows, Σ|w[o]| · span + |bias[o]| = 2^31 − 1, with the sign of
    the channel's accumulators), "large" (uniform within that bound), or an int for every
    channel."""
    o = w.shape[0]
    if isinstance(mode, int):
        return np.full(o, mode, np.int64)
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
               batch=2, weights=None) -> KernelCase:
    in_grid = _grid(in_bits, rng.integers(0, (1 << in_bits)) if in_zp is None else in_zp)
    x = _codes(rng, (batch, c, h, w), in_grid, extreme)
    wt = _weights(rng, (o, c // groups) + tuple(k), w_bits, w_extreme) if weights is None else weights
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
    add(_conv_case(rng, "1x1 many panels", c=300, h=11, w=11, o=13))  # panels of 80 and 41 pixels
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
    # ---- int16 accumulation (acc16): |w| = 7 (4 bits) times span 31 (5-bit inputs at the far
    # end of the grid) is 217 per row; 151 rows make 32767 exactly (one k-block of K = 151), 152
    # rows overflow int16 unless split (151 + 1). Weights and inputs of one sign reach the bound.
    for c in (151, 152):
        for zp, w_extreme in ((0, "max"), (31, "max"), (0, "min")):
            add(_conv_case(rng, f"acc16 limit K{c} zp{zp} w{w_extreme}", c=c, h=3, w=7, o=10, in_bits=5, in_zp=zp,
                           w_bits=4, extreme=True, w_extreme=w_extreme, bias="zero"))
    # the bias inside the int16 sums (tile_8x16_bias16): 150 rows of |w| = 7 times 31 make ±32550,
    # so a bias of ±217 takes the sum to 32767 / −32767 and −218 to −32768 (int16), +218 and −219
    # one beyond (those blocks add the bias in int32)
    for bias, w_extreme in ((217, "max"), (218, "max"), (-218, "min"), (-219, "min")):
        add(_conv_case(rng, f"acc16 bias {bias} in the int16 sums", c=150, h=3, w=7, o=10, in_bits=5, in_zp=0,
                       w_bits=4, extreme=True, w_extreme=w_extreme, bias=bias))
    # Σ|w| · span = 2048 · 16 = 32768 (span 16: 5 bits, zero point 16, inputs at 0): one above the
    # bound, so K = 67 splits into 66 + 1 rows (66 · 31 · 16 = 32736), the last row holding the 2.
    w = np.full((9, 67, 1, 1), 31, np.int8)
    w[:, 66] = 2
    w[4] = -w[4]
    add(_conv_case(rng, "acc16 limit 32768", c=67, h=4, w=5, o=9, in_bits=5, in_zp=16, extreme=True,
                   weights=w, bias="zero"))
    # 3×3 (im2col): K = 9 · 17 = 153 rows of |w| = 3 (3 bits) times span 63 (6 bits, zero point 0),
    # 153 · 189 = 28917: one k-block, reached by the inner pixels
    add(_conv_case(rng, "acc16 3x3 one block", c=17, h=6, w=7, o=12, k=(3, 3), padding=(1, 1, 1, 1), in_bits=6,
                   in_zp=0, w_bits=3, extreme=True, w_extreme="max", bias="bound"))
    # blocks of 8 channels on different paths: 3-bit weights (acc16, one k-block), ±127 on 8-bit
    # inputs (int32: even 4 rows exceed int16), 5-bit weights (acc16, several k-blocks)
    w = np.concatenate([_weights(rng, (8, 96, 1, 1), 3, None), _weights(rng, (8, 96, 1, 1), 8, "max"),
                        _weights(rng, (5, 96, 1, 1), 5, None)])
    add(_conv_case(rng, "acc16 mixed paths", c=96, h=5, w=5, o=21, in_bits=8, in_zp=128, weights=w))
    # random low bits, pixel counts 1–40 (tails of the 16- and 8-pixel tiles), K from 5 to 300
    for i, (c, hw, k, o) in enumerate([(5, (1, 1), (1, 1), 8), (24, (3, 4), (1, 1), 13), (40, (2, 7), (1, 1), 16),
                                       (300, (5, 8), (1, 1), 9), (33, (4, 4), (1, 1), 17), (8, (5, 7), (3, 3), 11),
                                       (12, (3, 3), (3, 3), 24), (64, (1, 9), (1, 1), 7), (200, (2, 5), (1, 1), 20)]):
        in_bits, w_bits = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        pad = (k[0] // 2,) * 4
        add(_conv_case(rng, f"acc16 random {c}x{hw} k{k} a{in_bits} w{w_bits}", c=c, h=hw[0], w=hw[1], o=o, k=k,
                       padding=pad, in_bits=in_bits, w_bits=w_bits, extreme=i % 3 == 2,
                       w_extreme=("max" if i % 2 else "min") if i % 3 == 2 else None,
                       bias=("random", "large", "bound")[i % 3]))
    # at most 4 pixels (2 × 2 maps): the transposed tiles, 16 channels at a time when both blocks
    # of 8 have one k-block, with a partial last block; and with several k-blocks
    add(_conv_case(rng, "acc16 2x2 pairs", c=80, h=2, w=2, o=37, in_bits=4, w_bits=4))
    add(_conv_case(rng, "acc16 1x3 pairs", c=40, h=1, w=3, o=24, in_bits=3, w_bits=3, bias="bound"))
    add(_conv_case(rng, "acc16 2x2 k-blocks", c=300, h=2, w=2, o=20, in_bits=6, in_zp=0, w_bits=6,
                   extreme=True, w_extreme="max", bias="zero"))
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
    # low-bit layers at the ends of the neon int16 tiles' requantization domain (l = 14 + shift in
    # [0, 14]): multipliers in [0.5, 1) (shift 0, l = 14), [2^−15, 2^−14) (l = 0) and one below
    # (shift −15: the int64 form); the small ones with a bias that puts (acc + bias) · m around the
    # tie at 1/2
    for m, bias in ((0.75, "zero"), (1.5 * 2.0 ** -15, 10990), (1.5 * 2.0 ** -16, 21980)):
        kw = dict(multiplier=m, in_bits=4, w_bits=4, bias=bias)
        add(_conv_case(rng, f"1x1 4-bit m{m:g}", c=40, h=3, w=7, o=16, **kw))
        add(_conv_case(rng, f"dw3x3 4-bit m{m:g}", c=12, h=6, w=9, o=12, k=(3, 3), groups=12, padding=(1, 1, 1, 1),
                       **kw))
    cases += _neon_elementwise_and_dw_cases(np.random.default_rng(seed + 1))
    cases += _acc8_cases(np.random.default_rng(seed + 6))
    cases += _sdot_cases(np.random.default_rng(seed + 7))
    cases += _stride2_panel_cases(np.random.default_rng(seed + 9))
    cases += _sdot_dw_cases(np.random.default_rng(seed + 10))
    cases += _x86_cases(np.random.default_rng(seed + 8))
    cases.append(_quantize_case(np.random.default_rng(seed + 4), "quantize specials, scale 0.1 zp 37", 0.1, 37))
    cases.append(_quantize_case(np.random.default_rng(seed + 5), "quantize specials, 4-bit, scale 3 zp 0", 3.0, 0, 4))
    return cases


def _acc8_cases(rng: np.random.Generator) -> list[KernelCase]:
    """The GEMMs on pairs of taps (neon) at their lanes' bounds. The int8-accumulating one: 1-bit inputs (x − c ∈ {0, 1}) at their
    top, so every sum reaches its interval bound. Runs of two pairs summing 127 and −128 exactly,
    runs of one where two would sum 128 or 254; the int16 bound of the whole
    sum at 32767 and −32768 (admitted) and at 32768 (refused: the int16 path takes the op)."""
    cases = []
    w = rng.integers(-3, 4, size=(13, 40)).astype(np.int8)
    w[0, 0::2] = np.tile([63, 64], 10)  # block 0: runs of two pairs, 127
    w[5, 1::2] = 127  # block 1: runs of one pair
    w[6, 0::2] = -127
    w[8, 0::2] = 64  # block 2: two would be 128, so runs of one
    w[12, 1::2] = -64  # block 3: runs of two pairs, −128
    for extreme in (True, False):
        cases.append(_conv_case(rng, f"1x1 acc8 runs at 127 ({'top' if extreme else 'random'})", c=40, h=3, w=9, o=13,
                                in_bits=1, in_zp=0, extreme=extreme, weights=w.reshape(13, 40, 1, 1), bias="zero"))
    # a panel's single last pixel (tail_1px: 1 = 0 + 1, 25 = 24 + 1, 49 = 2 · 24 + 1 pixels) with
    # the same runs at their bounds, and random
    for hw, extreme in (((1, 1), True), ((5, 5), True), ((7, 7), True), ((7, 7), False)):
        cases.append(_conv_case(rng, f"1x1 acc8 one-pixel tail {hw} ({'top' if extreme else 'random'})", c=40,
                                h=hw[0], w=hw[1], o=13, in_bits=1, in_zp=0, extreme=extreme,
                                weights=w.reshape(13, 40, 1, 1), bias="zero"))
    for total, sign in ((32767, 1), (32768, -1), (32768, 1)):
        k = total // 127 + 1
        wt = rng.integers(-2, 3, size=(5, k)).astype(np.int8)
        wt[2] = sign * np.append(np.full(k - 1, 127), total - 127 * (k - 1))
        for h, w_ in ((2, 13), (5, 5)):  # 26 pixels, and 25 (a one-pixel tail)
            cases.append(_conv_case(rng, f"1x1 acc8 int16 bound {sign * total} {h}x{w_}", c=k, h=h, w=w_, o=5,
                                    in_bits=1, in_zp=0, extreme=True, weights=wt.reshape(5, k, 1, 1), bias="zero"))
    # the int16 lanes of byte products (mull: 8-bit inputs, K ≥ 48): x − c = −128 everywhere at
    # the grid's bottom; runs of three pairs reach −128 · (127 + 127 + 2) = −32768 exactly, and
    # where the third weight is 3 the runs stop at two
    w = rng.integers(-3, 4, size=(8, 60)).astype(np.int8)
    w[0, 0::2] = np.tile([127, 127, 2], 10)
    w[4, 0::2] = np.tile([127, 127, 3], 10)
    for extreme in (True, False):
        cases.append(_conv_case(rng, f"1x1 mull runs at -32768 ({'bottom' if extreme else 'random'})", c=60, h=3,
                                w=7, o=8, in_bits=8, in_zp=255, extreme=extreme, weights=w.reshape(8, 60, 1, 1),
                                bias="zero"))
    return cases


def _stride2_panel_cases(rng: np.random.Generator) -> list[KernelCase]:
    """3×3 stride-2 convolutions whose output rows are whole 16-pixel tiles: the tiled panel
    built straight from padded input rows (gemm_plan.c, build_panel_3x3s2; neondot)."""
    cases = []
    for name, c, h, w, o, padding, batch in (
            ("pad 1", 3, 20, 32, 10, (1, 1, 1, 1), 2),
            ("pad 0 0 1 1, K = 45", 5, 9, 32, 7, (0, 0, 1, 1), 2),
            ("odd width 31, pad 1", 2, 11, 31, 9, (1, 1, 1, 1), 2),
            ("two panels of whole rows", 3, 296, 64, 6, (1, 1, 1, 1), 1),   # 146 rows, then 2
            ("16 channels, K = 144", 16, 124, 32, 5, (1, 1, 1, 1), 1),
            ("17 channels (the general path)", 17, 8, 32, 4, (1, 1, 1, 1), 1)):
        bits = int(rng.integers(2, 9))
        cases.append(_conv_case(rng, f"3x3/2 rows of tiles: {name}", c=c, h=h, w=w, o=o, k=(3, 3), stride=(2, 2),
                                padding=padding, in_bits=bits, w_bits=int(rng.integers(2, 9)), batch=batch))
    return cases


def _sdot_dw_cases(rng: np.random.Generator) -> list[KernelCase]:
    """The SDOT depthwise rows (dwconv3x3_rows__neondot.c): stride 1, inputs of up to 7 bits."""
    cases = []
    # row widths around its chunks of 16 outputs and vectors of 8 (one chunk of 1–16, several with
    # a last one of 1, 8, 9 or 16), maps of odd and even heights, paddings on either side
    for h, w, padding in (((1, 1, (1, 1, 1, 1))), (2, 7, (1, 1, 1, 1)), (3, 8, (1, 1, 1, 1)), (5, 9, (0, 1, 1, 0)),
                          (4, 15, (1, 1, 1, 1)), (7, 16, (1, 0, 1, 2)), (3, 17, (0, 0, 0, 0)), (6, 24, (1, 1, 1, 1)),
                          (3, 33, (2, 2, 2, 2)), (5, 40, (1, 1, 1, 1)), (4, 49, (0, 1, 2, 1)), (2, 65, (1, 1, 1, 1))):
        c = int(rng.integers(2, 20))
        bits = int(rng.integers(2, 8))
        zp = int(rng.integers(0, 1 << bits)) if rng.integers(0, 2) else 0
        cases.append(_conv_case(rng, f"sdot dw3x3 {h}x{w} p{padding}", c=c, h=h, w=w, o=c, k=(3, 3), groups=c,
                                padding=padding, in_bits=bits, in_zp=zp, w_bits=int(rng.integers(2, 9)),
                                multiplier=float(2.0 ** -rng.uniform(2, 6)), relu=bool(rng.integers(0, 2)),
                                out_zp=0 if rng.integers(0, 2) else None))
    # the narrow's floor a = 0 … 3 (rounding shifts up to 10), and past it (the neon set's kernel)
    for m in (2.0 ** -3, 2.0 ** -8, 2.0 ** -9, 2.0 ** -10, 2.0 ** -12):
        cases.append(_conv_case(rng, f"sdot dw3x3 m{m:g}", c=9, h=6, w=20, o=9, k=(3, 3), groups=9,
                                padding=(1, 1, 1, 1), in_bits=7, in_zp=0, w_bits=8, multiplier=m, bias="large",
                                relu=True, out_zp=0))
    # 7-bit inputs at the grid's ends with the biases at the accumulator bound (most outputs
    # saturate in the narrow); an input zero point of 127 (x − zp down to −127) and of 0
    for zp in (0, 127):
        cases.append(_conv_case(rng, f"sdot dw3x3 bound zp{zp}", c=11, h=5, w=18, o=11, k=(3, 3), groups=11,
                                padding=(1, 1, 1, 1), in_bits=7, in_zp=zp, extreme=True, w_extreme="max",
                                bias="bound", multiplier=2.0 ** -9))
    return cases


def _sdot_cases(rng: np.random.Generator) -> list[KernelCase]:
    """The SDOT GEMM's tails and limits (neondot: groups of four taps, 6 × 16 tiles)."""
    cases = []
    # K = 1 … 9: K mod 4 = 1, 2, 3, 0 and odd or even numbers of groups; O leaves 1–5 channels in
    # the last block of 6; 16 + 1, 16 + 15, 8 + 1 and 1–4 pixels
    for k, o, hw in ((1, 5, (1, 17)), (2, 7, (31, 1)), (3, 13, (3, 3)), (5, 1, (2, 2)), (6, 11, (4, 8)),
                     (7, 6, (1, 4)), (9, 8, (5, 5)), (4, 17, (1, 1))):
        cases.append(_conv_case(rng, f"sdot 1x1 K{k} O{o} {hw}", c=k, h=hw[0], w=hw[1], o=o,
                                in_bits=int(rng.integers(2, 9)), w_bits=int(rng.integers(2, 9))))
    # two panels (64 taps × 2550 pixels exceed 128 KiB): 2048 + 502 = 31 · 16 + 6 pixels; the
    # plain 1×1's last panel reads past the channel plane's end only through the row copy
    cases.append(_conv_case(rng, "sdot 1x1 two panels", c=64, h=50, w=51, o=7, in_bits=4, w_bits=4, batch=1))
    cases.append(_conv_case(rng, "sdot 3x3 two panels", c=9, h=60, w=61, o=8, k=(3, 3), padding=(1, 1, 1, 1),
                            in_bits=8, in_zp=3, batch=1))
    # the requantization's three forms on every tile (16 pixels, 8, 4 and the one-pixel tail):
    # the int64 form (8-bit, K = 256, a multiplier of 300: the fast form's x · 2^10 would leave
    # int32 for the loader's bound), the fast form with a left shift (multiplier 7) and without
    for m, k, hw in ((300.0, 256, (1, 33)), (300.0, 256, (2, 14)), (7.0, 64, (3, 11)), (0.01, 64, (7, 7))):
        cases.append(_conv_case(rng, f"sdot 1x1 m{m:g} {hw}", c=k, h=hw[0], w=hw[1], o=10, multiplier=m,
                                bias="zero", out_zp=int(rng.integers(0, 256)), relu=bool(rng.integers(0, 2))))
    # one rounding shift for all channels of a block (weights and biases scaled, SQRSHRN #R):
    # after a ReLU, linear with an output zero point, multipliers above 1 (the left shift moved
    # into the weights) and rounding shifts up to 16
    for m, w_bits, relu, zp in ((2.0 ** -6, 4, True, 0), (2.0 ** -6, 4, False, 37), (7.0, 3, False, 200),
                                (2.0 ** -14, 2, True, 0)):
        cases.append(_conv_case(rng, f"sdot 1x1 one rounding shift m{m:g}", c=40, h=4, w=16, o=12, multiplier=m,
                                in_bits=5, w_bits=w_bits, bias="random" if m < 1 else "zero", out_zp=zp, relu=relu))
    # one rounding shift per block of 6 channels: blocks 0 and 2 have 3-bit weights, which scale,
    # and shifts 3 apart (block 2's weight scales divided by 8); block 1's 8-bit weights cannot
    # scale (unless its channels' shifts agree), so one op takes both epilogues and two shifts
    mixed = rng.integers(-3, 4, size=(18, 40, 1, 1)).astype(np.int8)
    mixed[6:12] = rng.integers(-127, 128, size=(6, 40, 1, 1))
    case = _conv_case(rng, "sdot 1x1 one rounding shift in blocks 0 and 2 of 3", c=40, h=4, w=16, o=18,
                      multiplier=2.0 ** -8, in_bits=5, weights=mixed, out_zp=0, relu=True)
    case.graph.tensors["w"].quant.scale[12:] /= 8
    cases.append(case)
    # stride-2 im2col rows longer than 16 output pixels (the panel's LD2 copy and its last block
    # read back from a row's end), one reaching the input's last byte (no padding, (H − 3) and
    # (W − 3) even), one padded
    cases.append(_conv_case(rng, "sdot 3x3/2 rows to the input's end", c=3, h=7, w=67, o=8, k=(3, 3), stride=(2, 2),
                            batch=1))
    cases.append(_conv_case(rng, "sdot 3x3/2 padded rows", c=3, h=8, w=70, o=6, k=(3, 3), stride=(2, 2),
                            padding=(0, 0, 1, 1), in_bits=8, in_zp=0))
    # 8-bit inputs whose zero point leaves x − zp outside int8 (c = 128 or 127), with padding
    # (zp − c), random and at the far end of the grid with the biases at the accumulator bound
    for zp in (0, 60, 255):
        cases.append(_conv_case(rng, f"sdot 3x3 8-bit zp{zp}", c=5, h=7, w=9, o=13, k=(3, 3), stride=(2, 1),
                                padding=(1, 2, 0, 1), in_bits=8, in_zp=zp))
        cases.append(_conv_case(rng, f"sdot 1x1 bound zp{zp}", c=35, h=5, w=7, o=7, in_zp=zp, extreme=True,
                                w_extreme="max" if zp else "min", bias="bound"))
    return cases


def _x86_cases(rng: np.random.Generator) -> list[KernelCase]:
    """The x86 set's GEMM on groups of 4 taps (conv_gemm_4x16c4__avx2.c) at its bounds. Its panel
    holds unsigned codes (c = 0) and maddubs adds a pair of taps (4g, 4g + 1 or 4g + 2, 4g + 3)
    into an int16 lane with saturation, so a block of 4 channels takes it only if no pair's
    bound leaves int16: with inputs at 255, weights (127, 1) make 32640, the largest pair an
    8-bit grid can reach within int16 (admitted), and (127, 2) make 32895 (that block must take
    the exact int16-operand path; saturating, it would be 32767). The pair lanes then add in int16
    over runs: with 1-bit inputs at 1 a lane's whole sum at 32767 and −32768 is one run, at 32768
    and −32769 two. Tails of the 4-channel blocks, the 4-tap groups and the 8-pixel tiles, and
    accumulators at the int32 bound on the maddubs path."""
    cases = []
    w = rng.integers(-3, 4, size=(8, 32)).astype(np.int8)
    w[0, 0::4], w[0, 1::4] = 127, 1  # block 0: every even-lane pair at 32640
    w[2, 2::4], w[2, 3::4] = -127, -1  # and every odd-lane pair of another channel at −32640
    w[5, 4], w[5, 5] = 127, 2  # block 1: one pair at 32895
    for extreme in (True, False):
        cases.append(_conv_case(rng, f"x86 maddubs pairs at 32640 / 32895 ({'top' if extreme else 'random'})", c=32,
                                h=3, w=5, o=8, in_bits=8, in_zp=0, extreme=extreme, weights=w.reshape(8, 32, 1, 1),
                                bias="zero"))
    even_lane = np.sort(np.concatenate([np.arange(0, 520, 4), np.arange(1, 520, 4)]))
    for total in (32767, 32768, -32768, -32769):
        wt = rng.integers(-1, 2, size=(5, 520)).astype(np.int8)
        wt[2] = 0
        sign, rest = (1, total - 127 * 258) if total > 0 else (-1, -total - 127 * 258)
        wt[2, even_lane[:258]] = sign * 127
        wt[2, even_lane[258]] = sign * rest
        cases.append(_conv_case(rng, f"x86 int16 run bound {total}", c=520, h=2, w=5, o=5, in_bits=1, in_zp=0,
                                extreme=True, weights=wt.reshape(5, 520, 1, 1), bias="zero"))
    for c, o, hw in ((1, 1, (1, 1)), (2, 3, (3, 3)), (3, 5, (1, 7)), (5, 2, (3, 5)), (6, 7, (1, 17)), (7, 4, (2, 4))):
        cases.append(_conv_case(rng, f"x86 tails c{c} o{o} {hw}", c=c, h=hw[0], w=hw[1], o=o,
                                in_bits=int(rng.integers(2, 9)), w_bits=int(rng.integers(2, 9))))
    for zp in (0, 255):
        cases.append(_conv_case(rng, f"x86 maddubs int32 bound zp{zp}", c=64, h=3, w=3, o=6, in_bits=8, in_zp=zp,
                                w_bits=4, extreme=True, w_extreme="max" if zp == 0 else "min", bias="bound"))
    return cases


def _quantize_case(rng, name: str, scale: float, zp: int, bits: int = 8) -> KernelCase:
    """quantize → dequantize on 3·7·5 = 16·6 + 9 values (a vector tail): NaN, ±inf, ±0, huge and
    subnormal values, exact ties x / scale = k + 1/2 (rounded up by + 0.5 then floor), values one
    ulp beside the ties, and both ends of the grid."""
    grid = QuantParams(np.array([scale], np.float32), zp, bits, 0, (1 << bits) - 1)
    shape = (1, 3, 7, 5)
    g = Graph()
    g.add_tensor(Tensor("x", shape, "float32"))
    g.add_tensor(Tensor("q", shape, "uint8", grid))
    g.add_tensor(Tensor("out", shape, "float32"))
    g.add_op(Op("quantize", "quant", ["x"], ["q"]))
    g.add_op(Op("dequantize", "deq", ["q"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {"generator": "ddq_edge.testing.kernel_cases", "case": name}
    g.validate()
    s = np.float32(scale)
    ties = (np.arange(-6, 6, dtype=np.float32) + np.float32(0.5)) * s
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38, -3e38, 1e-45, -1e-45,
                         -zp * s, (grid.qmax - zp) * s, (grid.qmax - zp + 1) * s], np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    x = rng.uniform(-40.0, 40.0, size=int(np.prod(shape))).astype(np.float32) * s
    values = np.concatenate([specials, ties, near])
    x[:values.size] = values
    return KernelCase(name, g, x.reshape(shape))


def _add_case(rng, name, *, shape, zp_a, zp_b, s_b, s_out, zp_out, act=None, batch=2) -> KernelCase:
    """quantize (grid a: scale 1, zp_a) → requantize to grid b (s_b, zp_b) → add(a, b) on
    (s_out, zp_out) → dequantize: both NEON elementwise kernels, with vector tails
    (C·H·W = 16·k + 0…15) and power-of-two scales that make exact ties at every rounding."""
    a_grid = _grid(8, zp_a)
    b_grid = QuantParams(np.array([s_b], np.float32), int(zp_b), 8, 0, 255)
    out_grid = QuantParams(np.array([s_out], np.float32), int(zp_out), 8, 0, 255)
    lo, hi = act if act is not None else (0, 255)
    g = Graph()
    g.add_tensor(Tensor("x", (1,) + shape, "float32"))
    g.add_tensor(Tensor("a", (1,) + shape, "uint8", a_grid))
    g.add_tensor(Tensor("b", (1,) + shape, "uint8", b_grid))
    g.add_tensor(Tensor("y", (1,) + shape, "uint8", out_grid))
    g.add_tensor(Tensor("out", (1,) + shape, "float32"))
    g.add_op(Op("quantize", "quant", ["x"], ["a"]))
    g.add_op(Op("requantize", "requant", ["a"], ["b"], {"act_min": 0, "act_max": 255}))
    g.add_op(Op("add", "add", ["a", "b"], ["y"], {"act_min": int(lo), "act_max": int(hi)}))
    g.add_op(Op("dequantize", "deq", ["y"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {"generator": "ddq_edge.testing.kernel_cases", "case": name}
    g.validate()
    codes = rng.integers(0, 256, size=(batch,) + shape).astype(np.int64)
    ends = np.array([0, 255, zp_a, 255 - zp_a])  # both ends of the grid and the zero point
    flat = codes.reshape(batch, -1)
    flat[0, :min(4, flat.shape[1])] = ends[:min(4, flat.shape[1])]
    return KernelCase(name, g, (codes - zp_a).astype(np.float32))


def _global_pool_case(rng, name, *, c, h, w, zp_in, s_out, zp_out, batch=2) -> KernelCase:
    """quantize (scale 1, zp_in) → global_avg_pool on (s_out, zp_out) → dequantize: the mean of
    an h·w map (16-byte steps and their tail), channel 0 of the first sample all at 255 and
    channel 1 all at 0 (the sums' extremes)."""
    in_grid = _grid(8, zp_in)
    out_grid = QuantParams(np.array([s_out], np.float32), int(zp_out), 8, 0, 255)
    g = Graph()
    g.add_tensor(Tensor("x", (1, c, h, w), "float32"))
    g.add_tensor(Tensor("a", (1, c, h, w), "uint8", in_grid))
    g.add_tensor(Tensor("y", (1, c, 1, 1), "uint8", out_grid))
    g.add_tensor(Tensor("out", (1, c, 1, 1), "float32"))
    g.add_op(Op("quantize", "quant", ["x"], ["a"]))
    g.add_op(Op("global_avg_pool", "pool", ["a"], ["y"], {"act_min": 0, "act_max": 255}))
    g.add_op(Op("dequantize", "deq", ["y"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {"generator": "ddq_edge.testing.kernel_cases", "case": name}
    g.validate()
    codes = rng.integers(0, 256, size=(batch, c, h, w)).astype(np.int64)
    codes[0, 0] = 255
    codes[0, 1 % c] = 0
    return KernelCase(name, g, (codes - zp_in).astype(np.float32))


def _dw_bound_case(rng, name, *, c, h, w, span, wsum, in_zp, over=(), bias: str | int = "zero") -> KernelCase:
    """Depthwise 3×3 on inputs all at the far end of the grid (|x − zp| = span) with weights of
    one sign per channel and Σ|w| = wsum, so that the sum of products is exactly ±wsum · span:
    at 32767 the NEON kernel sums in int16, at 32768 (or for a group with a channel in `over`,
    Σ|w| + 1) it must fall back to int32. An int `bias` is every channel's bias."""
    in_grid = _grid(8, in_zp)
    x = _codes(rng, (2, c, h, w), in_grid, extreme=True)
    assert max(in_grid.qmax - in_zp, in_zp - in_grid.qmin) == span
    wt = np.zeros((c, 1, 3, 3), np.int64)
    for o in range(c):
        total = wsum + (1 if o in over else 0)
        parts = [127] * (total // 127) + ([total % 127] if total % 127 else [])
        assert len(parts) <= 9, "Σ|w| too large for nine int8 weights"
        flat = np.zeros(9, np.int64)
        flat[rng.permutation(9)[:len(parts)]] = parts
        wt[o, 0] = (flat * (1 if o % 2 else -1)).reshape(3, 3)
    wt = wt.astype(np.int8)
    attrs = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": c}
    acc = conv_accumulate(x - in_grid.zero_point, wt, (1, 1), (0, 0, 0, 0), (1, 1), c)
    b = _bias(rng, wt, span, acc, bias)
    return _single_op_graph(name, "conv2d", x, in_grid, wt, b, acc, attrs, rng, None, None, False)


def _neon_elementwise_and_dw_cases(rng: np.random.Generator) -> list[KernelCase]:
    """add / requantize (add__neon.c), global_avg_pool and the depthwise int16 accumulation limit."""
    cases = []
    for i, (shape, zp_a, zp_b, s_b, s_out, zp_out, act) in enumerate([
            ((3, 5, 7), 0, 255, 0.5, 2.0, 0, None),          # 105 = 6·16 + 9; ties everywhere
            ((1, 1, 15), 255, 0, 2.0, 4.0, 255, None),        # tail only
            ((16, 1, 1), 128, 128, 1.0, 1.0, 128, (100, 140)),  # one vector, narrow clamp
            ((1, 1, 1), 0, 0, 0.25, 0.5, 255, (255, 255)),
            ((17, 2, 1), 255, 255, 0.125, 0.0625, 0, (0, 0)),
            ((5, 6, 7), 77, 200, 0.37, 1.3, 3, (3, 250)),     # random scales
            ((33, 4, 4), 13, 255, 1.7, 0.09, 250, None),
            ((2, 3, 16), 10, 20, 2.0 ** -22, 4.0, 5, None)]):   # scales 2^22 apart: no fast form
        cases.append(_add_case(rng, f"add {shape} zp{zp_a}/{zp_b}/{zp_out} {i}", shape=shape, zp_a=zp_a, zp_b=zp_b,
                               s_b=s_b, s_out=s_out, zp_out=zp_out, act=act))
    # Σ|w| · span = 217 · 151 = 32767 (int16), 256 · 128 = 32768 (int32), and 19 channels whose
    # middle group has one channel one above the limit
    cases.append(_dw_bound_case(rng, "dw3x3 int16 limit 32767 zp151", c=16, h=5, w=6, span=151, wsum=217, in_zp=151))
    cases.append(_dw_bound_case(rng, "dw3x3 int16 limit 32767 zp104", c=9, h=3, w=3, span=151, wsum=217, in_zp=104))
    cases.append(_dw_bound_case(rng, "dw3x3 int16 over 32768", c=8, h=4, w=5, span=128, wsum=256, in_zp=128))
    cases.append(_dw_bound_case(rng, "dw3x3 int16 one channel over", c=19, h=4, w=4, span=151, wsum=217,
                                in_zp=151, over=(9,)))
    # the bias inside the int16 sum (dwconv3x3_c4x4__neon.c, RUNS9B): inputs at 0 − 128, Σw = 255,
    # so a channel of positive weights sums to −32640 + bias: −32768 with a bias of −128, one
    # beyond int16 with −129 (its group then sums without the bias)
    cases.append(_dw_bound_case(rng, "dw3x3 bias in int16 -32768", c=9, h=4, w=5, span=128, wsum=255, in_zp=128,
                                bias=-128))
    cases.append(_dw_bound_case(rng, "dw3x3 bias past int16", c=9, h=4, w=5, span=128, wsum=255, in_zp=128,
                                bias=-129))
    # global_avg_pool (global_avg_pool__neon.c): maps of 1, 15, 16, 17, 49 and 1600 codes
    for i, (hw, zp_in, s_out, zp_out) in enumerate([((1, 1), 0, 1.0, 0), ((3, 5), 255, 1.0, 255), ((4, 4), 128, 2.0, 7),
                                                     ((1, 17), 37, 2.0, 60), ((7, 7), 0, 1.5, 0),
                                                     ((40, 40), 200, 1.0, 100)]):
        cases.append(_global_pool_case(rng, f"global_avg_pool {hw} zp{zp_in}/{zp_out}", c=3 + i, h=hw[0], w=hw[1],
                                       zp_in=zp_in, s_out=s_out, zp_out=zp_out))
    # the four-pixel groups: 2×2 and 3×4 maps (8 + 4 pixels), low-bit layers
    for hw, c in (((2, 2), 20), ((3, 4), 13), ((1, 3), 8)):
        cases.append(_conv_case(rng, f"dw3x3 small {hw}", c=c, h=hw[0], w=hw[1], o=c, k=(3, 3), groups=c,
                                padding=(1, 1, 1, 1), in_bits=3, w_bits=4, relu=True))
    return cases
