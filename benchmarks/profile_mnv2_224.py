"""MobileNetV2 1.0 / 224 (random weights): baselines counted under QEMU, the device cost model's
latency estimate for single-thread LiteRT float beside the published Raspberry Pi anchors, and
a native interleaved profile of the same engines.

    python benchmarks/profile_mnv2_224.py [--cores a72,a76] [--engines litert-float,...]
                                          [--with-ddq] [--native-rounds 20] [--json out.json]

Prints tables; writes benchmarks/results/profile_mnv2_224.json. Instruction counts are
retired guest instructions per inference (deterministic); the estimate is the device profile's
per-class cost model; neither is a measurement on a board.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ddq_edge.baselines import build_baselines, mobilenet_v2_224_graph
from ddq_edge.bundle import write_bundle
from ddq_edge.devices import load_device
from ddq_edge.inspect import macs
from ddq_edge.profiling.emulated import count_engine
from ddq_edge.profiling.native import EngineModel, time_interleaved
from ddq_edge.profiling.profile import ENGINE_KINDS, ENGINE_LABELS

CORE_DEVICE = {"a53": "rpi3", "a72": "rpi4", "a76": "rpi5"}
# Published single-thread / multi-thread fp32 MobileNetV2 latencies (device profiles' anchors).
ANCHORS = {
    "rpi4": [("ncnn fp32, 1 thread, Pi 4 @ 1.8 GHz", 93.5, 1), ("XNNPACK fp32, 4 threads, Pi 4", 46.0, 4)],
    "rpi5": [("ncnn, 1 thread, Pi 5 @ 2.4 GHz (likely fp16 arithmetic)", 16.4, 1)],
    "rpi3": [],
}
RESULTS = Path(__file__).parent / "results" / "profile_mnv2_224.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="a72,a76")
    parser.add_argument("--engines", default="litert-float,litert-int8,ort-float,ort-int8")
    parser.add_argument("--with-ddq", action="store_true", help="also count the ddq-edge runtime")
    parser.add_argument("--bits", default="int8", choices=("int8", "mixed4"))
    parser.add_argument("--native-rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mnv2-224-"))
    start = time.perf_counter()
    graph = mobilenet_v2_224_graph(bits=args.bits, seed=0)
    bundle = work / f"mnv2-224-{args.bits}.ddqb"
    write_bundle(graph, bundle)
    keys = [k for k in args.engines.split(",") if k]
    paths = build_baselines(graph, work, engines=tuple(keys))
    total_macs = sum(macs(graph, op) for op in graph.ops)
    print(f"MobileNetV2 1.0/224: {total_macs:,} MACs; models built in {time.perf_counter() - start:.0f} s")
    engines = [EngineModel(k, ENGINE_KINDS[k], paths[k]) for k in keys]
    if args.with_ddq:
        engines.insert(0, EngineModel("ddq-edge", "ddq", bundle))
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    x_path = work / "x.npy"
    np.save(x_path, x)

    report = {"macs": total_macs, "bits": args.bits, "emulated": {}, "native": {}, "anchors": {}}
    for core in [c for c in args.cores.split(",") if c]:
        device = load_device(CORE_DEVICE[core])
        rows = {}
        for engine in engines:
            t0 = time.perf_counter()
            per_class, wall, _ = count_engine(engine, core, x_path, runs=1)
            again, _, _ = count_engine(engine, core, x_path, runs=1)
            instructions = sum(per_class.values())
            rows[engine.key] = {
                "instructions": instructions,
                "repeat_difference": abs(sum(again.values()) - instructions) / instructions,
                "instructions_per_mac": instructions / total_macs,
                "estimated_ms": device.estimate_seconds(per_class) * 1e3,
                "emulated_wall_ms": wall * 1e3,
                "by_class": per_class,
            }
            print(f"  {core} {engine.key:<13} {instructions / 1e6:9.2f} M instr  "
                  f"({rows[engine.key]['instructions_per_mac']:.3f}/MAC, repeat diff "
                  f"{rows[engine.key]['repeat_difference']:.1e})  model {rows[engine.key]['estimated_ms']:8.1f} ms "
                  f"on {device.id}  [{time.perf_counter() - t0:.0f} s]")
        report["emulated"][core] = {"device": device.id, "clock_ghz": device.clock_ghz, "engines": rows}
        if "ddq-edge" in rows:
            ratios = {k: {"instructions": rows["ddq-edge"]["instructions"] / r["instructions"],
                          "modelled": rows["ddq-edge"]["estimated_ms"] / r["estimated_ms"]}
                      for k, r in rows.items() if k != "ddq-edge"}
            report["emulated"][core]["ddq_over_baseline"] = ratios
            print("    ddq-edge / baseline: " + "; ".join(
                f"{k} {v['instructions']:.3f} instr, {v['modelled']:.3f} modelled" for k, v in ratios.items()))
        if "litert-float" in rows:
            estimate = rows["litert-float"]["estimated_ms"]
            report["anchors"][device.id] = []
            for name, ms, threads in ANCHORS[device.id]:
                error = (estimate / threads - ms) / ms if threads > 1 else (estimate - ms) / ms
                shown = estimate / threads if threads > 1 else estimate
                report["anchors"][device.id].append({"anchor": name, "anchor_ms": ms, "threads": threads,
                                                     "estimate_ms": shown, "relative_error": error})
                note = " (estimate / 4: ideal scaling)" if threads > 1 else ""
                print(f"    LiteRT float estimate {shown:7.1f} ms{note} vs {name}: {ms} ms  "
                      f"error {error * 100:+.0f} %")

    timings = time_interleaved(engines, x, rounds=args.native_rounds) if args.native_rounds else {}
    if timings:
        print(f"native (this host), one thread, {args.native_rounds} interleaved rounds:")
    for key, timing in timings.items():
        report["native"][key] = timing.as_dict()
        print(f"  {ENGINE_LABELS[key]:<26} median {timing.median_ms:8.2f} ms   p90 {timing.p90_ms:8.2f} ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
