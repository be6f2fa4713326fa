"""Emulated Raspberry Pi 3/4/5 CPUs (qemu-user as Cortex-A53/A72/A76) that count retired guest
instructions per thread and per instruction class.

    from ddq_edge import emulation
    emulation.setup()                      # once: ~700 MB under the user's cache, < 90 s
    run = emulation.run_counted("a72", ["python", "bench.py"], site="ort")
    run.between(1, 2)                      # {"branch": ..., "simd_mul": ..., ...}

A guest marks points with ``lseek(-1, (0xDD0E << 32) | k, 0)`` (as
``ddq_edge/profiling/harness.py`` and ``ddq-run --count`` do). Counts are deterministic for a given lab (same run, same counts); they are
instruction counts, not device latency, and emulated wall time is not device time either.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from .counts import (CLASSES, MARK_MAGIC, MARK_SYSCALL, CountedRun,
                     Mark, PlainRun, mark_offset, parse_counts, subtract, total)
from .lab import (CORE_MODELS, CORES, DEFAULT_TIMEOUT, LAB_VERSION, SITES, CoreModel,
                  EmulationError, EmulatorUnavailable, Lab, LabStatus, SiteSpec, check_tools,
                  default_cache_base, missing_tools, runtime_sources)

__all__ = [
    "CLASSES", "CORES", "CORE_MODELS", "CoreModel", "CountedRun", "DEFAULT_TIMEOUT",
    "EmulationError", "EmulatorUnavailable", "LAB_VERSION", "Lab",
    "LabStatus", "MARK_MAGIC", "MARK_SYSCALL", "Mark", "PlainRun", "SITES", "SiteSpec",
    "check_tools", "cli_setup", "cli_status", "ddq_run_path", "default_cache_base", "default_lab",
    "mark_offset", "missing_tools", "parse_counts", "plugin_path", "run_counted", "run_plain",
    "runtime_sources", "setup", "status", "subtract", "total",
]


def default_lab() -> Lab:
    """The lab in the default cache folder (the environment is read at each call)."""
    return Lab()


def setup(*, force: bool = False, tflite: bool = False, progress=print) -> LabStatus:
    """Build the default lab (see :meth:`Lab.setup`)."""
    return default_lab().setup(force=force, tflite=tflite, progress=progress)


def status() -> LabStatus:
    return default_lab().status()


def run_counted(core: str, argv: Sequence[str | os.PathLike], *,
                site: str | os.PathLike | None = None,
                timeout: float | None = DEFAULT_TIMEOUT, env_extra: Mapping[str, str] | None = None,
                cwd: str | os.PathLike | None = None) -> CountedRun:
    """Run ``argv`` on cortex-``core`` under the counting plugin (see :meth:`Lab.run_counted`)."""
    return default_lab().run_counted(core, argv, site=site, timeout=timeout, env_extra=env_extra,
                                     cwd=cwd)


def run_plain(core: str, argv: Sequence[str | os.PathLike], *,
              site: str | os.PathLike | None = None,
              timeout: float | None = DEFAULT_TIMEOUT, env_extra: Mapping[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> PlainRun:
    """Run ``argv`` on cortex-``core`` without the plugin (emulated wall time)."""
    return default_lab().run_plain(core, argv, site=site, timeout=timeout, env_extra=env_extra,
                                   cwd=cwd)


def ddq_run_path() -> Path:
    """The cached static aarch64 ddq-run, rebuilt when runtime/ changed."""
    return default_lab().ddq_run()


def plugin_path() -> Path:
    """The compiled counting plugin (built with the host cc when needed)."""
    return default_lab().plugin()


# ----------------------------------------------------------------------------- CLI entry points

def _print_status(st: LabStatus) -> None:
    print(f"lab        {st.dir}")
    print(f"state      {'ready' if st.ready else 'not set up (ddq-edge emulator setup)'}")
    print(f"qemu       {st.qemu or 'missing'}")
    if st.missing_tools:
        print(f"missing    {', '.join(t for t, _ in st.missing_tools)}")
    print(f"python     {st.python or '-'}")
    for name in SITES:
        if name in st.sites:
            pins = {d.lower() for d, _ in SITES[name].defaults}
            shown = [f"{d} {v}" for d, v in st.sites[name].items() if d.lower() in pins]
            print(f"site-{name:<6} {', '.join(shown)} (+{len(st.sites[name]) - len(shown)} deps)")
        else:
            print(f"site-{name:<6} -{' (optional)' if SITES[name].optional else ''}")
    print(f"plugin     {st.plugin or 'not built (built on first counted run)'}")
    print(f"ddq-run    {st.ddq_run_state}{f' ({st.ddq_run})' if st.ddq_run else ''}")
    cores = ", ".join(f"{m.qemu_cpu} ({m.board})" for m in CORE_MODELS.values())
    print(f"cores      {cores}")
    print(f"disk       {st.disk_bytes / 1e6:.0f} MB"
          + (f"; last setup took {st.setup_seconds:.0f} s" if st.setup_seconds else ""))
    for note in st.notes:
        print(f"note       {note}")


def cli_setup(force: bool = False, tflite: bool = False) -> int:
    """`ddq-edge emulator setup`: 0 when the lab is ready, 2 when host tools are missing,
    1 when a step failed."""
    try:
        st = setup(force=force, tflite=tflite, progress=print)
    except EmulatorUnavailable as exc:
        print(f"error: {exc}")
        return 2
    except (EmulationError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    _print_status(st)
    return 0 if st.ready else 1


def cli_status() -> int:
    """`ddq-edge emulator status`: 0 when ready, 1 when not set up, 2 when host tools are
    missing (the apt-get line is printed)."""
    st = status()
    _print_status(st)
    if st.missing_tools:
        from .lab import install_line
        print(f"install    {install_line([pkg for _, pkg in st.missing_tools])}")
        return 2
    return 0 if st.ready else 1
