"""The random graph generator (ddq_edge.testing.random_graphs): every graph is valid, the grid
covers every op kind and feature a runtime conformance suite needs, graphs are deterministic
in their seed and their outputs are not degenerate."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ddq_edge.bundle import encode_bundle, read_bundle, write_bundle
from ddq_edge.ir import OP_KINDS, Graph, QuantParams
from ddq_edge.reference import run, run_all, run_integer
from ddq_edge.reference import fixed_point as fp
from ddq_edge.reference import ops
from ddq_edge.testing.random_graphs import FEATURES, graph_grid, random_graph

GRID_SIZE = 40

ATTRS = {
    "quantize": set(), "dequantize": set(), "reshape": {"shape"},
    "conv2d": {"stride", "padding", "dilation", "groups", "act_min", "act_max"},
    "fully_connected": {"act_min", "act_max"}, "add": {"act_min", "act_max"},
    "global_avg_pool": {"act_min", "act_max"}, "requantize": {"act_min", "act_max"},
    "avg_pool": {"kernel", "stride", "padding", "act_min", "act_max"},
    "max_pool": {"kernel", "stride", "padding"},
}


@pytest.fixture(scope="module")
def grid() -> list[tuple[Graph, np.ndarray]]:
    return graph_grid(GRID_SIZE, seed=0)


@pytest.fixture(scope="module")
def randoms() -> list[tuple[Graph, np.ndarray]]:
    return [random_graph(seed) for seed in range(40)]


# --------------------------------------------------------------------------- helpers

def same_grid(a: QuantParams, b: QuantParams) -> bool:
    return (np.array_equal(a.scale, b.scale) and a.zero_point == b.zero_point
            and (a.bits, a.qmin, a.qmax) == (b.bits, b.qmin, b.qmax))


def tensor(g: Graph, name: str):
    return g.tensors[name]


def grid_of(g: Graph, name: str) -> QuantParams:
    return g.tensors[name].quant


def producers(g: Graph) -> dict:
    return {op.outputs[0]: op for op in g.ops}


def clamp_bounds(g: Graph, name: str) -> tuple[int, int]:
    """The bounds the producer of ``name`` clamps to: act_min/act_max, else the grid."""
    op = producers(g)[name]
    q = grid_of(g, name)
    return op.attrs.get("act_min", q.qmin), op.attrs.get("act_max", q.qmax)


def interior_fraction(g: Graph, name: str, codes: np.ndarray) -> float:
    lo, hi = clamp_bounds(g, name)
    return float(np.mean((codes > lo) & (codes < hi)))


def input_codes_axis(g: Graph, x: np.ndarray) -> np.ndarray:
    """x / scale in float32, as quantize computes it."""
    return x / grid_of(g, g.ops[0].outputs[0]).scale[0]


# --------------------------------------------------------------------------- structure

def test_graph_edges_shapes_and_names(grid, randoms):
    for g, x in grid + randoms:
        g.validate()
        assert g.inputs == ["input"] and g.outputs == ["output"]
        first, last = g.ops[0], g.ops[-1]
        assert first.kind == "quantize" and first.inputs == ["input"]
        assert last.kind == "dequantize" and last.outputs == ["output"]
        assert all(op.kind not in ("quantize", "dequantize") for op in g.ops[1:-1])
        spec = tensor(g, "input")
        assert spec.dtype == "float32" and len(spec.shape) == 4 and spec.shape[0] == 1
        assert all(1 <= d <= 13 for d in spec.shape[1:])
        assert tensor(g, "output").dtype == "float32"
        assert x.dtype == np.float32 and x.shape[0] in (1, 2) and x.shape[1:] == spec.shape[1:]
        assert all(t.shape[0] == 1 for t in g.tensors.values() if not t.is_constant)
        assert len({op.name for op in g.ops}) == len(g.ops)
        assert all(name == t.name for name, t in g.tensors.items())


def test_tensor_grids(grid, randoms):
    for g, _ in grid + randoms:
        for name, t in g.tensors.items():
            q = t.quant
            if t.dtype == "uint8":  # activation
                assert not t.is_constant
                assert q.scale.dtype == np.float32 and q.scale.shape == (1,)
                assert np.isfinite(q.scale[0]) and q.scale[0] > 0
                assert 2 <= q.bits <= 8 and q.qmin == 0 and q.qmax == 2 ** q.bits - 1
                assert 0 <= q.zero_point <= q.qmax
            elif t.dtype == "int8":  # weight
                wmax = 2 ** (q.bits - 1) - 1
                assert t.is_constant and t.data.shape == t.shape and t.data.dtype == np.int8
                assert 2 <= q.bits <= 8 and q.zero_point == 0 and (q.qmin, q.qmax) == (-wmax, wmax)
                assert q.scale.size in (1, t.shape[0]) and np.all(q.scale > 0)
                assert np.all(np.isfinite(q.scale))
                assert t.data.min() >= -wmax and t.data.max() <= wmax
            elif t.dtype == "int32":  # bias
                assert t.is_constant and q is None and t.data.dtype == np.int32
                assert len(t.shape) == 1 and np.all(np.abs(t.data.astype(np.int64)) <= 2 ** 24)
            else:
                assert t.dtype == "float32" and name in ("input", "output") and q is None


def check_conv(g: Graph, op) -> None:
    x, w, b = (tensor(g, n) for n in op.inputs)
    a = op.attrs
    _, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    assert c % a["groups"] == 0 and o % a["groups"] == 0 and cg == c // a["groups"]
    assert b.shape == (o,) and tensor(g, op.outputs[0]).shape[1] == o
    assert set(a["stride"]) <= {1, 2} and a["dilation"] in ([1, 1], [2, 1])
    assert len(a["padding"]) == 4 and all(0 <= p <= 2 for p in a["padding"])
    assert (kh, kw) in {(1, 1), (3, 3), (5, 5), (1, 3), (3, 1)}


def check_multipliers(g: Graph, op) -> None:
    """Every requantization multiplier is finite with shift <= 30 (add: all shifts <= 0)."""
    qp = [grid_of(g, n) for n in op.inputs]
    out = grid_of(g, op.outputs[0])
    if op.kind in ("conv2d", "fully_connected"):
        m = ops.conv_multipliers(qp[0], qp[1], out, tensor(g, op.inputs[1]).shape[0])
    elif op.kind == "requantize":
        m = ops.requantize_multiplier(qp[0], out)
    elif op.kind == "global_avg_pool":
        _, _, h, w = tensor(g, op.inputs[0]).shape
        m = ops.global_avg_pool_multiplier(qp[0], out, h * w)
    elif op.kind == "add":
        ops.add_multipliers(qp[0], qp[1], out)  # raises unless every shift <= 0
        return
    else:
        return
    assert np.all(np.isfinite(m)) and np.all(np.asarray(m) > 0)
    _, shift = fp.quantize_multipliers(m)
    assert shift.max() <= 30


def test_op_attributes_and_grids(grid, randoms):
    for g, _ in grid + randoms:
        for op in g.ops:
            a = op.attrs
            assert set(a) == ATTRS[op.kind], (op.name, a)
            assert all(isinstance(v, int) or all(isinstance(i, int) for i in v) for v in a.values())
            if "act_min" in a:
                q = grid_of(g, op.outputs[0])
                assert q.qmin <= a["act_min"] <= a["act_max"] <= q.qmax
            if op.kind == "conv2d":
                check_conv(g, op)
            elif op.kind == "fully_connected":
                x, w = tensor(g, op.inputs[0]), tensor(g, op.inputs[1])
                assert len(x.shape) == 2 and w.shape[1] == x.shape[1]
            elif op.kind in ("avg_pool", "max_pool"):
                assert same_grid(grid_of(g, op.inputs[0]), grid_of(g, op.outputs[0]))
                assert a["kernel"] in ([2, 2], [3, 3]) and set(a["stride"]) <= {1, 2}
                assert all(0 <= p <= 1 for p in a["padding"])
            elif op.kind == "global_avg_pool":
                c = tensor(g, op.inputs[0]).shape[1]
                assert tensor(g, op.outputs[0]).shape == (1, c, 1, 1)
            elif op.kind == "add":
                qa, qb = (grid_of(g, n) for n in op.inputs)
                sa, sb = (tensor(g, n).shape for n in op.inputs)
                assert sa == sb and not same_grid(qa, qb)
                s_out = float(grid_of(g, op.outputs[0]).scale[0])
                assert s_out > 2 * max(float(qa.scale[0]), float(qb.scale[0])) / 2 ** 20
            elif op.kind == "requantize":
                assert not same_grid(grid_of(g, op.inputs[0]), grid_of(g, op.outputs[0]))
            elif op.kind == "reshape":
                src, dst = tensor(g, op.inputs[0]), tensor(g, op.outputs[0])
                assert a["shape"][0] == 1 and tuple(a["shape"]) == dst.shape
                assert np.prod(src.shape) == np.prod(dst.shape)
            check_multipliers(g, op)


# --------------------------------------------------------------------------- validity

def test_reference_runs_and_bundle_round_trips(grid, tmp_path):
    for i, (g, x) in enumerate(grid):
        y = run(g, x)
        assert y.dtype == np.float32 and y.shape[0] == x.shape[0] and np.all(np.isfinite(y))
        back = read_bundle(write_bundle(g, tmp_path / f"graph{i}.ddqb"))
        assert encode_bundle(back) == encode_bundle(g)
        assert np.array_equal(run_integer(back, x), run_integer(g, x))


@pytest.mark.parametrize("max_ops", [1, 2, 3, 8])
def test_random_graphs_stay_within_max_ops(max_ops):
    for seed in range(25):
        g, x = random_graph(seed, max_ops=max_ops)
        g.validate()
        run(g, x)
        assert 1 <= len(g.ops) - 2 <= max_ops
        assert any(op.kind in ("conv2d", "fully_connected") for op in g.ops)
    with pytest.raises(ValueError):
        random_graph(0, max_ops=0)


def test_deterministic_in_the_seed():
    (g1, x1), (g2, x2), (g3, x3) = random_graph(7), random_graph(7), random_graph(8)
    assert encode_bundle(g1) == encode_bundle(g2) and np.array_equal(x1, x2)
    assert encode_bundle(g1) != encode_bundle(g3)
    a, b, c = graph_grid(3, seed=5), graph_grid(3, seed=5), graph_grid(2, seed=6)
    for (ga, xa), (gb, xb) in zip(a, b):
        assert encode_bundle(ga) == encode_bundle(gb) and np.array_equal(xa, xb)
    # graph i does not depend on the grid's size, and the seed changes the grid
    assert encode_bundle(graph_grid(2, seed=5)[1][0]) == encode_bundle(a[1][0])
    assert encode_bundle(c[0][0]) != encode_bundle(a[0][0])


# --------------------------------------------------------------------------- coverage

def collect_features(graphs) -> Counter:
    """What the graphs exercise, by inspection of their tensors, ops and inputs."""
    seen: Counter = Counter()
    for g, x in graphs:
        made = producers(g)
        readers = Counter(name for op in g.ops for name in op.inputs)
        seen[f"batch{x.shape[0]}"] += 1
        q_in = grid_of(g, g.ops[0].outputs[0])
        seen[f"abits_in{q_in.bits}"] += 1
        t = input_codes_axis(g, x)
        if np.any(t - np.floor(t) == 0.5):
            seen["input_ties"] += 1
        codes = np.floor(t + np.float32(0.5)) + q_in.zero_point
        if np.any((codes < q_in.qmin) | (codes > q_in.qmax)):
            seen["input_clamped"] += 1
        if tensor(g, "input").shape[1] % 2:
            seen["odd_input_channels"] += 1
        for t in g.tensors.values():
            if t.dtype == "uint8":
                seen[f"abits{t.quant.bits}"] += 1
                seen["zp0" if t.quant.zero_point == 0 else "zp_nonzero"] += 1
            elif t.dtype == "int8":
                seen[f"wbits{t.quant.bits}"] += 1
                seen["per_channel_scales" if t.quant.per_channel else "single_scale"] += 1
            elif t.dtype == "int32" and not np.any(t.data):
                seen["zero_bias"] += 1
        for op in g.ops:
            seen[op.kind] += 1
            a = op.attrs
            if "act_min" in a:
                q = grid_of(g, op.outputs[0])
                if a["act_min"] == q.zero_point > q.qmin:  # ReLU distinct from the full range
                    seen["relu"] += 1
                if a["act_max"] < q.qmax:
                    seen["narrow_act_max"] += 1
                if (a["act_min"], a["act_max"]) == (q.qmin, q.qmax):
                    seen["full_act"] += 1
            if op.kind == "conv2d":
                c = tensor(g, op.inputs[0]).shape[1]
                o, _, kh, kw = tensor(g, op.inputs[1]).shape
                seen[f"conv{kh}x{kw}"] += 1
                groups = a["groups"]
                if groups == c > 1:
                    seen[f"depthwise_x{o // c}"] += 1
                elif 1 < groups < c:
                    seen["grouped"] += 1
                for s in a["stride"]:
                    seen[f"stride{s}"] += 1
                if any(a["padding"]):
                    seen["conv_padding"] += 1
                if len(set(a["padding"])) > 1:
                    seen["asymmetric_padding"] += 1
                if a["dilation"] == [2, 1]:
                    seen["dilation"] += 1
                if o % 2:
                    seen["odd_out_channels"] += 1
            if op.kind in ("avg_pool", "max_pool") and any(a["padding"]):
                seen[f"{op.kind}_padding"] += 1
            if op.kind == "fully_connected":
                flat = made[op.inputs[0]]
                assert flat.kind == "reshape" or len(tensor(g, flat.inputs[0]).shape) == 2
                if flat.kind == "reshape":
                    before = made[flat.inputs[0]]
                    seen["fc_after_global_pool" if before.kind == "global_avg_pool"
                         else "fc_after_flatten"] += 1
            if op.kind == "add" and max(readers[n] for n in op.inputs) >= 2:
                seen["residual"] += 1  # the skip input also feeds the branch
    return seen


def test_grid_covers_every_op_kind_and_feature(grid):
    seen = collect_features(grid)
    missing = [k for k in OP_KINDS if seen[k] == 0]
    missing += [f"wbits{b}" for b in range(2, 9) if seen[f"wbits{b}"] == 0]
    missing += [f"abits_in{b}" for b in range(2, 9) if seen[f"abits_in{b}"] == 0]
    missing += [f"abits{b}" for b in range(2, 9) if seen[f"abits{b}"] == 0]
    required = [
        "conv1x1", "conv3x3", "conv5x5", "conv1x3", "conv3x1", "depthwise_x1", "depthwise_x2",
        "grouped", "stride1", "stride2", "conv_padding", "asymmetric_padding", "dilation",
        "avg_pool_padding", "max_pool_padding", "odd_input_channels", "odd_out_channels",
        "residual", "fc_after_global_pool", "fc_after_flatten", "batch1", "batch2",
        "input_ties", "input_clamped", "zp0", "zp_nonzero", "relu",
        "narrow_act_max", "full_act", "per_channel_scales", "single_scale", "zero_bias",
    ]
    missing += [k for k in required if seen[k] == 0]
    assert not missing, f"graph_grid({GRID_SIZE}) misses {missing}"
    # every forced feature is recorded, in turn
    assert [g.metadata["feature"] for g, _ in grid[:len(FEATURES)]] == list(FEATURES)


# --------------------------------------------------------------------------- interest

def test_outputs_are_not_degenerate(grid, randoms):
    final, weighted, distinct = [], [], []
    for g, x in grid + randoms:
        values = run_all(g, x)
        last = g.ops[-1].inputs[0]
        final.append(interior_fraction(g, last, values[last]))
        distinct.append(np.unique(values[last]).size > 1)
        for op in g.ops:
            if op.kind in ("conv2d", "fully_connected"):
                name = op.outputs[0]
                weighted.append(interior_fraction(g, name, values[name]))
    # On average most codes lie strictly inside the clamp bounds, few graphs end constant.
    assert np.mean(final) > 0.4, np.mean(final)
    assert np.mean(weighted) > 0.4, np.mean(weighted)
    assert np.mean(distinct) > 0.9, np.mean(distinct)
    assert np.mean(np.array(final) == 0) < 0.15
