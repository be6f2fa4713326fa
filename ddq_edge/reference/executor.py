"""Execute an integer graph with the numpy reference ops: the executable spec."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ir import Graph, Op
from . import ops


def _load(model: Graph | str | Path) -> Graph:
    if isinstance(model, Graph):
        return model
    from ..bundle import read_bundle

    return read_bundle(model)


def _check_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    spec = graph.tensors[graph.inputs[0]]
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"input: expected float32, got {x.dtype}")
    if x.ndim == len(spec.shape) - 1:
        x = x[None]
    if x.shape[1:] != spec.shape[1:]:
        raise ValueError(f"input: expected shape (N, {', '.join(map(str, spec.shape[1:]))}), "
                         f"got {x.shape}")
    return x


def execute_op(graph: Graph, op: Op, values: dict[str, np.ndarray]) -> np.ndarray:
    """One op of ``graph`` on the tensors in ``values`` (constants come from the graph)."""
    t = graph.tensors
    a = op.attrs
    args = [values[name] if name in values else t[name].data for name in op.inputs]
    qp = [t[name].quant for name in op.inputs]
    out_qp = t[op.outputs[0]].quant
    if op.kind == "quantize":
        return ops.quantize(args[0], out_qp)
    if op.kind == "dequantize":
        return ops.dequantize(args[0], qp[0])
    if op.kind == "conv2d":
        return ops.conv2d(args[0], qp[0], args[1], qp[1], args[2], out_qp, stride=a["stride"],
                          padding=a["padding"], dilation=a["dilation"], groups=a["groups"],
                          act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "fully_connected":
        return ops.fully_connected(args[0], qp[0], args[1], qp[1], args[2], out_qp,
                                   act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "add":
        return ops.add(args[0], qp[0], args[1], qp[1], out_qp, act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "avg_pool":
        return ops.avg_pool(args[0], qp[0], kernel=a["kernel"], stride=a["stride"],
                            padding=a["padding"], act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "global_avg_pool":
        return ops.global_avg_pool(args[0], qp[0], out_qp, act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "max_pool":
        return ops.max_pool(args[0], kernel=a["kernel"], stride=a["stride"], padding=a["padding"])
    if op.kind == "requantize":
        return ops.requantize(args[0], qp[0], out_qp, act_min=a["act_min"], act_max=a["act_max"])
    if op.kind == "reshape":
        return ops.reshape(args[0], a["shape"])
    raise ValueError(f"op {op.name!r}: no reference for kind {op.kind!r}")


def run_all(model: Graph | str | Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor's value (integer codes, float32 at the graph's edges) for input ``x``."""
    graph = _load(model)
    values = {graph.inputs[0]: _check_input(graph, x)}
    for op in graph.ops:
        values[op.outputs[0]] = execute_op(graph, op, values)
    return values


def run(model: Graph | str | Path, x: np.ndarray) -> np.ndarray:
    """The dequantized float32 output of the graph (a bundle path or a Graph) for ``x`` (NCHW)."""
    graph = _load(model)
    return run_all(graph, x)[graph.outputs[0]]


def run_integer(model: Graph | str | Path, x: np.ndarray) -> np.ndarray:
    """The integer codes the graph produces before its final Dequantize (for exact checks)."""
    graph = _load(model)
    last = graph.ops[-1]
    if last.kind != "dequantize":
        raise ValueError("the graph does not end in a dequantize op")
    return run_all(graph, x)[last.inputs[0]]
