"""Import single-node ONNX integer models (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul).

Public API:

* :func:`import_onnx_node_model` ``(model, input_arrays) -> (Graph, feeds)`` lowers a QLinearConv /
  QLinearMatMul node to an IR :class:`~ddq_edge.ir.Graph` (``conv2d`` / ``fully_connected`` ops
  on integer grids built from the ONNX scales and zero points) plus the integer code arrays to
  feed its inputs (already shifted / replicated, see below);
* :func:`run_graph` ``(graph, feeds) -> dict`` executes such a graph with the numpy reference
  ops (``ddq_edge.reference``), codes in, codes out;
* :func:`run_onnx_integer_model` ``(model, inputs) -> list[np.ndarray]`` runs any of the four
  ops: QLinear* through the IR and the reference (single-rounding fixed-point requantization,
  ``docs/arithmetic.md``), ConvInteger / MatMulInteger (int32 outputs, which no IR op produces)
  through the exact int64 accumulation :func:`_accumulate` of this module.

Any other op type raises ``ValueError`` naming the op type and the node name.

Representation tricks (the IR has uint8 activation codes with a zero point, and symmetric int8
weights with zero point 0):

* **int8 activations** (x or y): ``q_u8 = q_i8 + 128`` with ``zp_u8 = zp_i8 + 128``; then
  ``q_u8 − zp_u8 = q_i8 − zp_i8`` so every difference, hence the accumulation, is unchanged.
  int8 outputs are mapped back with ``− 128``.
* **weights with a non-zero zero point or uint8 codes**: the accumulation needs
  ``Σ (w − zw)·(x − zx)``. ``w − zw`` lies in [−255, 255], outside int8. It is folded into the
  weights exactly by splitting ``w − zw = p_1 + … + p_k`` with every piece in the narrow int8
  range [−127, 127] (k ≤ 3) and replicating the input channels k times (piece i reads copy i):
  ``Σ_i Σ p_i·(x − zx) = Σ (w − zw)·(x − zx)``, the same int32 accumulator, requantized once.
  Padding of every copy is with the zero point, so padded positions still contribute 0. The
  replication is done on the feeds (the graph input has k·C channels); for grouped convs the
  copies are interleaved per group so that group g still reads only its own channels.
* **N-D QLinearMatMul**: the batch dimensions are broadcast and every (M, K) × (K, N) matrix
  product becomes one ``fully_connected`` op (weight = Bᵀ, one per batch index); the outputs are
  stacked back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ddq_edge.ir import Graph, Op, QuantParams, Tensor
from ddq_edge.reference import executor as _executor
from ddq_edge.reference import ops

__all__ = ["SUPPORTED_OPS", "import_onnx_node_model", "run_graph", "run_onnx_integer_model"]

SUPPORTED_OPS = ("ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul")
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
_W_PIECE = 127  # narrow int8 range of one weight piece


# --------------------------------------------------------------------------- node helpers

def _single_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = list(model.graph.node)
    if len(nodes) != 1:
        raise ValueError(f"expected a single-node ONNX model, got {len(nodes)} nodes")
    node = nodes[0]
    if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
        raise ValueError(f"unsupported ONNX op type {node.op_type!r} (node {node.name!r}); "
                         f"supported: {', '.join(SUPPORTED_OPS)}")
    return node


def _what(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {node.name!r}"


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _node_inputs(model: onnx.ModelProto, node: onnx.NodeProto, input_arrays) -> list:
    """The node's inputs by position (None for omitted optional ones), from the arrays given for
    the graph inputs (in graph-input order, or a dict by name) and the graph initializers."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    init_names = set(values)
    graph_inputs = [i.name for i in model.graph.input if i.name not in init_names]
    if isinstance(input_arrays, dict):
        values.update({k: np.asarray(v) for k, v in input_arrays.items()})
    else:
        arrays = list(input_arrays)
        if len(arrays) != len(graph_inputs):
            raise ValueError(f"{_what(node)}: {len(arrays)} input arrays for graph inputs "
                             f"{graph_inputs}")
        values.update({k: np.asarray(v) for k, v in zip(graph_inputs, arrays)})
    out = []
    for name in node.input:
        if name == "":
            out.append(None)
        elif name not in values:
            raise ValueError(f"{_what(node)}: no value for input {name!r}")
        else:
            out.append(values[name])
    return out


def _conv_geometry(node: onnx.NodeProto, w_shape: Sequence[int]):
    """(stride, padding [t, l, b, r], dilation, groups) of a 2-D ONNX conv node."""
    a = _attrs(node)
    if len(w_shape) != 4:
        raise ValueError(f"{_what(node)}: only 2-D convolutions (4-D tensors) are supported, "
                         f"weight shape {tuple(w_shape)}")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in ("NOTSET", "VALID"):
        raise ValueError(f"{_what(node)}: auto_pad {auto_pad!r} is not supported (NOTSET, VALID)")
    ks = a.get("kernel_shape")
    if ks is not None and tuple(ks) != tuple(w_shape[2:]):
        raise ValueError(f"{_what(node)}: kernel_shape {ks} disagrees with weight {tuple(w_shape)}")
    stride = tuple(int(s) for s in a.get("strides", (1, 1)))
    dilation = tuple(int(d) for d in a.get("dilations", (1, 1)))
    pads = tuple(int(p) for p in a.get("pads", (0, 0, 0, 0)))
    if auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    if len(pads) != 4 or len(stride) != 2 or len(dilation) != 2:
        raise ValueError(f"{_what(node)}: expected 2-D pads/strides/dilations")
    # ONNX pads are [x1_begin, x2_begin, x1_end, x2_end] = IR [top, left, bottom, right]
    return stride, pads, dilation, int(a.get("group", 1))


def _zp(v, default: int = 0) -> np.ndarray:
    return np.asarray(default if v is None else v).astype(np.int64)


# --------------------------------------------------------------------------- exact accumulation

def _accumulate(x_centered: np.ndarray, w_centered: np.ndarray, stride, padding, dilation,
                groups: int) -> np.ndarray:
    """Exact convolution accumulator of zero-point-free operands (ONNX ConvInteger's output)."""
    return ops.conv_accumulate(x_centered, w_centered, stride, padding, dilation, groups)


def _to_int32(acc: np.ndarray, what: str) -> np.ndarray:
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise OverflowError(f"{what}: int32 accumulator overflow")
    return acc.astype(np.int32)


def _run_conv_integer(node, vals) -> list[np.ndarray]:
    x, w, x_zp, w_zp = (vals + [None] * 4)[:4]
    stride, pads, dilation, groups = _conv_geometry(node, w.shape)
    if x.ndim != 4:
        raise ValueError(f"{_what(node)}: expected a 4-D input, got {x.shape}")
    xc = x.astype(np.int64) - _zp(x_zp).reshape(())  # x_zero_point is a scalar (per tensor)
    wz = _zp(w_zp).reshape(-1)
    wc = w.astype(np.int64) - (wz.reshape(-1, 1, 1, 1) if wz.size > 1 else wz.reshape(()))
    return [_to_int32(_accumulate(xc, wc, stride, pads, dilation, groups), _what(node))]


def _run_matmul_integer(node, vals) -> list[np.ndarray]:
    a, b, a_zp, b_zp = (vals + [None] * 4)[:4]
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    az, bz = _zp(a_zp), _zp(b_zp)
    # a_zero_point: scalar or per row of A (1-D of length M, broadcast over K);
    # b_zero_point: scalar or per column of B (1-D of length N, broadcast over K).
    if az.size > 1 and az.ndim == 1 and a64.ndim >= 2 and az.shape[0] == a64.shape[-2]:
        az = az.reshape(-1, 1)
    elif az.size == 1:
        az = az.reshape(())
    if bz.size == 1:
        bz = bz.reshape(())
    return [_to_int32(np.matmul(a64 - az, b64 - bz), _what(node))]


# --------------------------------------------------------------------------- QLinear lowering

def _act_qp(scale, zp: int) -> QuantParams:
    return QuantParams(scale=np.asarray(scale, np.float32).reshape(-1), zero_point=int(zp),
                       bits=8, qmin=0, qmax=255)


def _to_u8_grid(codes: np.ndarray, zp, node, what: str) -> tuple[np.ndarray, int, bool]:
    """uint8 codes and zero point; int8 codes are shifted by +128 (zero point too)."""
    codes = np.asarray(codes)
    zp = _zp(zp).reshape(-1)
    if zp.size != 1:
        raise ValueError(f"{_what(node)}: {what} needs a per-tensor zero point, got {zp.size}")
    if codes.dtype == np.int8:
        return (codes.astype(np.int16) + 128).astype(np.uint8), int(zp[0]) + 128, True
    if codes.dtype == np.uint8:
        return codes, int(zp[0]), False
    raise ValueError(f"{_what(node)}: {what} must be uint8 or int8, got {codes.dtype}")


def _weight_pieces(w_eff: np.ndarray) -> list[np.ndarray]:
    """Split integer weights into k int8 pieces in [−127, 127] that sum to ``w_eff`` exactly."""
    k = max(1, int(-(-int(np.abs(w_eff).max(initial=0)) // _W_PIECE)))
    rest = w_eff.astype(np.int64)
    pieces = []
    for _ in range(k):
        p = np.clip(rest, -_W_PIECE, _W_PIECE)
        pieces.append(p.astype(np.int8))
        rest = rest - p
    assert not rest.any()
    return pieces


def _replicate_channels(x: np.ndarray, k: int, groups: int) -> np.ndarray:
    """(N, C, ...) → (N, k·C, ...): per group, k copies of that group's channels."""
    if k == 1:
        return x
    n, c = x.shape[:2]
    xg = x.reshape((n, groups, 1, c // groups) + x.shape[2:])
    xg = np.broadcast_to(xg, (n, groups, k, c // groups) + x.shape[2:])
    return np.ascontiguousarray(xg).reshape((n, k * c) + x.shape[2:])


def _weight_with_pieces(w_eff: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    """(O, Cg, ...) integer weights → (O, k·Cg, ...) int8 with piece i on input copy i."""
    pieces = _weight_pieces(w_eff)
    return np.concatenate(pieces, axis=1), len(pieces)


def _lower_qlinear_conv(node, vals) -> tuple[Graph, dict]:
    x, xs, xz, w, ws, wz, ys, yz = vals[:8]
    bias = vals[8] if len(vals) > 8 else None
    stride, pads, dilation, groups = _conv_geometry(node, w.shape)
    if x.ndim != 4:
        raise ValueError(f"{_what(node)}: expected a 4-D input, got {x.shape}")
    xq, xzp, _ = _to_u8_grid(x, xz, node, "x")
    _, yzp, y_int8 = _to_u8_grid(np.zeros(0, np.asarray(yz).dtype), yz, node, "y")
    o = w.shape[0]
    wz = _zp(wz).reshape(-1)
    if wz.size not in (1, o):
        raise ValueError(f"{_what(node)}: {wz.size} weight zero points for {o} output channels")
    # weight zero point folded into the weights (split into int8 pieces, input replicated k times)
    w_eff = w.astype(np.int64) - wz.reshape(-1, 1, 1, 1)
    w_ir, k = _weight_with_pieces(w_eff, groups)
    x_feed = _replicate_channels(xq, k, groups)
    g = Graph(metadata={"onnx_op": node.op_type, "onnx_node": node.name, "weight_pieces": k})
    w_scale = np.asarray(ws, np.float32).reshape(-1)
    g.add_tensor(Tensor("x", (1,) + x_feed.shape[1:], "uint8", _act_qp(xs, xzp)))
    g.add_tensor(Tensor("w", w_ir.shape, "int8",
                        QuantParams(w_scale, 0, 8, -_W_PIECE, _W_PIECE), data=w_ir))
    b = (np.zeros(o, np.int32) if bias is None else np.asarray(bias).astype(np.int32).reshape(o))
    g.add_tensor(Tensor("b", (o,), "int32", None, data=b))
    (sh, sw), (dh, dw), (kh, kw) = stride, dilation, w.shape[2:]
    oh = (x.shape[2] + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[3] + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    g.add_tensor(Tensor("y", (1, o, oh, ow), "uint8", _act_qp(ys, yzp)))
    g.inputs, g.outputs = ["x"], ["y"]
    g.add_op(Op("conv2d", node.name or "qlinearconv", ["x", "w", "b"], ["y"],
                {"stride": list(stride), "padding": list(pads), "dilation": list(dilation),
                 "groups": groups, "act_min": 0, "act_max": 255}))
    g.validate()
    g.metadata["outputs"] = [{"parts": ["y"], "batch_shape": (), "int8": y_int8}]
    return g, {"x": x_feed}


def _lower_qlinear_matmul(node, vals) -> tuple[Graph, dict]:
    a, as_, az, b, bs, bz, ys, yz = vals[:8]
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{_what(node)}: 1-D operands are not supported ({a.shape}, {b.shape})")
    if np.asarray(as_).size != 1:
        raise ValueError(f"{_what(node)}: per-row a_scale is not representable (IR activations "
                         "have one scale per tensor)")
    aq, azp, _ = _to_u8_grid(a, az, node, "a")
    _, yzp, y_int8 = _to_u8_grid(np.zeros(0, np.asarray(yz).dtype), yz, node, "y")
    m, kdim = a.shape[-2:]
    n_out = b.shape[-1]
    if b.shape[-2] != kdim:
        raise ValueError(f"{_what(node)}: shapes {a.shape} and {b.shape} disagree")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_b = np.broadcast_to(aq, batch + (m, kdim)).reshape(-1, m, kdim)
    b_b = np.broadcast_to(b, batch + (kdim, n_out)).reshape(-1, kdim, n_out)
    bzv = _zp(bz).reshape(-1)
    if bzv.size not in (1, n_out):
        raise ValueError(f"{_what(node)}: {bzv.size} b zero points for {n_out} columns")
    b_scale = np.asarray(bs, np.float32).reshape(-1)
    g = Graph(metadata={"onnx_op": node.op_type, "onnx_node": node.name})
    feeds, parts = {}, []
    for i in range(a_b.shape[0]):
        # fully_connected weight (O, I) = Bᵀ with the zero point folded in (int8 pieces)
        w_eff = b_b[i].astype(np.int64).T - bzv.reshape(-1, 1)
        w_ir, k = _weight_with_pieces(w_eff, 1)
        x_feed = _replicate_channels(a_b[i], k, 1)
        xi, wi, bi, yi = f"a_{i}", f"b_{i}", f"bias_{i}", f"y_{i}"
        g.add_tensor(Tensor(xi, (1, x_feed.shape[1]), "uint8", _act_qp(as_, azp)))
        g.add_tensor(Tensor(wi, w_ir.shape, "int8",
                            QuantParams(b_scale, 0, 8, -_W_PIECE, _W_PIECE), data=w_ir))
        g.add_tensor(Tensor(bi, (n_out,), "int32", None, data=np.zeros(n_out, np.int32)))
        g.add_tensor(Tensor(yi, (1, n_out), "uint8", _act_qp(ys, yzp)))
        g.add_op(Op("fully_connected", f"{node.name or 'qlinearmatmul'}_{i}", [xi, wi, bi], [yi],
                    {"act_min": 0, "act_max": 255}))
        g.inputs.append(xi)
        g.outputs.append(yi)
        feeds[xi] = x_feed
        parts.append(yi)
    g.validate()
    g.metadata["outputs"] = [{"parts": parts, "batch_shape": tuple(batch), "int8": y_int8}]
    return g, feeds


# --------------------------------------------------------------------------- public API

def import_onnx_node_model(model: onnx.ModelProto, input_arrays) -> tuple[Graph, dict]:
    """Lower a single-node QLinearConv / QLinearMatMul model to (IR Graph, feeds).

    ``input_arrays``: the graph inputs' arrays in graph-input order (or a dict by name); weights,
    scales and zero points become constants / QuantParams of the graph. ``feeds`` maps graph
    input names to uint8 code arrays. ``graph.metadata["outputs"]`` says how to assemble the ONNX
    outputs from the graph outputs (see :func:`run_onnx_integer_model`). ConvInteger and
    MatMulInteger have int32 outputs, which no IR op produces: ValueError here, use
    :func:`run_onnx_integer_model`.
    """
    node = _single_node(model)
    vals = _node_inputs(model, node, input_arrays)
    if node.op_type == "QLinearConv":
        return _lower_qlinear_conv(node, vals)
    if node.op_type == "QLinearMatMul":
        return _lower_qlinear_matmul(node, vals)
    raise ValueError(f"{_what(node)}: int32-output op has no IR lowering; "
                     "use run_onnx_integer_model")


def run_graph(graph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    """Execute an integer graph whose inputs are code arrays with the reference ops."""
    values = {k: np.asarray(v) for k, v in feeds.items()}
    for op in graph.ops:
        values[op.outputs[0]] = _executor.execute_op(graph, op, values)
    return values


def run_onnx_integer_model(model: onnx.ModelProto, inputs) -> list[np.ndarray]:
    """Outputs of a single-node ConvInteger / MatMulInteger / QLinearConv / QLinearMatMul model."""
    node = _single_node(model)
    if node.op_type == "ConvInteger":
        return _run_conv_integer(node, _node_inputs(model, node, inputs))
    if node.op_type == "MatMulInteger":
        return _run_matmul_integer(node, _node_inputs(model, node, inputs))
    graph, feeds = import_onnx_node_model(model, inputs)
    values = run_graph(graph, feeds)
    results = []
    for spec in graph.metadata["outputs"]:
        parts = [values[p] for p in spec["parts"]]
        y = parts[0] if len(parts) == 1 and not spec["batch_shape"] else np.stack(parts)
        if spec["batch_shape"]:
            y = y.reshape(tuple(spec["batch_shape"]) + y.shape[1:])
        if spec["int8"]:
            y = (y.astype(np.int16) - 128).astype(np.int8)
        results.append(y)
    return results
