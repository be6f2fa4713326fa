"""What is inside an edge bundle: per op shapes, bits, parameters, packed bytes, MACs."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import ideal_bytes, read_bundle
from .ir import Graph, Op

WEIGHT_OPS = ("conv2d", "fully_connected")


def macs(graph: Graph, op: Op) -> int:
    """Multiply-accumulates of one op for one sample."""
    if op.kind not in WEIGHT_OPS:
        return 0
    weight = graph.tensors[op.inputs[1]]
    out_elements = math.prod(graph.tensors[op.outputs[0]].shape)
    return out_elements * math.prod(weight.shape[1:])


def summarize(path: str | Path) -> dict[str, Any]:
    graph = read_bundle(path)
    rows = []
    for op in graph.ops:
        inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        weight = graph.tensors[op.inputs[1]] if op.kind in WEIGHT_OPS else None
        bias = graph.tensors[op.inputs[2]] if op.kind in WEIGHT_OPS else None
        params = (weight.data.size + bias.data.size) if weight is not None else 0
        rows.append({
            "name": op.name, "kind": op.kind,
            "input_shape": list(inp.shape), "output_shape": list(out.shape),
            "weight_bits": weight.quant.bits if weight is not None else None,
            "act_bits": inp.quant.bits if inp.quant is not None else None,
            "params": int(params),
            "packed_bytes": math.ceil(weight.quant.bits * weight.data.size / 8) if weight is not None else 0,
            "macs": macs(graph, op),
        })
    weighted = [(r["weight_bits"], graph.tensors[op.inputs[1]].data.size, r["act_bits"],
                 math.prod(graph.tensors[op.inputs[0]].shape))
                for r, op in zip(rows, graph.ops) if op.kind in WEIGHT_OPS]
    w_total = sum(n for _, n, _, _ in weighted) or 1
    a_total = sum(n for _, _, _, n in weighted) or 1
    totals = {
        "params": sum(r["params"] for r in rows),
        "macs": sum(r["macs"] for r in rows),
        "packed_bytes": sum(r["packed_bytes"] for r in rows),
        "ideal_bytes": ideal_bytes(graph),
        "file_bytes": Path(path).stat().st_size,
        "average_weight_bits": float(np.sum([b * n for b, n, _, _ in weighted]) / w_total),
        "average_act_bits": float(np.sum([b * n for _, _, b, n in weighted]) / a_total),
    }
    return {"bundle": str(path), "metadata": graph.metadata, "ops": rows, "totals": totals}
