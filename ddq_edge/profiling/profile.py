"""`ddq-edge profile`: the runtime against float and int8 baselines built from the same model,
natively (wall clock) and on an emulated device (retired instructions, modelled latency).

Every figure says what it is: native wall-clock is this machine's time; under QEMU the figure
of merit is retired guest instructions per inference (deterministic), the latency estimate
comes from the device profile's cost model, and emulated wall time is QEMU's time, not the
device's.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..baselines import ENGINE_FILES as BASELINE_FILES
from ..baselines import build_baselines
from ..bundle import read_bundle
from ..inspect import macs
from ..ir import Graph
from .native import EngineModel, measure_memory, time_interleaved

BASELINE_GROUPS = {"float": ("litert-float", "ort-float"), "int8": ("litert-int8", "ort-int8")}
ENGINE_LABELS = {
    "ddq-edge": "ddq-edge runtime",
    "litert-float": "LiteRT XNNPACK float32",
    "litert-int8": "LiteRT XNNPACK int8",
    "ort-float": "ONNX Runtime float32",
    "ort-int8": "ONNX Runtime int8 (QDQ)",
}
ENGINE_KINDS = {"ddq-edge": "ddq", "litert-float": "litert", "litert-int8": "litert",
                "ort-float": "ort", "ort-int8": "ort"}


class ProfileError(ValueError):
    """The profile cannot be made as asked (unknown baseline group, mismatched baselines, ...)."""


def baseline_keys(groups: str | list[str]) -> list[str]:
    names = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else list(groups)
    keys = []
    for name in names:
        if not name:
            continue
        if name not in BASELINE_GROUPS:
            raise ProfileError(f"unknown baseline group {name!r}; choose from "
                               f"{', '.join(BASELINE_GROUPS)} (comma-separated)")
        keys.extend(BASELINE_GROUPS[name])
    return keys


def bundle_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prepare_baselines(bundle: Path, graph: Graph, keys: list[str], directory: Path | None,
                      progress: Callable[[str], None]) -> dict[str, Path]:
    """Baseline model files for `keys`, built from the bundle (once per bundle content).

    A directory given by the caller must hold baselines of *this* bundle: its manifest records
    the bundle's SHA-256, and the models' input and output shapes must match the bundle's.
    """
    digest = bundle_digest(bundle)
    if directory is None:
        directory = Path(tempfile.gettempdir()) / "ddq-edge-baselines" / digest[:16]
    directory = Path(directory)
    manifest_path = directory / "baselines.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if manifest is not None and manifest.get("bundle_sha256") != digest:
        raise ProfileError(f"{directory}: these baselines were built from another bundle "
                           f"({manifest.get('bundle', '?')}, sha256 {manifest.get('bundle_sha256', '?')[:12]}…), "
                           f"not {bundle} (sha256 {digest[:12]}…); use another --baselines-dir or delete it")
    missing = [k for k in keys if not (directory / BASELINE_FILES[k]).exists()]
    if missing:

        progress(f"building baselines {', '.join(missing)} from {bundle.name}")
        directory.mkdir(parents=True, exist_ok=True)
        build_baselines(graph, directory, engines=tuple(missing))
        manifest_path.write_text(json.dumps({"bundle": str(bundle), "bundle_sha256": digest}, indent=1))
    paths = {k: directory / BASELINE_FILES[k] for k in keys}
    check_baselines_match(graph, paths)
    return paths


def check_baselines_match(graph: Graph, paths: dict[str, Path]) -> None:
    """Each baseline takes the bundle's input and gives its output shape (or says which does not)."""
    from . import harness

    x = np.zeros((1,) + tuple(graph.tensors[graph.inputs[0]].shape[1:]), np.float32)
    want = (1,) + tuple(graph.tensors[graph.outputs[0]].shape[1:])
    for key, path in paths.items():
        try:
            y = harness.load_engine(ENGINE_KINDS[key], str(path)).run(x)
        except Exception as error:  # engines raise their own types
            raise ProfileError(f"{path}: the {ENGINE_LABELS[key]} baseline does not take the bundle's "
                               f"input {x.shape}: {error}") from None
        if int(np.prod(y.shape)) != int(np.prod(want)):
            raise ProfileError(f"{path}: the {ENGINE_LABELS[key]} baseline gives {tuple(y.shape)}, the "
                               f"bundle gives {want}: not the same model")


def profile_input(graph: Graph, seed: int = 0) -> np.ndarray:
    """One deterministic sample of the bundle's input shape (timings do not depend on values)."""
    shape = (1,) + tuple(graph.tensors[graph.inputs[0]].shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def op_table(graph: Graph) -> list[dict[str, Any]]:
    """Per op: name, kind, weight/activation bits and MACs (for the per-layer pictures)."""
    rows = []
    for op in graph.ops:
        weighted = op.kind in ("conv2d", "fully_connected")
        inp = graph.tensors[op.inputs[0]]
        rows.append({
            "name": op.name, "kind": op.kind, "macs": macs(graph, op),
            "weight_bits": graph.tensors[op.inputs[1]].quant.bits if weighted else None,
            "act_bits": inp.quant.bits if inp.quant is not None else None,
        })
    return rows


@dataclass
class ProfileRequest:
    bundle: Path
    device: str | None = None
    emulate: bool = False
    baselines: list[str] = field(default_factory=lambda: ["float", "int8"])
    threads: int = 1
    rounds: int = 50
    emulated_runs: int = 3
    baselines_dir: Path | None = None
    native: bool = True
    memory: bool = True


def profile(request: ProfileRequest, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Measure every engine as asked; the result is what `--json` prints and the report draws."""
    from ..devices import load_device

    bundle = Path(request.bundle)
    graph = read_bundle(bundle)
    device = load_device(request.device) if request.device else None
    if request.emulate and device is None:
        raise ProfileError("--emulate needs --device (e.g. --device rpi4); `ddq-edge devices` lists them")
    keys = baseline_keys(request.baselines)
    paths = prepare_baselines(bundle, graph, keys, request.baselines_dir, progress) if keys else {}
    engines = [EngineModel("ddq-edge", "ddq", bundle)] + [EngineModel(k, ENGINE_KINDS[k], p) for k, p in paths.items()]
    x = profile_input(graph)
    ops = op_table(graph)
    result: dict[str, Any] = {
        "bundle": str(bundle),
        "threads": request.threads,
        "macs": int(sum(r["macs"] for r in ops)),
        "device": device.to_dict() if device is not None else None,
        "engines": {e.key: {"label": ENGINE_LABELS[e.key], "model_bytes": e.model_bytes} for e in engines},
        "ops": ops,
    }
    if request.native:
        progress(f"native: {len(engines)} engines, {request.rounds} interleaved rounds, {request.threads} thread(s)")
        timings = time_interleaved(engines, x, threads=request.threads, rounds=request.rounds)
        for key, timing in timings.items():
            result["engines"][key]["native"] = timing.as_dict()
        per_op = _native_op_times(bundle, x, request.threads)
        for row, seconds in zip(ops, per_op):
            row["native_ms"] = seconds * 1e3
    if request.memory:
        with tempfile.TemporaryDirectory() as tmp:
            input_path = Path(tmp) / "x.npy"
            np.save(input_path, x)
            for e in engines:
                progress(f"memory: {e.key}")
                result["engines"][e.key]["memory"] = measure_memory(e, input_path, threads=request.threads)
    if request.emulate:
        from .emulated import profile_emulated

        profile_emulated(result, engines, x, device, runs=request.emulated_runs, progress=progress)
    return result


def _native_op_times(bundle: Path, x: np.ndarray, threads: int, runs: int = 20) -> list[float]:
    """Median per-op wall time of the runtime over `runs` inferences."""
    from ..runtime import Runtime

    runtime = Runtime(bundle, threads=threads)
    samples = []
    for _ in range(runs):
        runtime.run(x)
        samples.append([t.seconds for t in runtime.op_timings()])
    return [float(v) for v in np.median(np.array(samples), axis=0)]


def speedups(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """ddq-edge against each baseline: native latency ratio, instruction ratio, modelled latency ratio."""
    ours = result["engines"]["ddq-edge"]
    table = {}
    for key, entry in result["engines"].items():
        if key == "ddq-edge":
            continue
        row = {}
        if "native" in entry and "native" in ours:
            row["native"] = entry["native"]["median_ms"] / ours["native"]["median_ms"]
        if "emulated" in entry and "emulated" in ours:
            row["instructions"] = entry["emulated"]["instructions"] / ours["emulated"]["instructions"]
            row["modelled"] = entry["emulated"]["estimated_ms"] / ours["emulated"]["estimated_ms"]
        table[key] = row
    return table


def format_table(result: dict[str, Any]) -> str:
    """The terminal table: one row per engine, every column labelled with what it measures."""
    lines = []
    macs_m = result["macs"] / 1e6
    lines.append(f"{result['bundle']}: {macs_m:.1f} M MACs per inference, {result['threads']} thread(s)")
    header = f"{'engine':<26} {'model KiB':>9}"
    any_native = any("native" in e for e in result["engines"].values())
    any_memory = any("memory" in e for e in result["engines"].values())
    any_emulated = any("emulated" in e for e in result["engines"].values())
    if any_native:
        header += f" {'host median ms':>14} {'host p90 ms':>11}"
    if any_memory:
        header += f" {'peak RSS MiB':>12} {'model+run MiB':>13}"
    if any_emulated:
        header += f" {'emu M instr':>11} {'model. ms':>9} {'emu wall ms':>11}"
    lines.append(header)
    for key, e in result["engines"].items():
        row = f"{e['label']:<26} {e['model_bytes'] / 1024:>9.1f}"
        if any_native:
            n = e.get("native")
            row += f" {n['median_ms']:>14.3f} {n['p90_ms']:>11.3f}" if n else f" {'':>14} {'':>11}"
        if any_memory:
            m = e.get("memory")
            row += f" {m['peak_rss_mib']:>12.1f} {m['model_and_run_mib']:>13.1f}" if m else f" {'':>12} {'':>13}"
        if any_emulated:
            em = e.get("emulated")
            row += (f" {em['instructions'] / 1e6:>11.3f} {em['estimated_ms']:>9.3f} {em['wall_ms']:>11.1f}"
                    if em else f" {'':>11} {'':>9} {'':>11}")
        lines.append(row)
    notes = []
    if any_native:
        notes.append("host = wall clock on this machine, interleaved rounds")
    if any_emulated:
        dev = result["device"]
        notes.append(f"emu M instr = retired guest instructions per inference under qemu-aarch64 -cpu "
                     f"{dev['qemu_cpu']} (deterministic); model. ms = cost-model latency estimate for "
                     f"{dev['display_name']} at {dev['clock_ghz']} GHz; emu wall = QEMU's time, not the device's")
    if any_memory:
        notes.append("peak RSS = the whole process (Python, numpy, the engine's libraries, model, buffers); "
                     "model+run = what loading the model and running it added after the imports")
    ups = speedups(result)
    if ups:
        lines.append("")
        lines.append("ddq-edge speed-up (baseline / ddq-edge): " + "; ".join(
            f"{ENGINE_LABELS[k]}: " + ", ".join(f"{name} {v:.2f}x" for name, v in row.items())
            for k, row in ups.items() if row))
    lines.extend(["", *notes])
    return "\n".join(lines)

