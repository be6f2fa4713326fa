"""Wall-clock on this machine: every engine in one process, interleaved, and each engine's
memory in a process of its own.

Interleaving (one inference of each engine per round, the order rotating every round) spreads
frequency changes, thermal drift and noisy neighbours over all engines alike, so the ratios
between them hold even when the absolute numbers wander.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import harness


@dataclass(frozen=True)
class EngineModel:
    """One engine and the model file it runs."""

    key: str      # "ddq-edge", "litert-float", "litert-int8", "ort-float", "ort-int8"
    kind: str     # harness engine: "ddq", "litert", "ort"
    path: Path
    kernels: str | None = None  # "ddq": a kernel set to force (None: the one this CPU picks)

    @property
    def model_bytes(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class Timing:
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.seconds) * 1e3)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.seconds, 90) * 1e3)

    def as_dict(self) -> dict:
        return {"median_ms": self.median_ms, "p90_ms": self.p90_ms, "runs": len(self.seconds)}


def time_interleaved(engines: list[EngineModel], x: np.ndarray, *, threads: int = 1,
                     rounds: int = 50, warmup: int = 3) -> dict[str, Timing]:
    """Median-ready wall times of every engine, measured in interleaved rounds."""
    loaded = {e.key: harness.load_engine(e.kind, str(e.path), threads, kernels=e.kernels) for e in engines}
    prepared = {k: engine.prepare(x) for k, engine in loaded.items()}  # layouts converted once, untimed
    for k, engine in loaded.items():
        for _ in range(warmup):
            engine.infer(prepared[k])
    keys = list(loaded)
    seconds: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            start = time.perf_counter()
            loaded[k].infer(prepared[k])
            seconds[k].append(time.perf_counter() - start)
    return {k: Timing(v) for k, v in seconds.items()}


def measure_memory(engine: EngineModel, input_path: Path, *, threads: int = 1) -> dict[str, float]:
    """Peak resident memory of a process that loads the model and runs it, and how much of
    that the model added on top of the interpreter and the engine's libraries."""
    result = subprocess.run(
        [sys.executable, harness.__file__, "time", engine.kind, str(engine.path), str(input_path), "5",
         "--threads", str(threads), "--warmup", "1"],
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{engine.key}: measuring memory failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    peak, base = report["rss_peak_kib"] / 1024, report["rss_after_import_kib"] / 1024
    return {"peak_rss_mib": peak, "model_and_run_mib": max(0.0, peak - base)}


# ----------------------------------------------------------------------------- ddq-run on this host
def native_ddq_run() -> Path:
    """A host (Release) ``ddq-run`` built from the checkout's runtime/ sources, inside the
    emulator lab's cache (so checkouts with caches of their own do not share a build); the build
    is incremental, so it follows edits to runtime/."""
    import os
    import shutil

    from ..emulation import default_cache_base, runtime_sources

    src = runtime_sources()
    build = default_cache_base() / "native-runtime"
    if not (build / "CMakeCache.txt").is_file():
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), *generator, "-DDDQ_TESTS=OFF",
                        "-DCMAKE_BUILD_TYPE=Release"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "ddq-run", "-j", str(os.cpu_count() or 1)],
                   check=True, capture_output=True)
    return build / "ddq-run"


@dataclass(frozen=True)
class DdqBench:
    """``ddq-run --bench``: whole-inference median / p90 and each op's mean, on this host."""

    kernels: str
    median_ms: float
    p90_ms: float
    op_mean_us: list[float]

    def as_dict(self) -> dict:
        return {"kernels": self.kernels, "median_ms": self.median_ms, "p90_ms": self.p90_ms}


def bench_ddq_run(bundle: Path, runs: int, *, threads: int = 1, kernels: str | None = None,
                  exe: Path | None = None) -> DdqBench:
    """Time the runtime natively with ``ddq-run --bench runs`` (one warm-up inference first)."""
    import re

    argv = [str(exe or native_ddq_run()), str(bundle), "--bench", str(runs), "--threads", str(threads)]
    out = subprocess.run(argv + (["--kernels", kernels] if kernels else []), check=True,
                         capture_output=True, text=True).stdout
    total = re.search(r"thread\(s\), (\S+) kernels, \d+ runs\): median ([\d.]+) ms, p90 ([\d.]+) ms", out)
    if total is None:
        raise RuntimeError(f"unexpected ddq-run --bench output:\n{out[-2000:]}")
    ops = [float(m.group(1)) for m in re.finditer(r"^\d+\s+\S+\s+\S+\s+([\d.]+)\s+[\d.]+%$", out, re.M)]
    return DdqBench(total.group(1), float(total.group(2)), float(total.group(3)), ops)


def kernel_sets_from(info: Callable[..., Any]) -> tuple[str, list[str]]:
    """(the set the runtime picks, every set that runs, best first), from ``info(*args)``: a
    ``ddq-run <bundle> --info *args`` run wherever the caller runs it (its result has stdout,
    stderr and returncode). ``--kernels ?`` lists the sets the build knows."""
    import re

    picked = re.search(r"^kernels\s+(\S+)", info().stdout, re.M)
    known = re.search(r"known: ([^)]*)\)", info("--kernels", "?").stderr)
    names = [k.strip() for k in known.group(1).split(",")] if known else []
    return (picked.group(1) if picked else "?"), [k for k in names if info("--kernels", k).returncode == 0]


def host_kernel_sets(bundle: Path, exe: Path | None = None) -> tuple[str, list[str]]:
    """(the set the runtime picks on this host, every set that runs here, best first)."""
    exe = exe or native_ddq_run()
    return kernel_sets_from(lambda *a: subprocess.run([str(exe), str(bundle), "--info", *a],
                                                      capture_output=True, text=True))
