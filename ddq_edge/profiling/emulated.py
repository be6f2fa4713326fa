"""The emulated half of a profile: every engine on the device's core under qemu-aarch64, counted
by ddq-edge's instruction-count plugin between markers the engines set around their timed runs.

Per inference = the instructions the inference thread retired between marker 1 and marker 2,
divided by the number of inferences between them (a warm-up inference runs before marker 1, so
one-time work is excluded). One thread, a pinned environment: the counts repeat exactly.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import harness
from .native import EngineModel

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
