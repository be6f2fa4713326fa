"""Per-kernel microbenchmarks of the ddq-edge runtime at MobileNetV2 1.0/224 shapes × bit widths.

    python benchmarks/microbench_kernels.py [--cores a53,a72,a76] [--bits 2,3,4,6,8]
        [--reference-bits 8] [--json benchmarks/results/microbench_kernels.json]

Every case is a single-op bundle, quantize → op → dequantize, built from the one list `CASES`
(1×1 conv GEMMs, depthwise 3×3 stride 1 and 2, the 3×3 stem, the classifier, a residual add) at
each of ``--bits`` (weights and input activations at the same width, declared on the tensors'
grids exactly as a DDQ bundle does: weights in ±(2^(b−1) − 1), activations in 0…2^b − 1 with the
zero point at 0 after ReLU6 or mid-grid on the residual stream; the output grid is b bits too).
The add is 8-bit only.

What each number is:

* ``instr/MAC``: retired guest instructions of the op alone (``ddq-run --count``'s per-op marks,
  one inference, single thread) under ``qemu-aarch64 -cpu cortex-<core>`` divided by the op's
  MACs (the add: per output element), for every kernel set that runs on that core. Where the
  three cores give the same count (the same code) one number is shown.
* ``ns/MAC``: this host's wall time of the op (``ddq-run --bench``'s per-op mean, built from the
  current runtime/ sources) divided by its MACs, for every kernel set that runs here.

The ``reference`` set (the C specification, tens of instructions per MAC) is measured only at
``--reference-bits`` to keep the run short. Weight values are random (seed 0); the input is zeros
(``ddq-run``'s default), which costs the same as any input in these kernels.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ddq_edge.bundle import write_bundle
from ddq_edge.inspect import macs
from ddq_edge.ir import Graph, Op, QuantParams, Tensor
from ddq_edge.profiling.emulated import count_ddq, kernel_sets
from ddq_edge.profiling.native import bench_ddq_run, host_kernel_sets, native_ddq_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "microbench_kernels.json"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str               # "conv", "fc", "add"
    c: int                  # input channels (features for fc)
    hw: int = 1             # input height = width
    o: int = 0              # output channels
    k: int = 1
    stride: int = 1
    depthwise: bool = False
    signed_input: bool = False  # residual stream / image: zero point mid-grid


# MobileNetV2 1.0/224 layers (input size², channels in → out)
CASES = [
    Case("1x1 expand 56² 24→144", "conv", 24, 56, 144, signed_input=True),
    Case("1x1 project 28² 192→32", "conv", 192, 28, 32),
    Case("1x1 expand 14² 64→384", "conv", 64, 14, 384, signed_input=True),
    Case("1x1 project 7² 960→160", "conv", 960, 7, 160),
    Case("1x1 last 7² 320→1280", "conv", 320, 7, 1280),
    Case("dw3x3 s1 56² ×144", "conv", 144, 56, 144, k=3, depthwise=True),
    Case("dw3x3 s2 112² ×96", "conv", 96, 112, 96, k=3, stride=2, depthwise=True),
    Case("dw3x3 s1 14² ×384", "conv", 384, 14, 384, k=3, depthwise=True),
    Case("dw3x3 s1 7² ×960", "conv", 960, 7, 960, k=3, depthwise=True),
    Case("stem 3x3 s2 224² 3→32", "conv", 3, 224, 32, k=3, stride=2, signed_input=True),
    Case("fc 1280→1000", "fc", 1280, o=1000),
    Case("add 28² ×32", "add", 32, 28),
]


def _grid(bits: int, zp: int, scale=1.0) -> QuantParams:
    return QuantParams(np.atleast_1d(np.asarray(scale, np.float32)), zp, bits, 0, (1 << bits) - 1)


def case_graph(case: Case, bits: int, seed: int = 0) -> Graph:
    """quantize → the case's op at `bits` → dequantize, as the converter writes such an op."""
    rng = np.random.default_rng(seed)
    zp = (1 << (bits - 1)) if case.signed_input else 0
    shape = (1, case.c) if case.kind == "fc" else (1, case.c, case.hw, case.hw)
    g = Graph()
    g.add_tensor(Tensor("x", shape, "float32"))
    g.add_tensor(Tensor("q", shape, "uint8", _grid(bits, zp)))
    if case.kind == "add":
        g.add_tensor(Tensor("b", shape, "uint8", _grid(8, 128, 0.5)))
        g.add_tensor(Tensor("y", shape, "uint8", _grid(8, 128, 1.5)))
        g.add_op(Op("quantize", "quant", ["x"], ["q"]))
        g.add_op(Op("requantize", "requant", ["q"], ["b"], {"act_min": 0, "act_max": 255}))
        g.add_op(Op("add", "add", ["q", "b"], ["y"], {"act_min": 0, "act_max": 255}))
        out_shape = shape
    else:
        wmax = (1 << (bits - 1)) - 1
        w_shape = (case.o, case.c) if case.kind == "fc" else (
            case.o, 1 if case.depthwise else case.c, case.k, case.k)
        w = rng.integers(-wmax, wmax + 1, size=w_shape).astype(np.int8)
        taps = int(np.prod(w_shape[1:]))
        w_scales = (2.0 ** rng.uniform(-1, 1, size=case.o)).astype(np.float32)
        # outputs spread over the b-bit grid: |acc| ≈ √taps · wmax · span / 3
        out_scale = float(np.sqrt(taps) * wmax * (1 << bits) / 3 / (1 << bits))
        qmax = (1 << bits) - 1
        g.add_tensor(Tensor("w", w_shape, "int8", QuantParams(w_scales, 0, bits, -wmax, wmax), w))
        bias = rng.integers(-taps, taps + 1, size=case.o).astype(np.int32)
        g.add_tensor(Tensor("bias", (case.o,), "int32", None, bias))
        if case.kind == "fc":
            out_shape, attrs = (1, case.o), {}
        else:
            pad = case.k // 2
            out_hw = (case.hw + 2 * pad - case.k) // case.stride + 1
            out_shape = (1, case.o, out_hw, out_hw)
            attrs = {"stride": [case.stride] * 2, "padding": [pad] * 4, "dilation": [1, 1],
                     "groups": case.c if case.depthwise else 1}
        g.add_tensor(Tensor("y", out_shape, "uint8", _grid(bits, 0, out_scale)))
        g.add_op(Op("quantize", "quant", ["x"], ["q"]))
        g.add_op(Op(case.kind if case.kind == "conv2d" else ("conv2d" if case.kind == "conv" else "fully_connected"),
                    "op", ["q", "w", "bias"], ["y"], {**attrs, "act_min": 0, "act_max": qmax}))
    g.add_tensor(Tensor("out", out_shape, "float32"))
    g.add_op(Op("dequantize", "deq", ["y"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {"generator": "benchmarks/microbench_kernels.py", "case": case.name, "bits": bits}
    g.validate()
    return g


def work_of(graph: Graph) -> int:
    """MACs of the case's op (index 1 after the quantize); output elements for the add."""
    op = graph.ops[-2]
    return macs(graph, op) or int(np.prod(graph.tensors[op.outputs[0]].shape))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="a53,a72,a76")
    parser.add_argument("--bits", default="2,3,4,6,8")
    parser.add_argument("--reference-bits", default="8", help="bit widths the reference set is measured at")
    parser.add_argument("--native-ms", type=float, default=100.0, help="host time per case and set (0: none)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ddq-edge-microbench"))
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    start = time.perf_counter()
    cores = [c for c in args.cores.split(",") if c]
    bits_list = [int(b) for b in args.bits.split(",") if b]
    ref_bits = {int(b) for b in args.reference_bits.split(",") if b}
    args.work.mkdir(parents=True, exist_ok=True)
    bundles: list[tuple[Case, int, Path, int]] = []
    for case in CASES:
        for bits in ([8] if case.kind == "add" else bits_list):
            g = case_graph(case, bits)
            path = args.work / f"{case.name.replace(' ', '_').replace('²', '').replace('→', '-').replace('×', 'x')}-b{bits}.ddqb"
            write_bundle(g, path)
            bundles.append((case, bits, path, work_of(g)))
    sets = {core: kernel_sets(core, bundles[0][2]) for core in cores}
    jobs = [(core, k, item) for core in cores for k in sets[core][1] for item in bundles
            if k != "reference" or item[1] in ref_bits]

    def one(job):
        core, k, (case, bits, path, work) = job
        return job, count_ddq(path, core, kernels=k).per_op[-2] / work

    rows: dict[str, dict[str, dict[str, dict[str, float]]]] = {}  # set → case → bits → core → instr/MAC
    with ThreadPoolExecutor(args.jobs) as pool:
        for (core, k, (case, bits, _, _)), v in pool.map(one, jobs):
            rows.setdefault(k, {}).setdefault(case.name, {}).setdefault(str(bits), {})[core] = v
    print(f"emulated: {len(jobs)} counts [{time.perf_counter() - start:.0f} s]", flush=True)

    host: dict[str, Any] = {}
    if args.native_ms > 0:
        exe = native_ddq_run()
        default, usable = host_kernel_sets(bundles[0][2], exe)
        host = {"default": default, "sets": usable, "ns_per_mac": {}}
        for k in usable:
            for case, bits, path, work in bundles:
                if k == "reference" and bits not in ref_bits:
                    continue
                probe = bench_ddq_run(path, 3, kernels=k, exe=exe).median_ms
                runs = int(min(500, max(5, args.native_ms / max(probe, 1e-3))))
                ns = bench_ddq_run(path, runs, kernels=k, exe=exe).op_mean_us[-2] * 1e3 / work
                host["ns_per_mac"].setdefault(k, {}).setdefault(case.name, {})[str(bits)] = ns
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
              "kernel_sets": {c: {"default": d, "sets": s} for c, (d, s) in sets.items()},
              "work": {c.name: {str(b): w for cc, b, _, w in bundles if cc is c} for c in CASES},
              "instructions_per_mac": rows, "host": host, "seconds": time.perf_counter() - start}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"measured {report['date']}, commit {commit}; {report['seconds']:.0f} s\n")
    print(tables(report, bits_list, cores))
    print(f"\nwrote {args.json}")


def tables(report: dict[str, Any], bits_list: list[int], cores: list[str]) -> str:
    lines = []
    head = "| case (MACs) | " + " | ".join(f"{b}-bit" for b in bits_list) + " |"
    rule = "|---|" + "---|" * len(bits_list)
    for k, by_case in report["instructions_per_mac"].items():
        on = [c for c in cores if k in report["kernel_sets"][c]["sets"]]
        lines += ["", f"`{k}`: instructions per MAC under QEMU ({', '.join(on)}; one number where they agree):",
                  "", head, rule]
        for name, by_bits in by_case.items():
            cells = []
            for b in bits_list:
                v = by_bits.get(str(b if not name.startswith("add") else 8)) if not name.startswith("add") or b == 8 else None
                if not v:
                    cells.append("")
                    continue
                same = max(v.values()) - min(v.values()) <= 1e-3 * max(v.values())
                cells.append(f"{next(iter(v.values())):.3f}" if same else
                             " / ".join(f"{c} {v[c]:.3f}" for c in on if c in v))
            w = next(iter(report["work"][name].values()))
            unit = " elements" if name.startswith("add") else ""
            lines.append(f"| {name} ({w / 1e6:.2f} M{unit}) | " + " | ".join(cells) + " |")
    host = report["host"]
    for k, by_case in host.get("ns_per_mac", {}).items():
        lines += ["", f"`{k}` on this host: ns per MAC (per element for the add), `ddq-run --bench` per-op mean:",
                  "", head, rule]
        for name, by_bits in by_case.items():
            cells = [f"{by_bits[str(b)]:.4f}" if str(b) in by_bits else "" for b in bits_list]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
