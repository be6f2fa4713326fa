"""The C runtime's other builds, driven from pytest: ASan+UBSan, the libFuzzer loader harness,
the aarch64 cross build under qemu-aarch64 as Cortex-A53, A72 and A76, and the host build under
qemu-x86_64 (-cpu max: AVX2, so the x86 set runs even where the machine has no AVX2).

Every kernel set of a build is held to the numpy reference bit for bit on the random grid
(graph_grid(120), as in tests/test_runtime.py) and on the fast kernels' edge cases: x86vnni and
x86 (where the CPU has AVX-VNNI, AVX2), generic and reference under the sanitizers, neondot
(Cortex-A76 only), neon, generic and reference under qemu-aarch64, x86, generic and reference
under qemu-x86_64.

These need cmake, a C compiler, clang (fuzzer), gcc-aarch64-linux-gnu and qemu-user; `make
test` installs them (scripts/install-toolchains.sh) and sets DDQ_REQUIRE_TOOLCHAINS=1, which
turns a missing tool into a failure instead of a skip.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ddq_edge import Runtime
from ddq_edge.bundle import write_bundle
from ddq_edge.reference import run
from ddq_edge.runtime import cpu_features
from ddq_edge.testing.kernel_cases import kernel_cases
from ddq_edge.testing.random_graphs import graph_grid

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"
BUILD_ROOT = ROOT / "build" / "tests"
DEMO_BUNDLE = ROOT / "tests" / "data" / "demo-mnv2-ddq4.ddqb"
REGRESSIONS = RUNTIME / "tests" / "fuzz_regressions"
QEMU_CPUS = ("cortex-a53", "cortex-a72", "cortex-a76")
ARM_SYSROOT = Path("/usr/aarch64-linux-gnu")
GRID_SIZE = 120
# x86 builds: x86vnni where this CPU has AVX-VNNI, x86 where it has AVX2 (the QEMU test below
# runs x86 regardless; QEMU 7.2 has no AVX-VNNI)
HOST_KERNEL_SETS = tuple(k for k, f in (("x86vnni", "avxvnni"), ("x86", "avx2")) if f in cpu_features().split()) + (
    "generic", "reference")
ARM_KERNEL_SETS = ("neondot", "neon", "generic", "reference")  # aarch64 builds
# the sets each emulated core runs: the dot product (neondot) needs ARMv8.2's FEAT_DotProd
CPU_KERNEL_SETS = {"cortex-a53": ARM_KERNEL_SETS[1:], "cortex-a72": ARM_KERNEL_SETS[1:],
                   "cortex-a76": ARM_KERNEL_SETS}
FUZZ_RUNS = 100_000
# test_runtime's line for the demo model's int16 accumulation plan (prepare__generic.c): every
# GEMM convolution but the first (8-bit input, 8-bit weights: int32) sums its k-blocks in int16
# lanes on the neon set; test_runtime checks each block's K_blk against a brute-force search.
DEMO_ACC16_PLAN = (f"{DEMO_BUNDLE}: int16 accumulation in 34 of 35 GEMM convolutions "
                   "(705 of 707 blocks of 8 channels)")
# and the path the neon set takes for each: the lowest-bit convolutions sum runs of products in
# byte lanes (conv_gemm_4x24c2_acc8__neon.c); test_runtime checks every run of the plans on pairs
# of taps (gemm_pairs__neon.c) against a direct computation.
DEMO_NEON_PATHS = (f"{DEMO_BUNDLE}: neon GEMM paths of 35 convolutions: int8 accumulation 15, int16 20, "
                   "byte products in int16 0")
# and what the neondot set (the A76) prepares: the depthwise layers on its SDOT rows (stride 1,
# maps wider than 4) and the blocks of GEMM channels that share one rounding shift (SQRSHRN);
# test_runtime checks their scaled weights against the model's
DEMO_NEONDOT_PATHS = (f"{DEMO_BUNDLE}: neondot depthwise rows for 5 of 17 depthwise convolutions, "
                      "one rounding shift in 945 of 951 GEMM blocks")


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"missing tools: {', '.join(missing)} (scripts/install-toolchains.sh installs them)"
        if os.environ.get("DDQ_REQUIRE_TOOLCHAINS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def cmake_build(name: str, *options: str, env: dict[str, str] | None = None) -> Path:
    """Configure and build runtime/ into build/tests/<name> (incremental across runs)."""
    need("cmake")
    build = BUILD_ROOT / name
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    full_env = {**os.environ, **(env or {})}
    subprocess.run(["cmake", "-S", str(RUNTIME), "-B", str(build), *generator, *options],
                   check=True, env=full_env, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "-j", "2"], check=True, env=full_env,
                   stdout=subprocess.DEVNULL)
    return build


def sh(*args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def asan_build() -> Path:
    need("cc")
    return cmake_build("asan", "-DCMAKE_BUILD_TYPE=Debug", "-DDDQ_SANITIZE=ON")


@pytest.fixture(scope="module")
def arm_build() -> Path:
    need("aarch64-linux-gnu-gcc", "qemu-aarch64")
    return cmake_build("aarch64", "-DCMAKE_BUILD_TYPE=Release", "-DDDQ_STATIC=ON",
                       f"-DCMAKE_TOOLCHAIN_FILE={RUNTIME / 'cmake' / 'aarch64-linux-gnu.cmake'}")


def write_cases(root: Path, graphs, prefix: str) -> list[tuple[Path, Path, np.ndarray]]:
    cases = []
    for i, (graph, x) in enumerate(graphs):
        bundle, inp = root / f"{prefix}{i:03d}.ddqb", root / f"{prefix}{i:03d}-x.npy"
        write_bundle(graph, bundle)
        np.save(inp, x)
        cases.append((bundle, inp, run(graph, x)))
    return cases


@pytest.fixture(scope="module")
def arm_asan_build() -> Path:
    """aarch64, ASan + UBSan, linked dynamically: runs under qemu-aarch64 -L ARM_SYSROOT."""
    need("aarch64-linux-gnu-gcc", "qemu-aarch64")
    for lib in ("libasan.so", "libubsan.so"):
        if not list((ARM_SYSROOT / "lib").glob(lib + ".*")):
            message = f"missing {ARM_SYSROOT / 'lib' / lib}.* (scripts/install-toolchains.sh installs it)"
            if os.environ.get("DDQ_REQUIRE_TOOLCHAINS") == "1":
                pytest.fail(message)
            pytest.skip(message)
    return cmake_build("aarch64-asan", "-DCMAKE_BUILD_TYPE=Debug", "-DDDQ_SANITIZE=ON",
                       f"-DCMAKE_TOOLCHAIN_FILE={RUNTIME / 'cmake' / 'aarch64-linux-gnu.cmake'}")


@pytest.fixture(scope="module")
def grid_cases(tmp_path_factory):
    """Bundles, inputs (.npy) and reference outputs for the grid of small random graphs."""
    return write_cases(tmp_path_factory.mktemp("builds-grid"), graph_grid(GRID_SIZE), "g")


@pytest.fixture(scope="module")
def conformance_cases(grid_cases, tmp_path_factory):
    """The grid and the fast kernels' edge cases (ddq_edge.testing.kernel_cases)."""
    edge = [(case.graph, case.x) for case in kernel_cases()]
    return grid_cases + write_cases(tmp_path_factory.mktemp("builds-kernel-cases"), edge, "k")


def assert_same_bits(path: Path, expected: np.ndarray) -> None:
    got = np.load(path)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), path


# --------------------------------------------------------------------------- ASan + UBSan

def test_c_unit_tests_under_sanitizers(asan_build, conformance_cases):
    # and every kernel set with 1–4 threads on the demo model and every conformance bundle,
    # byte for byte against the reference set, with no allocation in a run
    bundles = [bundle for bundle, _, _ in conformance_cases]
    out = sh(asan_build / "test_runtime", DEMO_BUNDLE, *bundles).stdout
    assert "all checks passed" in out
    assert DEMO_ACC16_PLAN in out.splitlines()


def test_loader_rejects_corruption_cleanly_under_sanitizers(asan_build, grid_cases):
    for bundle, _, _ in grid_cases[:4]:  # every truncation, 300 bit flips each
        out = sh(asan_build / "test_corruption", bundle, 300, 11).stdout
        assert ": 0 accepted" in out
    out = sh(asan_build / "test_corruption", DEMO_BUNDLE, 300, 5, 1009).stdout
    assert ": 0 accepted" in out


@pytest.mark.parametrize("kernels", HOST_KERNEL_SETS)
def test_ddq_run_matches_the_reference_under_sanitizers(asan_build, conformance_cases, kernels, tmp_path):
    for i, (bundle, inp, expected) in enumerate(conformance_cases):
        out = tmp_path / f"y{i}.npy"
        sh(asan_build / "ddq-run", bundle, "--input", inp, "--output", out, "--threads", 1 + i % 4,
           "--kernels", kernels)
        assert_same_bits(out, expected)


def test_ddq_run_info_bench_and_usage(asan_build):
    info = sh(asan_build / "ddq-run", DEMO_BUNDLE, "--info").stdout
    runtime = Runtime(DEMO_BUNDLE)
    assert f"arena            {runtime.arena_bytes} bytes (liveness bound {runtime.liveness_bound})" in info
    assert "input            input (1, 1, 16, 16) float32" in info
    bench = sh(asan_build / "ddq-run", DEMO_BUNDLE, "--bench", 2, "--threads", 2).stdout
    rows = [line for line in bench.splitlines() if line[:1].isdigit()]
    assert len(rows) == len(runtime.info["ops"])
    assert "median" in bench and "p90" in bench
    bad = subprocess.run([str(asan_build / "ddq-run"), DEMO_BUNDLE, "--threads", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--threads must be" in bad.stderr
    junk = subprocess.run([str(asan_build / "ddq-run"), __file__, "--info"], capture_output=True, text=True)
    assert junk.returncode == 1 and "bad magic" in junk.stderr


# --------------------------------------------------------------------------- fuzzing

def test_fuzzer_runs_100k_loader_executions_cleanly(grid_cases, tmp_path):
    need("clang")
    build = cmake_build("fuzz", "-DCMAKE_BUILD_TYPE=Debug", "-DDDQ_FUZZ=ON", "-DDDQ_TOOLS=OFF",
                        "-DDDQ_TESTS=OFF", env={"CC": "clang"})
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for bundle, _, _ in grid_cases[:17]:
        shutil.copy(bundle, seeds)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # libFuzzer's memory check reads the peak RSS (getrusage), which a child keeps from the process
    # that started it (Linux carries it across fork and exec): under a pytest process of 2 GB
    # it reports 2 GB before its first input. So the check is on single allocations instead, at
    # the same 2 GB; leaks are ASan's.
    limits = ("-rss_limit_mb=0", "-malloc_limit_mb=2048")
    # Crashes found earlier, kept as regression cases: each must now load or fail cleanly.
    regressions = sorted(p for p in REGRESSIONS.glob("*") if p.is_file() and p.suffix != ".md")
    if regressions:
        sh(build / "fuzz_loader", *limits, *regressions)
    result = sh(build / "fuzz_loader", f"-runs={FUZZ_RUNS}", "-max_len=20000", "-timeout=20",
                "-seed=1", *limits, corpus, seeds, cwd=tmp_path)
    assert f"Done {FUZZ_RUNS} runs" in result.stderr


# --------------------------------------------------------------------------- aarch64 under QEMU

@pytest.fixture(scope="module")
def demo_on_x86(tmp_path_factory):
    """Eight demo-task images and what the Python binding on this machine writes for them."""
    from ddq_edge.data import get_task

    root = tmp_path_factory.mktemp("demo-x86")
    x = np.asarray(get_task("digits-hard").test.tensors[0][:8], np.float32)
    np.save(root / "x.npy", x)
    np.save(root / "y-binding.npy", Runtime(DEMO_BUNDLE).run(x))
    return root


@pytest.mark.parametrize("cpu", QEMU_CPUS)
def test_aarch64_build_is_bit_exact_under_qemu(arm_build, conformance_cases, demo_on_x86, cpu, tmp_path):
    qemu = ["qemu-aarch64", "-cpu", cpu]
    # unit tests, the NEON requantization against the scalar one, every set on the demo model
    out = sh(*qemu, arm_build / "test_runtime", DEMO_BUNDLE).stdout
    assert "all checks passed" in out
    assert DEMO_ACC16_PLAN in out.splitlines()  # the low-bit layers take the int16 path
    assert DEMO_NEON_PATHS in out.splitlines()  # and the lowest-bit ones the int8 path
    expected_features = "asimd asimdhp asimddp" if cpu == "cortex-a76" else "asimd"
    assert f"(cpu: {expected_features})" in out  # the dispatch sees what each core has
    assert (DEMO_NEONDOT_PATHS in out.splitlines()) == (cpu == "cortex-a76")
    info = sh(*qemu, arm_build / "ddq-run", DEMO_BUNDLE, "--info").stdout
    best = CPU_KERNEL_SETS[cpu][0]  # the default: neondot on the A76, neon on the A53 and A72
    assert f"kernels          {best} (cpu: {expected_features})" in info
    if cpu != "cortex-a76":
        refused = subprocess.run(qemu + [str(arm_build / "ddq-run"), str(DEMO_BUNDLE), "--info", "--kernels", "neondot"],
                                 capture_output=True, text=True)
        assert refused.returncode != 0
        assert f"kernel set 'neondot' does not run on this CPU ({expected_features})" in refused.stderr
    for kernels in CPU_KERNEL_SETS[cpu]:
        for i, (bundle, inp, expected) in enumerate(conformance_cases):
            y = tmp_path / f"y{i}.npy"
            sh(*qemu, arm_build / "ddq-run", bundle, "--input", inp, "--output", y, "--threads", 1 + i % 3,
               "--kernels", kernels)
            assert_same_bits(y, expected)
        # the demo model: the same .npy, byte for byte, as the Python binding on x86
        y = tmp_path / "y-demo.npy"
        sh(*qemu, arm_build / "ddq-run", DEMO_BUNDLE, "--input", demo_on_x86 / "x.npy", "--output", y,
           "--threads", 2, "--kernels", kernels)
        assert y.read_bytes() == (demo_on_x86 / "y-binding.npy").read_bytes(), kernels


def test_aarch64_kernels_under_sanitizers_in_qemu(arm_asan_build, conformance_cases):
    """The neondot and neon kernels (and generic, reference) on aarch64 under ASan + UBSan, as a
    Cortex-A76 (which runs every set): test_runtime runs
    every set with 1–4 threads on every conformance bundle and on the demo model, checks that a
    run allocates nothing and compares each set with the reference set byte for byte. One
    process for all bundles (an instrumented start under QEMU takes about a second);
    LeakSanitizer does not work under QEMU's ptrace-like emulation, so leaks are left to the
    x86 sanitizer build."""
    bundles = [bundle for bundle, _, _ in conformance_cases]
    out = sh("qemu-aarch64", "-L", ARM_SYSROOT, "-cpu", "cortex-a76", arm_asan_build / "test_runtime", DEMO_BUNDLE,
             *bundles, env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}).stdout
    assert "all checks passed (cpu: asimd asimdhp asimddp)" in out


# --------------------------------------------------------------------------- x86-64 under QEMU

@pytest.fixture(scope="module")
def host_build() -> Path:
    need("cc")
    return cmake_build("native", "-DCMAKE_BUILD_TYPE=Release")


def test_x86_set_under_qemu(host_build, conformance_cases, tmp_path):
    """qemu-x86_64 -cpu max reports AVX2 (QEMU ≥ 7.2), so the x86 set runs the unit tests, the
    demo model and every conformance bundle against the reference set byte for byte with 1–4
    threads whatever the machine; -cpu qemu64 has no AVX2, and the dispatch falls back to
    generic and refuses x86."""
    need("qemu-x86_64")
    bundles = [bundle for bundle, _, _ in conformance_cases]
    out = sh("qemu-x86_64", "-cpu", "max", host_build / "test_runtime", DEMO_BUNDLE, *bundles).stdout
    assert "all checks passed (cpu: sse4.1 avx2)" in out
    info = sh("qemu-x86_64", "-cpu", "max", host_build / "ddq-run", DEMO_BUNDLE, "--info").stdout
    assert "kernels          x86 (cpu: sse4.1 avx2)" in info
    for i, (bundle, inp, expected) in enumerate(conformance_cases[::7]):
        y = tmp_path / f"y{i}.npy"
        sh("qemu-x86_64", "-cpu", "max", host_build / "ddq-run", bundle, "--input", inp, "--output", y,
           "--threads", 1 + i % 3, "--kernels", "x86")
        assert_same_bits(y, expected)
    info = sh("qemu-x86_64", "-cpu", "qemu64", host_build / "ddq-run", DEMO_BUNDLE, "--info").stdout
    assert "kernels          generic (cpu: none)" in info
    refused = subprocess.run(["qemu-x86_64", "-cpu", "qemu64", str(host_build / "ddq-run"), str(DEMO_BUNDLE),
                              "--info", "--kernels", "x86"], capture_output=True, text=True)
    assert refused.returncode == 1 and "kernel set 'x86' does not run on this CPU" in refused.stderr
