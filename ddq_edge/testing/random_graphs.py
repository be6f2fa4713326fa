"""Random, valid small integer graphs for holding a runtime bit-exactly to the numpy reference.

Every graph quantizes a float32 NCHW input onto a uint8 grid, runs a chain of integer ops with
occasional residual branches, and dequantizes the last tensor. Each graph comes with the input
batch it was built for: output grids are calibrated on the values that batch produces, so codes
spread over their range instead of piling up at the clamp bounds. Every graph passes
``Graph.validate``, runs in ``ddq_edge.reference.run`` and round-trips through a bundle.

``random_graph(seed)`` draws one graph; ``graph_grid(count, seed)`` draws ``count`` graphs and
forces, in turn, the features a conformance suite must see (each op kind, every weight and
activation bit width, depthwise and grouped convolutions, both pools, ...).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..ir import Graph, Op, QuantParams, Tensor
from ..reference.executor import execute_op
from ..reference.ops import conv_accumulate

__all__ = ["FEATURES", "graph_grid", "random_graph"]

# Size limits keep every graph small enough to run thousands of times in a test suite.
MAX_INPUT_SIZE = 13          # input channels, height and width are drawn from 1..13
MAX_SPATIAL = 16             # convolutions switch to stride 2 rather than grow past this
MAX_CHANNELS = 32
MAX_OUT_CHANNELS = 16        # output channels of a freely drawn conv2d / fully_connected
MAX_FC_FEATURES = MAX_INPUT_SIZE ** 3  # larger inputs are global-pooled before a fully_connected
# The largest accumulator, a fully_connected over 13^3 features, stays below 2197·255·127 < 2^27;
# with biases below 2^24 every |acc| is far inside int32.
MAX_BIAS = 1 << 24

# Lower bound on an output scale relative to the natural one (s_in · s_w for conv / fc, s_in
# otherwise): keeps every requantization multiplier below 2^12, far from the shift limit of 30.
MIN_SCALE_RATIO = 2.0 ** -12

KERNELS = ((1, 1), (3, 3), (5, 5), (1, 3), (3, 1))
KERNEL_WEIGHTS = (0.3, 0.4, 0.1, 0.1, 0.1)

# Features graph_grid forces, one per graph in turn.
FEATURES = (
    "conv1x1", "conv3x3", "conv5x5", "conv1x3", "conv3x1", "depthwise", "depthwise_x2",
    "grouped", "dilated", "stride2", "residual", "avg_pool", "max_pool", "global_pool_fc",
    "flatten_fc", "requantize", "reshape",
)
# Features that still work after an arbitrary convolution has changed the shape; the others
# need the input shape they were given (e.g. a channel count with a proper divisor).
_SHAPE_AGNOSTIC = frozenset({
    "conv1x1", "conv3x3", "conv5x5", "conv1x3", "conv3x1", "dilated", "stride2", "residual",
    "avg_pool", "max_pool", "requantize",
})


# =========================================================================== small draws ===

def _count(rng: np.random.Generator, low: int, high: int) -> int:
    """A size in [low, high], odd about three times in four: odd sizes catch the tail loops
    of vectorised kernels."""
    n = int(rng.integers(low, high + 1))
    if n % 2 == 0 and rng.random() < 0.5:
        n = n + 1 if n < high else n - 1
    return n


def _act_bounds(mode: str, grid: QuantParams, rng: np.random.Generator) -> tuple[int, int]:
    """act_min / act_max inside [qmin, qmax]. ReLU starts at the zero point; the narrow top
    stands in for ReLU6, whose code for 6.0 usually lies beyond a calibrated grid's qmax."""
    lo, hi = grid.qmin, grid.qmax
    if mode != "full" and grid.zero_point < grid.qmax:
        lo = grid.zero_point
    if mode == "narrow" and hi - lo >= 2:
        hi = lo + min(max(1, round(rng.uniform(0.5, 0.9) * (hi - lo))), hi - lo - 1)
    return int(lo), int(hi)


def _clamp_mode(real: np.ndarray, rng: np.random.Generator) -> str:
    """How an op's output clamp is folded: the full grid, ReLU, or a ReLU6-like narrow top.
    ReLU only where a fair share of the values is positive: otherwise it zeroes the tensor."""
    mode = str(rng.choice(["full", "relu", "narrow"], p=[0.45, 0.4, 0.15]))
    return mode if mode == "full" or np.mean(real > 0) >= 0.25 else "full"


def _zero_point(real: np.ndarray, qmax: int, mode: str, rng: np.random.Generator) -> int:
    """0 often (as after ReLU), else centred on the data or anywhere; 0 or qmax only when
    enough values lie on the side of the zero point the grid can represent."""
    if mode != "full":
        return 0 if rng.random() < 0.75 else int(rng.integers(0, qmax // 2 + 1))
    r = rng.random()
    if r < 0.3 and np.mean(real > 0) >= 0.25:
        return 0
    if r > 0.95 and np.mean(real < 0) >= 0.25:
        return qmax
    if 0.75 <= r <= 0.95:
        return int(rng.integers(0, qmax + 1))
    lo, hi = np.quantile(real, [0.02, 0.98])
    if hi <= lo:
        return qmax // 2
    return int(round(qmax * float(np.clip(-lo / (hi - lo), 0.0, 1.0))))


def _calibrated_scale(real: np.ndarray, zero_point: int, qmax: int, fallback: float,
                      rng: np.random.Generator) -> float:
    """A scale mapping the bulk (2nd to 98th percentile) of ``real`` onto the codes on either
    side of the zero point, randomly widened a little; narrowed now and then, so that more
    values clamp (not often: a cluster far from zero would clamp as a whole)."""
    lo, hi = np.quantile(real, [0.02, 0.98])
    fits = []
    if zero_point < qmax and hi > 0:
        fits.append(hi / (qmax - zero_point))
    if zero_point > 0 and lo < 0:
        fits.append(-lo / zero_point)
    scale = max(fits, default=0.0)
    if not scale > fallback * 1e-6:  # nothing on the representable side: constant or one-signed
        scale = fallback
    widening = rng.uniform(-0.3, 0.0) if rng.random() < 0.15 else rng.uniform(0.0, 0.4)
    return float(scale * 2.0 ** widening)


def _output_grid(real: np.ndarray, fallback: float, min_scale: float,
                 rng: np.random.Generator) -> tuple[QuantParams, dict]:
    """A b-bit activation grid calibrated on the real values an op produces, and the op's
    act_min / act_max attributes. ``fallback`` is the scale for data without spread."""
    bits = int(rng.integers(2, 9))
    qmax = (1 << bits) - 1
    mode = _clamp_mode(real, rng)
    zero_point = _zero_point(real, qmax, mode, rng)
    scale = max(_calibrated_scale(real, zero_point, qmax, fallback, rng), min_scale)
    grid = QuantParams(np.array([scale], np.float32), zero_point, bits, 0, qmax)
    act_min, act_max = _act_bounds(mode, grid, rng)
    return grid, {"act_min": act_min, "act_max": act_max}


def _same_grid(a: QuantParams, b: QuantParams) -> bool:
    return (np.array_equal(a.scale, b.scale) and a.zero_point == b.zero_point
            and a.bits == b.bits and a.qmin == b.qmin and a.qmax == b.qmax)


def _copy_grid(grid: QuantParams) -> QuantParams:
    return QuantParams(grid.scale.copy(), grid.zero_point, grid.bits, grid.qmin, grid.qmax)


def _input_grid(bits: int, rng: np.random.Generator) -> QuantParams:
    qmax = (1 << bits) - 1
    r = rng.random()
    zero_point = 0 if r < 0.35 else qmax if r < 0.45 else int(rng.integers(0, qmax + 1))
    scale = np.float32(2.0 ** rng.uniform(-8.0, 1.0))
    return QuantParams(np.array([scale], np.float32), zero_point, bits, 0, qmax)


def _input_batch(chw: tuple[int, int, int], grid: QuantParams, ties: bool,
                 rng: np.random.Generator) -> np.ndarray:
    """float32 (N, C, H, W), N = 1 or 2, spread over the grid's range plus about 5 % far
    outside it (quantize must clamp); with ``ties``, some values with x / scale = k + 1/2
    exactly in float32 (quantize must round them up)."""
    shape = (int(rng.integers(1, 3)),) + chw
    s, zp, qmax = np.float32(grid.scale[0]), grid.zero_point, grid.qmax
    # Positions on the code axis: [-1/2, qmax + 1/2) quantizes onto the whole grid.
    u = rng.uniform(-0.5, qmax + 0.5, size=shape)
    outside = rng.random(shape) < 0.05
    beyond = rng.uniform(0.0, qmax / 2 + 1.0, size=shape)
    u = np.where(outside, np.where(rng.random(shape) < 0.5, -0.5 - beyond, qmax + 0.5 + beyond), u)
    x = ((u - zp) * float(s)).astype(np.float32)
    if ties:
        k = rng.integers(-zp - 1, qmax - zp + 1, size=shape)
        half = (k + 0.5).astype(np.float32)
        tie = (half.astype(np.float64) * float(s)).astype(np.float32)
        exact = tie / s == half  # float32 division, as quantize computes it
        chosen = exact & (rng.random(shape) < 0.15)
        x = np.where(chosen, tie, x)
    return x


# =========================================================================== the builder ===

class _Builder:
    """A graph under construction and the codes each of its tensors takes on the input batch
    (the output grids are calibrated on them)."""

    def __init__(self, rng: np.random.Generator, x: np.ndarray, input_grid: QuantParams,
                 weight_bits: int | None) -> None:
        self.rng = rng
        self.graph = Graph()
        self.codes: dict[str, np.ndarray] = {"input": x}
        self.forced_weight_bits = weight_bits  # for the first weighted op (graph_grid coverage)
        self.has_weights = False
        self.graph.add_tensor(Tensor("input", (1,) + x.shape[1:], "float32"))
        self.graph.inputs = ["input"]
        self.current = "input"
        self.emit("quantize", ["input"], input_grid)

    # -- state ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.graph.tensors[self.current].shape

    def grid(self, name: str | None = None) -> QuantParams:
        return self.graph.tensors[name or self.current].quant

    def scale(self, name: str | None = None) -> float:
        return float(self.grid(name).scale[0])

    def real(self, name: str | None = None) -> np.ndarray:
        """The dequantized float64 values of an activation on the batch."""
        name = name or self.current
        grid = self.grid(name)
        return (self.codes[name].astype(np.float64) - grid.zero_point) * float(grid.scale[0])

    def centered(self) -> np.ndarray:
        return self.codes[self.current].astype(np.int64) - self.grid().zero_point

    @property
    def body_ops(self) -> int:
        return len(self.graph.ops) - 1  # after the leading quantize

    # -- emitting -------------------------------------------------------------------------------
    def emit(self, kind: str, inputs: list[str], grid: QuantParams | None,
             attrs: dict | None = None, *, dtype: str = "uint8", out: str | None = None) -> str:
        """Append an op, run it in the reference on the batch and make its output current."""
        name = f"{kind}_{len(self.graph.ops)}"
        out = out or f"{name}_out"
        tensor = self.graph.add_tensor(Tensor(out, (), dtype, grid))
        op = self.graph.add_op(Op(kind, name, list(inputs), [out], dict(attrs or {})))
        result = execute_op(self.graph, op, self.codes)
        # The reference decides the output shape; the stored batch dimension is 1.
        tensor.shape = (1,) + tuple(result.shape[1:])
        self.codes[out] = result
        self.current = out
        return out

    def constant(self, kind: str, role: str, dtype: str, data: np.ndarray,
                 grid: QuantParams | None = None) -> str:
        """A weight or bias, named after the op about to read it."""
        name = f"{kind}_{len(self.graph.ops)}_{role}"
        self.graph.add_tensor(Tensor(name, data.shape, dtype, grid, data))
        return name

    def weights(self, shape: tuple[int, ...], fan_in: int) -> tuple[np.ndarray, QuantParams]:
        """Narrow-range int8 codes and per-channel (sometimes single) scales. The scales make
        real weights about 1/sqrt(fan_in), so activation magnitudes stay steady along a chain."""
        rng = self.rng
        bits = self.forced_weight_bits or int(rng.integers(2, 9))
        self.forced_weight_bits = None
        self.has_weights = True
        wmax = (1 << (bits - 1)) - 1
        codes = rng.integers(-wmax, wmax + 1, size=shape).astype(np.int8)
        code_std = wmax / math.sqrt(3.0)  # uniform codes in [-wmax, wmax]
        base = 2.0 ** rng.uniform(-1.0, 1.0) / (math.sqrt(fan_in) * code_std)
        n_scales = shape[0] if rng.random() < 0.75 else 1
        scales = (base * 2.0 ** rng.uniform(-1.0, 1.0, size=n_scales)).astype(np.float32)
        return codes, QuantParams(scales, 0, bits, -wmax, wmax)

    def weighted_output(self, acc: np.ndarray, w_grid: QuantParams
                        ) -> tuple[np.ndarray, QuantParams, dict]:
        """Bias, output grid and clamp attributes for a conv2d / fully_connected whose
        accumulator without bias is ``acc`` (N, O, ...)."""
        rng = self.rng
        n_out = acc.shape[1]
        per_channel = (1, n_out) + (1,) * (acc.ndim - 2)
        # A bias about half the accumulator's spread shifts outputs visibly without drowning them.
        if rng.random() < 0.85:
            spread = max(float(acc.std()), 1.0)
            bias = np.clip(np.rint(rng.normal(0.0, 0.5 * spread, size=n_out)), -MAX_BIAS, MAX_BIAS)
        else:
            bias = np.zeros(n_out)
        bias = bias.astype(np.int32)
        total = acc + bias.astype(np.int64).reshape(per_channel)
        s_in = self.scale()
        s_w = np.broadcast_to(w_grid.scale.astype(np.float64), (n_out,))
        real = total * s_in * s_w.reshape(per_channel)
        natural = s_in * float(s_w.max())
        fallback = natural * max(float(np.abs(total).max()), 1.0) / 16
        grid, act = _output_grid(real, fallback, natural * MIN_SCALE_RATIO, rng)
        return bias, grid, act

    def requantized_grid(self, real: np.ndarray, like: QuantParams) -> tuple[QuantParams, dict]:
        """A fresh grid for values on grid ``like`` (requantize, add, global pooling)."""
        s = float(like.scale[0])
        return _output_grid(real, s, s * MIN_SCALE_RATIO, self.rng)


# =========================================================================== geometry ===

def _same_padding(extent: int, rng: np.random.Generator) -> tuple[int, int]:
    """Padding (before, after) of at most 2 each that keeps a stride-1 size unchanged."""
    total = extent - 1
    before = int(rng.integers(max(0, total - 2), min(2, total) + 1))
    return before, total - before


def _covering_padding(size: int, extent: int, max_pad: int,
                      rng: np.random.Generator) -> tuple[int, int]:
    """Random padding (before, after) in 0..max_pad, grown until the kernel extent fits."""
    before, after = (int(p) for p in rng.integers(0, max_pad + 1, size=2))
    while size + before + after < extent:
        if before <= after and before < max_pad:
            before += 1
        elif after < max_pad:
            after += 1
        else:
            raise ValueError(f"extent {extent} does not fit size {size} with padding <= {max_pad}")
    return before, after


def _random_stride(rng: np.random.Generator) -> tuple[int, int]:
    s = 2 if rng.random() < 0.3 else 1
    if rng.random() < 0.1:  # occasionally different strides along H and W
        return s, 3 - s
    return s, s


def _out_size(size: int, before: int, after: int, extent: int, stride: int) -> int:
    return (size + before + after - extent) // stride + 1


# =========================================================================== steps ===
# A step appends one or a few ops working on the current tensor.

def _conv(b: _Builder, *, groups_kind: str | None = None, kernel: tuple[int, int] | None = None,
          stride: tuple[int, int] | None = None, dilation: tuple[int, int] | None = None,
          multiplier: int | None = None, keep_shape: bool = False) -> None:
    rng = b.rng
    _, c, h, w = b.shape
    if groups_kind is None:
        groups_kind = str(rng.choice(["regular", "depthwise", "grouped"], p=[0.55, 0.25, 0.2]))
    divisors = [g for g in range(2, c) if c % g == 0]
    if groups_kind == "grouped" and not divisors:
        groups_kind = "regular"
    if groups_kind == "depthwise":
        groups = c
        if multiplier is None:
            multiplier = 2 if not keep_shape and 2 * c <= MAX_CHANNELS and rng.random() < 0.3 else 1
        out_c = multiplier * c
    elif groups_kind == "grouped":
        groups = 2 if 2 in divisors and rng.random() < 0.5 else int(rng.choice(divisors))
        per_group = c // groups if keep_shape else int(rng.integers(1, 4))
        out_c = groups * min(per_group, MAX_CHANNELS // groups)
    else:
        groups = 1
        out_c = c if keep_shape else _count(rng, 1, MAX_OUT_CHANNELS)

    kh, kw = kernel or KERNELS[rng.choice(len(KERNELS), p=KERNEL_WEIGHTS)]
    if dilation is None:
        dilation = (2, 1) if kh == 3 and rng.random() < 0.15 else (1, 1)
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if keep_shape:
        stride = (1, 1)
        (top, bottom), (left, right) = _same_padding(eh, rng), _same_padding(ew, rng)
    else:
        stride = stride or _random_stride(rng)
        top, bottom = _covering_padding(h, eh, 2, rng)
        left, right = _covering_padding(w, ew, 2, rng)
        stride = (2 if _out_size(h, top, bottom, eh, stride[0]) > MAX_SPATIAL else stride[0],
                  2 if _out_size(w, left, right, ew, stride[1]) > MAX_SPATIAL else stride[1])

    attrs = {"stride": list(stride), "padding": [top, left, bottom, right],
             "dilation": list(dilation), "groups": groups}
    codes, w_grid = b.weights((out_c, c // groups, kh, kw), fan_in=(c // groups) * kh * kw)
    acc = conv_accumulate(b.centered(), codes, attrs["stride"], attrs["padding"],
                          attrs["dilation"], groups)
    bias, grid, act = b.weighted_output(acc, w_grid)
    weight = b.constant("conv2d", "weight", "int8", codes, w_grid)
    bias_name = b.constant("conv2d", "bias", "int32", bias)
    b.emit("conv2d", [b.current, weight, bias_name], grid, {**attrs, **act})


def _reshape(b: _Builder, shape: tuple[int, ...]) -> None:
    b.emit("reshape", [b.current], _copy_grid(b.grid()), {"shape": [int(d) for d in shape]})


def _global_avg_pool(b: _Builder) -> None:
    real = b.real().mean(axis=(2, 3), keepdims=True)
    grid, act = b.requantized_grid(real, b.grid())
    b.emit("global_avg_pool", [b.current], grid, act)


def _fully_connected(b: _Builder, *, via_global_pool: bool | None = None,
                     keep_shape: bool = False) -> None:
    """fully_connected on a 2-D tensor; a 4-D one is flattened first, or global-pooled and then
    flattened (always when it has more than MAX_FC_FEATURES elements)."""
    rng = b.rng
    if len(b.shape) == 4:
        if b.shape[1] * b.shape[2] * b.shape[3] > MAX_FC_FEATURES:
            via_global_pool = True
        elif via_global_pool is None:
            via_global_pool = rng.random() < 0.35
        if via_global_pool:
            _global_avg_pool(b)
        _reshape(b, (1, b.shape[1] * b.shape[2] * b.shape[3]))
    features = b.shape[1]
    out_c = features if keep_shape else _count(rng, 1, MAX_OUT_CHANNELS)
    codes, w_grid = b.weights((out_c, features), fan_in=features)
    acc = b.centered() @ codes.astype(np.int64).T
    bias, grid, act = b.weighted_output(acc, w_grid)
    weight = b.constant("fully_connected", "weight", "int8", codes, w_grid)
    bias_name = b.constant("fully_connected", "bias", "int32", bias)
    b.emit("fully_connected", [b.current, weight, bias_name], grid, act)


def _pool(b: _Builder, kind: str, *, keep_shape: bool = False) -> None:
    """avg_pool / max_pool on the input's grid. Padding is at most 1 and kernels at least 2,
    so every window holds an input position."""
    rng = b.rng
    _, _, h, w = b.shape
    k = int(rng.choice([2, 3]))
    if keep_shape:
        stride = (1, 1)
        (top, bottom), (left, right) = _same_padding(k, rng), _same_padding(k, rng)
    else:
        s = 2 if rng.random() < 0.5 else 1
        stride = (s, s)
        top, bottom = _covering_padding(h, k, 1, rng)
        left, right = _covering_padding(w, k, 1, rng)
    attrs = {"kernel": [k, k], "stride": list(stride), "padding": [top, left, bottom, right]}
    grid = b.grid()
    if kind == "avg_pool":
        mode = str(rng.choice(["full", "relu", "narrow"], p=[0.6, 0.3, 0.1]))
        act_min, act_max = _act_bounds(mode, grid, rng)
        attrs.update(act_min=act_min, act_max=act_max)
    b.emit(kind, [b.current], _copy_grid(grid), attrs)


def _requantize(b: _Builder) -> None:
    old = b.grid()
    grid, act = b.requantized_grid(b.real(), old)
    if _same_grid(grid, old):  # a requantize must move the codes to another grid
        grid.scale = (grid.scale * np.float32(1.25)).astype(np.float32)
    b.emit("requantize", [b.current], grid, act)


def _reshape_candidates(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Other views of the current tensor that later ops can still work on."""
    if len(shape) == 2:
        return [(1, shape[1], 1, 1)]
    _, c, h, w = shape
    views = [(1, c, h * w, 1), (1, c, 1, h * w)]
    if c * h <= MAX_CHANNELS:
        views.append((1, c * h, w, 1))
    if c * h * w <= MAX_CHANNELS:
        views.append((1, c * h * w, 1, 1))
    return [v for v in dict.fromkeys(views) if v != shape]


def _random_reshape(b: _Builder) -> None:
    views = _reshape_candidates(b.shape)
    _reshape(b, views[int(b.rng.integers(len(views)))])


def _residual(b: _Builder, *, max_branch: int = 2) -> None:
    """skip + branch, the branch 1..max_branch shape-preserving ops that start with a conv
    (fully_connected on 2-D tensors) or a requantize, so both add inputs have their own grid."""
    rng = b.rng
    skip = b.current
    flat = len(b.shape) == 2
    if rng.random() < 0.7:
        _fully_connected(b, keep_shape=True) if flat else _conv(b, keep_shape=True)
    else:
        _requantize(b)
    if max_branch >= 2 and rng.random() < 0.5:
        followers: list[Callable[[], None]] = [lambda: _requantize(b)]
        if flat:
            followers.append(lambda: _fully_connected(b, keep_shape=True))
        else:
            followers += [lambda: _conv(b, keep_shape=True),
                          lambda: _pool(b, "avg_pool", keep_shape=True),
                          lambda: _pool(b, "max_pool", keep_shape=True)]
        followers[int(rng.integers(len(followers)))]()
    branch = b.current
    like = b.grid(skip) if b.scale(skip) >= b.scale(branch) else b.grid(branch)
    grid, act = b.requantized_grid(b.real(skip) + b.real(branch), like)
    # The add's output multiplier must stay below 1: s_out > 2·max(s_a, s_b) / 2^20, with a
    # margin of 2.
    floor = np.float32(4.0 * float(like.scale[0]) / 2.0 ** 20)
    grid.scale = np.maximum(grid.scale, floor).astype(np.float32)
    inputs = [skip, branch] if rng.random() < 0.5 else [branch, skip]
    b.emit("add", inputs, grid, act)


# =========================================================================== assembly ===

def _feature_step(b: _Builder, feature: str) -> None:
    steps: dict[str, Callable[[], None]] = {
        "conv1x1": lambda: _conv(b, kernel=(1, 1)),
        "conv3x3": lambda: _conv(b, kernel=(3, 3)),
        "conv5x5": lambda: _conv(b, kernel=(5, 5)),
        "conv1x3": lambda: _conv(b, kernel=(1, 3)),
        "conv3x1": lambda: _conv(b, kernel=(3, 1)),
        "depthwise": lambda: _conv(b, groups_kind="depthwise", multiplier=1),
        "depthwise_x2": lambda: _conv(b, groups_kind="depthwise", multiplier=2),
        "grouped": lambda: _conv(b, groups_kind="grouped"),
        "dilated": lambda: _conv(b, kernel=(3, 3), dilation=(2, 1)),
        "stride2": lambda: _conv(b, stride=(2, 2)),
        "residual": lambda: _residual(b),
        "avg_pool": lambda: _pool(b, "avg_pool"),
        "max_pool": lambda: _pool(b, "max_pool"),
        "global_pool_fc": lambda: _fully_connected(b, via_global_pool=True),
        "flatten_fc": lambda: _fully_connected(b, via_global_pool=False),
        "requantize": lambda: _requantize(b),
        "reshape": lambda: _random_reshape(b),
    }
    steps[feature]()


def _random_step(b: _Builder, budget: int) -> None:
    """One step drawn among those that fit the remaining op budget; only steps with weights
    until the graph has some, so every graph has a conv2d or fully_connected."""
    rng = b.rng
    options: list[tuple[float, bool, Callable[[], None]]] = []  # (weight, has weights, step)
    if len(b.shape) == 4:
        _, c, h, w = b.shape
        options += [(0.35, True, lambda: _conv(b)),
                    (0.08, False, lambda: _pool(b, "avg_pool")),
                    (0.08, False, lambda: _pool(b, "max_pool")),
                    (0.07, False, lambda: _requantize(b)),
                    (0.05, False, lambda: _global_avg_pool(b))]
        if _reshape_candidates(b.shape):
            options.append((0.04, False, lambda: _random_reshape(b)))
        must_pool = c * h * w > MAX_FC_FEATURES
        if budget >= (3 if must_pool else 2):
            options.append((0.12, True, lambda: _fully_connected(
                b, via_global_pool=None if budget >= 3 else False)))
    else:
        options += [(0.4, True, lambda: _fully_connected(b)),
                    (0.2, False, lambda: _requantize(b)),
                    (0.2, False, lambda: _random_reshape(b))]
    if budget >= 2:
        options.append((0.15, False, lambda: _residual(b, max_branch=min(2, budget - 1))))
    if not b.has_weights:
        options = [o for o in options if o[1]]
    weights = np.array([o[0] for o in options])
    options[int(rng.choice(len(options), p=weights / weights.sum()))][2]()


def _input_shape(feature: str | None, rng: np.random.Generator) -> tuple[int, int, int]:
    c, h, w = (_count(rng, 1, MAX_INPUT_SIZE) for _ in range(3))
    if feature == "grouped":  # a channel count with a proper divisor
        c = int(rng.choice([4, 6, 8, 9, 10, 12]))
    if feature in ("depthwise", "depthwise_x2"):
        c = max(c, 2)
    if feature == "reshape":
        h = max(h, 2)
    return c, h, w


def _generate(rng: np.random.Generator, max_ops: int, *, feature: str | None = None,
              input_bits: int | None = None, weight_bits: int | None = None,
              ties: bool | None = None, metadata: dict | None = None) -> tuple[Graph, np.ndarray]:
    chw = _input_shape(feature, rng)
    grid = _input_grid(input_bits or int(rng.integers(2, 9)), rng)
    x = _input_batch(chw, grid, rng.random() < 0.3 if ties is None else ties, rng)
    b = _Builder(rng, x, grid, weight_bits)
    target = int(rng.integers(1, max_ops + 1))
    if feature is not None:
        if feature in _SHAPE_AGNOSTIC and rng.random() < 0.4:
            _conv(b)
        _feature_step(b, feature)
    while b.body_ops < target or not b.has_weights:
        _random_step(b, max(target - b.body_ops, 1))
    b.emit("dequantize", [b.current], None, dtype="float32", out="output")
    b.graph.outputs = ["output"]
    b.graph.metadata = {"generator": "ddq_edge.testing.random_graphs", **(metadata or {})}
    return b.graph, x


def random_graph(seed: int, *, max_ops: int = 8) -> tuple[Graph, np.ndarray]:
    """A random valid graph and a float32 input batch (N=1 or 2, NCHW) for it.

    The graph has between 1 and ``max_ops`` ops between its leading quantize and its closing
    dequantize, at least one of them a conv2d or fully_connected. Deterministic in ``seed``.
    """
    if max_ops < 1:
        raise ValueError(f"max_ops must be >= 1, got {max_ops}")
    return _generate(np.random.default_rng(seed), max_ops, metadata={"seed": int(seed)})


def graph_grid(count: int, seed: int = 0) -> list[tuple[Graph, np.ndarray]]:
    """`count` graphs that together cover every op kind and feature listed below.

    Graph i forces FEATURES[i % len(FEATURES)] (each conv kernel shape, depthwise with
    multiplier 1 and 2, grouped, dilated, strided, residual add, both pools, global pool and
    flatten before fully_connected, requantize, reshape), input activation bits 2 + i % 7,
    first-layer weight bits 2 + 3i % 7 and exact rounding ties in the input for every third
    graph; everything else is random. From count >= 40 on, every feature, bit width and op
    kind appears at least twice. Deterministic in (count, seed); graph i does not depend on count.
    """
    grid = []
    for i in range(count):
        rng = np.random.default_rng([int(seed), i])
        feature = FEATURES[i % len(FEATURES)]
        grid.append(_generate(rng, 8, feature=feature, input_bits=2 + i % 7,
                              weight_bits=2 + (3 * i) % 7, ties=i % 3 == 0,
                              metadata={"seed": int(seed), "index": i, "feature": feature}))
    return grid
