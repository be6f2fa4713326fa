"""The emulated Raspberry Pi lab: qemu-user as Cortex-A53/A72/A76 with an aarch64 CPython 3.11,
onnxruntime / LiteRT wheels, our counting plugin and the cross-built ``ddq-run``, all cached
under the user's cache folder.

Layout of the cache (``Lab.dir``, a versioned folder under the base returned by
:func:`default_cache_base`)::

    apt/                  private arm64 apt root (own config, lists, status; host apt untouched)
    sysroot/              python3.11 + libstdc++6 + libc-bin closure, dpkg-deb -x'd, stdlib
                          precompiled, host files that -L would fall through to shadowed
    roots/<core>/         what ``-L`` points at: symlinks into sysroot/, a fake /proc/cpuinfo and
                          /sys/devices/system/cpu matching ``-cpu cortex-<core>``, and
                          /opt/ddq-edge/site-* symlinks (guest-visible site paths)
    site-ort/ site-litert/ [site-tflite/]   aarch64 wheels installed with host pip --target
    plugin/insn_count-<hash>.so             the counting plugin (rebuilt when its source changes)
    runtime-aarch64/ddq-run                 the C runtime, static (rebuilt when runtime/ changes)
    home/                 HOME of emulated programs
    stamps/<stage>.json   what each finished stage built, with versions (a stage without its
                          stamp is rebuilt; ``setup(force=True)`` rebuilds everything)

Everything except ``ddq-run`` and the plugin is built once and reused.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from .counts import CountedRun, PlainRun, parse_counts

LAB_VERSION = 1
CORES: tuple[str, ...] = ("a53", "a72", "a76")
GUEST_PYTHON = "/usr/bin/python3.11"
GUEST_SITE_DIR = "/opt/ddq-edge"  # guest-visible: roots/<core>/opt/ddq-edge/site-* -> site-*
DEFAULT_TIMEOUT = 600.0

Progress = Callable[[str], None]


class EmulatorUnavailable(RuntimeError):
    """The host lacks a tool the lab needs, or the lab (or a part of it) is not set up.
    ``install_line`` holds the apt-get command when tools are missing."""

    def __init__(self, message: str, install_line: str | None = None) -> None:
        super().__init__(message)
        self.install_line = install_line


class EmulationError(RuntimeError):
    """A setup step or an emulated run failed."""


# ----------------------------------------------------------------------------- CPU models

@dataclass(frozen=True)
class CoreModel:
    """What ``-cpu cortex-<name>`` looks like to the guest; the fake /proc/cpuinfo repeats it
    (MIDR fields as QEMU 7.2 models them, Features = the AT_HWCAP bits QEMU reports)."""
    name: str
    board: str
    part: int
    variant: int
    revision: int
    features: str

    @property
    def qemu_cpu(self) -> str:
        return f"cortex-{self.name}"


_V8_FEATURES = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
CORE_MODELS: dict[str, CoreModel] = {
    "a53": CoreModel("a53", "Raspberry Pi 3", 0xD03, 0x0, 4, _V8_FEATURES),
    "a72": CoreModel("a72", "Raspberry Pi 4", 0xD08, 0x0, 3, _V8_FEATURES),
    "a76": CoreModel("a76", "Raspberry Pi 5", 0xD0B, 0x4, 1,
                     _V8_FEATURES + " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"),
}


def core_model(core: str) -> CoreModel:
    name = core.removeprefix("cortex-")
    if name not in CORE_MODELS:
        raise ValueError(f"unknown core {core!r}: expected one of {', '.join(CORES)}")
    return CORE_MODELS[name]


# ----------------------------------------------------------------------------- sites

@dataclass(frozen=True)
class SiteSpec:
    """A folder of aarch64 cp311 wheels for PYTHONPATH. ``defaults`` are the pins used when
    the host has no such distribution installed (or its version has no aarch64 wheel);
    ``follow_host`` pins to the host's installed versions first."""
    name: str
    defaults: tuple[tuple[str, str], ...]
    follow_host: bool = True
    optional: bool = False

    @property
    def folder(self) -> str:
        return f"site-{self.name}"


SITES: dict[str, SiteSpec] = {
    "ort": SiteSpec("ort", (("numpy", "2.4.6"), ("onnxruntime", "1.32.0"))),
    "litert": SiteSpec("litert", (("numpy", "2.4.6"), ("ai-edge-litert", "2.3.0"))),
    # tflite-runtime 2.14 is built against the numpy 1.x ABI.
    "tflite": SiteSpec("tflite", (("numpy", "1.26.4"), ("tflite-runtime", "2.14.0")),
                       follow_host=False, optional=True),
}
REQUIRED_SITES = tuple(name for name, spec in SITES.items() if not spec.optional)


def site_spec(site: str) -> SiteSpec:
    name = site.removeprefix("site-")
    if name not in SITES:
        raise ValueError(f"unknown site {site!r}: expected one of {', '.join(SITES)} or a path")
    return SITES[name]


def _host_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def wanted_pins(spec: SiteSpec) -> dict[str, str]:
    """The versions a site is built with: the host's installed ones where it has them."""
    pins = dict(spec.defaults)
    if spec.follow_host:
        for dist in pins:
            pins[dist] = _host_version(dist) or pins[dist]
    return pins


# ----------------------------------------------------------------------------- host tools

_APT_HOST_KEYS = re.compile(r"^Acquire::(https?|ftp|socks|Check-Valid-Until|Check-Date|Retries|"
                            r"ForceIPv4|ForceIPv6)\b")


@functools.lru_cache(maxsize=None)
def _find_python311() -> str | None:
    """A host CPython 3.11 for compileall (.pyc magic must match the sysroot's 3.11); Debian's
    own first, as it is the very build the sysroot holds."""
    candidates = ["/usr/bin/python3.11", shutil.which("python3.11")]
    if sys.version_info[:2] == (3, 11):
        candidates.append(sys.executable)
    for exe in candidates:
        if not exe or not os.access(exe, os.X_OK):
            continue
        try:
            out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out == "True":
            return exe
    return None


def _has_pip() -> bool:
    import importlib.util
    return importlib.util.find_spec("pip") is not None


# what -> (test, apt package)
_TOOL_CHECKS: dict[str, tuple[Callable[[], bool], str]] = {
    "qemu-aarch64": (lambda: shutil.which("qemu-aarch64") is not None, "qemu-user"),
    "aarch64-linux-gnu-gcc": (lambda: shutil.which("aarch64-linux-gnu-gcc") is not None,
                              "gcc-aarch64-linux-gnu"),
    "aarch64 libc.a": (lambda: Path("/usr/aarch64-linux-gnu/lib/libc.a").exists(),
                       "libc6-dev-arm64-cross"),
    "cc": (lambda: shutil.which("cc") is not None, "gcc"),
    "cmake": (lambda: shutil.which("cmake") is not None, "cmake"),
    "dpkg-deb": (lambda: shutil.which("dpkg-deb") is not None, "dpkg"),
    "apt-get": (lambda: shutil.which("apt-get") is not None, "apt"),
    "python3.11": (lambda: _find_python311() is not None, "python3.11"),
    "pip": (_has_pip, "python3-pip"),
}
TOOLS_FOR = {
    "plugin": ("cc",),
    "run": ("qemu-aarch64", "cc"),
    "runtime": ("aarch64-linux-gnu-gcc", "aarch64 libc.a", "cmake"),
    "setup": tuple(_TOOL_CHECKS),
}


def missing_tools(purpose: str = "setup") -> list[tuple[str, str]]:
    """(tool, apt package) pairs missing on this host for 'plugin', 'run', 'runtime', 'setup'."""
    return [(tool, _TOOL_CHECKS[tool][1]) for tool in TOOLS_FOR[purpose]
            if not _TOOL_CHECKS[tool][0]()]


def install_line(packages: Sequence[str]) -> str:
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(dict.fromkeys(packages))}"


def check_tools(purpose: str = "setup") -> None:
    """Raise EmulatorUnavailable naming the apt-get line for whatever is missing."""
    missing = missing_tools(purpose)
    if missing:
        line = install_line([pkg for _, pkg in missing])
        raise EmulatorUnavailable(
            f"the emulator needs host tools that are missing: {', '.join(t for t, _ in missing)}; "
            f"install them with:\n  {line}", install_line=line)


def qemu_version() -> str | None:
    exe = shutil.which("qemu-aarch64")
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"version (\S+)", out)
    return found.group(1) if found else out.strip().splitlines()[0] if out.strip() else None


# ----------------------------------------------------------------------------- sysroot contents

#: Installed (with their dependency closure) into the sysroot. libc-bin brings the C.UTF-8 locale.
SYSROOT_PACKAGES = ("python3.11", "libstdc++6", "libc-bin")
#: The kernel release the guest's uname() reports (Raspberry Pi OS bookworm, 64-bit), so that
#: the host's kernel does not show through.
GUEST_KERNEL_RELEASE = "6.6.51+rpt-rpi-v8"

# qemu -L looks an absolute path up under the root first and falls through to the host's file
# when the root has none: whatever the guest would find on the host (ld.so.cache, localtime,
# .pth files in /usr/local/lib/python3.11/dist-packages, PCI devices...) is shadowed here by an
# empty or fixed stand-in, so that runs neither depend on nor break with the host's files.
_EMPTY_SYSROOT_FILES = ("etc/ld.so.cache", "etc/ld.so.preload", "usr/share/locale/locale.alias")
_EMPTY_SYSROOT_DIRS = ("usr/local/lib/python3.11/dist-packages",
                       "usr/local/lib/python3/dist-packages", "usr/lib/python3.11/dist-packages",
                       "usr/lib/python3.11/site-packages", "usr/lib/python3/dist-packages")
_EMPTY_SYS_DIRS = ("sys/bus/pci/devices", "sys/class/drm", "sys/class/accel", "sys/class/misc",
                   "sys/firmware/devicetree/base")
_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""


def _utc_tzif() -> bytes:
    """A minimal TZif (v2) file for UTC: one type, no transitions (the guest's /etc/localtime)."""
    import struct
    def block(version: bytes) -> bytes:
        header = b"TZif" + version + b"\0" * 15 + struct.pack(">6l", 0, 0, 0, 0, 1, 4)
        return header + struct.pack(">lBB", 0, 0, 0) + b"UTC\0"
    return block(b"2") + block(b"2") + b"\nUTC0\n"


def _seal_sysroot(root: Path) -> None:
    for rel in _EMPTY_SYSROOT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel in _EMPTY_SYSROOT_FILES:
        path = root / rel
        if not path.exists() and not path.is_symlink():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    for rel in ("etc/localtime", "etc/os-release", "usr/lib/os-release", "etc/timezone"):
        path = root / rel
        if path.is_symlink() or path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
    (root / "etc/localtime").write_bytes(_utc_tzif())
    (root / "etc/timezone").write_text("Etc/UTC\n")
    (root / "usr/lib/os-release").write_text(_OS_RELEASE)
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")


# ----------------------------------------------------------------------------- cache folder

def default_cache_base() -> Path:
    """$DDQ_EDGE_CACHE, else $XDG_CACHE_HOME/ddq-edge/emulator, else ~/.cache/ddq-edge/emulator."""
    if os.environ.get("DDQ_EDGE_CACHE"):
        return Path(os.environ["DDQ_EDGE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ddq-edge" / "emulator"
    return Path.home() / ".cache" / "ddq-edge" / "emulator"


def runtime_sources() -> Path:
    """The C runtime's sources (runtime/ beside the ddq_edge package of a source checkout or an
    editable install)."""
    import ddq_edge
    src = Path(ddq_edge.__file__).resolve().parents[1] / "runtime"
    needed = ("CMakeLists.txt", "cmake/aarch64-linux-gnu.cmake")
    if not all((src / rel).is_file() for rel in needed):
        raise EmulatorUnavailable(
            f"the C runtime's sources are not at {src}: ddq-run is built from a source checkout "
            "(pip install -e . or a clone), not from an installed wheel")
    return src


def _newest_mtime(folder: Path) -> float:
    newest = 0.0
    for path in folder.rglob("*"):
        if path.suffix in (".c", ".h", ".cmake") or path.name == "CMakeLists.txt":
            newest = max(newest, path.stat().st_mtime)
    return newest


def _disk_usage(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    size = 0
    for folder, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            size += st.st_blocks * 512
    return size


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _plugin_source() -> bytes:
    return resources.files("ddq_edge.emulation").joinpath("insn_count_plugin.c").read_bytes()


def _qemu_opt(value: str) -> str:
    """Escape a value for QEMU's -plugin option list (a literal comma is written ',,')."""
    return value.replace(",", ",,")


# ----------------------------------------------------------------------------- status

@dataclass
class LabStatus:
    """What is built in a lab (``Lab.status()``); nothing is built to answer."""
    dir: Path
    ready: bool                      # sysroot, roots and the required sites are built
    missing_tools: list[tuple[str, str]]
    qemu: str | None
    python: str | None               # the sysroot's python3.11 package version
    packages: dict[str, str]         # sysroot debs: name -> version
    sites: dict[str, dict[str, str]]  # "ort" -> {dist: version}, built sites only
    plugin: Path | None              # built for the current source, or None
    ddq_run: Path | None
    ddq_run_state: str               # "up to date", "stale", "not built", "unavailable: ..."
    disk_bytes: int
    setup_seconds: float | None      # duration of the last setup() that built something
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- the lab

class Lab:
    """One cache folder of the emulated lab. ``Lab()`` uses :func:`default_cache_base`."""

    def __init__(self, cache_base: str | os.PathLike | None = None) -> None:
        base = Path(cache_base).expanduser() if cache_base is not None else default_cache_base()
        self.dir = base.resolve() / f"lab-v{LAB_VERSION}"
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()

    # -- paths
    @property
    def sysroot(self) -> Path:
        return self.dir / "sysroot"

    @property
    def home(self) -> Path:
        return self.dir / "home"

    def core_root(self, core: str) -> Path:
        return self.dir / "roots" / core_model(core).name

    def site_dir(self, site: str) -> Path:
        return self.dir / site_spec(site).folder

    @property
    def runtime_build_dir(self) -> Path:
        return self.dir / "runtime-aarch64"

    def _stamp_path(self, stage: str) -> Path:
        return self.dir / "stamps" / f"{stage}.json"

    def _stamp(self, stage: str) -> dict | None:
        try:
            return json.loads(self._stamp_path(stage).read_text())
        except (OSError, ValueError):
            return None

    def _write_stamp(self, stage: str, data: dict) -> None:
        path = self._stamp_path(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"lab_version": LAB_VERSION, **data}, indent=1, sort_keys=True))
        tmp.replace(path)

    # -- locking (between processes: flock; re-entrant within this object)
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._lock_depth == 0:
                self.dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    # -- small helpers
    def _sh(self, cmd: Sequence[str | os.PathLike], what: str, *,
            env: Mapping[str, str] | None = None, cwd: Path | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                                env=None if env is None else dict(env), cwd=cwd,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            command = " ".join(str(c) for c in cmd)
            raise EmulationError(f"{what} failed (exit {result.returncode}): {command}\n"
                                 f"{_tail(result.stdout + result.stderr)}")
        return result

    # ------------------------------------------------------------------------- plugin
    def plugin_path(self) -> Path:
        digest = hashlib.sha256(_plugin_source()).hexdigest()[:12]
        return self.dir / "plugin" / f"insn_count-{digest}.so"

    def plugin(self) -> Path:
        """The counting plugin for the current source, compiled with the host's cc if needed."""
        target = self.plugin_path()
        if target.is_file():
            return target
        check_tools("plugin")
        with self._locked():
            if target.is_file():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                src = Path(tmp) / "insn_count_plugin.c"
                src.write_bytes(_plugin_source())
                out = Path(tmp) / target.name
                self._sh(["cc", "-shared", "-fPIC", "-O2", "-o", out, src], "compiling the plugin")
                for old in target.parent.glob("insn_count-*.so"):
                    old.unlink()
                out.replace(target)
        return target

    # ------------------------------------------------------------------------- ddq-run
    def ddq_run_state(self) -> str:
        try:
            src = runtime_sources()
        except EmulatorUnavailable as exc:
            return f"unavailable: {exc}"
        exe = self.runtime_build_dir / "ddq-run"
        if not exe.is_file():
            return "not built"
        checked = self.runtime_build_dir / ".ddq-checked"
        built = max(exe.stat().st_mtime, checked.stat().st_mtime if checked.exists() else 0.0)
        if _newest_mtime(src) > built or self._runtime_configured_for() != str(src):
            return "stale"
        return "up to date"

    def _runtime_configured_for(self) -> str | None:
        cache = self.runtime_build_dir / "CMakeCache.txt"
        if not cache.is_file():
            return None
        found = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", cache.read_text(), re.M)
        return found.group(1).strip() if found else None

    def ddq_run(self, progress: Progress | None = None) -> Path:
        """The static aarch64 ``ddq-run``, rebuilt (incrementally) when runtime/ is newer."""
        src = runtime_sources()
        exe = self.runtime_build_dir / "ddq-run"
        if self.ddq_run_state() == "up to date":
            return exe
        check_tools("runtime")
        with self._locked():
            build = self.runtime_build_dir
            if self._runtime_configured_for() != str(src):
                shutil.rmtree(build, ignore_errors=True)
                generator = ["-G", "Ninja"] if shutil.which("ninja") else []
                if progress:
                    progress("ddq-run: configuring the aarch64 static build")
                self._sh(["cmake", "-S", src, "-B", build, *generator,
                          f"-DCMAKE_TOOLCHAIN_FILE={src / 'cmake' / 'aarch64-linux-gnu.cmake'}",
                          "-DDDQ_STATIC=ON", "-DDDQ_TESTS=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                         "configuring the aarch64 runtime")
            if progress:
                progress("ddq-run: building")
            self._sh(["cmake", "--build", build, "--target", "ddq-run",
                      "-j", str(os.cpu_count() or 1)], "building ddq-run for aarch64")
            if not exe.is_file():
                raise EmulationError(f"the runtime build did not produce {exe}")
            (build / ".ddq-checked").touch()
        return exe

    # ------------------------------------------------------------------------- roots
    def _roots_inputs(self) -> dict:
        sysroot = self._stamp("sysroot")
        return {"ncpu": max(1, min(4, len(os.sched_getaffinity(0)))),
                "sysroot": sysroot.get("built") if sysroot else None,
                "models": {k: [m.part, m.variant, m.revision, m.features]
                           for k, m in CORE_MODELS.items()},
                "sites": sorted(SITES)}

    def _roots_current(self, inputs: dict) -> bool:
        stamp = self._stamp("roots")
        return bool(stamp and stamp.get("inputs") == inputs
                    and all(self.core_root(c).is_dir() for c in CORES))

    def ensure_roots(self, progress: Progress | None = None) -> None:
        """(Re)build roots/<core> when missing or when the sysroot or the host's CPU count
        changed. Cheap; needs no download (without a sysroot it serves static binaries)."""
        inputs = self._roots_inputs()
        if self._roots_current(inputs):
            return
        with self._locked():
            if self._roots_current(inputs):
                return
            if progress:
                progress(f"roots: fake /proc/cpuinfo and /sys for {', '.join(CORES)} "
                         f"({inputs['ncpu']} CPUs)")
            for core in CORES:
                self._build_root(CORE_MODELS[core], inputs["ncpu"],
                                 with_sysroot=inputs["sysroot"] is not None)
            self._write_stamp("roots", {"inputs": inputs})

    def _build_root(self, model: CoreModel, ncpu: int, with_sysroot: bool) -> None:
        final = self.core_root(model.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        if with_sysroot:
            for entry in sorted(self.sysroot.iterdir()):
                if entry.name not in ("proc", "sys", "opt"):
                    (tmp / entry.name).symlink_to(Path("..", "..", "sysroot", entry.name))
        opt = tmp / GUEST_SITE_DIR.lstrip("/")
        opt.mkdir(parents=True)
        for spec in SITES.values():  # dangling until the site is built: then qemu falls through
            (opt / spec.folder).symlink_to(Path("..", "..", "..", "..", spec.folder))
        (tmp / "proc").mkdir()
        (tmp / "proc" / "cpuinfo").write_text("".join(
            f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {model.features}\n"
            f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {model.variant:#x}\n"
            f"CPU part\t: {model.part:#x}\nCPU revision\t: {model.revision}\n\n"
            for i in range(ncpu)))
        for empty in _EMPTY_SYS_DIRS:  # host devices must not show through
            (tmp / empty).mkdir(parents=True)
        cpu = tmp / "sys" / "devices" / "system" / "cpu"
        cpu.mkdir(parents=True)
        last = ncpu - 1
        for name, value in (("possible", f"0-{last}"), ("present", f"0-{last}"),
                            ("online", f"0-{last}"), ("kernel_max", f"{last}")):
            (cpu / name).write_text(value + "\n")
        for i in range(ncpu):
            d = cpu / f"cpu{i}"
            files = {
                "topology/physical_package_id": "0", "topology/core_id": f"{i}",
                "topology/thread_siblings_list": f"{i}", "topology/cluster_cpus_list": f"0-{last}",
                "topology/core_siblings_list": f"0-{last}",
                "cpufreq/cpuinfo_max_freq": "1800000", "cpufreq/cpuinfo_min_freq": "600000",
                "cache/index0/level": "1", "cache/index0/size": "32K", "cache/index0/type": "Data",
                "cache/index0/shared_cpu_list": f"{i}",
                "cache/index1/level": "1", "cache/index1/size": "32K",
                "cache/index1/type": "Instruction", "cache/index1/shared_cpu_list": f"{i}",
                "cache/index2/level": "2", "cache/index2/size": "1024K",
                "cache/index2/type": "Unified", "cache/index2/shared_cpu_list": f"0-{last}",
            }
            for rel, value in files.items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                (d / rel).write_text(value + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)

    # ------------------------------------------------------------------------- sysroot
    def _apt_env(self, apt: Path) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(apt / "apt.conf"),
                "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}

    def _prepare_apt_root(self, apt: Path) -> None:
        """A private arm64 apt root: the host's sources and network settings, an empty dpkg
        status, nothing of the host's apt state touched (no dpkg --add-architecture)."""
        shutil.rmtree(apt, ignore_errors=True)
        for sub in ("etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d",
                    "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
            (apt / sub).mkdir(parents=True, exist_ok=True)
        (apt / "var/lib/dpkg/status").write_text("")
        copied = 0
        if Path("/etc/apt/sources.list").is_file():
            shutil.copy(Path("/etc/apt/sources.list"), apt / "etc/apt/sources.list")
            copied += 1
        for src in sorted(Path("/etc/apt/sources.list.d").glob("*")):
            if src.suffix in (".list", ".sources") and src.is_file():
                shutil.copy(src, apt / "etc/apt/sources.list.d" / src.name)
                copied += 1
        if not copied:
            raise EmulationError("no apt sources on this host (/etc/apt/sources.list[.d])")
        host = ""
        if shutil.which("apt-config"):
            host = subprocess.run(["apt-config", "dump"], capture_output=True, text=True,
                                  env={**os.environ, "LC_ALL": "C"}).stdout
        network = [line for line in host.splitlines()
                   if _APT_HOST_KEYS.match(line) and not line.endswith(' "";')]
        (apt / "apt.conf").write_text("\n".join([
            f'Dir "{apt}/";',
            f'Dir::State::status "{apt}/var/lib/dpkg/status";',
            'Dir::Etc::trusted "/etc/apt/trusted.gpg";',
            'Dir::Etc::trustedparts "/etc/apt/trusted.gpg.d";',
            'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";',
            'APT::Architecture "arm64"; APT::Architectures { "arm64"; };',
            'APT::Install-Recommends "false"; APT::Install-Suggests "false";',
            'Acquire::Languages "none";',
            'APT::Sandbox::User "root";',  # the cache may be private to this user
            *network, ""]))

    def _build_sysroot(self, progress: Progress) -> None:
        py311 = _find_python311()
        assert py311  # checked by check_tools("setup")
        apt = self.dir / "apt"
        self._prepare_apt_root(apt)
        env = self._apt_env(apt)
        progress("sysroot: apt-get update (private arm64 apt root)")
        # Not fatal by itself (a third-party source may lack arm64 or be down): the download
        # below fails if what it needs is missing, and then shows this output too.
        update = self._sh(["apt-get", "-qq", "update"], "apt-get update (arm64)", env=env,
                          check=False)
        progress(f"sysroot: downloading {' + '.join(SYSROOT_PACKAGES)} with dependencies (arm64)")
        download = self._sh(["apt-get", "-qq", "-y", "install", "--download-only",
                             *SYSROOT_PACKAGES], "apt-get install --download-only", env=env,
                            check=False)
        if download.returncode != 0:
            raise EmulationError(
                "downloading the arm64 packages failed (the lab expects Debian 12 'bookworm' apt "
                f"sources, which carry python3.11 for arm64):\n"
                f"{_tail(update.stdout + update.stderr, 10)}\n"
                f"{_tail(download.stdout + download.stderr)}")
        debs = sorted((apt / "var/cache/apt/archives").glob("*.deb"))
        if not debs:
            raise EmulationError("apt downloaded no packages")
        packages = {}
        for deb in debs:
            name, version, _arch = deb.stem.split("_")
            packages[name] = urllib.parse.unquote(version)
        progress(f"sysroot: extracting {len(debs)} packages "
                 f"({sum(d.stat().st_size for d in debs) / 1e6:.0f} MB) with dpkg-deb -x")
        tmp = self.sysroot.with_name("sysroot.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for deb in debs:
            self._sh(["dpkg-deb", "-x", deb, tmp], f"dpkg-deb -x {deb.name}")
        stdlib = tmp / "usr/lib/python3.11"
        if not (stdlib / "os.py").is_file() or not (tmp / "usr/bin/python3.11").is_file():
            raise EmulationError(f"the extracted packages hold no python3.11 ({tmp})")
        _seal_sysroot(tmp)
        progress(f"sysroot: precompiling the stdlib with {py311}")
        # The debs ship no .pyc (their postinst compiles); without them startup costs ~60% more.
        # compileall exits non-zero for the few deliberately broken test files: check a module.
        self._sh([py311, "-m", "compileall", "-q", "-j", "0", stdlib], "compileall (stdlib)",
                 check=False)
        if not list((stdlib / "__pycache__").glob("os.cpython-311*.pyc")):
            raise EmulationError("compileall wrote no .pyc for the sysroot's stdlib")
        shutil.rmtree(self.sysroot, ignore_errors=True)
        tmp.rename(self.sysroot)
        shutil.rmtree(apt / "var", ignore_errors=True)  # lists and .debs: ~100 MB, not needed again
        compiled_with = self._sh([py311, "-c", "import platform; print(platform.python_version())"],
                                 "python3.11 --version").stdout.strip()
        self._write_stamp("sysroot", {"packages": packages, "python": packages.get("python3.11"),
                                      "compiled_with": f"{py311} ({compiled_with})",
                                      "built": time.time()})

    # ------------------------------------------------------------------------- sites
    def _pip_target(self, target: Path, requirements: Sequence[str]) -> None:
        platforms = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--no-compile",
               "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off",
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", "--abi", "abi3", "--abi", "none",
               *[arg for p in platforms for arg in ("--platform", p)],
               "--target", str(target), *requirements]
        self._sh(cmd, f"pip install --target {target.name} {' '.join(requirements)}")

    @staticmethod
    def _installed(target: Path) -> dict[str, str]:
        found = {}
        for info in target.glob("*.dist-info"):
            meta = (info / "METADATA").read_text(errors="replace")
            name = re.search(r"^Name: (.*)$", meta, re.M)
            version = re.search(r"^Version: (.*)$", meta, re.M)
            if name and version:
                found[name.group(1).strip()] = version.group(1).strip()
        return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))

    def _build_site(self, spec: SiteSpec, progress: Progress) -> None:
        wanted = wanted_pins(spec)
        final = self.dir / spec.folder
        tmp = final.with_name(final.name + ".tmp")
        attempts = [wanted] if wanted == dict(spec.defaults) else [wanted, dict(spec.defaults)]
        error: EmulationError | None = None
        for pins in attempts:
            shutil.rmtree(tmp, ignore_errors=True)
            progress(f"{spec.folder}: pip --target (aarch64 cp311 wheels): "
                     + " ".join(f"{d}=={v}" for d, v in pins.items()))
            try:
                self._pip_target(tmp, [f"{d}=={v}" for d, v in pins.items()])
            except EmulationError as exc:
                error = exc
                continue
            break
        else:
            assert error is not None
            raise error
        py311 = _find_python311()
        progress(f"{spec.folder}: precompiling with {py311}")
        self._sh([py311, "-m", "compileall", "-q", "-j", "0", tmp], f"compileall ({spec.folder})",
                 check=False)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        self._write_stamp(spec.folder, {"wanted": wanted, "pins": pins,
                                        "installed": self._installed(final), "built": time.time()})

    def _site_stamp(self, site: str) -> dict | None:
        spec = site_spec(site)
        stamp = self._stamp(spec.folder)
        if stamp and (self.dir / spec.folder).is_dir():
            return stamp
        return None

    # ------------------------------------------------------------------------- setup, status
    def is_ready(self) -> bool:
        """Sysroot, roots and the required sites are built (the plugin and ddq-run are built on
        demand)."""
        return (self._stamp("sysroot") is not None and self.sysroot.is_dir()
                and all(self._site_stamp(s) for s in REQUIRED_SITES)
                and all(self.core_root(c).is_dir() for c in CORES))

    def setup(self, *, force: bool = False, tflite: bool = False,
              progress: Progress | None = print) -> LabStatus:
        """Build whatever is missing (everything with ``force``); idempotent. ``tflite`` adds
        site-tflite (numpy<2, tflite-runtime 2.14). ``progress`` gets short lines."""
        check_tools("setup")
        t0 = time.monotonic()

        def say(msg: str) -> None:
            if progress:
                progress(f"[{time.monotonic() - t0:6.1f}s] {msg}")
        built_any = False
        with self._locked():
            say(f"lab in {self.dir}")
            if force:
                say("force: removing everything built before")
                for entry in self.dir.iterdir():
                    if entry.name != ".lock":
                        if entry.is_dir() and not entry.is_symlink():
                            shutil.rmtree(entry)
                        else:
                            entry.unlink()
            if self._stamp("sysroot") is None or not self.sysroot.is_dir():
                self._build_sysroot(say)
                built_any = True
            else:
                say(f"sysroot: python3.11 {self._stamp('sysroot')['python']} (cached)")
            if self._roots_current(self._roots_inputs()):
                say("roots: a53, a72, a76 (cached)")
            self.ensure_roots(say)
            sites = list(REQUIRED_SITES) + (["tflite"] if tflite else [])
            for site in sites:
                spec = SITES[site]
                stamp = self._site_stamp(site)
                if stamp and stamp.get("wanted") == wanted_pins(spec):
                    pinned = {k.lower() for k in stamp["pins"]}
                    versions = [f"{d} {v}" for d, v in stamp["installed"].items()
                                if d.lower() in pinned]
                    say(f"{spec.folder}: {', '.join(versions)} (cached)")
                    continue
                self._build_site(spec, say)
                built_any = True
            plugin_fresh = not self.plugin_path().is_file()
            say(f"plugin: {self.plugin().name}{' (compiled)' if plugin_fresh else ' (cached)'}")
            try:
                state = self.ddq_run_state()
                exe = self.ddq_run(progress=say)
                say(f"ddq-run: {exe} ({'cached' if state == 'up to date' else 'built'})")
            except EmulatorUnavailable as exc:
                say(f"ddq-run: skipped ({exc})")
            except EmulationError as exc:  # runtime/ is work in progress: the lab is still usable
                say(f"ddq-run: build failed, retried when it is next needed: {exc}")
            self.home.mkdir(parents=True, exist_ok=True)
            elapsed = time.monotonic() - t0
            if built_any:
                self._write_stamp("setup", {"seconds": round(elapsed, 1), "finished": time.time()})
            say(f"done ({_disk_usage(self.dir) / 1e6:.0f} MB on disk)")
        return self.status()

    def status(self) -> LabStatus:
        sysroot = self._stamp("sysroot") if self.sysroot.is_dir() else None
        sites = {}
        for name in SITES:
            stamp = self._site_stamp(name)
            if stamp:
                sites[name] = stamp["installed"]
        plugin = self.plugin_path()
        state = self.ddq_run_state()
        notes = []
        for name in sites:
            stamp = self._site_stamp(name)
            if stamp and stamp.get("wanted") != wanted_pins(SITES[name]):
                notes.append(f"site-{name}: the host's versions changed since it was built "
                             f"({wanted_pins(SITES[name])}); setup rebuilds it")
            if stamp and stamp.get("pins") != stamp.get("wanted"):
                notes.append(f"site-{name}: the host's versions {stamp['wanted']} have no aarch64 "
                             f"wheels; built with {stamp['pins']}")
        setup_stamp = self._stamp("setup")
        return LabStatus(
            dir=self.dir, ready=self.is_ready(), missing_tools=missing_tools("setup"),
            qemu=qemu_version(), python=sysroot.get("python") if sysroot else None,
            packages=sysroot.get("packages", {}) if sysroot else {}, sites=sites,
            plugin=plugin if plugin.is_file() else None,
            ddq_run=(self.runtime_build_dir / "ddq-run"
                     if state in ("up to date", "stale") else None),
            ddq_run_state=state,
            disk_bytes=_disk_usage(self.dir) if self.dir.is_dir() else 0,
            setup_seconds=setup_stamp.get("seconds") if setup_stamp else None, notes=notes)

    # ------------------------------------------------------------------------- running
    def _command(self, core: str, argv: Sequence[str | os.PathLike],
                 site: str | os.PathLike | None, env_extra: Mapping[str, str] | None) \
            -> tuple[list[str], dict[str, str], Path]:
        model = core_model(core)
        if not argv:
            raise ValueError("argv is empty")
        check_tools("run")
        self.ensure_roots()
        root = self.core_root(model.name)
        first = str(argv[0])
        argv0 = None
        if first == "python":
            if self._stamp("sysroot") is None or not self.sysroot.is_dir():
                raise EmulatorUnavailable("the emulated Python is not set up: run "
                                          "`ddq-edge emulator setup` (ddq_edge.emulation.setup())")
            # QEMU opens the program itself without -L: give it the host path, and the guest
            # argv[0] /usr/bin/python3.11 (-0), from which CPython finds /usr/lib/python3.11 under
            # -L: the guest sees the paths of a Pi, whatever the cache folder is.
            exe = str(root / GUEST_PYTHON.lstrip("/"))
            argv0 = GUEST_PYTHON
        elif first == "ddq-run":
            exe = str(self.ddq_run())
        else:
            path = Path(first).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no such executable: {first}")
            exe = str(path.resolve())
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.home),
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}
        if site is not None:
            if isinstance(site, str) and site.removeprefix("site-") in SITES:
                spec = site_spec(site)
                if not self._site_stamp(spec.name):
                    hint = " with tflite=True" if spec.optional else ""
                    raise EmulatorUnavailable(
                        f"{spec.folder} is not set up: run the lab's setup{hint}")
                env["PYTHONPATH"] = f"{GUEST_SITE_DIR}/{spec.folder}"
            else:
                env["PYTHONPATH"] = str(Path(site).expanduser().resolve())
        env.update({k: str(v) for k, v in (env_extra or {}).items()})
        self.home.mkdir(parents=True, exist_ok=True)
        qemu = shutil.which("qemu-aarch64")
        assert qemu
        cmd = [qemu, "-L", str(root), "-cpu", model.qemu_cpu, "-r", GUEST_KERNEL_RELEASE,
               *(["-0", argv0] if argv0 else []), exe, *[str(a) for a in argv[1:]]]
        return cmd, env, root

    @staticmethod
    def _execute(cmd: list[str], env: dict[str, str], timeout: float | None,
                 cwd: str | os.PathLike | None) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.perf_counter()
        # No core files: QEMU writes one for a guest that dies of a signal where ulimit allows.
        result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=timeout,
                                stdin=subprocess.DEVNULL,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
        return result, time.perf_counter() - t0

    def run_plain(self, core: str, argv: Sequence[str | os.PathLike], *,
                  site: str | os.PathLike | None = None,
                  timeout: float | None = DEFAULT_TIMEOUT,
                  env_extra: Mapping[str, str] | None = None,
                  cwd: str | os.PathLike | None = None) -> PlainRun:
        """Run ``argv`` on cortex-``core`` without the plugin (for emulated wall time, which is
        host time, not device latency). Arguments as for :meth:`run_counted`."""
        cmd, env, _ = self._command(core, argv, site, env_extra)
        result, wall = self._execute(cmd, env, timeout, cwd)
        return PlainRun(core_model(core).name, tuple(str(a) for a in argv), result.returncode,
                        result.stdout.decode(errors="replace"),
                        result.stderr.decode(errors="replace"), wall)

    def run_counted(self, core: str, argv: Sequence[str | os.PathLike], *,
                    site: str | os.PathLike | None = None,
                    timeout: float | None = DEFAULT_TIMEOUT,
                    env_extra: Mapping[str, str] | None = None,
                    cwd: str | os.PathLike | None = None) -> CountedRun:
        """Run ``argv`` on cortex-``core`` ("a53", "a72", "a76") under the counting plugin.

        ``argv[0]``: ``"python"`` is the lab's aarch64 CPython 3.11 (the guest sees
        /usr/bin/python3.11), ``"ddq-run"`` the cached static runtime (rebuilt when runtime/
        changed), anything else a host path to an aarch64 executable (static, or dynamic
        against the sysroot's libraries). ``site``: "ort", "litert", "tflite" (PYTHONPATH is then
        the guest path /opt/ddq-edge/site-<name>) or a host folder. The environment is pinned
        (PATH, LANG=C.UTF-8, HOME in the cache, PYTHONHASHSEED=0, PYTHONDONTWRITEBYTECODE=1,
        OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1, ORT_DISABLE_TELEMETRY=1, PYTHONPATH);
        ``env_extra`` is applied last. A guest that runs longer than ``timeout`` seconds is
        killed and subprocess.TimeoutExpired raised.

        The same run gives the same counts, exactly, for a single-threaded guest; with threads,
        a section between two marks of one thread is exact when it does not synchronize with
        the others (waiting in a futex or spinning depends on timing). A non-zero exit is
        reported in ``returncode`` (``.check()`` raises); EmulationError when QEMU produced no
        counts at all (it did not start, or the program could not be loaded)."""
        cmd, env, _ = self._command(core, argv, site, env_extra)
        plugin = self.plugin()
        with tempfile.TemporaryDirectory(prefix="ddq-counts-") as tmp:
            out = Path(tmp) / "counts.jsonl"
            cmd[1:1] = ["-plugin", f"{_qemu_opt(str(plugin))},out={_qemu_opt(str(out))}"]
            result, wall = self._execute(cmd, env, timeout, cwd)
            stderr = result.stderr.decode(errors="replace")
            if not out.is_file():
                raise EmulationError(f"no counts from {' '.join(map(str, argv))} on "
                                     f"cortex-{core_model(core).name} (exit {result.returncode}):\n"
                                     f"{_tail(stderr)}")
            marks, exits = parse_counts(out)
            if not marks and not exits and result.returncode != 0:
                raise EmulationError(f"{' '.join(map(str, argv))} on cortex-{core_model(core).name}"
                                     f" retired no instruction (exit {result.returncode}):\n"
                                     f"{_tail(stderr)}")
        return CountedRun(core_model(core).name, tuple(str(a) for a in argv), result.returncode,
                          result.stdout.decode(errors="replace"), stderr, wall, marks, exits)
