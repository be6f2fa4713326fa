"""Instruction classes, the guest marker protocol, and the results of emulated runs."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

#: The plugin's instruction classes, in its output order (see insn_count_plugin.c).
CLASSES: tuple[str, ...] = (
    "branch", "int_alu", "int_mul", "int_div", "load", "store", "fp_scalar",
    "simd_alu", "simd_mul", "simd_fp", "simd_load", "simd_store", "other",
)

#: A guest records mark k with lseek(fd=-1, offset=(MARK_MAGIC << 32) | k, whence=0).
MARK_SYSCALL = 62  # lseek on aarch64
MARK_MAGIC = 0xDD0E

#: The guests that set marks: ddq_edge/profiling/harness.py (count_marker) for Python engines
#: and runtime/tools/ddq_run.c (count_marker, --count) for the runtime.


def mark_offset(k: int) -> int:
    """The lseek offset that records mark ``k`` (0 <= k < 2**32)."""
    if not 0 <= k < 1 << 32:
        raise ValueError(f"mark id {k} is outside 0..2**32-1")
    return (MARK_MAGIC << 32) | k


def _counts(raw: Mapping[str, int]) -> dict[str, int]:
    return {name: int(raw.get(name, 0)) for name in CLASSES}


def subtract(later: Mapping[str, int], earlier: Mapping[str, int]) -> dict[str, int]:
    """Per-class ``later - earlier``."""
    return {name: int(later.get(name, 0)) - int(earlier.get(name, 0)) for name in CLASSES}


def total(counts: Mapping[str, int]) -> int:
    """All instructions in a per-class count."""
    return sum(int(counts.get(name, 0)) for name in CLASSES)


@dataclass(frozen=True)
class Mark:
    """A snapshot the guest took: its own thread's (vCPU's) counts up to and including the
    marking system call."""
    id: int
    vcpu: int
    counts: dict[str, int]

    @property
    def instructions(self) -> int:
        return total(self.counts)


@dataclass(frozen=True)
class PlainRun:
    """A run without the plugin (emulated wall time is host seconds, not device latency)."""
    core: str
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    def check(self):
        """Raise EmulationError unless the guest exited with 0; returns self."""
        from .lab import EmulationError
        if self.returncode != 0:
            raise EmulationError(
                f"{' '.join(self.argv)} on cortex-{self.core} exited {self.returncode}:\n"
                f"{self.stderr[-4000:]}")
        return self


@dataclass(frozen=True)
class CountedRun(PlainRun):
    """A run under the counting plugin.

    ``marks`` are in the order the guest made them; ``exits`` maps each vCPU index that ran
    to its final per-class counts (qemu-user reuses the index of an exited thread, so a row
    can sum several threads). ``exits`` is empty when the guest died of a signal (QEMU 7.2
    runs no plugin exit hook then; the marks made before are kept)."""
    marks: tuple[Mark, ...] = ()
    exits: dict[int, dict[str, int]] = field(default_factory=dict)

    def mark(self, k: int) -> Mark:
        """The one mark with id ``k`` (KeyError when absent or made more than once)."""
        found = [m for m in self.marks if m.id == k]
        if len(found) != 1:
            raise KeyError(f"mark {k} was made {len(found)} times (expected once)")
        return found[0]

    def between(self, a: int, b: int) -> dict[str, int]:
        """Per-class instructions the marking thread retired after mark ``a`` up to and
        including mark ``b``'s system call; both marks must come from the same thread."""
        first, second = self.mark(a), self.mark(b)
        if first.vcpu != second.vcpu:
            raise ValueError(f"marks {a} and {b} come from different vCPUs "
                             f"({first.vcpu}, {second.vcpu})")
        return subtract(second.counts, first.counts)

    @property
    def totals(self) -> dict[str, int]:
        """Per-class counts summed over all vCPUs at exit."""
        out = dict.fromkeys(CLASSES, 0)
        for counts in self.exits.values():
            for name in CLASSES:
                out[name] += counts[name]
        return out

    @property
    def instructions(self) -> int:
        """All retired guest instructions, all threads."""
        return total(self.totals)


def parse_counts(path: Path) -> tuple[tuple[Mark, ...], dict[int, dict[str, int]]]:
    """Read the plugin's JSON lines (marks, then one exit row per vCPU)."""
    marks: list[Mark] = []
    exits: dict[int, dict[str, int]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "error" in row:
            raise ValueError(f"{path}:{line_no}: plugin error: {row['error']}")
        if "mark" in row:
            marks.append(Mark(int(row["mark"]), int(row["vcpu"]), _counts(row["counts"])))
        elif row.get("exit"):
            exits[int(row["vcpu"])] = _counts(row["counts"])
        else:
            raise ValueError(f"{path}:{line_no}: unexpected row {line!r}")
    return tuple(marks), exits
