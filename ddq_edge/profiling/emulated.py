"""The emulated half of a profile: every engine on the device's core under qemu-aarch64, counted
by ddq-edge's instruction-count plugin between markers the engines set around their timed runs.

Per inference = the instructions the inference thread retired between marker 1 and marker 2,
divided by the number of inferences between them (a warm-up inference runs before marker 1, so
one-time work is excluded). One thread, a pinned environment: the counts repeat exactly.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import harness
from .native import EngineModel, kernel_sets_from

MARK_BEGIN, MARK_END, MARK_OP_BASE = 1, 2, 1000


def _last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON report in the engine's output")


def count_engine(engine: EngineModel, core: str, x_path: Path, runs: int) -> tuple[dict[str, float], float, Any]:
    """(per-class instructions per inference, emulated wall seconds per inference, the run)."""
    from .. import emulation

    if engine.kind == "ddq":
        argv = [emulation.ddq_run_path(), engine.path, "--input", x_path, "--count", str(runs)]
        site = None
    else:
        argv = ["python", harness.__file__, "count", engine.kind, engine.path, x_path, str(runs)]
        site = engine.kind  # the lab's site dirs are named after the harness engines
    run = emulation.run_counted(core, [str(a) for a in argv], site=site).check()
    per_class = {k: v / runs for k, v in run.between(MARK_BEGIN, MARK_END).items()}
    wall = _last_json_line(run.stdout)["wall_seconds"] / runs
    return per_class, wall, run


def profile_emulated(result: dict[str, Any], engines: list[EngineModel], x: np.ndarray, device,
                     *, runs: int = 3, progress: Callable[[str], None] = lambda m: None) -> None:
    """Add `emulated` entries (and per-op instructions of the ddq-edge runtime) to `result`."""
    from .. import emulation

    emulation.check_tools()
    emulation.setup(progress=progress)
    core = device.qemu_cpu.removeprefix("cortex-")
    result["emulation"] = {"qemu_cpu": device.qemu_cpu, "threads": 1, "inferences_counted": runs,
                           "what": "retired guest instructions per inference, inference thread only"}
    with tempfile.TemporaryDirectory() as tmp:
        x_path = Path(tmp) / "x.npy"
        np.save(x_path, np.ascontiguousarray(x, np.float32))
        for engine in engines:
            progress(f"emulated {device.qemu_cpu}: {engine.key}")
            per_class, wall, run = count_engine(engine, core, x_path, runs)
            instructions = sum(per_class.values())
            seconds = device.estimate_seconds(per_class)
            result["engines"][engine.key]["emulated"] = {
                "instructions": instructions,
                "by_class": per_class,
                "cycles": device.estimate_cycles(per_class),
                "estimated_ms": seconds * 1e3,
                "wall_ms": wall * 1e3,
            }
            if engine.kind == "ddq":
                for i, row in enumerate(result["ops"]):
                    op_counts = run.between(MARK_OP_BASE + 2 * i, MARK_OP_BASE + 2 * i + 1)
                    row["instructions"] = sum(op_counts.values())


# ----------------------------------------------------------------------------- the runtime alone
@dataclass(frozen=True)
class DdqCount:
    """One ``ddq-run --count`` of a bundle on an emulated core."""

    kernels: str                 # the kernel set the session ran
    per_class: dict[str, float]  # inference thread, per inference
    per_op: list[int]            # inference thread, one inference, instructions of each op
    wall_seconds: float          # QEMU's time per inference (not the device's)

    @property
    def instructions(self) -> float:
        return sum(self.per_class.values())


def _ddq_argv(bundle: Path, kernels: str | None, threads: int, *rest: str) -> list[str]:
    argv = ["ddq-run", str(bundle), "--threads", str(threads), *rest]
    return argv + (["--kernels", kernels] if kernels else [])


def count_ddq(bundle: Path, core: str, *, runs: int = 1, kernels: str | None = None,
              threads: int = 1) -> DdqCount:
    """Count the runtime on cortex-``core`` (zeros as input: the counts do not depend on values);
    ``kernels`` forces a set (None: the one the runtime picks on that core)."""
    from .. import emulation

    run = emulation.run_counted(core, _ddq_argv(bundle, kernels, threads, "--info", "--count", str(runs))).check()
    picked = re.search(r"^kernels\s+(\S+)", run.stdout, re.M)
    ops = len([m for m in run.marks if m.id >= MARK_OP_BASE]) // 2
    per_op = [emulation.total(run.between(MARK_OP_BASE + 2 * i, MARK_OP_BASE + 2 * i + 1)) for i in range(ops)]
    return DdqCount(picked.group(1) if picked else "?",
                    {k: v / runs for k, v in run.between(MARK_BEGIN, MARK_END).items()}, per_op,
                    _last_json_line(run.stdout)["wall_seconds"] / runs)


def count_ddq_threads(bundle: Path, core: str, threads: int, *, runs: int = 2,
                      kernels: str | None = None) -> list[float]:
    """Instructions per inference retired by each thread of a ``threads``-thread session
    (inference thread first): the per-thread totals at exit of a ``--count 1 + runs`` run minus
    those of a ``--count 1`` run, divided by ``runs`` (loading, warm-up and the per-op pass
    cancel). Threads that wait on each other may retire a few instructions more or less from
    run to run."""
    from .. import emulation

    def per_vcpu(n: int) -> dict[int, int]:
        # DDQ_SPIN_US=0: the pool's threads sleep instead of spinning, so the counts do not depend on timing
        run = emulation.run_counted(core, _ddq_argv(bundle, kernels, threads, "--count", str(n)),
                                    env_extra={"DDQ_SPIN_US": "0"}).check()
        return {v: emulation.total(c) for v, c in run.exits.items()}

    short, long = per_vcpu(1), per_vcpu(1 + runs)
    return [(long[v] - short.get(v, 0)) / runs for v in sorted(long)]


def kernel_sets(core: str, bundle: Path) -> tuple[str, list[str]]:
    """(the set the runtime picks on cortex-``core``, every set that runs there, best first),
    asked from ``ddq-run --info`` on the emulated core."""
    from .. import emulation

    return kernel_sets_from(lambda *a: emulation.run_plain(core, ["ddq-run", str(bundle), "--info", *a]))
