"""ONNX integer-op import, checked against ONNX's own node conformance cases."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ddq_edge.converters.onnx_import import (import_onnx_node_model, run_graph,
                                             run_onnx_integer_model)

EXACT_OPS = ("ConvInteger", "MatMulInteger")
QLINEAR_OPS = ("QLinearConv", "QLinearMatMul")
_CASES: list | None = None


def _conformance_cases() -> list:
    """(op_type, case) for every single-node conformance case of the four ops."""
    global _CASES
    if _CASES is None:
        from onnx.backend.test.case.node import collect_testcases

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cases = collect_testcases(None)  # no op filter: the collection is cached globally
        _CASES = []
        for case in cases:
            nodes = case.model.graph.node
            if len(nodes) == 1 and nodes[0].op_type in EXACT_OPS + QLINEAR_OPS:
                _CASES.append((nodes[0].op_type, case))
        _CASES.sort(key=lambda oc: (oc[0], oc[1].name))
    return _CASES


def _case_ids(ops):
    return [c.name for op, c in _conformance_cases() if op in ops]


def _get(name):
    return next(c for _, c in _conformance_cases() if c.name == name)


def test_cases_found():
    ops = {op for op, _ in _conformance_cases()}
    assert ops == set(EXACT_OPS + QLINEAR_OPS)


@pytest.mark.parametrize("name", _case_ids(EXACT_OPS))
def test_exact_integer_ops(name):
    case = _get(name)
    for inputs, outputs in case.data_sets:
        got = run_onnx_integer_model(case.model, inputs)
        assert len(got) == len(outputs)
        for g, e in zip(got, outputs):
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_array_equal(g, e)  # tolerance 0


def _qlinear_stats(ops):
    exact = total = 0
    max_diff = 0
    for op, case in _conformance_cases():
        if op not in ops:
            continue
        for inputs, outputs in case.data_sets:
            for g, e in zip(run_onnx_integer_model(case.model, inputs), outputs):
                assert g.dtype == e.dtype and g.shape == e.shape, case.name
                d = np.abs(g.astype(np.int64) - e.astype(np.int64))
                assert d.max(initial=0) <= 1, f"{case.name}: max diff {d.max()}"
                exact += int((d == 0).sum())
                total += d.size
                max_diff = max(max_diff, int(d.max(initial=0)))
    return exact, total, max_diff


@pytest.mark.parametrize("name", _case_ids(QLINEAR_OPS))
def test_qlinear_within_one_lsb(name):
    case = _get(name)
    for inputs, outputs in case.data_sets:
        got = run_onnx_integer_model(case.model, inputs)
        for g, e in zip(got, outputs):
            assert g.dtype == e.dtype and g.shape == e.shape
            diff = np.abs(g.astype(np.int64) - e.astype(np.int64))
            assert diff.max(initial=0) <= 1  # fixed-point vs float requantization


@pytest.mark.parametrize("op", QLINEAR_OPS)
def test_qlinear_exact_match_majority(op):
    exact, total, max_diff = _qlinear_stats((op,))
    print(f"{op}: {exact}/{total} outputs exact, max diff {max_diff}")
    assert total > 0
    assert exact >= 0.9 * total


def test_qlinear_lowers_to_ir_ops():
    for op, case in _conformance_cases():
        if op not in QLINEAR_OPS:
            continue
        graph, feeds = import_onnx_node_model(case.model, case.data_sets[0][0])
        kinds = {o.kind for o in graph.ops}
        assert kinds == ({"conv2d"} if op == "QLinearConv" else {"fully_connected"})
        for t in graph.tensors.values():
            if t.is_constant and t.dtype == "int8":
                assert t.quant.zero_point == 0 and np.abs(t.data.astype(int)).max() <= 127
        assert all(feeds[n].dtype == np.uint8 for n in graph.inputs)
        run_graph(graph, feeds)


def _single_node_model(op_type, name="mynode"):
    node = helper.make_node(op_type, ["x"], ["y"], name=name)
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return helper.make_model(graph)


def test_unsupported_op_raises():
    model = _single_node_model("Relu", "my_relu")
    with pytest.raises(ValueError, match=r"Relu.*my_relu"):
        run_onnx_integer_model(model, [np.zeros(2, np.float32)])
    with pytest.raises(ValueError, match=r"Relu.*my_relu"):
        import_onnx_node_model(model, [np.zeros(2, np.float32)])


def test_conv_integer_attributes_against_onnxruntime():
    """Strides, dilations, groups, VALID and per-channel weight zero points vs onnxruntime."""
    import onnxruntime as ort
    rng = np.random.default_rng(0)
    configs = [dict(strides=[2, 1], pads=[1, 0, 2, 1]), dict(dilations=[2, 2], pads=[1, 1, 1, 1]),
               dict(group=2, strides=[1, 2]), dict(auto_pad="VALID")]
    for attrs in configs:
        g = attrs.get("group", 1)
        x = rng.integers(0, 256, (2, 4, 7, 6), dtype=np.uint8)
        w = rng.integers(0, 256, (6, 4 // g, 3, 2), dtype=np.uint8)
        xz = np.array(rng.integers(0, 256), np.uint8)
        wz = np.array(rng.integers(0, 256), np.uint8)
        node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], name="c", **attrs)
        graph = helper.make_graph(
            [node], "g",
            [helper.make_tensor_value_info(n, TensorProto.UINT8, None) for n in ("x", "w", "xz", "wz")],
            [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = sess.run(None, {"x": x, "w": w, "xz": xz, "wz": wz})[0]
        got = run_onnx_integer_model(model, [x, w, xz, wz])[0]
        np.testing.assert_array_equal(got, expected)


def test_qlinear_conv_int8_per_channel_against_onnxruntime():
    """int8 activations (the +128 shift), per-channel weight scales, bias, groups, strides."""
    import onnxruntime as ort
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (1, 4, 9, 8), dtype=np.int8)
    w = rng.integers(-127, 128, (6, 2, 3, 3), dtype=np.int8)
    vals = {
        "x": x, "xs": np.array(0.02, np.float32), "xz": np.array(-5, np.int8), "w": w,
        "ws": rng.uniform(0.001, 0.01, 6).astype(np.float32), "wz": np.zeros(6, np.int8),
        "ys": np.array(0.05, np.float32), "yz": np.array(3, np.int8),
        "b": rng.integers(-2000, 2000, 6).astype(np.int32),
    }
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"]
    types = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.float32): TensorProto.FLOAT,
             np.dtype(np.int32): TensorProto.INT32}
    node = helper.make_node("QLinearConv", names, ["y"], name="qc", group=2, strides=[2, 1],
                            pads=[1, 1, 0, 1])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, types[vals[n].dtype], None) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.INT8, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = sess.run(None, vals)[0]
    got = run_onnx_integer_model(model, [vals[n] for n in names])[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
