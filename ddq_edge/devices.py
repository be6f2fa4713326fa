"""Device profiles: the target boards and cores, and a per-instruction-class cost model.

A profile is one TOML file in ``device_profiles/`` (its id is the file stem): SoC, core, core
count, clock, ISA features, caches, memory, the ``qemu-aarch64 -cpu`` name to emulate it with,
and a ``[cost_model]`` that turns retired guest instruction counts (measured under
``qemu-aarch64`` with an instruction-class counting plugin) into cycles and seconds::

    cycles  = memory_stall_factor * sum(count[c] * cycles_per_instruction[c] for c in classes)
    seconds = cycles / (clock_ghz * 1e9)

``cycles_per_instruction`` holds, for each of the :data:`INSTRUCTION_CLASSES`, the average
reciprocal throughput of that class on the core (cycles per instruction in throughput-bound
code); ``memory_stall_factor`` (>= 1) stands for cache and DRAM stalls the throughput figures
leave out. The model is additive: it charges the classes one after another, so it is
pessimistic where a core issues instructions of different classes in the same cycle and
optimistic for latency-bound code and for memory stalls beyond the factor. How the values
were chosen, and their sources, is in ``device_profiles/README.md`` and in each file.

A board profile may reuse the cost model of its core (``cost_model = "cortex-a72"``, or a
``[cost_model]`` table with ``inherit = "cortex-a72"`` and optional overrides; its ``sources``
are appended to the inherited ones).

Where the profiles are: ``$DDQ_EDGE_DEVICE_PROFILES`` if set; else the copy installed with the
package (``ddq_edge/device_profiles``, in a wheel); else the repository's ``device_profiles/``
next to the package (editable installs). Every problem in a profile is a
:class:`DeviceProfileError` naming the file and the field.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PROFILES = "DDQ_EDGE_DEVICE_PROFILES"

#: The instruction classes the QEMU counting plugin reports, in its order.
#: branch: all branches; int_alu: integer data processing; int_mul: integer multiply(-add);
#: int_div: integer divide; load/store: general-register loads/stores; fp_scalar: scalar FP;
#: simd_alu: other vector integer, permute and convert; simd_mul: vector integer multiply,
#: including SDOT/UDOT/SMLAL; simd_fp: vector FP arithmetic including FMLA; simd_load /
#: simd_store: SIMD&FP register loads/stores; other: system instructions and hints.
INSTRUCTION_CLASSES = (
    "branch", "int_alu", "int_mul", "int_div", "load", "store", "fp_scalar",
    "simd_alu", "simd_mul", "simd_fp", "simd_load", "simd_store", "other",
)

#: ISA features a profile may list: name -> what it is (and the Linux /proc/cpuinfo name).
KNOWN_FEATURES = {
    "fp": "scalar floating point (cpuinfo: fp)",
    "asimd": "Advanced SIMD, a.k.a. NEON (cpuinfo: asimd)",
    "aes": "AES instructions, Cryptographic Extension (cpuinfo: aes)",
    "pmull": "polynomial multiply long, Cryptographic Extension (cpuinfo: pmull)",
    "sha1": "SHA-1 instructions, Cryptographic Extension (cpuinfo: sha1)",
    "sha2": "SHA-256 instructions, Cryptographic Extension (cpuinfo: sha2)",
    "crc32": "CRC32 instructions (cpuinfo: crc32)",
    "lse": "ARMv8.1 large system extensions, atomics (cpuinfo: atomics)",
    "rdm": "ARMv8.1 rounding double multiply accumulate SQRDMLAH (cpuinfo: asimdrdm)",
    "fp16": "ARMv8.2 half-precision arithmetic, scalar and vector (cpuinfo: fphp asimdhp)",
    "dotprod": "ARMv8.2 SDOT/UDOT int8 dot product (cpuinfo: asimddp)",
    "rcpc": "ARMv8.3 load-acquire RCpc LDAPR (cpuinfo: lrcpc)",
    "dcpop": "ARMv8.2 DC CVAP persistent-memory clean (cpuinfo: dcpop)",
    "i8mm": "ARMv8.6 int8 matrix multiply SMMLA/USDOT (cpuinfo: i8mm)",
    "bf16": "ARMv8.6 BFloat16 (cpuinfo: bf16)",
    "sve": "Scalable Vector Extension (cpuinfo: sve)",
}
#: Other spellings of the features, for a hint when a profile uses one of them.
FEATURE_ALIASES = {
    "neon": "asimd", "simd": "asimd", "crc": "crc32", "atomics": "lse", "asimdrdm": "rdm",
    "fphp": "fp16", "asimdhp": "fp16", "asimddp": "dotprod", "dot": "dotprod", "lrcpc": "rcpc",
    "crypto": "aes, pmull, sha1, sha2", "vfp": "fp",
}

CACHE_LEVELS = ("l1d", "l1i", "l2", "l3")
_REQUIRED_CACHES = ("l1d", "l1i", "l2")

_TOP_FIELDS = {
    "name": "the profile id, equal to the file name without .toml",
    "display_name": "the board or core name shown to people",
    "soc": "the system on chip",
    "core": "the CPU core, e.g. Cortex-A72",
    "cores": "how many cores",
    "clock_ghz": "the core clock in GHz",
    "isa": "the architecture version, e.g. ARMv8.0-A",
    "features": "the ISA features, a list",
    "caches": "the cache table",
    "memory": "the memory table",
    "qemu_cpu": "the qemu-aarch64 -cpu name",
    "cost_model": "the cost model table, or the id of a profile to take it from",
}
_OPTIONAL_TOP_FIELDS = {"notes", "anchors"}
_ANCHOR_FIELDS = {"model": str, "runtime": str, "precision": str, "threads": int,
                  "latency_ms": float, "source": str}


class DeviceProfileError(ValueError):
    """A profile that cannot be found, read or validated; the message names file and field."""


class UnknownDeviceError(DeviceProfileError):
    """No profile with that id (the message lists the known ids and the closest one)."""


# --- data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CostModel:
    """Average cycles per instruction of each class, a memory stall factor and their sources."""

    cycles_per_instruction: dict
    memory_stall_factor: float
    sources: list

    def __post_init__(self) -> None:
        cpi = _check_cpi_table(self.cycles_per_instruction, "cycles_per_instruction",
                               require_all=True)
        object.__setattr__(self, "cycles_per_instruction",
                           {name: cpi[name] for name in INSTRUCTION_CLASSES})
        object.__setattr__(self, "memory_stall_factor",
                           _check_stall_factor(self.memory_stall_factor, "memory_stall_factor"))
        object.__setattr__(self, "sources", _check_sources(self.sources, "sources"))

    def cycles_by_class(self, counts: Mapping[str, int | float]) -> dict[str, float]:
        """Core cycles each class accounts for (count x CPI), before the memory stall factor.

        Classes missing from ``counts`` count zero; an unknown class name or a negative count
        is a ValueError.
        """
        checked = _check_counts(counts)
        return {name: checked.get(name, 0) * self.cycles_per_instruction[name]
                for name in INSTRUCTION_CLASSES}

    def cycles(self, counts: Mapping[str, int | float]) -> float:
        """Estimated cycles: sum of count x CPI over the classes, times the stall factor."""
        return math.fsum(self.cycles_by_class(counts).values()) * self.memory_stall_factor

    def to_dict(self) -> dict[str, Any]:
        return {"cycles_per_instruction": dict(self.cycles_per_instruction),
                "memory_stall_factor": self.memory_stall_factor, "sources": list(self.sources)}


@dataclass(frozen=True)
class Cache:
    """One cache level: its size in KiB and how many cores share one instance (1 = per core)."""

    kib: int
    shared_by: int

    def describe(self, cores: int) -> str:
        size = f"{self.kib // 1024} MiB" if self.kib % 1024 == 0 else f"{self.kib} KiB"
        if self.shared_by == 1:
            return f"{size}/core"
        if self.shared_by == cores:
            return f"{size} shared"
        return f"{size} per {self.shared_by} cores"


@dataclass(frozen=True)
class Memory:
    type: str
    sizes_gb: tuple[float, ...]


@dataclass(frozen=True)
class Anchor:
    """A published latency measurement on the device, kept for checking the model against."""

    model: str
    runtime: str
    precision: str
    threads: int
    latency_ms: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class DeviceProfile:
    """One device: the fields of its TOML file with the cost model resolved."""

    name: str
    display_name: str
    soc: str
    core: str
    cores: int
    clock_ghz: float
    isa: str
    features: tuple[str, ...]
    caches: dict[str, Cache]
    memory: Memory
    qemu_cpu: str
    cost_model: CostModel
    cost_model_from: str | None = None   # the profile the cost model was inherited from
    notes: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return self.name

    def estimate_cycles(self, counts: Mapping[str, int | float]) -> float:
        return self.cost_model.cycles(counts)

    def estimate_seconds(self, counts: Mapping[str, int | float], threads: int = 1) -> float:
        """Estimated wall time of the counted code on this device: cycles / clock.

        ``threads=1``: ``counts`` are the instructions of the whole (single-threaded) run.
        ``threads>1``: ``counts`` must be the per-thread counts of the slowest thread (the one
        that retires the most cost-weighted instructions); the estimate is that thread's time,
        each thread having a core to itself. Contention for the shared caches and DRAM and time
        spent waiting at barriers are not modelled. ``threads`` must be 1..cores (more threads
        than cores time-share a core, which the model does not cover).
        """
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int, not {type(threads).__name__}")
        if not 1 <= threads <= self.cores:
            raise ValueError(f"threads={threads}: {self.name} has {self.cores} cores; the model "
                             f"covers 1..{self.cores} threads, one per core")
        return self.cost_model.cycles(counts) / (self.clock_ghz * 1e9)

    def at_clock(self, clock_ghz: float) -> DeviceProfile:
        """The same profile at another clock (e.g. a Pi 4 at its original 1.5 GHz)."""
        return dataclasses.replace(self, clock_ghz=_check_positive(clock_ghz, "clock_ghz"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.name, "display_name": self.display_name, "soc": self.soc,
            "core": self.core, "cores": self.cores, "clock_ghz": self.clock_ghz, "isa": self.isa,
            "features": list(self.features),
            "caches": {level: {"kib": c.kib, "shared_by": c.shared_by}
                       for level, c in self.caches.items()},
            "memory": {"type": self.memory.type, "sizes_gb": list(self.memory.sizes_gb)},
            "qemu_cpu": self.qemu_cpu,
            "cost_model": {**self.cost_model.to_dict(), "inherited_from": self.cost_model_from},
            "notes": list(self.notes),
            "anchors": [dataclasses.asdict(a) for a in self.anchors],
            "path": str(self.path) if self.path else None,
        }


# --- validation helpers (raise _FieldError(field, message); the loader adds the file) ------------

class _FieldError(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(value: Any, where: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise DeviceProfileError(f"{where}: must be a positive number, got {value!r}")
    return float(value)


def _check_cpi_table(table: Any, where: str, *, require_all: bool) -> dict[str, float]:
    if not isinstance(table, Mapping):
        raise DeviceProfileError(f"{where}: must be a table of instruction class = cycles")
    unknown = [k for k in table if k not in INSTRUCTION_CLASSES]
    if unknown:
        raise DeviceProfileError(f"{where}.{unknown[0]}: unknown instruction class"
                                 f"{_did_you_mean(unknown[0], INSTRUCTION_CLASSES)}; the classes "
                                 f"are {', '.join(INSTRUCTION_CLASSES)}")
    if require_all:
        missing = [k for k in INSTRUCTION_CLASSES if k not in table]
        if missing:
            raise DeviceProfileError(f"{where}.{missing[0]}: missing (every class needs a value; "
                                     f"missing: {', '.join(missing)})")
    out = {}
    for name, value in table.items():
        if not _is_number(value) or not math.isfinite(value):
            raise DeviceProfileError(f"{where}.{name}: must be a number of cycles, got {value!r}")
        if value <= 0:
            raise DeviceProfileError(f"{where}.{name}: must be > 0 cycles per instruction, "
                                     f"got {value!r}")
        out[name] = float(value)
    return out


def _check_stall_factor(value: Any, where: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 1:
        raise DeviceProfileError(f"{where}: must be a number >= 1 (1 = no memory stalls), "
                                 f"got {value!r}")
    return float(value)


def _check_sources(value: Any, where: str) -> list[str]:
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(s, str) and s.strip() for s in value)):
        raise DeviceProfileError(f"{where}: must be a non-empty list of non-empty strings")
    return list(value)


def _check_counts(counts: Mapping[str, int | float]) -> dict[str, float]:
    if not isinstance(counts, Mapping):
        raise TypeError(f"counts must be a mapping of instruction class -> count, "
                        f"not {type(counts).__name__}")
    out = {}
    for name, count in counts.items():
        if name not in INSTRUCTION_CLASSES:
            raise ValueError(f"unknown instruction class {name!r}"
                             f"{_did_you_mean(str(name), INSTRUCTION_CLASSES)}; the classes are "
                             f"{', '.join(INSTRUCTION_CLASSES)}")
        if not _is_number(count):
            raise TypeError(f"count of {name!r} must be a number, not {type(count).__name__}")
        value = float(count)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"count of {name!r} must be finite and >= 0, got {count!r}")
        out[name] = value
    return out


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _req(table: Mapping, key: str, kind: type, where: str, what: str = "") -> Any:
    if key not in table:
        raise _FieldError(f"{where}{key}", f"missing ({what or 'required'})")
    value = table[key]
    if kind is float:
        if not _is_number(value):
            raise _FieldError(f"{where}{key}", f"must be a number, got {value!r}")
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _FieldError(f"{where}{key}", f"must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise _FieldError(f"{where}{key}", f"must be a {_toml_type(kind.__name__)}, got {value!r}")
    if isinstance(value, str) and not value.strip():
        raise _FieldError(f"{where}{key}", "must not be empty")
    return value


def _toml_type(python_name: str) -> str:
    return {"str": "string", "list": "list", "dict": "table", "int": "integer"}.get(
        python_name, python_name)


def _no_unknown_keys(table: Mapping, allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _FieldError(f"{where}{key}", f"unknown field{_did_you_mean(key, allowed)}; "
                                               f"expected one of {', '.join(sorted(allowed))}")


# --- parsing ---------------------------------------------------------------------------------

def _parse_features(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise _FieldError("features", "must be a list of strings")
    seen = set()
    for feature in value:
        if feature not in KNOWN_FEATURES:
            hint = (f" (write {FEATURE_ALIASES[feature]!r})" if feature in FEATURE_ALIASES
                    else _did_you_mean(feature, KNOWN_FEATURES))
            raise _FieldError("features", f"unknown feature {feature!r}{hint}; known: "
                                          f"{', '.join(KNOWN_FEATURES)}")
        if feature in seen:
            raise _FieldError("features", f"{feature!r} listed twice")
        seen.add(feature)
    return tuple(value)


def _parse_caches(value: Any, cores: int) -> dict[str, Cache]:
    if not isinstance(value, dict):
        raise _FieldError("caches", "must be a table with l1d, l1i, l2 (and optionally l3)")
    _no_unknown_keys(value, CACHE_LEVELS, "caches.")
    caches = {}
    for level in CACHE_LEVELS:
        if level not in value:
            if level in _REQUIRED_CACHES:
                raise _FieldError(f"caches.{level}", "missing")
            continue
        entry = value[level]
        where = f"caches.{level}."
        if not isinstance(entry, dict):
            raise _FieldError(f"caches.{level}", "must be a table { kib = ..., shared_by = ... }")
        _no_unknown_keys(entry, ("kib", "shared_by"), where)
        kib = _req(entry, "kib", int, where, "size in KiB")
        shared_by = _req(entry, "shared_by", int, where, "cores sharing one instance; 1 = per core")
        if kib <= 0:
            raise _FieldError(f"{where}kib", f"must be > 0, got {kib}")
        if not 1 <= shared_by <= cores:
            raise _FieldError(f"{where}shared_by", f"must be 1..cores ({cores}), got {shared_by}")
        caches[level] = Cache(kib, shared_by)
    return caches


def _parse_memory(value: Any) -> Memory:
    if not isinstance(value, dict):
        raise _FieldError("memory", "must be a table { type = ..., sizes_gb = [...] }")
    _no_unknown_keys(value, ("type", "sizes_gb"), "memory.")
    kind = _req(value, "type", str, "memory.")
    sizes = _req(value, "sizes_gb", list, "memory.", "a list of the RAM options in GB")
    if not all(_is_number(s) and s > 0 for s in sizes):
        raise _FieldError("memory.sizes_gb", f"must be a list of positive numbers, got {sizes!r}")
    return Memory(kind, tuple(float(s) if not float(s).is_integer() else int(s) for s in sizes))


def _parse_notes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise _FieldError("notes", "must be a string or a list of strings")
    return tuple(value)


def _parse_anchors(value: Any) -> tuple[Anchor, ...]:
    if not isinstance(value, list):
        raise _FieldError("anchors", "must be an array of tables ([[anchors]])")
    anchors = []
    for i, entry in enumerate(value):
        where = f"anchors[{i}]."
        if not isinstance(entry, dict):
            raise _FieldError(f"anchors[{i}]", "must be a table")
        _no_unknown_keys(entry, (*_ANCHOR_FIELDS, "note"), where)
        values = {key: _req(entry, key, kind, where) for key, kind in _ANCHOR_FIELDS.items()}
        if values["threads"] < 1:
            raise _FieldError(f"{where}threads", "must be >= 1")
        if values["latency_ms"] <= 0:
            raise _FieldError(f"{where}latency_ms", "must be > 0")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise _FieldError(f"{where}note", "must be a string")
        anchors.append(Anchor(**values, note=note))
    return tuple(anchors)


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as error:
        raise DeviceProfileError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise DeviceProfileError(f"{path}: not valid TOML: {error}") from None


def _resolve_cost_model(value: Any, path: Path, chain: tuple[Path, ...]
                        ) -> tuple[CostModel, str | None]:
    """The profile's cost model and the id it was inherited from (None if its own)."""
    if isinstance(value, str):
        value = {"inherit": value}
    if not isinstance(value, dict):
        raise _FieldError("cost_model", "must be a table, or the id of a profile to inherit "
                                        "the cost model from")
    parent_id = value.get("inherit")
    if parent_id is None:
        _no_unknown_keys(value, ("cycles_per_instruction", "memory_stall_factor", "sources"),
                         "cost_model.")
        cpi = _req(value, "cycles_per_instruction", dict, "cost_model.")
        stall = _req(value, "memory_stall_factor", float, "cost_model.")
        sources = _req(value, "sources", list, "cost_model.")
        return _cost_model_or_field_error(cpi, stall, sources), None

    _no_unknown_keys(value, ("inherit", "cycles_per_instruction", "memory_stall_factor",
                             "sources"), "cost_model.")
    if (not isinstance(parent_id, str) or not parent_id.strip() or _looks_like_path(parent_id)
            or parent_id.startswith(".")):
        raise _FieldError("cost_model.inherit", f"must be a profile id (a file name without "
                                                f".toml, in the same folder), got {parent_id!r}")
    parent_path = _find_profile_file(parent_id, near=path.parent)
    if parent_path is None:
        known = _known_ids(path.parent) or _known_ids(None)
        raise _FieldError("cost_model.inherit", f"no profile {parent_id!r} to inherit from"
                                                f"{_did_you_mean(parent_id, known)}")
    if parent_path.resolve() in chain:
        cycle = " -> ".join(p.stem for p in (*chain, parent_path.resolve()))
        raise _FieldError("cost_model.inherit", f"inheritance cycle: {cycle}")
    parent = _load_path(parent_path, chain)
    base = parent.cost_model
    cpi = dict(base.cycles_per_instruction)
    if "cycles_per_instruction" in value:
        overrides = value["cycles_per_instruction"]
        try:
            cpi.update(_check_cpi_table(overrides, "cost_model.cycles_per_instruction",
                                        require_all=False))
        except DeviceProfileError as error:
            where, _, message = str(error).partition(": ")
            raise _FieldError(where, message) from None
    stall = value.get("memory_stall_factor", base.memory_stall_factor)
    extra = value.get("sources", [])
    if not isinstance(extra, list):
        raise _FieldError("cost_model.sources", "must be a list of strings")
    sources = list(base.sources) + [s for s in extra if s not in base.sources]
    return _cost_model_or_field_error(cpi, stall, sources), parent.name


def _cost_model_or_field_error(cpi, stall, sources) -> CostModel:
    try:
        return CostModel(cpi, stall, sources)
    except DeviceProfileError as error:
        where, _, message = str(error).partition(": ")
        raise _FieldError(f"cost_model.{where}", message) from None


def _parse_profile(data: dict, path: Path, chain: tuple[Path, ...]) -> DeviceProfile:
    _no_unknown_keys(data, (*_TOP_FIELDS, *_OPTIONAL_TOP_FIELDS), "")
    for key, what in _TOP_FIELDS.items():
        if key not in data:
            raise _FieldError(key, f"missing ({what})")
    name = _req(data, "name", str, "")
    if name != path.stem:
        raise _FieldError("name", f"is {name!r} but the file is {path.name}: the id is the file "
                                  f"name without .toml")
    cores = _req(data, "cores", int, "")
    if cores < 1:
        raise _FieldError("cores", f"must be >= 1, got {cores}")
    clock = _req(data, "clock_ghz", float, "")
    if not 0 < clock < 10:
        raise _FieldError("clock_ghz", f"must be a clock in GHz (0 < clock < 10), got {clock}")
    qemu_cpu = _req(data, "qemu_cpu", str, "")
    if not all(c.isalnum() or c == "-" for c in qemu_cpu) or qemu_cpu != qemu_cpu.lower():
        raise _FieldError("qemu_cpu", f"{qemu_cpu!r} is not a qemu -cpu name (e.g. cortex-a72)")
    fields = dict(
        name=name,
        display_name=_req(data, "display_name", str, ""),
        soc=_req(data, "soc", str, ""),
        core=_req(data, "core", str, ""),
        cores=cores,
        clock_ghz=clock,
        isa=_req(data, "isa", str, ""),
        features=_parse_features(data["features"]),
        caches=_parse_caches(data["caches"], cores),
        memory=_parse_memory(data["memory"]),
        qemu_cpu=qemu_cpu,
        notes=_parse_notes(data.get("notes", [])),
        anchors=_parse_anchors(data.get("anchors", [])),
    )
    # Last, so that the file's own mistakes are reported before those of a parent profile.
    cost_model, parent = _resolve_cost_model(data["cost_model"], path, chain)
    return DeviceProfile(**fields, cost_model=cost_model, cost_model_from=parent, path=path)


def _load_path(path: Path, chain: tuple[Path, ...] = ()) -> DeviceProfile:
    data = _read_toml(path)
    try:
        return _parse_profile(data, path, (*chain, path.resolve()))
    except _FieldError as error:
        raise DeviceProfileError(f"{path}: {error.where}: {error.message}") from None


# --- finding profiles ------------------------------------------------------------------------

def profiles_dir() -> Path:
    """The folder the profiles are read from (see the module docstring for the order)."""
    override = os.environ.get(ENV_PROFILES)
    if override:
        folder = Path(override).expanduser()
        if not folder.is_dir():
            raise DeviceProfileError(f"{ENV_PROFILES}={override}: not a directory")
        return folder
    here = Path(__file__).resolve()
    candidates = (here.parent / "device_profiles", here.parents[1] / "device_profiles")
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.toml")):
            return folder
    raise DeviceProfileError("no device profiles found (looked in "
                             f"{', '.join(str(c) for c in candidates)}); set {ENV_PROFILES} to "
                             "the folder holding the .toml files")


def _known_ids(folder: Path | None) -> list[str]:
    try:
        folder = folder or profiles_dir()
    except DeviceProfileError:
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def _find_profile_file(profile_id: str, near: Path | None = None) -> Path | None:
    folders = [near] if near is not None else []
    try:
        folders.append(profiles_dir())
    except DeviceProfileError:
        pass
    for folder in folders:
        candidate = folder / f"{profile_id}.toml"
        if candidate.is_file():
            return candidate
    return None


def _closest_id(query: str, folder: Path) -> str | None:
    """The known id nearest to ``query``, matching ids, display names and SoC names."""
    keys: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        keys[path.stem] = path.stem
        try:
            data = _read_toml(path)
        except DeviceProfileError:
            continue
        for key in ("display_name", "soc", "core"):
            value = data.get(key)
            if isinstance(value, str) and value.lower() not in keys:
                keys[value.lower()] = path.stem
    q = query.lower()
    # A board or SoC named outright ("bcm2711", "raspberry pi 5") wins, then the shortest name
    # containing the query ("pi4" -> rpi4, "a72" -> cortex-a72), then the most similar one.
    if q in keys:
        return keys[q]
    containing = sorted((key for key in keys if q in key), key=len)
    if containing:
        return keys[containing[0]]
    close = difflib.get_close_matches(q, list(keys), n=1, cutoff=0.5)
    return keys[close[0]] if close else None


def _looks_like_path(value: str | os.PathLike) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return value.endswith(".toml") or "/" in value or os.sep in value


def load_device(name_or_path: str | os.PathLike) -> DeviceProfile:
    """A profile by id (``"rpi4"``) or by the path of a TOML file."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise UnknownDeviceError(f"{path}: no such profile file")
        return _load_path(path)
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UnknownDeviceError(f"a device id must be a non-empty string, got {name_or_path!r}")
    folder = profiles_dir()
    query = name_or_path.strip()
    for candidate in (query, query.lower()):
        path = folder / f"{candidate}.toml"
        if path.is_file():
            return _load_path(path)
    known = _known_ids(folder)
    closest = _closest_id(query, folder)
    hint = f" Did you mean {closest!r}?" if closest else ""
    raise UnknownDeviceError(f"unknown device {query!r}.{hint} Known devices: "
                             f"{', '.join(known) if known else 'none'} (profiles in {folder})")


def list_devices() -> list[DeviceProfile]:
    """Every profile in the profiles folder, by id; the first invalid one raises."""
    folder = profiles_dir()
    return [_load_path(path) for path in sorted(folder.glob("*.toml"))]


# --- presentation ---------------------------------------------------------------------------

def _clock(ghz: float) -> str:
    text = f"{ghz:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def format_device_table(profiles) -> str:
    """A text table, one row per profile: id, name, cores, features, qemu -cpu, L2."""
    header = ("id", "name", "cores @ clock", "features", "qemu -cpu", "L2")
    rows = [(p.name, p.display_name, f"{p.cores}x {p.core} @ {_clock(p.clock_ghz)} GHz",
             ",".join(p.features), p.qemu_cpu, p.caches["l2"].describe(p.cores))
            for p in profiles]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in (header, *rows)]
    return "\n".join(lines)


def main_devices(json_output: bool = False) -> int:
    """What ``ddq-edge devices [--json]`` prints; returns the exit status (2 on a bad profile)."""
    try:
        profiles = list_devices()
    except DeviceProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if json_output:
        print(json.dumps([p.to_dict() for p in profiles], indent=2))
    else:
        print(format_device_table(profiles))
    return 0


__all__ = [
    "Anchor", "Cache", "CostModel", "DeviceProfile", "DeviceProfileError", "ENV_PROFILES",
    "INSTRUCTION_CLASSES", "KNOWN_FEATURES", "Memory", "UnknownDeviceError",
    "format_device_table", "list_devices", "load_device", "main_devices", "profiles_dir",
]
