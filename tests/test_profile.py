"""`ddq-edge profile`, `devices`, `emulator` and `demo` on the committed demo bundle.

The emulated tests need the lab (`ddq-edge emulator setup`, which `make test` runs); without it
they skip, or fail when DDQ_REQUIRE_TOOLCHAINS=1.
"""
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddq_edge.cli import main
from ddq_edge.profiling.profile import ENGINE_LABELS, baseline_keys, ProfileError

DEMO_BUNDLE = Path(__file__).parent / "data" / "demo-mnv2-ddq4.ddqb"
ALL_ENGINES = set(ENGINE_LABELS)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def baselines_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("baselines")


def lab_ready() -> bool:
    from ddq_edge.emulation import EmulatorUnavailable, check_tools, status

    try:
        check_tools()
    except EmulatorUnavailable:
        return False
    return status().ready


def need_lab():
    if not lab_ready():
        message = "the emulator lab is not set up (ddq-edge emulator setup)"
        if os.environ.get("DDQ_REQUIRE_TOOLCHAINS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def test_native_profile_of_every_engine(baselines_dir, tmp_path):
    result = invoke("profile", DEMO_BUNDLE, "--rounds", 5, "--baselines-dir", baselines_dir, "--json",
                    "--report", tmp_path / "report")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["engines"]) == ALL_ENGINES
    for key, entry in report["engines"].items():
        assert entry["native"]["runs"] == 5 and 0 < entry["native"]["median_ms"] <= entry["native"]["p90_ms"]
        assert entry["memory"]["peak_rss_mib"] > entry["memory"]["model_and_run_mib"] >= 0
        assert entry["model_bytes"] > 0
    assert report["engines"]["ddq-edge"]["model_bytes"] == DEMO_BUNDLE.stat().st_size
    assert report["macs"] == sum(r["macs"] for r in report["ops"]) > 6_000_000
    assert sum(r.get("native_ms", 0) for r in report["ops"]) > 0
    files = sorted(p.name for p in (tmp_path / "report").iterdir())
    assert files == ["profile-layers.png", "profile-speedup.png", "profile.json", "profile.txt"]
    assert (tmp_path / "report" / "profile-layers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "report" / "profile.txt").read_text()
    assert "host median ms" in table and "LiteRT XNNPACK int8" in table and "wall clock on this machine" in table


def test_emulated_profile_counts_repeat_exactly(baselines_dir):
    need_lab()
    reports = []
    for _ in range(2):
        result = invoke("profile", DEMO_BUNDLE, "--device", "rpi4", "--emulate", "--no-native",
                        "--emulated-runs", 1, "--baselines-dir", baselines_dir, "--json")
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.stdout))
    first, second = reports
    assert first["device"]["qemu_cpu"] == "cortex-a72"
    for key in ALL_ENGINES:
        a, b = first["engines"][key]["emulated"], second["engines"][key]["emulated"]
        assert a["instructions"] > 1e5
        assert abs(a["instructions"] - b["instructions"]) <= 1e-3 * a["instructions"], key
        assert a["estimated_ms"] > 0 and set(a["by_class"]) >= {"simd_fp", "simd_mul", "load"}
    ops = first["ops"]
    assert all(r["instructions"] > 0 for r in ops if r["kind"] in ("conv2d", "fully_connected"))
    # the per-op counts account for (almost) all of the runtime's instructions per inference
    per_op = sum(r["instructions"] for r in ops)
    assert 0.95 < per_op / first["engines"]["ddq-edge"]["emulated"]["instructions"] <= 1.0


def test_profile_errors_are_clear(baselines_dir, tmp_path, monkeypatch):
    result = invoke("profile", DEMO_BUNDLE, "--device", "rpi9", "--no-native")
    assert result.exit_code == 2 and "unknown device 'rpi9'" in result.stderr and "rpi5" in result.stderr
    result = invoke("profile", DEMO_BUNDLE, "--baselines", "float,fp16")
    assert result.exit_code == 2 and "unknown baseline group 'fp16'" in result.stderr
    result = invoke("profile", DEMO_BUNDLE, "--emulate", "--no-native")
    assert result.exit_code == 2 and "--emulate needs --device" in result.stderr
    # baselines of another bundle
    other = tmp_path / "other.ddqb"
    other.write_bytes(DEMO_BUNDLE.read_bytes())
    invoke("profile", other, "--baselines", "float", "--rounds", 3, "--baselines-dir", tmp_path / "b")
    from ddq_edge.bundle import read_bundle, write_bundle

    graph = read_bundle(DEMO_BUNDLE)
    graph.metadata["source"] = "a different model"
    write_bundle(graph, other)
    result = invoke("profile", other, "--baselines", "float", "--rounds", 3, "--baselines-dir", tmp_path / "b")
    assert result.exit_code == 2 and "built from another bundle" in result.stderr
    # no QEMU on the PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    result = invoke("profile", DEMO_BUNDLE, "--device", "rpi4", "--emulate", "--no-native",
                    "--baselines", "", "--rounds", 3)
    assert result.exit_code == 2 and "qemu" in result.stderr and "apt-get install" in result.stderr
    # the demo asked to emulate says so before it trains, and writes nothing
    result = invoke("demo", "--emulate", "-o", tmp_path / "demo")
    assert result.exit_code == 2 and "apt-get install" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_baseline_groups():
    assert baseline_keys("float,int8") == ["litert-float", "ort-float", "litert-int8", "ort-int8"]
    assert baseline_keys("") == []
    with pytest.raises(ProfileError):
        baseline_keys("int4")


def test_devices_command_lists_the_profiles():
    result = invoke("devices")
    assert result.exit_code == 0
    for device in ("rpi-zero-2w", "rpi3", "rpi4", "rpi5", "cortex-a53", "cortex-a72", "cortex-a76"):
        assert device in result.output
    listed = json.loads(invoke("devices", "--json").output)
    assert {d["id"] for d in listed} >= {"rpi4", "rpi5"}


def test_quick_demo_writes_its_report(tmp_path):
    """The demo's pipeline end to end, with one epoch per phase and no emulation (the full demo
    with emulation is the README's main command; its timing is in benchmarks/RESULTS.md)."""
    result = invoke("demo", "--quick", "--no-emulate", "-o", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "demo"
    summary = (folder / "summary.md").read_text()
    facts = json.loads((folder / "demo.json").read_text())
    check = facts["runtime_check"]
    assert check["bit_exact_samples"] == check["samples"] == 256
    assert "identical bit for bit" in summary and "profile-native-speedup.png" in summary
    assert "Skipped: --no-emulate" in summary
    for name in ("ddq-model.pt", "ddq-model.ddqb", "profile-native.json", "profile-native-layers.png"):
        assert (folder / name).exists(), name
