"""Baseline engines (ddq_edge.baselines): float / int8 ONNX and float / int8 TFLite built from one
integer graph agree with each other and with the integer reference, carry the right op and
data types, and run fully inside LiteRT's XNNPACK delegate.

Tolerances: the two float engines compute the same float32 model, so they agree to 1e-4 of the
output's magnitude (measured: ≤ 5e-7 relative). The float model differs from the integer graph
only by rounding: top-1 agreement with the reference ≥ 90 % on 200 demo test images (measured
95 %). The int8 engines re-quantize with 8-bit calibrated grids: top-1 agreement with float
≥ 85 % on the demo (measured ≈ 95 %), and on the random graphs (calibrated on their own batch)
max error ≤ 10 % of the float output's magnitude (measured ≤ 4 %).

The MobileNetV2-224 test (≈ 10 s on 2 cores: two conversions, four engines each) runs only
with RUN_SLOW=1.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from ddq_edge.baselines import (ENGINE_FILES, ENGINES, build_baselines, float_graph,
                                from_engine_output, load_engine, run_float, tflite_input_layout,
                                to_engine_input, xnnpack_delegation)
from ddq_edge.baselines.float_graph import FloatGraph, FloatOp
from ddq_edge.baselines.tflite_writer import build_tflite, load_schema
from ddq_edge.bundle import read_bundle
from ddq_edge.reference import run
from ddq_edge.testing.random_graphs import graph_grid

DEMO = os.path.join(os.path.dirname(__file__), "data", "demo-mnv2-ddq4.ddqb")
N_IMAGES = 200
GRID = 17  # one graph per random-graph feature
FLOAT_RTOL = 1e-4

logging.getLogger("root").setLevel(logging.ERROR)  # onnxruntime.quantization's advice


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-6))


def top1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


# --------------------------------------------------------------------------- tflite parsing
def tflite_model(path):
    s = load_schema()
    buf = open(path, "rb").read()
    return s, s.ModelT.InitFromObj(s.Model.GetRootAs(buf, 0))


def tflite_ops(path) -> list[tuple[str, list, list]]:
    """(op name, input tensors, output tensors) of every operator in file order."""
    s, m = tflite_model(path)
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    sg = m.subgraphs[0]
    out = []
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex].builtinCode
        out.append((names[code], [sg.tensors[i] for i in op.inputs], [sg.tensors[i] for i in op.outputs]))
    return out


# --------------------------------------------------------------------------- demo fixture
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from ddq_edge.data import get_task

    graph = read_bundle(DEMO)
    task = get_task("digits-hard")
    x, y = (t.numpy() for t in task.test.tensors)
    x, y = x[:N_IMAGES], y[:N_IMAGES]
    calib = task.train.tensors[0][:32].numpy()
    out_dir = tmp_path_factory.mktemp("demo-baselines")
    t0 = time.perf_counter()
    paths = build_baselines(graph, out_dir, calibration=calib)
    build_s = time.perf_counter() - t0
    outs = {e: load_engine(e, p)(x) for e, p in paths.items()}
    ref = run(graph, x)
    print(f"\ndemo: build_baselines {build_s:.2f} s; reference top-1 {np.mean(ref.argmax(1) == y):.3f}; "
          + "; ".join(f"{e} acc {np.mean(o.argmax(1) == y):.3f} agree-ref {top1(o, ref):.3f}"
                      for e, o in outs.items()))
    return {"graph": graph, "x": x, "y": y, "paths": paths, "outs": outs, "ref": ref,
            "out_dir": out_dir}


def test_build_baselines_writes_four_models(demo):
    paths = demo["paths"]
    assert tuple(paths) == ENGINES
    for engine, path in paths.items():
        assert path.name == ENGINE_FILES[engine]
        assert path.parent == demo["out_dir"] and path.stat().st_size > 0
    assert sorted(p.name for p in demo["out_dir"].iterdir()) == sorted(ENGINE_FILES.values())


def test_float_onnx_keeps_names_layout_and_float_ops(demo):
    g = demo["graph"]
    m = onnx.load(demo["paths"]["ort-float"])
    onnx.checker.check_model(m, full_check=True)
    (inp,), (out,) = m.graph.input, m.graph.output
    assert (inp.name, out.name) == (g.inputs[0], g.outputs[0])
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(inp) == ["N", 1, 16, 16] and dims(out) == ["N", 10]
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["Conv"] == 52 and ops["Add"] == 10 and ops["Gemm"] == 1
    assert ops["GlobalAveragePool"] == 1 and ops["Reshape"] == 1
    assert not any(t in ops for t in ("QuantizeLinear", "DequantizeLinear"))
    assert all(i.data_type in (TensorProto.FLOAT, TensorProto.INT64) for i in m.graph.initializer)


def test_int8_onnx_is_qdq_per_channel(demo):
    m = onnx.load(demo["paths"]["ort-int8"])
    inits = {i.name: i for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["QuantizeLinear"] > 50 and ops["DequantizeLinear"] > 100
    for node in m.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        w = producer[node.input[1]]  # every weight comes from a per-channel int8 DequantizeLinear
        assert w.op_type == "DequantizeLinear"
        q, scale = inits[w.input[0]], inits[w.input[1]]
        assert q.data_type == TensorProto.INT8
        assert list(scale.dims) == [q.dims[0]]
        x = producer[node.input[0]]
        assert x.op_type == "DequantizeLinear"  # uint8 activations
        assert inits[x.input[2]].data_type == TensorProto.UINT8


def test_tflite_files_layout_and_types(demo):
    s, m = tflite_model(demo["paths"]["litert-float"])
    sg = m.subgraphs[0]
    t_in, t_out = sg.tensors[sg.inputs[0]], sg.tensors[sg.outputs[0]]
    assert list(t_in.shape) == [1, 16, 16, 1] and list(t_in.shapeSignature) == [-1, 16, 16, 1]
    assert list(t_out.shape) == [1, 10] and t_in.type == t_out.type == s.TensorType.FLOAT32
    assert tflite_input_layout == "NHWC"
    float_ops = tflite_ops(demo["paths"]["litert-float"])
    assert all(t.type in (s.TensorType.FLOAT32, s.TensorType.INT32)
               for _, ins, outs in float_ops for t in ins + outs)
    counts = Counter(name for name, _, _ in float_ops)
    assert counts["CONV_2D"] + counts["DEPTHWISE_CONV_2D"] == 52 and counts["DEPTHWISE_CONV_2D"] == 17
    assert counts["PAD"] == 3  # the three stride-2 depthwise convs (PyTorch padding ≠ TF SAME)

    ops = tflite_ops(demo["paths"]["litert-int8"])
    names = [n for n, _, _ in ops]
    assert names[0] == "QUANTIZE" and names[-1] == "DEQUANTIZE"
    assert names.count("QUANTIZE") == 1 and names.count("DEQUANTIZE") == 1
    for name, ins, outs in ops:
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        assert ins[0].type == outs[0].type == s.TensorType.INT8, name
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = ins[1], ins[2]
            channels = w.shape[3] if name == "DEPTHWISE_CONV_2D" else w.shape[0]
            assert w.type == s.TensorType.INT8 and b.type == s.TensorType.INT32
            assert len(w.quantization.scale) == channels  # per-channel
            assert set(w.quantization.zeroPoint) == {0}  # symmetric
            assert w.quantization.quantizedDimension == (3 if name == "DEPTHWISE_CONV_2D" else 0)
            s_in = ins[0].quantization.scale[0]
            np.testing.assert_allclose(b.quantization.scale,
                                       np.float32(s_in) * np.asarray(w.quantization.scale, np.float32),
                                       rtol=1e-6)


def test_float_engines_agree(demo):
    outs, x = demo["outs"], demo["x"]
    assert rel_err(outs["litert-float"], outs["ort-float"]) < FLOAT_RTOL
    torch_out = run_float(float_graph(demo["graph"]), x)
    assert rel_err(torch_out, outs["ort-float"]) < FLOAT_RTOL


def test_float_baselines_match_integer_reference(demo):
    for engine in ("ort-float", "litert-float"):
        assert top1(demo["outs"][engine], demo["ref"]) >= 0.90, engine


def test_int8_baselines_match_float(demo):
    for engine in ("ort-int8", "litert-int8"):
        assert top1(demo["outs"][engine], demo["outs"]["ort-float"]) >= 0.85, engine


def test_xnnpack_delegates_every_op(demo):
    for engine in ("litert-float", "litert-int8"):
        report = xnnpack_delegation(demo["paths"][engine])
        assert report["fully_delegated"], (engine, report["not_delegated"])
        assert report["partitions"] == 1 and report["not_delegated"] == []
        assert len(report["delegated"]) == len(report["ops"]) > 60


def test_xnnpack_report_detects_an_undelegated_op(tmp_path):
    """Negative control for the delegation check: a max pool with an explicit padding on an
    input of unknown sign needs PADV2, which XNNPACK does not take."""
    rng = np.random.default_rng(0)
    shape = (1, 3, 5, 5)
    fg = FloatGraph(
        [FloatOp("max_pool", "pool", ["x"], "p", {"kernel": [2, 2], "stride": [1, 1],
                                                   "padding": [1, 0, 0, 0]}),
         FloatOp("conv", "conv", ["p"], "y", {"stride": [1, 1], "padding": [0, 0, 0, 0],
                                               "dilation": [1, 1], "groups": 1},
                 rng.standard_normal((4, 3, 1, 1)).astype(np.float32), np.zeros(4, np.float32))],
        "x", "y", {"x": shape, "p": (1, 3, 5, 4), "y": (1, 4, 5, 4)})
    path = tmp_path / "padv2.tflite"
    path.write_bytes(build_tflite(fg))
    report = xnnpack_delegation(path)
    assert report["not_delegated"] == ["PADV2"] and not report["fully_delegated"]
    assert set(report["delegated"]) == {"MAX_POOL_2D", "CONV_2D"}
    x = rng.standard_normal((2,) + shape[1:]).astype(np.float32)
    np.testing.assert_allclose(load_engine("litert-float", path)(x), run_float(fg, x), rtol=1e-5, atol=1e-6)


def test_engine_layout_helpers_and_batches(demo):
    x = demo["x"][:3]
    assert to_engine_input("litert-int8", x).shape == (3, 16, 16, 1)
    assert to_engine_input("ort-float", x).shape == (3, 1, 16, 16)
    y = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 4, 5, 3)  # NHWC
    assert from_engine_output("litert-float", y).shape == (2, 3, 4, 5)
    assert from_engine_output("ort-float", y) is y
    with pytest.raises(ValueError, match="unknown engine"):
        to_engine_input("tvm", x)
    for engine in ENGINES:  # a batch of 3 equals three batches of 1
        f = load_engine(engine, demo["paths"][engine])
        one = np.concatenate([f(x[i:i + 1]) for i in range(3)])
        np.testing.assert_allclose(f(x), one, rtol=1e-5, atol=1e-5)


def test_relu_clamp_policy(tmp_path, demo):
    g = demo["graph"]
    paths = build_baselines(g, tmp_path, engines=("ort-float", "litert-float"), clamp="relu")
    assert set(paths) == {"ort-float", "litert-float"}
    m = onnx.load(paths["ort-float"])
    ops = Counter(n.op_type for n in m.graph.node)
    assert ops["Relu"] + ops["Clip"] == 35  # the 35 ReLU6-folded convs (6 is above their grids)
    x = demo["x"][:50]
    a, b = (load_engine(e, p)(x) for e, p in paths.items())
    assert rel_err(b, a) < FLOAT_RTOL
    assert top1(a, demo["ref"][:50]) >= 0.9
    with pytest.raises(ValueError, match="clamp"):
        float_graph(g, clamp="none")


# --------------------------------------------------------------------------- random graphs
@pytest.fixture(scope="module")
def grid():
    return graph_grid(GRID)


def test_random_grid_covers_2d_and_4d_outputs(grid):
    ranks = Counter(len(g.tensors[g.outputs[0]].shape) for g, _ in grid)
    assert ranks[2] > 0 and ranks[4] > 0


@pytest.mark.parametrize("index", range(GRID))
def test_random_graph_baselines(index, grid, tmp_path):
    g, x = grid[index]
    paths = build_baselines(g, tmp_path, calibration=x)
    outs = {e: load_engine(e, p)(x) for e, p in paths.items()}
    expected = (x.shape[0],) + tuple(g.tensors[g.outputs[0]].shape[1:])
    for engine, y in outs.items():
        assert y.shape == expected and y.dtype == np.float32, engine
    ref = outs["ort-float"]
    assert rel_err(outs["litert-float"], ref) < FLOAT_RTOL
    assert rel_err(run_float(float_graph(g), x), ref) < FLOAT_RTOL
    if float(np.abs(ref).max()) > 1e-3:  # int8 re-quantization error, relative to the output
        for engine in ("ort-int8", "litert-int8"):
            assert rel_err(outs[engine], ref) < 0.1, engine
    for engine in ("litert-float", "litert-int8"):
        report = xnnpack_delegation(paths[engine])
        assert report["fully_delegated"], (engine, report["not_delegated"])


# --------------------------------------------------------------------------- MobileNetV2 224
def test_mixed4_rule_is_the_demo_assignment_adjusted():
    from ddq_edge.baselines.mobilenet import DEMO_BITS, mixed4_bits

    learned = read_bundle(DEMO).metadata["bits"]
    assert {k: tuple(v) for k, v in learned.items()} == DEMO_BITS
    # layer statistics of the 1.0 / 224 model: weight elements, depthwise
    from ddq_edge.models import build_model
    from ddq_edge.quant import DDQConfig, ddq_layers, quantize

    q = quantize(build_model("mobilenet_v2", width=1.0, num_classes=1000, input_size=224),
                 DDQConfig())
    stats = {n: {"weight_elements": int(l.weight.numel()),
                 "depthwise": getattr(l, "groups", 1) > 1 and l.groups == l.in_channels}
             for n, l in ddq_layers(q)}
    bits = mixed4_bits(stats)
    assert set(bits) == set(DEMO_BITS)
    assert bits["features.0.0"] == (8, 8) and bits["classifier.1"] == (5, 8)
    assert all(bits[n][0] >= 6 for n, st in stats.items() if st["depthwise"])
    total = sum(st["weight_elements"] for st in stats.values())
    avg_w = sum(bits[n][0] * st["weight_elements"] for n, st in stats.items()) / total
    assert 3.9 <= avg_w <= 4.0


@pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="slow (MobileNetV2 224): set RUN_SLOW=1")
@pytest.mark.parametrize("bits", ["int8", "mixed4"])
def test_mobilenet_v2_224(bits, tmp_path):
    from ddq_edge.baselines import mobilenet_v2_224_graph
    from ddq_edge.baselines.mobilenet import (STANDARD_MACS, STANDARD_PARAMS, graph_macs,
                                              graph_params)
    from ddq_edge.reference import run_integer

    t0 = time.perf_counter()
    g = mobilenet_v2_224_graph(bits, seed=0)
    seconds = time.perf_counter() - t0
    assert seconds < 60
    assert graph_macs(g) == STANDARD_MACS == 300_774_272
    assert graph_params(g) == STANDARD_PARAMS
    assert Counter(op.kind for op in g.ops) == Counter(
        {"conv2d": 52, "add": 10, "quantize": 1, "global_avg_pool": 1, "reshape": 1,
         "fully_connected": 1, "dequantize": 1})
    assert g.tensors[g.inputs[0]].shape == (1, 3, 224, 224)
    assert g.tensors[g.outputs[0]].shape == (1, 1000)
    layer_bits = {tuple(v) for v in g.metadata["bits"].values()}
    budget = g.metadata["budget"]
    if bits == "int8":
        assert layer_bits == {(8, 8)}
    else:
        assert 3.9 <= budget["average_weight_bits"] <= 4.0
        assert 4.0 <= budget["average_act_bits"] <= 4.6
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    codes = run_integer(g, x)
    assert len(np.unique(codes)) > 20  # a sane graph: the logits are not all clamped
    paths = build_baselines(g, tmp_path)
    outs = {e: load_engine(e, p)(x) for e, p in paths.items()}
    ref = outs["ort-float"]
    assert rel_err(outs["litert-float"], ref) < FLOAT_RTOL
    for engine in ("ort-int8", "litert-int8"):
        cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(outs[engine], ref)]
        assert min(cos) > 0.9, (engine, cos)
    y_int = run(g, x)
    cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(y_int, ref)]
    assert min(cos) > 0.85, cos
    for engine in ("litert-float", "litert-int8"):
        assert xnnpack_delegation(paths[engine])["fully_delegated"], engine
    print(f"\nmobilenet_v2_224 {bits}: graph {seconds:.1f} s, budget {budget}, "
          f"reference-vs-float cos {min(cos):.4f}")
