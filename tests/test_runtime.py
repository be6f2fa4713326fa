"""The C runtime through its Python binding, against the numpy reference, with tolerance 0.

Exactness is checked on float32 bit patterns: the last op is a dequantize, f32(q − zp)·scale,
which is injective on the codes, so equal bits mean equal integer codes. The conformance tests
run every kernel set this machine has (x86-64: x86vnni where the CPU has AVX-VNNI, x86 where
it has AVX2, generic and reference; aarch64: neondot where the CPU has the dot product, neon,
generic and reference); the aarch64 sets are also run under QEMU by tests/test_runtime_builds.py,
and so is the x86 set (qemu-x86_64 -cpu max has AVX2).
"""
import os
import platform
import threading
from pathlib import Path

import numpy as np
import pytest

from ddq_edge import Runtime
from ddq_edge.bundle import BundleError, encode_bundle, read_bundle, write_bundle
from ddq_edge.ir import Graph, Op, QuantParams, Tensor
from ddq_edge.reference import run
from ddq_edge.runtime import RuntimeLoadError, cpu_features
from ddq_edge.testing.kernel_cases import kernel_cases
from ddq_edge.testing.random_graphs import FEATURES, graph_grid

DEMO_BUNDLE = Path(__file__).parent / "data" / "demo-mnv2-ddq4.ddqb"
GRID_SIZE = 120


def available_kernel_sets() -> list[str]:
    """The kernel sets this build has and this CPU runs, best first."""
    sets = []
    for name in ("neondot", "neon", "x86vnni", "x86", "generic", "reference"):
        try:
            Runtime(DEMO_BUNDLE, kernels=name)
        except (ValueError, RuntimeLoadError):  # unknown to this build / not for this CPU
            continue
        sets.append(name)
    return sets


KERNEL_SETS = available_kernel_sets()


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """(graph, input, bundle path) for a grid covering every op, bit width and layout feature."""
    root = tmp_path_factory.mktemp("grid")
    cases = []
    for i, (graph, x) in enumerate(graph_grid(GRID_SIZE)):
        path = root / f"g{i:03d}.ddqb"
        write_bundle(graph, path)
        cases.append((graph, x, path))
    return cases


@pytest.fixture(scope="module")
def grid_expected(grid):
    """The numpy reference's output for each grid graph."""
    return [run(graph, x) for graph, x, _ in grid]


@pytest.fixture(scope="module")
def demo_images():
    """256 test images of the task the demo model was trained on (generated offline)."""
    from ddq_edge.data import get_task

    x, y = get_task("digits-hard").test.tensors
    return np.asarray(x[:256], np.float32), np.asarray(y[:256])


# --------------------------------------------------------------------------- exactness

def best_kernel_set() -> str:
    """What the dispatch should pick here: on aarch64 neondot with the dot product, else neon; on
    x86-64, x86vnni with AVX2 and AVX-VNNI, x86 with AVX2 alone."""
    features = cpu_features().split()
    if platform.machine() in ("aarch64", "arm64"):
        return "neondot" if "asimddp" in features else "neon"
    if platform.machine() in ("x86_64", "AMD64") and "avx2" in features:
        return "x86vnni" if "avxvnni" in features else "x86"
    return "generic"


def test_kernel_sets_of_this_machine():
    assert KERNEL_SETS[-2:] == ["generic", "reference"]
    assert KERNEL_SETS[0] == best_kernel_set()


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_random_graphs_match_the_reference_bit_for_bit(grid, grid_expected, kernels):
    seen = set()
    for (graph, x, path), expected in zip(grid, grid_expected):
        got = Runtime(path, kernels=kernels).run(x)
        assert got.shape == expected.shape
        assert np.array_equal(bits(got), bits(expected)), (kernels, path.name, graph.metadata)
        seen.update(op.kind for op in graph.ops)
        seen.add(graph.metadata.get("feature"))
    assert seen >= set(FEATURES) | {"conv2d", "fully_connected", "add", "avg_pool", "max_pool",
                                     "global_avg_pool", "requantize", "reshape", "quantize",
                                     "dequantize"}


@pytest.fixture(scope="module")
def demo_expected(demo_images):
    return run(DEMO_BUNDLE, demo_images[0])


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_demo_model_matches_the_reference_bit_for_bit(demo_images, demo_expected, kernels):
    x, labels = demo_images
    runtime = Runtime(DEMO_BUNDLE, threads=2, kernels=kernels)
    got = runtime.run(x)
    assert np.array_equal(bits(got), bits(demo_expected))
    assert (got.argmax(1) == labels).mean() > 0.85  # the model, not just the arithmetic, works


@pytest.fixture(scope="module")
def fast_path_cases(tmp_path_factory):
    """(case, bundle path, reference output) for the fast kernels' edge cases."""
    root = tmp_path_factory.mktemp("kernel-cases")
    cases = []
    for i, case in enumerate(kernel_cases()):
        path = root / f"k{i:02d}.ddqb"
        write_bundle(case.graph, path)
        cases.append((case, path, run(case.graph, case.x)))
    return cases


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_fast_path_edge_cases_match_the_reference_bit_for_bit(fast_path_cases, kernels):
    """Tails of the 8-channel blocks and 8-pixel tiles, several panels, small and odd maps,
    accumulators at the int32 bound, multipliers from 2^-31 to 2^20; 1, 3 and 4 threads (so
    that work ranges start inside a block of 8 channels)."""
    for case, path, expected in fast_path_cases:
        for threads in (1, 3, 4):
            got = Runtime(path, kernels=kernels, threads=threads).run(case.x)
            assert np.array_equal(bits(got), bits(expected)), (kernels, threads, case.name)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_thread_count_does_not_change_outputs(grid, demo_images, threads, kernels):
    for graph, x, path in grid[::4]:
        assert np.array_equal(bits(Runtime(path, threads=threads, kernels=kernels).run(x)),
                              bits(Runtime(path, kernels=kernels).run(x)))
    x = demo_images[0][:32]
    assert np.array_equal(bits(Runtime(DEMO_BUNDLE, threads=threads, kernels=kernels).run(x)),
                          bits(Runtime(DEMO_BUNDLE, threads=1, kernels=kernels).run(x)))


def test_batch_runs_sample_by_sample(grid):
    graph, x, path = grid[0]
    runtime = Runtime(path)
    batch = np.concatenate([x, x[:1] * np.float32(0.5)])
    together = runtime.run(batch)
    apart = np.concatenate([runtime.run(sample) for sample in batch])  # (C, H, W): batch added
    assert np.array_equal(bits(together), bits(apart))


def test_separate_runtimes_run_concurrently(demo_images):
    """run() releases the GIL: two Python threads, two sessions, same results as sequentially."""
    x = demo_images[0][:16]
    expected = Runtime(DEMO_BUNDLE).run(x)
    results = [None, None]

    def work(i):
        results[i] = Runtime(DEMO_BUNDLE).run(x)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for r in results:
        assert np.array_equal(bits(r), bits(expected))


# --------------------------------------------------------------------------- memory plan

def check_plan(runtime: Runtime) -> None:
    plan = runtime.memory_plan()
    assert runtime.arena_bytes == max((off + size for _, off, size, _, _ in plan), default=0)
    for i, (t, off, size, first, last) in enumerate(plan):
        assert off % 64 == 0 and size % 64 == 0 and size > 0
        for t2, off2, size2, first2, last2 in plan[i + 1:]:
            alive_together = first <= last2 and first2 <= last
            if alive_together:
                assert off + size <= off2 or off2 + size2 <= off, (t, t2)


def test_arena_equals_the_liveness_bound(grid):
    for _, _, path in grid:
        runtime = Runtime(path)
        check_plan(runtime)
        assert runtime.arena_bytes == runtime.liveness_bound, path.name
    demo = Runtime(DEMO_BUNDLE)
    check_plan(demo)
    assert demo.arena_bytes == demo.liveness_bound
    # the bound is the bytes of the largest set of tensors alive at one op, rounded to 64 B each
    graph = read_bundle(DEMO_BUNDLE)
    names = list(graph.tensors)
    alive_sizes = {}
    for t, _, size, first, last in demo.memory_plan():
        tensor = graph.tensors[names[t]]
        assert size == -(-int(np.prod(tensor.shape)) // 64) * 64
        for op in range(first, last + 1):
            alive_sizes[op] = alive_sizes.get(op, 0) + size
    assert demo.liveness_bound == max(alive_sizes.values())


# --------------------------------------------------------------------------- errors

@pytest.fixture(scope="module")
def small_bundle(grid):
    graph, _, path = grid[1]
    return path.read_bytes()


def test_every_truncation_is_a_clean_error(small_bundle, tmp_path):
    path = tmp_path / "cut.ddqb"
    for cut in range(len(small_bundle)):
        path.write_bytes(small_bundle[:cut])
        with pytest.raises(BundleError):
            Runtime(path)


def test_bit_flips_are_clean_errors(small_bundle, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "flip.ddqb"
    for bit in rng.integers(0, 8 * len(small_bundle), 300):
        data = bytearray(small_bundle)
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        with pytest.raises(BundleError):
            Runtime(path)


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(OSError, match="cannot open"):
        Runtime(tmp_path / "missing.ddqb")
    junk = tmp_path / "junk.ddqb"
    junk.write_bytes(b"not a bundle at all, just text")
    with pytest.raises(BundleError, match="bad magic"):
        Runtime(junk)
    newer = bytearray(DEMO_BUNDLE.read_bytes())
    newer[8] = 2
    (tmp_path / "newer.ddqb").write_bytes(bytes(newer))
    with pytest.raises(BundleError, match=r"version 2\.0 is newer than this reader \(1\.x\)"):
        Runtime(tmp_path / "newer.ddqb")
    with pytest.raises(ValueError, match="threads must be"):
        Runtime(DEMO_BUNDLE, threads=0)


def overflowing_graph() -> Graph:
    """Valid to the bundle format, but its int32 accumulator could overflow."""
    g = Graph()
    g.add_tensor(Tensor("x", (1, 4), "float32"))
    g.add_tensor(Tensor("q", (1, 4), "uint8", QuantParams(np.float32([0.1]), 0, 8, 0, 255)))
    g.add_tensor(Tensor("w", (1, 4), "int8", QuantParams(np.float32([0.1]), 0, 8, -127, 127),
                        np.full((1, 4), 127, np.int8)))
    g.add_tensor(Tensor("b", (1,), "int32", None, np.array([2 ** 31 - 1000], np.int32)))
    g.add_tensor(Tensor("y", (1, 1), "uint8", QuantParams(np.float32([0.5]), 0, 8, 0, 255)))
    g.add_tensor(Tensor("out", (1, 1), "float32"))
    g.add_op(Op("quantize", "quant", ["x"], ["q"]))
    g.add_op(Op("fully_connected", "fc", ["q", "w", "b"], ["y"], {"act_min": 0, "act_max": 255}))
    g.add_op(Op("dequantize", "deq", ["y"], ["out"]))
    g.inputs, g.outputs = ["x"], ["out"]
    return g


def test_graph_errors_name_the_op(tmp_path):
    path = tmp_path / "overflow.ddqb"
    write_bundle(overflowing_graph(), path)
    with pytest.raises(RuntimeLoadError, match=r"op #1 \('fc', fully_connected\).*accumulator could overflow"):
        Runtime(path)
    graph = overflowing_graph()
    graph.ops[1].attrs = {"act_min": 0}
    path.write_bytes(encode_bundle(graph))
    with pytest.raises(RuntimeLoadError, match="missing attribute 'act_max'"):
        Runtime(path)
    graph = overflowing_graph()
    graph.tensors["b"].data[:] = 0
    graph.ops[1].attrs["act_max"] = 300
    path.write_bytes(encode_bundle(graph))
    with pytest.raises(RuntimeLoadError, match=r"activation range \[0, 300\] not inside"):
        Runtime(path)


def test_input_errors(grid):
    _, x, path = grid[0]
    runtime = Runtime(path)
    with pytest.raises(TypeError, match="float32"):
        runtime.run(x.astype(np.float64))
    with pytest.raises(ValueError, match="expected shape"):
        runtime.run(np.zeros((1, 99, 1, 1), np.float32))


# --------------------------------------------------------------------------- introspection

def test_info_timings_and_kernel_selection(monkeypatch):
    runtime = Runtime(DEMO_BUNDLE)
    assert runtime.input_shape == (1, 1, 16, 16) and runtime.output_shape == (1, 10)
    assert runtime.metadata["architecture"]["name"] == "mobilenet_v2"
    assert runtime.kernels == KERNEL_SETS[0]  # the best set this CPU runs (best_kernel_set)
    assert runtime.kernels == best_kernel_set()
    assert cpu_features()
    runtime.run(np.zeros((2, 1, 16, 16), np.float32))
    timings = runtime.op_timings()
    assert len(timings) == len(read_bundle(DEMO_BUNDLE).ops)
    assert all(t.seconds >= 0 for t in timings) and sum(t.seconds for t in timings) > 0
    assert {t.kind for t in timings} >= {"conv2d", "add", "fully_connected"}
    for name in KERNEL_SETS:
        monkeypatch.setenv("DDQ_KERNELS", name)
        assert Runtime(DEMO_BUNDLE).kernels == name
        assert Runtime(DEMO_BUNDLE, kernels="reference").kernels == "reference"  # the option wins
    monkeypatch.setenv("DDQ_KERNELS", "no-such-kernels")
    with pytest.raises(ValueError, match="unknown kernel set 'no-such-kernels'"):
        Runtime(DEMO_BUNDLE)
    monkeypatch.delenv("DDQ_KERNELS")
    with pytest.raises(ValueError, match="unknown kernel set"):
        Runtime(DEMO_BUNDLE, kernels="bogus")
