"""Run one inference engine on one model: the piece of the profiler that also runs on an
emulated aarch64 Python, so it imports nothing from ddq_edge and needs only numpy and the
engine itself.

    python harness.py count ENGINE MODEL X.npy N [--threads T]
        one warm-up inference, count marker 1, N inferences, count marker 2; prints JSON with the
        wall time of the N inferences (read outside the markers, so the counts stay exact)
    python harness.py time ENGINE MODEL X.npy N [--threads T] [--warmup W]
        per-inference wall times and the process's memory (RSS after imports, peak RSS)
    python harness.py output ENGINE MODEL X.npy OUT.npy [--threads T]

ENGINE: ``ort`` (onnxruntime), ``litert`` (LiteRT's interpreter, XNNPACK on; tflite-runtime's
where LiteRT is missing) or ``ddq`` (the ddq-edge runtime's Python binding). X.npy is one
float32 NCHW batch; a TFLite model whose input is NHWC gets it transposed.

Every engine has ``prepare(x)`` (the batch in the engine's own layout and type) and
``infer(prepared)`` (the engine's own output: set the input, run, get the output), and ``run(x)``
for the bundle's layouts. count and time prepare the input once, before what they measure, so
that a layout conversion the application would not make (NCHW → NHWC for LiteRT, which costs
about 3.4 M instructions per 224 × 224 image in numpy under qemu) is not charged to an engine.

Count markers follow ddq_edge/emulation/insn_count_plugin.c: ``lseek(-1, 0xDD0E << 32 | id)``
fails harmlessly and the plugin records the calling thread's instruction counts.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

MARKER_TAG = 0xDD0E
MARK_BEGIN, MARK_END = 1, 2
ENGINE_KINDS = ("ort", "litert", "ddq")


def count_marker(mark_id: int) -> None:
    try:
        os.lseek(-1, (MARKER_TAG << 32) | mark_id, os.SEEK_SET)
    except OSError:
        pass  # EBADF, by design


class OrtEngine:
    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.infer(self.prepare(x))


def _tflite_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter
    return interpreter


class LiteRtEngine:
    """A ``.tflite`` model in LiteRT's interpreter (XNNPACK delegate unless ``xnnpack=False``).

    The ddq-edge baselines are NHWC inside: 4-D inputs are transposed from NCHW and 4-D outputs
    back, so every engine takes and gives the bundle's layout. Any batch size (the input is
    resized when the batch changes)."""

    def __init__(self, path: str, threads: int, xnnpack: bool = True) -> None:
        tfl = _tflite_module()
        options = {} if xnnpack else {
            "experimental_op_resolver_type": tfl.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        self.interpreter = tfl.Interpreter(model_path=path, num_threads=threads, **options)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape = tuple(int(d) for d in self.input["shape"])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)  # NCHW → NHWC
        x = np.ascontiguousarray(x)
        if x.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        return x

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def run(self, x: np.ndarray) -> np.ndarray:
        y = self.infer(self.prepare(x))
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if y.ndim == 4 else y.copy()


def _ddq_extension():
    """The runtime's extension module, loaded from its file: importing the ddq_edge package would
    pull in torch and the training code, and its memory would be charged to the engine."""
    import glob
    import importlib.machinery
    import importlib.util

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = sorted(glob.glob(os.path.join(package, "_runtime*.so")) + glob.glob(os.path.join(package, "_runtime*.pyd")))
    if not found:
        from ddq_edge import _runtime  # an installed layout without the file beside us

        return _runtime
    loader = importlib.machinery.ExtensionFileLoader("ddq_edge._runtime", found[0])
    spec = importlib.util.spec_from_file_location("ddq_edge._runtime", found[0], loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class DdqEngine:
    def __init__(self, path: str, threads: int, kernels: str | None = None) -> None:
        self.runtime = _ddq_extension().Runtime(path, threads, kernels)
        info = self.runtime.info()
        self.output_tail = tuple(info["output_shape"][1:])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0],) + self.output_tail, np.float32)
        self.runtime.run_into(x, x.shape[0], out)
        return out

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.infer(self.prepare(x))


def load_engine(kind: str, path: str, threads: int = 1, xnnpack: bool = True, kernels: str | None = None):
    """An engine object with ``run(x_nchw) -> output`` in the bundle's layout, and ``prepare`` /
    ``infer`` for measurements (``kernels``: the ddq-edge runtime's kernel set, None for the one
    this CPU picks)."""
    if kind == "ort":
        return OrtEngine(path, threads)
    if kind == "litert":
        return LiteRtEngine(path, threads, xnnpack)
    if kind == "ddq":
        return DdqEngine(path, threads, kernels)
    raise ValueError(f"unknown engine {kind!r}; known: {', '.join(ENGINE_KINDS)}")


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status in KiB (Linux), 0 where unknown. VmHWM is the peak
    resident set of this program image; getrusage's ru_maxrss would carry the parent's peak
    across exec on Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def _peak_rss_kib() -> int:
    return _status_kib("VmHWM")


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="harness.py")
    parser.add_argument("mode", choices=("count", "time", "output"))
    parser.add_argument("engine", choices=ENGINE_KINDS)
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("arg", help="N inferences (count, time) or the output .npy (output)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    x = np.load(args.input)
    rss_imported = _rss_kib()
    engine = load_engine(args.engine, args.model, args.threads)
    if args.mode == "output":
        np.save(args.arg, engine.run(x))
        return 0
    runs = int(args.arg)
    prepared = engine.prepare(x)
    if args.mode == "count":
        engine.infer(prepared)  # warm-up: lazy initialisation and first-touch page faults stay outside
        start = time.perf_counter()
        count_marker(MARK_BEGIN)
        for _ in range(runs):
            engine.infer(prepared)
        count_marker(MARK_END)
        elapsed = time.perf_counter() - start
        print(json.dumps({"engine": args.engine, "runs": runs, "wall_seconds": elapsed}))
        return 0
    for _ in range(args.warmup):
        engine.infer(prepared)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.infer(prepared)
        times.append(time.perf_counter() - start)
    print(json.dumps({"engine": args.engine, "seconds": times, "rss_after_import_kib": rss_imported,
                      "rss_peak_kib": _peak_rss_kib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
