"""The float ONNX baseline: the :class:`~ddq_edge.baselines.float_graph.FloatGraph` as plain
float32 ONNX (opset 17), NCHW, with the integer graph's input and output names.

Layout and batch: the input is ``[N, C, H, W]`` (or ``[N, F]``) with a *dynamic* batch
dimension ``N``; the output keeps the graph's output shape with the same ``N``. Ops: Conv (group
kept as ONNX ``group``), Gemm (``transB=1``), Add, AveragePool (``count_include_pad=0``, the
integer graph's exclude-pad average), MaxPool, GlobalAveragePool, Reshape (batch copied), and
Relu / Clip for the clamps (Relu when only the lower bound 0 is left, Clip otherwise).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ddq_edge.files import atomic_write_bytes

from .float_graph import FloatGraph
from ..names import fresh_name

__all__ = ["OPSET", "activation_ranges", "build_float_onnx", "write_float_onnx"]

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17
BATCH = "N"


class _Writer:
    def __init__(self, fg: FloatGraph):
        self.fg = fg
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.names: set[str] = {fg.input} | {op.output for op in fg.ops}
        self.scalars: dict[float, str] = {}

    def fresh(self, base: str) -> str:
        return fresh_name(self.names, base)

    def init(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        key = float(np.float32(value))
        if key not in self.scalars:
            self.scalars[key] = self.init(f"clip_{key!r}", np.array(key, np.float32))
        return self.scalars[key]

    def node(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.fresh(name), **attrs))

    def finish(self, op, op_type: str, inputs: list[str], **attrs) -> None:
        """``op_type`` computing ``op.output``, followed by its clamp if it has one."""
        lo, hi = op.clamp
        if lo is None and hi is None:
            self.node(op_type, inputs, [op.output], f"{op.name}_{op_type}", **attrs)
            return
        raw = self.fresh(f"{op.output}_preact")
        self.node(op_type, inputs, [raw], f"{op.name}_{op_type}", **attrs)
        self.clamp(raw, op.output, op.clamp, op.name)

    def clamp(self, x: str, out: str, clamp, name: str) -> None:
        lo, hi = clamp
        if lo == 0.0 and hi is None:
            self.node("Relu", [x], [out], f"{name}_Relu")
        else:
            self.node("Clip", [x, "" if lo is None else self.scalar(lo),
                               "" if hi is None else self.scalar(hi)], [out], f"{name}_Clip")

    def op(self, op) -> None:
        a = op.attrs
        if op.kind == "conv":
            w = self.init(f"{op.name}_weight", op.weight)
            b = self.init(f"{op.name}_bias", op.bias)
            self.finish(op, "Conv", [op.inputs[0], w, b], kernel_shape=list(op.weight.shape[2:]),
                        strides=a["stride"], pads=a["padding"], dilations=a["dilation"],
                        group=a["groups"])
        elif op.kind == "fc":
            w = self.init(f"{op.name}_weight", op.weight)
            b = self.init(f"{op.name}_bias", op.bias)
            self.finish(op, "Gemm", [op.inputs[0], w, b], transB=1)
        elif op.kind == "add":
            self.finish(op, "Add", list(op.inputs))
        elif op.kind == "avg_pool":
            self.finish(op, "AveragePool", list(op.inputs), kernel_shape=a["kernel"],
                        strides=a["stride"], pads=a["padding"], count_include_pad=0)
        elif op.kind == "max_pool":
            self.finish(op, "MaxPool", list(op.inputs), kernel_shape=a["kernel"],
                        strides=a["stride"], pads=a["padding"])
        elif op.kind == "global_avg_pool":
            self.finish(op, "GlobalAveragePool", list(op.inputs))
        elif op.kind == "reshape":
            shape = self.init(f"{op.output}_shape", np.array([0] + a["shape"][1:], np.int64))
            self.finish(op, "Reshape", [op.inputs[0], shape])
        elif op.kind == "clip":
            self.clamp(op.inputs[0], op.output, op.clamp, op.name)
        else:
            raise ValueError(f"op {op.name!r}: unknown float op kind {op.kind!r}")


def _value_info(fg: FloatGraph, name: str) -> onnx.ValueInfoProto:
    shape = list(fg.shapes[name])
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH] + shape[1:])


def build_float_onnx(fg: FloatGraph) -> onnx.ModelProto:
    """The float32 ONNX model (opset 17, dynamic batch ``N``) of ``fg``, checked."""
    w = _Writer(fg)
    for op in fg.ops:
        w.op(op)
    graph = helper.make_graph(w.nodes, fg.name, [_value_info(fg, fg.input)],
                              [_value_info(fg, fg.output)], initializer=w.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ddq_edge.baselines")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"source": "ddq_edge integer graph, dequantized (float baseline)",
                                   "clamp_policy": fg.clamp_policy, "layout": "NCHW"})
    onnx.checker.check_model(model, full_check=True)
    return model


def write_float_onnx(fg: FloatGraph, path) -> Path:
    return atomic_write_bytes(Path(path), build_float_onnx(fg).SerializeToString())


def activation_ranges(model: onnx.ModelProto, batches, chunk: int = 1) -> dict[str, tuple[float, float]]:
    """(min, max) of the graph input and of every node output of a float ONNX model over the
    float32 ``batches`` (one array, split in chunks of ``chunk`` samples), run in onnxruntime
    with every intermediate tensor exposed as an output (one thread, optimizations on)."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for out in node.output:
            if out and out not in have:
                m.graph.output.append(helper.make_empty_tensor_value_info(out))
                have.add(out)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    x = np.asarray(batches, np.float32)
    ranges: dict[str, tuple[float, float]] = {}

    def update(name: str, v: np.ndarray) -> None:
        lo, hi = float(np.min(v)), float(np.max(v))
        if name in ranges:
            lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
        ranges[name] = (lo, hi)

    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        update(in_name, xb)
        for name, v in zip(names, sess.run(names, {in_name: xb})):
            update(name, v)
    return ranges
