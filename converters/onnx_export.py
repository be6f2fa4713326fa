"""Export an integer graph (:class:`ddq_edge.ir.Graph`) to ONNX in the QDQ representation.

Every integer op becomes ``DequantizeLinear`` of its integer inputs, the float op, and
``QuantizeLinear`` to the output tensor's grid (plus a ``Clip`` on the uint8 codes when the
op's ``act_min``/``act_max`` or the grid's ``qmin``/``qmax`` are narrower than 0…255).
Activations are uint8 tensors named as in the IR; weights are INT4 initializers (bits ≤ 4) or
INT8 ones, symmetric (zero point 0) with per-output-channel scales (``axis=0``); biases are
int32 initializers dequantized at ``s_in · s_w[c]``.

The result runs in onnxruntime and ``onnx.reference.ReferenceEvaluator``, but it is *not*
bit-exact with the integer reference (``docs/arithmetic.md``): a QDQ runtime computes each op
in float and re-quantizes with round-half-to-even, while the reference rounds the exact
fixed-point product once, half up. Individual codes can differ by one step. By default
(``half_up=True``) the ops whose reference result has *exact* ties (avg_pool; requantize and
global_avg_pool with a multiplier that is a multiple of 2^-10, e.g. DDQ's power-of-two scale
ratios) get a tiny ``Add`` before their QuantizeLinear so that those ties round up as in the
reference; see :func:`build_onnx_model`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from ddq_edge.files import atomic_write_bytes
from ddq_edge.ir import Graph, Op, QuantParams
from ddq_edge.names import fresh_name
from ddq_edge.reference.ops import global_avg_pool_multiplier, requantize_multiplier

__all__ = ["export_onnx", "build_onnx_model", "OPSET"]

OPSET = 21
IR_VERSION = 10  # the IR version that introduced opset 21 (keeps older viewers/runtimes happy)
BATCH = "N"
HALF_UP_NUDGE = 2.0 ** -12  # of an output step: above the float32 error, below 1/2^10 or 1/n
TIE_GRID_BITS = 10  # nudge a requantization only if its multiplier is a multiple of 2^-10


def _exact_ties(m: float) -> bool:
    """Whether ``v = integer · m`` has exact ties that are ≥ 2^-10 from any non-tie value."""
    v = float(m) * float(1 << TIE_GRID_BITS)
    return v == np.floor(v)


class _Builder:
    def __init__(self, graph: Graph, half_up: bool = True):
        self.g = graph
        self.half_up = half_up
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: set[str] = set(graph.tensors)
        self.dq_cache: dict[str, str] = {}
        self.const_cache: dict[tuple, str] = {}

    # ------------------------------------------------------------------ naming / constants
    def fresh(self, base: str) -> str:
        return fresh_name(self.names, base)

    def node(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(name), **attrs))

    def init(self, base: str, dtype: int, dims, vals, keep_name: bool = False) -> str:
        name = base if keep_name else self.fresh(base)  # keep_name: an IR constant's own name
        self.inits.append(helper.make_tensor(name, dtype, list(dims), vals))
        return name

    def scalar(self, dtype: int, value, np_dtype) -> str:
        """A shared scalar initializer (scales, zero points, clip bounds)."""
        key = (dtype, np.asarray(value, dtype=np_dtype).tobytes())
        if key not in self.const_cache:
            v = np.asarray(value, dtype=np_dtype).reshape(-1)
            base = {TensorProto.FLOAT: "scale", TensorProto.UINT8: "u8"}.get(dtype, "const")
            self.const_cache[key] = self.init(f"{base}_{v[0]!r}".replace(" ", ""), dtype, [],
                                              v.tolist())
        return self.const_cache[key]

    # ------------------------------------------------------------------ activations
    def act_qp(self, name: str) -> QuantParams:
        t = self.g.tensors[name]
        qp = t.quant
        if qp is None or t.dtype != "uint8":
            raise ValueError(f"tensor {name!r}: expected a quantized uint8 activation, got {t.dtype}")
        if qp.per_channel:
            raise ValueError(f"tensor {name!r}: activations need a per-tensor scale")
        if not (0 <= int(qp.zero_point) <= 255) or qp.bits > 8:
            raise ValueError(f"tensor {name!r}: zero point {qp.zero_point} / {qp.bits} bits do "
                             "not fit a uint8 activation")
        return qp

    def grid(self, name: str) -> tuple[str, str]:
        qp = self.act_qp(name)
        return (self.scalar(TensorProto.FLOAT, qp.scale[0], np.float32),
                self.scalar(TensorProto.UINT8, int(qp.zero_point), np.uint8))

    def dq(self, name: str) -> str:
        """The float view of activation ``name`` (one DequantizeLinear per tensor, shared)."""
        if name not in self.dq_cache:
            s, zp = self.grid(name)
            out = self.fresh(f"{name}_dq")
            self.node("DequantizeLinear", [name, s, zp], [out], f"{name}_DequantizeLinear")
            self.dq_cache[name] = out
        return self.dq_cache[name]

    def q(self, real: str, out: str, op_name: str, act_min: int | None = None,
          act_max: int | None = None, nudge: bool = False) -> None:
        """QuantizeLinear ``real`` onto the grid of ``out``; Clip the codes to [act_min, act_max]
        (defaults qmin/qmax) when that is narrower than QuantizeLinear's 0…255 saturation."""
        qp = self.act_qp(out)
        lo = int(qp.qmin) if act_min is None else int(act_min)
        hi = int(qp.qmax) if act_max is None else int(act_max)
        if not (int(qp.qmin) <= lo <= hi <= int(qp.qmax)):
            raise ValueError(f"op {op_name!r}: clamp [{lo}, {hi}] outside the output grid "
                             f"[{qp.qmin}, {qp.qmax}]")
        s, zp = self.grid(out)
        if self.half_up and nudge:  # ties (exact with DDQ's power-of-two related scales) round up
            nudge = self.scalar(TensorProto.FLOAT, np.float32(qp.scale[0]) * np.float32(HALF_UP_NUDGE),
                                np.float32)
            nudged = self.fresh(f"{out}_nudged")
            self.node("Add", [real, nudge], [nudged], f"{op_name}_HalfUpNudge")
            real = nudged
        if lo == 0 and hi == 255:
            self.node("QuantizeLinear", [real, s, zp], [out], f"{op_name}_QuantizeLinear")
            return
        codes = self.fresh(f"{out}_q")
        self.node("QuantizeLinear", [real, s, zp], [codes], f"{op_name}_QuantizeLinear")
        self.node("Clip", [codes, self.scalar(TensorProto.UINT8, lo, np.uint8),
                           self.scalar(TensorProto.UINT8, hi, np.uint8)], [out], f"{op_name}_Clip")

    # ------------------------------------------------------------------ constants
    def weight(self, name: str) -> str:
        """DequantizeLinear of an INT4 / INT8 per-channel weight initializer; its float output."""
        t = self.g.tensors[name]
        qp = t.quant
        if t.data is None or qp is None:
            raise ValueError(f"weight {name!r} has no data or quantization parameters")
        if int(qp.zero_point) != 0:
            raise ValueError(f"weight {name!r}: zero point must be 0")
        data = np.asarray(t.data).astype(np.int64)
        o = data.shape[0]
        lim = (1 << (qp.bits - 1)) - 1
        if data.size and np.abs(data).max() > lim:
            raise ValueError(f"weight {name!r}: codes exceed {qp.bits} bits")
        dtype = TensorProto.INT4 if qp.bits <= 4 else TensorProto.INT8
        w = self.init(name, dtype, data.shape, data.reshape(-1).tolist(), keep_name=True)
        scale = np.asarray(qp.scale, np.float32).reshape(-1)
        attrs = {}
        if scale.size == 1:
            s = self.init(f"{name}_scale", TensorProto.FLOAT, [], scale.tolist())
            zp = self.init(f"{name}_zero_point", dtype, [], [0])
        else:
            if scale.size != o:
                raise ValueError(f"weight {name!r}: {scale.size} scales for {o} output channels")
            s = self.init(f"{name}_scale", TensorProto.FLOAT, [o], scale.tolist())
            zp = self.init(f"{name}_zero_point", dtype, [o], [0] * o)
            attrs["axis"] = 0
        out = self.fresh(f"{name}_dq")
        self.node("DequantizeLinear", [w, s, zp], [out], f"{name}_DequantizeLinear", **attrs)
        return out

    def bias(self, name: str, x_name: str, w_name: str) -> str:
        """DequantizeLinear of the int32 bias at ``s_in · s_w[c]`` (float32 product)."""
        t = self.g.tensors[name]
        w_qp = self.g.tensors[w_name].quant
        o = self.g.tensors[w_name].shape[0]
        data = np.asarray(t.data).astype(np.int64).reshape(-1)
        s_in = np.float32(self.act_qp(x_name).scale[0])
        s_w = np.asarray(w_qp.scale, np.float32).reshape(-1)
        s_w = np.full(o, s_w[0], np.float32) if s_w.size == 1 else s_w
        scale = (s_in * s_w).astype(np.float32)
        b = self.init(name, TensorProto.INT32, [o], data.tolist(), keep_name=True)
        s = self.init(f"{name}_scale", TensorProto.FLOAT, [o], scale.tolist())
        zp = self.init(f"{name}_zero_point", TensorProto.INT32, [o], [0] * o)
        out = self.fresh(f"{name}_dq")
        self.node("DequantizeLinear", [b, s, zp], [out], f"{name}_DequantizeLinear", axis=0)
        return out

    # ------------------------------------------------------------------ ops
    def op(self, op: Op) -> None:
        a, k, name = op.attrs, op.kind, op.name
        ins, out = op.inputs, op.outputs[0]
        if k == "quantize":
            self.q(ins[0], out, name)
        elif k == "dequantize":
            s, zp = self.grid(ins[0])
            self.node("DequantizeLinear", [ins[0], s, zp], [out], f"{name}_DequantizeLinear")
        elif k in ("conv2d", "fully_connected"):
            x = self.dq(ins[0])
            w = self.weight(ins[1])
            args = [x, w]
            if ins[2] in self.g.tensors and self.g.tensors[ins[2]].data is not None:
                args.append(self.bias(ins[2], ins[0], ins[1]))
            y = self.fresh(f"{out}_real")
            if k == "conv2d":
                self.node("Conv", args, [y], f"{name}_Conv",
                          kernel_shape=list(self.g.tensors[ins[1]].shape[2:]),
                          strides=[int(v) for v in a["stride"]],
                          pads=[int(v) for v in a["padding"]],  # [t, l, b, r] = ONNX order
                          dilations=[int(v) for v in a.get("dilation", (1, 1))],
                          group=int(a.get("groups", 1)))
            else:
                self.node("Gemm", args, [y], f"{name}_Gemm", transB=1)
            self.q(y, out, name, a.get("act_min"), a.get("act_max"))
        elif k == "add":
            y = self.fresh(f"{out}_real")
            self.node("Add", [self.dq(ins[0]), self.dq(ins[1])], [y], f"{name}_Add")
            self.q(y, out, name, a.get("act_min"), a.get("act_max"))
        elif k in ("avg_pool", "max_pool"):
            y = self.fresh(f"{out}_real")
            attrs = dict(kernel_shape=[int(v) for v in a["kernel"]],
                         strides=[int(v) for v in a["stride"]],
                         pads=[int(v) for v in a.get("padding", (0, 0, 0, 0))])
            if k == "avg_pool":
                self.node("AveragePool", [self.dq(ins[0])], [y], f"{name}_AveragePool",
                          count_include_pad=0, **attrs)
                self.q(y, out, name, a.get("act_min"), a.get("act_max"), nudge=True)
            else:
                self.node("MaxPool", [self.dq(ins[0])], [y], f"{name}_MaxPool", **attrs)
                self.q(y, out, name)
        elif k == "global_avg_pool":
            y = self.fresh(f"{out}_real")
            self.node("GlobalAveragePool", [self.dq(ins[0])], [y], f"{name}_GlobalAveragePool")
            shape = self.g.tensors[ins[0]].shape
            m = global_avg_pool_multiplier(self.act_qp(ins[0]), self.act_qp(out),
                                           int(shape[2]) * int(shape[3]))
            self.q(y, out, name, a.get("act_min"), a.get("act_max"), nudge=_exact_ties(m))
        elif k == "requantize":
            m = requantize_multiplier(self.act_qp(ins[0]), self.act_qp(out))
            self.q(self.dq(ins[0]), out, name, a.get("act_min"), a.get("act_max"),
                   nudge=_exact_ties(m))
        elif k == "reshape":
            # a view change of the codes (same grid): reshape the uint8 tensor, batch copied (0)
            shape = [0] + [int(d) for d in a["shape"][1:]]
            c = self.init(f"{out}_shape", TensorProto.INT64, [len(shape)], shape)
            self.node("Reshape", [ins[0], c], [out], f"{name}_Reshape")
        else:
            raise ValueError(f"op {name!r}: ONNX export does not support kind {k!r}")


def _value_info(graph: Graph, name: str, elem_type: int) -> onnx.ValueInfoProto:
    shape = list(graph.tensors[name].shape)
    return helper.make_tensor_value_info(name, elem_type, [BATCH] + shape[1:])


def build_onnx_model(graph: Graph, half_up: bool = True) -> onnx.ModelProto:
    """The QDQ ONNX model (opset 21) of ``graph``, checked with ``onnx.checker``.

    ``half_up=True`` adds ``2^-12`` of an output step (an ``Add``) to the real value before the
    QuantizeLinear of the ops whose reference result has *exact* ties: avg_pool (codes summed
    and divided by n, half up) and requantize / global_avg_pool when their multiplier is a
    multiple of 2^-10 (e.g. the power-of-two scale ratios DDQ produces, ``base_step ·
    2^(max_bits − bits)``: an 8-bit → 7-bit requantize is ×1/2 and half of the odd codes are
    ties). Those ties then round up as in the reference instead of to even. Convs, fully
    connected and add are never nudged: their reference multipliers are rounded to Q31, so
    their near-ties are decided by precision and a nudge makes agreement worse. The extra
    ``Add`` nodes (only on those ops) keep a fusing runtime from turning them into integer
    kernels; ``half_up=False`` gives the plain DQ → op → Q form everywhere, at the price of
    many more one-code differences from the reference (OddResidual: 47–79 % exact output codes
    instead of 100 %).
    """
    graph.validate()
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError("ONNX export expects one graph input and one graph output")
    b = _Builder(graph, half_up)
    for op in graph.ops:
        b.op(op)
    onnx_graph = helper.make_graph(
        b.nodes, str(graph.metadata.get("name", "ddq_edge")),
        [_value_info(graph, graph.inputs[0], TensorProto.FLOAT)],
        [_value_info(graph, graph.outputs[0], TensorProto.FLOAT)],
        initializer=b.inits)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ddq_edge")
    model.ir_version = IR_VERSION
    meta = {"source": "ddq_edge integer graph (QDQ export)"}
    for key in ("converter_version", "bits"):
        if key in graph.metadata:
            meta[key] = str(graph.metadata[key])
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(graph: Graph, path, *, half_up: bool = True) -> Path:
    """Write ``graph`` as a QDQ ONNX model (opset 21) to ``path`` atomically; returns the path.

    ``half_up``: see :func:`build_onnx_model`.
    """
    path = Path(path)
    model = build_onnx_model(graph, half_up=half_up)
    return atomic_write_bytes(path, model.SerializeToString())
