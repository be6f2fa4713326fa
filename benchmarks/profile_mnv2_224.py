"""MobileNetV2 1.0/224 and the demo model: the ddq-edge runtime against LiteRT (XNNPACK) and ONNX
Runtime on emulated Cortex-A53/A72/A76 (Raspberry Pi 3/4/5) and on this host (issue #6).

    python benchmarks/profile_mnv2_224.py [--cores a53,a72,a76] [--reuse-baselines]
        [--threads 4] [--native-rounds 20] [--json benchmarks/results/kernels_vs_xnnpack.json]

Models: MobileNetV2 1.0/224 (random weights, seed 0) at ``mixed4`` (the DDQ demo model's learned
per-layer bits mapped onto the 224 model, ``ddq_edge.baselines.mobilenet.mixed4_bits``) and at
``int8`` (every layer 8/8); the demo bundle tests/data/demo-mnv2-ddq4.ddqb (a DDQ run's output).
The baselines (LiteRT float/int8 .tflite, ONNX Runtime float/int8 QDQ .onnx) are built from the
int8 graph for MobileNetV2 (the same float model: dequantized weights) and from the demo bundle.

What each number is:

* ``M instr``: retired guest instructions per inference of the inference thread under
  ``qemu-aarch64 -cpu cortex-<core>`` (ddq-edge: ``ddq-run --count``; baselines: the profiling
  harness in the emulator lab's aarch64 Python), single thread; deterministic.
* ``modelled``: the matching device profile's (rpi3 / rpi4 / rpi5) per-class cost model applied
  to those counts: cycles, and ms at the profile's clock. Not a measurement on a board.
* ratios ddq-edge / baseline of both, with the issue's targets (mixed4 ≤ 0.30 × LiteRT float,
  ≤ 0.70 × LiteRT int8; all-8-bit ≤ 1.10 × LiteRT int8; the A76's LiteRT int8 uses dot-product).
* ``anchor``: the reference counts of ../shared/reference/mnv2-anchors/README.md (``--anchors``),
  measured with the same engines on a separately written model, shown for comparison.
* ``per-thread``: instructions per inference of each thread of a ``--threads`` session.
* ``host``: wall clock on this machine, one thread: ddq-edge (the Python binding of the installed
  package, the kernel set this CPU picks) and the baselines timed interleaved in one process
  (intra_op_num_threads=1, LiteRT num_threads=1); plus ddq-edge at 1, 2 and ``--threads``
  threads with ``ddq-run --bench`` built from the current runtime/ sources.

Baseline counts take most of the time (≈ 1 min each under QEMU); they are kept in the JSON with
the model file's SHA-256, and ``--reuse-baselines`` takes them from there when the file is the
same. Prints markdown tables for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ddq_edge.baselines import mobilenet_v2_224_graph
from ddq_edge.bundle import read_bundle, write_bundle
from ddq_edge.devices import load_device
from ddq_edge.inspect import macs
from ddq_edge.profiling.emulated import count_ddq, count_ddq_threads, count_engine, kernel_sets
from ddq_edge.profiling.native import EngineModel, bench_ddq_run, host_kernel_sets, native_ddq_run, time_interleaved
from ddq_edge.profiling.profile import ENGINE_KINDS, ENGINE_LABELS, prepare_baselines

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "tests" / "data" / "demo-mnv2-ddq4.ddqb"
RESULTS = HERE / "results" / "kernels_vs_xnnpack.json"
ANCHORS = ROOT.parent / "shared" / "reference" / "mnv2-anchors" / "README.md"
CORE_DEVICE = {"a53": "rpi3", "a72": "rpi4", "a76": "rpi5"}
BASELINES = ("litert-float", "litert-int8", "ort-float", "ort-int8")
# (ddq-edge model, baseline, the target for the instruction ratio)
TARGETS = [("mnv2-mixed4", "litert-float", 0.30), ("mnv2-mixed4", "litert-int8", 0.70),
           ("mnv2-int8", "litert-int8", 1.10)]
ANCHOR_ROWS = {"LiteRT 2.3 XNNPACK fp32": "litert-float", "LiteRT 2.3 XNNPACK int8": "litert-int8",
               "onnxruntime 1.32 fp32": "ort-float", "onnxruntime 1.32 int8 QDQ": "ort-int8"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_anchors(path: Path) -> dict[str, dict[str, float]]:
    """{engine: {core: M instructions}} from the anchors README's table (empty if absent)."""
    out: dict[str, dict[str, float]] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ANCHOR_ROWS and len(cells) == 4:
            out[ANCHOR_ROWS[cells[0]]] = {core: float(re.match(r"[\d.]+", c).group())
                                          for core, c in zip(("a53", "a72", "a76"), cells[1:])}
    return out


def op_category(graph, op) -> str:
    if op.kind == "conv2d":
        w = graph.tensors[op.inputs[1]].shape
        if op.attrs.get("groups", 1) > 1:
            return "depthwise 3x3"
        return "1x1 conv" if tuple(w[2:]) == (1, 1) else f"{w[2]}x{w[3]} conv (stem)"
    return {"fully_connected": "fully connected", "add": "add"}.get(op.kind, "other (quantize, pool, ...)")


def build_models(work: Path) -> dict[str, dict[str, Any]]:
    """The three bundles, and the baseline model files of each (built once per bundle content)."""
    models: dict[str, dict[str, Any]] = {}
    for bits in ("mixed4", "int8"):
        graph = mobilenet_v2_224_graph(bits=bits, seed=0)
        path = work / f"mnv2-224-{bits}.ddqb"
        write_bundle(graph, path)
        models[f"mnv2-{bits}"] = {"bundle": path, "graph": graph}
    models["demo"] = {"bundle": DEMO, "graph": read_bundle(DEMO)}
    note = lambda m: print(f"  {m}", flush=True)
    int8 = models["mnv2-int8"]
    int8["baselines"] = prepare_baselines(int8["bundle"], int8["graph"], list(BASELINES), None, note)
    models["mnv2-mixed4"]["baselines"] = int8["baselines"]
    models["demo"]["baselines"] = prepare_baselines(DEMO, models["demo"]["graph"], list(BASELINES), None, note)
    for m in models.values():
        m["macs"] = sum(macs(m["graph"], op) for op in m["graph"].ops)
        m["metadata_bits"] = m["graph"].metadata.get("budget")
    return models


def count_baselines(models, cores, cached: dict, jobs: int, work: Path) -> dict[str, dict[str, dict]]:
    """{baseline file sha256: {core: {engine: row}}}: counted now, or taken from `cached` (inputs
    are written into `work`)."""
    x_paths = {}
    todo = []
    out: dict[str, dict[str, dict]] = {}
    for name in ("mnv2-int8", "demo"):
        m = models[name]
        x = np.random.default_rng(0).standard_normal((1,) + tuple(m["graph"].tensors[m["graph"].inputs[0]].shape[1:]))
        x_paths[name] = work / f"{name}.x.npy"
        np.save(x_paths[name], x.astype(np.float32))
        for key in BASELINES:
            digest = sha256(m["baselines"][key])
            for core in cores:
                if core in cached.get(digest, {}):
                    out.setdefault(digest, {})[core] = cached[digest][core]
                else:
                    todo.append((name, key, digest, core))

    def one(item):
        name, key, digest, core = item
        t0 = time.perf_counter()
        engine = EngineModel(key, ENGINE_KINDS[key], models[name]["baselines"][key])
        per_class, wall, _ = count_engine(engine, core, x_paths[name], runs=1)
        print(f"  counted {name} {key} on {core}: {sum(per_class.values()) / 1e6:.2f} M "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
        return item, {"engine": key, "by_class": per_class, "instructions": sum(per_class.values()),
                      "emulated_wall_ms": wall * 1e3}

    with ThreadPoolExecutor(jobs) as pool:
        for (name, key, digest, core), row in pool.map(one, todo):
            out.setdefault(digest, {}).setdefault(core, {})[key] = row
    return out


def modelled(device, per_class) -> dict[str, float]:
    return {"cycles": device.estimate_cycles(per_class), "ms": device.estimate_seconds(per_class) * 1e3}


def emulated(models, cores, baseline_counts, threads: int) -> dict[str, Any]:
    """Per core: kernel sets, every ddq-edge and baseline row, ratios, per-thread counts."""
    report: dict[str, Any] = {}
    for core in cores:
        device = load_device(CORE_DEVICE[core])
        default, usable = kernel_sets(core, models["demo"]["bundle"])
        print(f"{core}: kernel sets {usable}, default {default}", flush=True)
        extra = ["neon"] if core == "a76" and "neon" in usable else []
        rows: dict[str, dict[str, dict]] = {}
        for name, m in models.items():
            rows[name] = {}
            for kernels in [None] + extra:
                c = count_ddq(m["bundle"], core, kernels=kernels)
                label = "ddq-edge" if kernels is None else f"ddq-edge --kernels {kernels}"
                rows[name][label] = {"kernels": c.kernels, "instructions": c.instructions,
                                     "per_mac": c.instructions / m["macs"], "by_class": c.per_class,
                                     "modelled": modelled(device, c.per_class)}
                if kernels is None:
                    cats: dict[str, list[float]] = {}
                    for op, n in zip(m["graph"].ops, c.per_op):
                        acc = cats.setdefault(op_category(m["graph"], op), [0.0, 0.0])
                        acc[0] += n
                        acc[1] += macs(m["graph"], op)
                    rows[name][label]["by_op_category"] = {k: {"instructions": v[0], "macs": v[1]}
                                                           for k, v in cats.items()}
            base = m["baselines"]
            for key in BASELINES:
                row = dict(baseline_counts[sha256(base[key])][core][key])
                row["per_mac"] = row["instructions"] / m["macs"]
                row["modelled"] = modelled(device, row["by_class"])
                rows[name][key] = row
            print(f"  {name}: " + ", ".join(f"{k} {r['instructions'] / 1e6:.2f} M" for k, r in rows[name].items()),
                  flush=True)
        per_thread = {name: count_ddq_threads(models[name]["bundle"], core, threads)
                      for name in ("mnv2-mixed4", "mnv2-int8", "demo")} if threads > 1 else {}
        report[core] = {"device": device.id, "clock_ghz": device.clock_ghz, "default_kernels": default,
                        "kernel_sets": usable, "rows": rows, "threads": threads,
                        "per_thread_instructions": per_thread}
    return report


def native(models, rounds: int, threads: int) -> dict[str, Any]:
    """This host: ddq-edge (ddq-run --bench, current sources) and the baselines, one thread."""
    if rounds <= 0:
        return {}
    exe = native_ddq_run()
    default, usable = host_kernel_sets(models["demo"]["bundle"], exe)
    # the other SIMD sets this CPU runs (x86 where x86vnni is the default), timed alongside
    other_sets = [k for k in usable if k not in (default, "generic", "reference")]
    out: dict[str, Any] = {"cpu_count": __import__("os").cpu_count(), "other_sets": other_sets}
    for name in ("mnv2-mixed4", "mnv2-int8", "demo"):
        m = models[name]
        shape = (1,) + tuple(m["graph"].tensors[m["graph"].inputs[0]].shape[1:])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        # ddq-edge (the Python binding, the kernel set this host picks) interleaved with the
        # baselines in one process: one run, the same load on every engine
        engines = [EngineModel("ddq-edge", ENGINE_KINDS["ddq-edge"], m["bundle"])]
        engines += [EngineModel(f"ddq-edge {k}", ENGINE_KINDS["ddq-edge"], m["bundle"], k) for k in other_sets]
        engines += [EngineModel(k, ENGINE_KINDS[k], m["baselines"][k]) for k in BASELINES]
        row: dict[str, Any] = {k: t.as_dict() for k, t in time_interleaved(engines, x, rounds=rounds).items()}
        row["ddq-edge"]["kernels"] = default
        row["ddq-edge threads"] = {t: bench_ddq_run(m["bundle"], rounds, exe=exe, threads=t).as_dict()
                                   for t in sorted({1, 2, threads})}
        out[name] = row
        print(f"  host {name}: " + ", ".join(f"{k} {v['median_ms']:.2f} ms" for k, v in row.items()
                                             if "median_ms" in v), flush=True)
    return out


# ----------------------------------------------------------------------------- markdown
def tables(report: dict[str, Any]) -> str:
    em, anchors, lines = report["emulated"], report["anchors"], []
    cores = list(em)
    if not cores:  # --cores '': the host's table alone
        return host_table(report["native"])
    mi = lambda r: f"{r['instructions'] / 1e6:.2f}"
    lines += ["MobileNetV2 1.0/224, M instructions per inference, one thread (instructions / MAC):", "",
              "| engine | " + " | ".join(f"{c} ({em[c]['device']})" for c in cores) + " |",
              "|---|" + "---|" * len(cores)]
    labels = []
    for c in cores:
        for name in ("mnv2-mixed4", "mnv2-int8"):
            for label in em[c]["rows"][name]:
                if label.startswith("ddq-edge") and (name, label) not in labels:
                    labels.append((name, label))
    for name, label in labels:
        cells = []
        for c in cores:
            r = em[c]["rows"][name].get(label)
            cells.append(f"{mi(r)} ({r['per_mac']:.3f}, {r['kernels']})" if r else "—")
        lines.append(f"| {label} {name.removeprefix('mnv2-')} | " + " | ".join(cells) + " |")
    for key in BASELINES:
        cells = []
        for c in cores:
            r = em[c]["rows"]["mnv2-int8"][key]
            a = anchors.get(key, {}).get(c)
            cells.append(f"{mi(r)} ({r['per_mac']:.3f})" + (f"; anchor {a:.2f}" if a else ""))
        lines.append(f"| {ENGINE_LABELS[key]} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios ddq-edge / baseline: instructions, and the modelled cycles of the core's device "
              "profile; target on the instruction ratio:", "",
              "| ddq-edge model ÷ baseline | target | " + " | ".join(
                  f"{c} instr / {em[c]['device']} cycles" for c in cores) + " |",
              "|---|---|" + "---|" * len(cores)]
    for name, key, target in TARGETS:
        cells = []
        for c in cores:
            rows = em[c]["rows"][name]
            ri = rows["ddq-edge"]["instructions"] / rows[key]["instructions"]
            rc = rows["ddq-edge"]["modelled"]["cycles"] / rows[key]["modelled"]["cycles"]
            cells.append(f"{ri:.3f} {'pass' if ri <= target else 'FAIL'} / {rc:.3f}")
        lines.append(f"| {name.removeprefix('mnv2-')} ÷ {ENGINE_LABELS[key]} | ≤ {target:.2f} | " + " | ".join(cells) + " |")
    for name in ("mnv2-mixed4",):
        for key in ("ort-float", "ort-int8"):
            cells = [f"{em[c]['rows'][name]['ddq-edge']['instructions'] / em[c]['rows'][name][key]['instructions']:.3f}"
                     f" / {em[c]['rows'][name]['ddq-edge']['modelled']['cycles'] / em[c]['rows'][name][key]['modelled']['cycles']:.3f}"
                     for c in cores]
            lines.append(f"| mixed4 ÷ {ENGINE_LABELS[key]} | — | " + " | ".join(cells) + " |")
    lines += ["", "Modelled ms per inference (device profile's cost model at its clock):", "",
              "| engine | " + " | ".join(f"{em[c]['device']} @ {em[c]['clock_ghz']} GHz" for c in cores) + " |",
              "|---|" + "---|" * len(cores)]
    for name, label in labels + [("mnv2-int8", k) for k in BASELINES]:
        cells = [f"{em[c]['rows'][name][label]['modelled']['ms']:.1f}" if label in em[c]["rows"][name] else "—"
                 for c in cores]
        title = f"{label} {name.removeprefix('mnv2-')}" if label.startswith("ddq") else ENGINE_LABELS[label]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    c0 = "a72" if "a72" in em else cores[0]
    cats = em[c0]["rows"]["mnv2-mixed4"]["ddq-edge"]["by_op_category"]
    total = sum(v["instructions"] for v in cats.values())
    lines += ["", f"Where ddq-edge's instructions go, mixed4 on {c0} (one inference with per-op marks):", "",
              "| ops | M instr | share | instr / MAC |", "|---|---|---|---|"]
    for k, v in sorted(cats.items(), key=lambda kv: -kv[1]["instructions"]):
        per = f"{v['instructions'] / v['macs']:.3f}" if v["macs"] else "—"
        lines.append(f"| {k} | {v['instructions'] / 1e6:.2f} | {v['instructions'] / total * 100:.1f} % | {per} |")
    t = em[cores[0]]["threads"]
    if t > 1:
        lines += ["", f"ddq-edge with {t} threads: M instructions per inference of each thread (inference thread "
                  "first); ‘1-thread ÷ max’ is the instruction-count speed-up bound:", "",
                  "| model | core | per thread | sum | 1-thread ÷ max |", "|---|---|---|---|---|"]
        for name in ("mnv2-mixed4", "mnv2-int8", "demo"):
            for c in cores:
                pt = em[c]["per_thread_instructions"][name]
                one = em[c]["rows"][name]["ddq-edge"]["instructions"]
                lines.append(f"| {name} | {c} | " + " / ".join(f"{v / 1e6:.2f}" for v in pt)
                             + f" | {sum(pt) / 1e6:.2f} | {one / max(pt):.2f} |")
    lines += ["", "Demo model (tests/data/demo-mnv2-ddq4.ddqb), M instructions per inference and ddq-edge ÷ baseline:", "",
              "| engine | " + " | ".join(cores) + " |", "|---|" + "---|" * len(cores)]
    demo_labels = list(dict.fromkeys(k for c in cores for k in em[c]["rows"]["demo"]))
    for label in demo_labels:
        cells = []
        for c in cores:
            rows = em[c]["rows"]["demo"]
            if label not in rows:
                cells.append("—")
                continue
            r = rows[label]
            ratio = "" if label.startswith("ddq") else f" (÷ {rows['ddq-edge']['instructions'] / r['instructions']:.3f})"
            cells.append(f"{mi(r)}{ratio}")
        lines.append(f"| {ENGINE_LABELS.get(label, label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", host_table(report["native"])])


def host_table(nat: dict[str, Any]) -> str:
    lines: list[str] = []
    if nat:
        lines += [f"This host ({nat['cpu_count']} cores), median / p90 ms per inference, one thread unless "
                  "stated; ddq-edge ÷ engine of the medians:", "",
                  "| engine | MNv2 mixed4 | MNv2 int8 | demo |", "|---|---|---|---|"]
        ours = {n: nat[n]["ddq-edge"]["median_ms"] for n in ("mnv2-mixed4", "mnv2-int8", "demo")}
        lines.append("| ddq-edge (" + nat["mnv2-int8"]["ddq-edge"]["kernels"] + ", interleaved) | "
                     + " | ".join(f"{nat[n]['ddq-edge']['median_ms']:.2f} / {nat[n]['ddq-edge']['p90_ms']:.2f}"
                                  for n in ours) + " |")
        for k in nat.get("other_sets", []):
            r = {n: nat[n][f"ddq-edge {k}"] for n in ours}
            lines.append(f"| ddq-edge ({k}, interleaved) | " + " | ".join(
                f"{r[n]['median_ms']:.2f} / {r[n]['p90_ms']:.2f}" for n in ours) + " |")
        for key in BASELINES:
            cells = []
            for n in ours:
                r = nat[n][key]
                cells.append(f"{r['median_ms']:.2f} / {r['p90_ms']:.2f} (÷ {ours[n] / r['median_ms']:.2f})")
            lines.append(f"| {ENGINE_LABELS[key]} | " + " | ".join(cells) + " |")
        for t in nat["mnv2-int8"]["ddq-edge threads"]:
            lines.append(f"| ddq-edge, {t} thread(s) (`ddq-run --bench`) | " + " | ".join(
                f"{nat[n]['ddq-edge threads'][t]['median_ms']:.2f} / {nat[n]['ddq-edge threads'][t]['p90_ms']:.2f}"
                for n in ours) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="a53,a72,a76")
    parser.add_argument("--reuse-baselines", action="store_true",
                        help="take baseline counts from --json when the model file is unchanged")
    parser.add_argument("--threads", type=int, default=4, help="threads of the multi-thread rows")
    parser.add_argument("--native-rounds", type=int, default=20, help="0: no host timings")
    parser.add_argument("--jobs", type=int, default=2, help="baseline counts run in parallel")
    parser.add_argument("--anchors", type=Path, default=ANCHORS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ddq-edge-bench"))
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    start = time.perf_counter()
    cores = [c for c in args.cores.split(",") if c]
    args.work.mkdir(parents=True, exist_ok=True)
    models = build_models(args.work)
    print(f"models built [{time.perf_counter() - start:.0f} s]: " + ", ".join(
        f"{n} {m['macs']:,} MACs" for n, m in models.items()), flush=True)
    old = json.loads(args.json.read_text()) if args.json.is_file() else {}
    cached = old.get("baseline_counts", {}) if args.reuse_baselines else {}
    baseline_counts = count_baselines(models, cores, cached, args.jobs, args.work)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    old["baseline_counts"] = {**old.get("baseline_counts", {}), **baseline_counts}
    args.json.write_text(json.dumps(old, indent=1, default=str))  # a later failure keeps them
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "runtime"], capture_output=True,
                                text=True).stdout.strip())
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
        "runtime_sources_modified": dirty,
        "models": {n: {"bundle": str(m["bundle"]), "sha256": sha256(m["bundle"]), "macs": m["macs"],
                       "budget": m["metadata_bits"]} for n, m in models.items()},
        "anchors": read_anchors(args.anchors), "anchors_file": str(args.anchors),
        "baseline_counts": baseline_counts,
    }
    report["emulated"] = emulated(models, cores, baseline_counts, args.threads)
    report["native"] = native(models, args.native_rounds, args.threads)
    report["seconds"] = time.perf_counter() - start
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))
    print()
    print(f"measured {report['date']}, commit {commit}{' + uncommitted runtime/ changes' if dirty else ''}; "
          f"{report['seconds']:.0f} s")
    print(tables(report))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
