"""The float model of an integer graph: what every baseline engine is built from.

:func:`float_graph` turns a :class:`ddq_edge.ir.Graph` into a small backend-neutral float graph
(:class:`FloatGraph`, NCHW semantics) that the ONNX and TFLite writers share, so the four baselines
are one model:

* weights are dequantized, ``w = code · s_w[o]``; biases ``b = code · (s_in · s_w[o])`` (float32
  scale products, as the integer kernels use them);
* each op's ``act_min``/``act_max`` output-code clamp becomes a real-valued clamp
  ``[s_out · (act_min − zp), s_out · (act_max − zp)]`` (see ``clamp`` below); the writers emit
  ReLU / ReLU6 / Clip (ONNX) or fused activations plus MINIMUM/MAXIMUM (TFLite) from it;
* ``quantize``, ``dequantize`` and ``requantize`` are identities (plus their clamp when it
  restricts anything), ``conv2d`` / ``fully_connected`` / ``add`` / ``avg_pool`` / ``max_pool`` /
  ``global_avg_pool`` / ``reshape`` map to the natural float ops.

Clamp policies (``clamp=``):

``"act"`` (default)
    the integer graph's full saturation range of every op output, as real values. A DDQ model
    learns these ranges (they are its activation quantizers' ranges, PACT-like), so this float
    model is the trained model without rounding: it differs from the integer graph only by
    rounding. Bounds already implied by the op's input (e.g. a max_pool on a clamped tensor)
    are dropped.
``"relu"``
    only the folded activations: lower bound 0 where the clamp starts at the zero point (ReLU),
    upper bound 6 where ``act_max`` is the code of 6.0 (ReLU6); the grid's own saturation is
    dropped. This is the "plain" float network a float deployment would run; it drifts further
    from the integer graph where activations exceed their learned range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ddq_edge.ir import Graph, QuantParams

__all__ = ["CLAMP_POLICIES", "FloatGraph", "FloatOp", "float_graph", "run_float"]

CLAMP_POLICIES = ("act", "relu")
Bound = float | None


@dataclass
class FloatOp:
    """One float op, NCHW. ``kind``: conv, fc, add, avg_pool, max_pool, global_avg_pool,
    reshape, clip. ``clamp`` = (lo, hi) real bounds applied to the op's result (None: none)."""

    kind: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weight: np.ndarray | None = None  # conv: (O, I/groups, kh, kw); fc: (O, I); float32
    bias: np.ndarray | None = None    # (O,) float32
    clamp: tuple[Bound, Bound] = (None, None)

    @property
    def has_clamp(self) -> bool:
        return self.clamp[0] is not None or self.clamp[1] is not None


@dataclass
class FloatGraph:
    ops: list[FloatOp]
    input: str
    output: str
    shapes: dict[str, tuple[int, ...]]  # NCHW / NC shapes, batch stored as 1
    name: str = "ddq_edge"
    clamp_policy: str = "act"
    bounds: dict[str, tuple[Bound, Bound]] = field(default_factory=dict)  # value intervals


def _real(qp: QuantParams, code: int) -> float:
    """``scale · (code − zp)`` in float32, as the dequantize op computes it."""
    return float(np.float32(qp.scale[0]) * np.float32(int(code) - int(qp.zero_point)))


def _scales(qp: QuantParams, channels: int) -> np.ndarray:
    s = np.asarray(qp.scale, np.float32).reshape(-1)
    return np.full(channels, s[0], np.float32) if s.size == 1 else s


def _tighter(raw: tuple[Bound, Bound], clamp: tuple[Bound, Bound]) -> tuple[Bound, Bound]:
    """The parts of ``clamp`` not already implied by a result known to lie in ``raw``."""
    lo, hi = clamp
    if lo is not None and raw[0] is not None and raw[0] >= lo:
        lo = None
    if hi is not None and raw[1] is not None and raw[1] <= hi:
        hi = None
    return lo, hi


def _after(raw: tuple[Bound, Bound], clamp: tuple[Bound, Bound]) -> tuple[Bound, Bound]:
    """The interval of a result in ``raw`` after ``clamp``."""
    lo = clamp[0] if raw[0] is None or (clamp[0] is not None and clamp[0] > raw[0]) else raw[0]
    hi = clamp[1] if raw[1] is None or (clamp[1] is not None and clamp[1] < raw[1]) else raw[1]
    return lo, hi


class _Lowering:
    def __init__(self, graph: Graph, clamp: str):
        if clamp not in CLAMP_POLICIES:
            raise ValueError(f"clamp must be one of {CLAMP_POLICIES}, got {clamp!r}")
        self.g = graph
        self.policy = clamp
        self.ops: list[FloatOp] = []
        self.alias: dict[str, str] = {}      # IR tensor -> float tensor holding its value
        self.known: dict[str, tuple[Bound, Bound]] = {}  # float tensor -> value interval
        self.shapes: dict[str, tuple[int, ...]] = {}

    def clamp_of(self, out: str, act_min: int | None = None,
                 act_max: int | None = None) -> tuple[Bound, Bound]:
        qp = self.g.tensors[out].quant
        lo_code = int(qp.qmin) if act_min is None else int(act_min)
        hi_code = int(qp.qmax) if act_max is None else int(act_max)
        lo, hi = _real(qp, lo_code), _real(qp, hi_code)
        if self.policy == "act":
            return lo, hi
        step = float(np.float32(qp.scale[0]))
        return (0.0 if lo_code >= int(qp.zero_point) else None,
                6.0 if abs(hi - 6.0) <= 0.5 * step * (1 + 1e-6) else None)

    def src(self, ir_name: str) -> str:
        return self.alias.get(ir_name, ir_name)

    def emit(self, op: FloatOp, raw: tuple[Bound, Bound]) -> None:
        op.clamp = _tighter(raw, op.clamp)
        self.ops.append(op)
        self.known[op.output] = _after(raw, op.clamp)
        self.shapes[op.output] = tuple(self.g.tensors[op.output].shape)

    def identity(self, ir_in: str, ir_out: str, clamp: tuple[Bound, Bound], name: str) -> None:
        """An identity op (quantize / requantize / dequantize) with an optional clamp."""
        x = self.src(ir_in)
        raw = self.known[x]
        clamp = _tighter(raw, clamp)
        if clamp == (None, None):
            self.alias[ir_out] = x
            return
        self.emit(FloatOp("clip", name, [x], ir_out, clamp=clamp), raw)

    def weights(self, op) -> tuple[np.ndarray, np.ndarray]:
        t = self.g.tensors
        x_name, w_name, b_name = op.inputs
        codes = np.asarray(t[w_name].data)
        o = codes.shape[0]
        s_w = _scales(t[w_name].quant, o)
        w = (codes.astype(np.float32) * s_w.reshape((-1,) + (1,) * (codes.ndim - 1))).astype(np.float32)
        s_in = np.float32(t[x_name].quant.scale[0])
        acc_scale = (s_in * s_w).astype(np.float32)
        b_data = t[b_name].data if b_name in t else None
        b = (np.zeros(o, np.float32) if b_data is None else
             (np.asarray(b_data).astype(np.float64) * acc_scale.astype(np.float64)).astype(np.float32))
        return w, b

    def lower(self) -> FloatGraph:
        g = self.g
        g.validate()
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise ValueError("baselines expect one graph input and one graph output")
        inp = g.inputs[0]
        self.known[inp] = (None, None)
        self.shapes[inp] = tuple(g.tensors[inp].shape)
        for op in g.ops:
            k, a, out = op.kind, op.attrs, op.outputs[0]
            if k == "quantize":
                self.identity(op.inputs[0], out, self.clamp_of(out), op.name)
            elif k == "dequantize":
                self.alias[out] = self.src(op.inputs[0])
            elif k == "requantize":
                self.identity(op.inputs[0], out, self.clamp_of(out, a["act_min"], a["act_max"]), op.name)
            elif k in ("conv2d", "fully_connected"):
                w, b = self.weights(op)
                attrs = {}
                if k == "conv2d":
                    attrs = {"stride": [int(v) for v in a["stride"]],
                             "padding": [int(v) for v in a["padding"]],
                             "dilation": [int(v) for v in a.get("dilation", (1, 1))],
                             "groups": int(a.get("groups", 1))}
                self.emit(FloatOp("conv" if k == "conv2d" else "fc", op.name, [self.src(op.inputs[0])],
                                  out, attrs, w, b, self.clamp_of(out, a["act_min"], a["act_max"])),
                          (None, None))
            elif k == "add":
                xa, xb = (self.src(n) for n in op.inputs)
                ra, rb = self.known[xa], self.known[xb]
                raw = (None if ra[0] is None or rb[0] is None else ra[0] + rb[0],
                       None if ra[1] is None or rb[1] is None else ra[1] + rb[1])
                self.emit(FloatOp("add", op.name, [xa, xb], out,
                                  clamp=self.clamp_of(out, a["act_min"], a["act_max"])), raw)
            elif k in ("avg_pool", "max_pool"):
                x = self.src(op.inputs[0])
                attrs = {"kernel": [int(v) for v in a["kernel"]],
                         "stride": [int(v) for v in a["stride"]],
                         "padding": [int(v) for v in a.get("padding", (0, 0, 0, 0))]}
                clamp = (self.clamp_of(out, a["act_min"], a["act_max"]) if k == "avg_pool"
                         else (None, None))
                self.emit(FloatOp(k, op.name, [x], out, attrs, clamp=clamp), self.known[x])
            elif k == "global_avg_pool":
                x = self.src(op.inputs[0])
                self.emit(FloatOp("global_avg_pool", op.name, [x], out,
                                  clamp=self.clamp_of(out, a["act_min"], a["act_max"])), self.known[x])
            elif k == "reshape":
                x = self.src(op.inputs[0])
                self.emit(FloatOp("reshape", op.name, [x], out,
                                  {"shape": [int(d) for d in g.tensors[out].shape]}), self.known[x])
            else:
                raise ValueError(f"op {op.name!r}: no float baseline for kind {k!r}")
        final = self.src(g.outputs[0])
        if final == inp:
            raise ValueError("the graph output is its input: nothing to export")
        if final != g.outputs[0]:  # rename the producer of the output to the graph's output name
            for fop in self.ops:
                fop.inputs = [g.outputs[0] if n == final else n for n in fop.inputs]
                if fop.output == final:
                    fop.output = g.outputs[0]
            self.shapes[g.outputs[0]] = self.shapes.pop(final)
            self.known[g.outputs[0]] = self.known.pop(final)
        return FloatGraph(self.ops, inp, g.outputs[0], self.shapes,
                          str(g.metadata.get("name", "ddq_edge")), self.policy, self.known)


def float_graph(graph: Graph, clamp: str = "act") -> FloatGraph:
    """The float model of ``graph`` (see the module docstring for ``clamp``)."""
    return _Lowering(graph, clamp).lower()


# ------------------------------------------------------------------ a numpy/torch executor
def run_float(fg: FloatGraph, x: np.ndarray, keep: bool = False):
    """Run ``fg`` on NCHW float32 ``x`` with torch (float32); the output, or with ``keep`` every
    tensor's value. An engine-independent check of the writers (and a calibration fallback)."""
    import torch
    from torch.nn import functional as F

    def clamp(y, c):
        lo, hi = c
        return y.clamp(min=lo, max=hi) if (lo is not None or hi is not None) else y

    v = {fg.input: torch.from_numpy(np.ascontiguousarray(x, np.float32))}
    with torch.no_grad():
        for op in fg.ops:
            a = op.attrs
            xs = [v[n] for n in op.inputs]
            if op.kind == "conv":
                t, l, b, r = a["padding"]
                y = F.conv2d(F.pad(xs[0], (l, r, t, b)), torch.from_numpy(op.weight),
                             torch.from_numpy(op.bias), stride=a["stride"], dilation=a["dilation"],
                             groups=a["groups"])
            elif op.kind == "fc":
                y = F.linear(xs[0], torch.from_numpy(op.weight), torch.from_numpy(op.bias))
            elif op.kind == "add":
                y = xs[0] + xs[1]
            elif op.kind == "max_pool":
                t, l, b, r = a["padding"]
                y = F.max_pool2d(F.pad(xs[0], (l, r, t, b), value=float("-inf")), a["kernel"], a["stride"])
            elif op.kind == "avg_pool":
                t, l, b, r = a["padding"]
                s = F.avg_pool2d(F.pad(xs[0], (l, r, t, b)), a["kernel"], a["stride"], divisor_override=1)
                ones = F.pad(torch.ones_like(xs[0][:1, :1]), (l, r, t, b))
                n = F.avg_pool2d(ones, a["kernel"], a["stride"], divisor_override=1)
                y = s / n
            elif op.kind == "global_avg_pool":
                y = xs[0].mean(dim=(2, 3), keepdim=True)
            elif op.kind == "reshape":
                y = xs[0].reshape((xs[0].shape[0],) + tuple(a["shape"][1:]))
            elif op.kind == "clip":
                y = xs[0]
            else:
                raise ValueError(f"unknown float op kind {op.kind!r}")
            v[op.output] = clamp(y, op.clamp)
    if keep:
        return {k: t.numpy() for k, t in v.items()}
    return v[fg.output].numpy()
