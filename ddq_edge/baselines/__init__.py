"""Baseline engines for a ddq-edge integer graph: float / int8 ONNX and float / int8 TFLite.

``build_baselines(graph, out_dir)`` writes four models built from the *same* trained model, the
integer graph with its weights dequantized (see :mod:`ddq_edge.baselines.float_graph`):

* ``ort-float`` → ``model-float.onnx``: float32 ONNX (opset 17), NCHW, dynamic batch ``N``,
  the graph's input / output names and shapes;
* ``ort-int8`` → ``model-int8.onnx``: onnxruntime ``quantize_static`` of it (QDQ, per-channel
  int8 weights, uint8 activations, ``reduce_range=True``);
* ``litert-float`` → ``model-float.tflite``: float32 TFLite, NHWC;
* ``litert-int8`` → ``model-int8.tflite``: TFLite int8 spec (int8 activations with zero points,
  per-channel symmetric int8 weights, int32 biases at ``s_in · s_w``), float input (QUANTIZE
  first) and float output (DEQUANTIZE last).

Both int8 models are calibrated on ``calibration`` (float32 NCHW) or, if None, on a
deterministic N(0, 1) batch of 8 inputs (``numpy.random.default_rng(0)``): onnxruntime's MinMax
calibrator for the ONNX model; for the TFLite model the (min, max) of every activation of the
float ONNX model over the same batch (:func:`~ddq_edge.baselines.float_onnx.activation_ranges`).

Layouts: the ONNX models take the graph's NCHW float32 input. TFLite models are NHWC
(``tflite_input_layout = "NHWC"``): the harness transposes NCHW → NHWC before feeding,
:func:`to_engine_input` does it; 2-D outputs are ``(N, classes)`` in every engine, 4-D TFLite
outputs are NHWC (:func:`from_engine_output` transposes them back). :func:`load_engine` returns a
callable that does both and runs one engine (one thread by default).

Batch: the ONNX models have a dynamic batch; the TFLite models store batch 1 with shape
signature ``[-1, ...]`` (``Interpreter.resize_tensor_input`` takes any batch; ``load_engine``
resizes on demand).

XNNPACK: LiteRT applies its XNNPACK delegate by default. :func:`xnnpack_delegation` reports, from
the interpreter's node list after delegation (original nodes plus one ``DELEGATE`` node per
partition), which ops the delegate took. The writer only emits ops XNNPACK takes in the model's
precision (e.g. int8 average pooling becomes a depthwise conv, because XNNPACK has no int8
AVERAGE_POOL_2D), and the tests check that each model runs as one delegate partition. Two
corner cases fall back to undelegated ops (both absent from the demo, MobileNetV2 and the random
graph grid): a max pool with a non-SAME padding on an input without a known lower bound (only
with ``clamp="relu"``) needs PADV2, and an int8 clamp whose interval excludes 0 (which an int8
grid cannot implement by saturation) needs int8 MINIMUM / MAXIMUM.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ddq_edge.ir import Graph

from .float_graph import CLAMP_POLICIES, FloatGraph, float_graph, run_float

__all__ = [
    "CLAMP_POLICIES", "ENGINES", "ENGINE_FILES", "FloatGraph", "build_baselines",
    "default_calibration", "float_graph", "from_engine_output", "load_engine",
    "mobilenet_v2_224_graph", "run_float", "tflite_input_layout", "to_engine_input",
    "xnnpack_delegation",
]

ENGINES = ("ort-float", "ort-int8", "litert-float", "litert-int8")
ENGINE_FILES = {
    "ort-float": "model-float.onnx",
    "ort-int8": "model-int8.onnx",
    "litert-float": "model-float.tflite",
    "litert-int8": "model-int8.tflite",
}
tflite_input_layout = "NHWC"
onnx_input_layout = "NCHW"
CALIBRATION_SAMPLES = 8


def _check_engines(engines: Sequence[str]) -> tuple[str, ...]:
    engines = tuple(engines)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; known: {ENGINES}")
    return engines


def default_calibration(graph: Graph, samples: int = CALIBRATION_SAMPLES, seed: int = 0) -> np.ndarray:
    """A deterministic N(0, 1) float32 batch of the graph's input shape."""
    shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    return np.random.default_rng(seed).standard_normal((samples,) + shape).astype(np.float32)


def build_baselines(graph: Graph, out_dir, engines: Sequence[str] = ENGINES,
                    calibration: np.ndarray | None = None, clamp: str = "act") -> dict[str, Path]:
    """Write the baseline models of ``graph`` for ``engines`` into ``out_dir``.

    Returns ``{engine: path}`` (file names in :data:`ENGINE_FILES`). ``calibration``: float32
    NCHW batch for the int8 models (default :func:`default_calibration`). ``clamp``: how the
    integer graph's output clamps become float ones (:data:`CLAMP_POLICIES`; ``"act"``, the
    default, keeps the learned saturation ranges — see :mod:`ddq_edge.baselines.float_graph`).
    """
    import tempfile

    from .float_onnx import activation_ranges, build_float_onnx
    from .int8_onnx import quantize_int8_onnx
    from .tflite_writer import build_tflite
    from ddq_edge.files import atomic_write_bytes

    engines = _check_engines(engines)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fg = float_graph(graph, clamp)
    model = build_float_onnx(fg)
    data = model.SerializeToString()
    if calibration is None:
        calibration = default_calibration(graph)
    calibration = np.asarray(calibration, np.float32)
    in_shape = tuple(graph.tensors[graph.inputs[0]].shape[1:])
    if calibration.shape[1:] != in_shape:
        raise ValueError(f"calibration: expected shape (N, {', '.join(map(str, in_shape))}), "
                         f"got {calibration.shape}")
    paths: dict[str, Path] = {}
    if "ort-float" in engines:
        paths["ort-float"] = atomic_write_bytes(out_dir / ENGINE_FILES["ort-float"], data)
    if "ort-int8" in engines:
        with tempfile.TemporaryDirectory(prefix="ddq-baselines-") as tmp:
            src = paths.get("ort-float") or atomic_write_bytes(Path(tmp) / "float.onnx", data)
            paths["ort-int8"] = quantize_int8_onnx(src, out_dir / ENGINE_FILES["ort-int8"],
                                                   calibration, fg.input)
    if "litert-float" in engines:
        paths["litert-float"] = atomic_write_bytes(out_dir / ENGINE_FILES["litert-float"],
                                                   build_tflite(fg))
    if "litert-int8" in engines:
        ranges = activation_ranges(model, calibration)
        paths["litert-int8"] = atomic_write_bytes(out_dir / ENGINE_FILES["litert-int8"],
                                                  build_tflite(fg, int8=True, ranges=ranges))
    return {e: paths[e] for e in engines}


# ------------------------------------------------------------------ running the engines
def to_engine_input(engine: str, x_nchw: np.ndarray) -> np.ndarray:
    """The input array ``engine`` takes for the graph input ``x_nchw`` (float32): NCHW for the
    ONNX engines, NHWC for the TFLite ones (2-D inputs unchanged)."""
    _check_engines([engine])
    x = np.asarray(x_nchw, np.float32)
    if engine.startswith("litert") and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(x)


def from_engine_output(engine: str, y: np.ndarray) -> np.ndarray:
    """An engine's output in the graph's layout (NCHW for 4-D, (N, classes) for 2-D)."""
    _check_engines([engine])
    y = np.asarray(y)
    if engine.startswith("litert") and y.ndim == 4:
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    return y


def load_engine(engine: str, path, num_threads: int = 1,
                xnnpack: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``f(x_nchw) -> output`` (graph layout) running the model at ``path`` with
    onnxruntime (CPU provider) or the LiteRT interpreter (XNNPACK delegate unless
    ``xnnpack=False``), ``num_threads`` threads. Any batch size. The engines are the
    profiler's (:mod:`ddq_edge.profiling.harness`), so tests and profiles run the same code."""
    from ..profiling.harness import load_engine as load_harness_engine

    _check_engines([engine])
    kind = "ort" if engine.startswith("ort") else "litert"
    return load_harness_engine(kind, str(path), num_threads, xnnpack=xnnpack).run


def xnnpack_delegation(path, num_threads: int = 1) -> dict:
    """Which ops of a ``.tflite`` LiteRT's default XNNPACK delegate takes.

    After delegation the interpreter's node list holds the model's original nodes followed by
    one node per delegated partition (op name ``"DELEGATE"`` / the delegate's name); a partition
    replaces the original nodes that lie between its input and output tensors. Returns
    ``{"ops": [op names of the model], "partitions": k, "delegated": [...],
    "not_delegated": [...], "fully_delegated": bool}``.
    """
    from ai_edge_litert import interpreter as tfl

    it = tfl.Interpreter(model_path=str(path), num_threads=num_threads)
    it.allocate_tensors()
    nodes = it._get_ops_details()
    original = [n for n in nodes if not _is_delegate(n["op_name"])]
    delegates = [n for n in nodes if _is_delegate(n["op_name"])]
    # Original nodes a partition covers: those whose outputs are produced inside it, i.e. every
    # node on a path from a partition input to a partition output.
    producer = {t: i for i, n in enumerate(original) for t in n["outputs"]}
    covered: set[int] = set()
    for d in delegates:
        inputs = set(int(t) for t in d["inputs"])
        stack = [producer[int(t)] for t in d["outputs"] if int(t) in producer]
        while stack:
            i = stack.pop()
            if i in covered:
                continue
            covered.add(i)
            stack += [producer[int(t)] for t in original[i]["inputs"]
                      if int(t) in producer and int(t) not in inputs]
    names = [n["op_name"] for n in original]
    return {
        "ops": names,
        "partitions": len(delegates),
        "delegate_names": sorted({d["op_name"] for d in delegates}),
        "delegated": [names[i] for i in sorted(covered)],
        "not_delegated": [names[i] for i in range(len(names)) if i not in covered],
        "fully_delegated": len(delegates) == 1 and len(covered) == len(original),
    }


def _is_delegate(op_name: str) -> bool:
    return op_name == "DELEGATE" or "Delegate" in op_name or "XNNPACK" in op_name.upper()


def mobilenet_v2_224_graph(bits: str = "int8", seed: int = 0) -> Graph:
    """The standard MobileNetV2 1.0 / 224 / 1000 classes as a ddq-edge integer graph; see
    :func:`ddq_edge.baselines.mobilenet.mobilenet_v2_224_graph`."""
    from .mobilenet import mobilenet_v2_224_graph as build

    return build(bits=bits, seed=seed)
