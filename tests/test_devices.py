"""Device profiles: every shipped profile loads and validates, inheritance, the cost model's
arithmetic, and clear errors for unknown devices and bad profiles."""
import json
import math
import shutil
from pathlib import Path

import pytest

from ddq_edge import devices
from ddq_edge.devices import (INSTRUCTION_CLASSES, CostModel, DeviceProfileError,
                              UnknownDeviceError, format_device_table, list_devices, load_device,
                              main_devices)

SHIPPED = ("cortex-a53", "cortex-a72", "cortex-a76", "rpi-zero-2w", "rpi3", "rpi4", "rpi5")
REPO_PROFILES = Path(__file__).resolve().parents[1] / "device_profiles"


@pytest.fixture(autouse=True)
def _default_profiles(monkeypatch):
    monkeypatch.delenv(devices.ENV_PROFILES, raising=False)


@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    """A copy of the shipped profiles that a test may break, selected through the env var."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    for path in REPO_PROFILES.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    monkeypatch.setenv(devices.ENV_PROFILES, str(folder))
    return folder


def test_instruction_classes_are_the_plugin_classes_in_order():
    assert INSTRUCTION_CLASSES == ("branch", "int_alu", "int_mul", "int_div", "load", "store",
                                   "fp_scalar", "simd_alu", "simd_mul", "simd_fp", "simd_load",
                                   "simd_store", "other")


def test_every_shipped_profile_loads_and_validates():
    profiles = list_devices()
    assert tuple(p.id for p in profiles) == SHIPPED
    for p in profiles:
        assert p.path.stem == p.id == p.name
        assert tuple(p.cost_model.cycles_per_instruction) == INSTRUCTION_CLASSES
        assert all(v > 0 for v in p.cost_model.cycles_per_instruction.values())
        assert p.cost_model.memory_stall_factor >= 1
        assert p.cost_model.sources and all(isinstance(s, str) for s in p.cost_model.sources)
        assert p.qemu_cpu == p.core.lower()
        assert p.cores == 4 and {"l1d", "l1i", "l2"} <= set(p.caches)
        assert "asimd" in p.features
        assert load_device(p.id) == p


def test_board_facts():
    pi4 = load_device("rpi4")
    assert (pi4.soc, pi4.core, pi4.clock_ghz) == ("BCM2711", "Cortex-A72", 1.8)
    assert (pi4.caches["l1d"].kib, pi4.caches["l1i"].kib, pi4.caches["l2"].kib) == (32, 48, 1024)
    assert pi4.caches["l2"].shared_by == 4 and list(pi4.memory.sizes_gb) == [1, 2, 4, 8]
    assert any("1.5 GHz" in note for note in pi4.notes)
    pi5 = load_device("rpi5")
    assert (pi5.soc, pi5.clock_ghz, pi5.caches["l2"].kib, pi5.caches["l2"].shared_by) == (
        "BCM2712", 2.4, 512, 1)
    assert (pi5.caches["l3"].kib, pi5.caches["l3"].shared_by) == (2048, 4)
    assert (load_device("rpi3").clock_ghz, load_device("rpi-zero-2w").clock_ghz) == (1.4, 1.0)
    assert load_device("rpi-zero-2w").memory.sizes_gb == (0.5,)
    # ARMv8.0 cores: no dot product, no fp16 arithmetic; the A76 (ARMv8.2) has both, not i8mm.
    for name in ("cortex-a53", "cortex-a72", "rpi-zero-2w", "rpi3", "rpi4"):
        features = load_device(name).features
        assert "dotprod" not in features and "fp16" not in features
        assert "aes" not in features  # and no crypto extension on the Pi SoCs / as generic
    for name in ("cortex-a76", "rpi5"):
        features = load_device(name).features
        assert "dotprod" in features and "fp16" in features and "i8mm" not in features


def test_boards_inherit_their_core_cost_model():
    for board, core in (("rpi-zero-2w", "cortex-a53"), ("rpi3", "cortex-a53"),
                        ("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")):
        b, c = load_device(board), load_device(core)
        assert b.cost_model_from == core and c.cost_model_from is None
        assert b.cost_model.cycles_per_instruction == c.cost_model.cycles_per_instruction
        assert b.cost_model.memory_stall_factor == c.cost_model.memory_stall_factor
        # The board's own sources (its product brief) come after the core's.
        assert b.cost_model.sources[:len(c.cost_model.sources)] == c.cost_model.sources
        assert any("product brief" in s for s in b.cost_model.sources[len(c.cost_model.sources):])


def test_inheritance_string_form_and_overrides(profile_dir):
    # board-a: rpi4's fields with the short form cost_model = "cortex-a72" (a top-level key,
    # so it goes before the [caches] table).
    text = (profile_dir / "rpi4.toml").read_text().replace('name = "rpi4"', 'name = "board-a"')
    head, _, rest = text.partition("[caches]")
    caches = "[caches]" + rest.partition("[cost_model]")[0]
    (profile_dir / "board-a.toml").write_text(head + 'cost_model = "cortex-a72"\n' + caches)
    a = load_device("board-a")
    a72 = load_device("cortex-a72")
    assert a.cost_model == a72.cost_model and a.cost_model_from == "cortex-a72"

    override = text.replace('name = "board-a"', 'name = "board-b"').replace(
        'inherit = "cortex-a72"',
        'inherit = "board-a"\nmemory_stall_factor = 1.5\n'
        'cycles_per_instruction = { simd_fp = 2.0 }')
    (profile_dir / "board-b.toml").write_text(override)
    b = load_device("board-b")
    assert b.cost_model_from == "board-a"
    assert b.cost_model.memory_stall_factor == 1.5
    assert b.cost_model.cycles_per_instruction["simd_fp"] == 2.0
    expected = dict(a72.cost_model.cycles_per_instruction, simd_fp=2.0)
    assert b.cost_model.cycles_per_instruction == expected


def test_inheritance_errors(profile_dir):
    text = (profile_dir / "rpi4.toml").read_text()
    (profile_dir / "rpi4.toml").write_text(text.replace('inherit = "cortex-a72"',
                                                         'inherit = "cortex_a72"'))
    with pytest.raises(DeviceProfileError) as error:
        load_device("rpi4")
    assert "rpi4.toml: cost_model.inherit: no profile 'cortex_a72'" in str(error.value)
    assert "did you mean 'cortex-a72'" in str(error.value)

    (profile_dir / "rpi4.toml").write_text(text.replace('inherit = "cortex-a72"',
                                                         'inherit = "rpi4"'))
    with pytest.raises(DeviceProfileError, match=r"rpi4\.toml: cost_model\.inherit: "
                                                 r"inheritance cycle: rpi4 -> rpi4"):
        load_device("rpi4")


def test_cost_model_arithmetic_on_a_hand_count():
    model = load_device("cortex-a72").cost_model
    cpi = model.cycles_per_instruction
    assert (cpi["simd_fp"], cpi["simd_load"], cpi["int_alu"], cpi["branch"]) == (1.0, 1.5, 0.5, 1.0)
    counts = {"simd_fp": 1000, "simd_load": 400, "int_alu": 200, "branch": 100}
    # 1000*1.0 + 400*1.5 + 200*0.5 + 100*1.0 = 1800 core cycles, x 1.15 memory stall factor.
    assert model.cycles_by_class(counts)["simd_load"] == 600.0
    assert model.cycles(counts) == pytest.approx(1800 * 1.15)
    assert model.cycles({}) == 0.0

    custom = CostModel({name: 1.0 for name in INSTRUCTION_CLASSES} | {"int_div": 10.0}, 1.25,
                       ["test"])
    assert custom.cycles({"int_div": 3, "load": 2, "other": 5}) == (30 + 2 + 5) * 1.25

    pi4 = load_device("rpi4")
    assert pi4.estimate_seconds(counts) == pytest.approx(1800 * 1.15 / 1.8e9)
    assert pi4.estimate_seconds(counts, threads=4) == pi4.estimate_seconds(counts)
    assert pi4.at_clock(1.5).estimate_seconds(counts) == pytest.approx(1800 * 1.15 / 1.5e9)
    assert load_device("cortex-a72").estimate_cycles(counts) == pi4.estimate_cycles(counts)


def test_cost_model_rejects_bad_counts_and_threads():
    model = load_device("rpi5").cost_model
    with pytest.raises(ValueError, match=r"unknown instruction class 'simd_fma'.*did you mean "
                                         r"'simd_fp'"):
        model.cycles({"simd_fma": 10})
    with pytest.raises(ValueError, match="count of 'load' must be finite and >= 0"):
        model.cycles({"load": -1})
    with pytest.raises(TypeError):
        model.cycles({"load": "12"})
    pi5 = load_device("rpi5")
    with pytest.raises(ValueError, match="threads=5: rpi5 has 4 cores"):
        pi5.estimate_seconds({"load": 1}, threads=5)
    with pytest.raises(ValueError):
        pi5.estimate_seconds({"load": 1}, threads=0)
    with pytest.raises(ValueError, match="must be > 0 cycles per instruction"):
        CostModel({name: 1.0 for name in INSTRUCTION_CLASSES} | {"load": -0.5}, 1.0, ["x"])
    with pytest.raises(ValueError, match="memory_stall_factor: must be a number >= 1"):
        CostModel({name: 1.0 for name in INSTRUCTION_CLASSES}, 0.9, ["x"])


def test_unknown_device_lists_ids_and_suggests_the_closest():
    with pytest.raises(UnknownDeviceError) as error:
        load_device("pi4")
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "unknown device 'pi4'" in message and "Did you mean 'rpi4'?" in message
    assert all(name in message for name in SHIPPED)
    for query, closest in (("pi5", "rpi5"), ("bcm2711", "rpi4"), ("a53", "cortex-a53"),
                           ("zero2w", "rpi-zero-2w"), ("raspberry pi 3", "rpi3")):
        with pytest.raises(UnknownDeviceError, match=f"Did you mean '{closest}'"):
            load_device(query)
    with pytest.raises(UnknownDeviceError) as error:
        load_device("qqqqqq")
    assert "Did you mean" not in str(error.value) and "rpi5" in str(error.value)
    with pytest.raises(UnknownDeviceError, match="no such profile file"):
        load_device("/nonexistent/board.toml")


def test_load_by_path_and_case_insensitive_id():
    by_path = load_device(REPO_PROFILES / "rpi5.toml")
    assert by_path == load_device("rpi5") == load_device("RPi5")
    assert load_device(str(REPO_PROFILES / "rpi5.toml")) == by_path


def _break(folder: Path, name: str, old: str, new: str) -> Path:
    path = folder / f"{name}.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("name,old,new,message", [
    ("cortex-a72", "simd_fp = 1.0 ", "", "cost_model.cycles_per_instruction.simd_fp: missing"),
    ("cortex-a72", "simd_fp = 1.0 ", "simd_fp = -1.0 ",
     "cost_model.cycles_per_instruction.simd_fp: must be > 0 cycles per instruction, got -1.0"),
    ("cortex-a72", "simd_fp = 1.0 ", "simd_fp = 1.0\nsimd_fma = 1.0 ",
     "cost_model.cycles_per_instruction.simd_fma: unknown instruction class"),
    ("cortex-a72", "memory_stall_factor = 1.15", "memory_stall_factor = 0.8",
     "cost_model.memory_stall_factor: must be a number >= 1"),
    ("cortex-a72", "sources = [", "sourcez = [", "cost_model.sourcez: unknown field"),
    ("rpi4", '"fp", "asimd"', '"fp", "neon"', "features: unknown feature 'neon' (write 'asimd')"),
    ("rpi4", "clock_ghz = 1.8\n", "", "clock_ghz: missing"),
    ("rpi4", "clock_ghz = 1.8", "clock_ghz = 1800", "clock_ghz: must be a clock in GHz"),
    ("rpi4", "clock_ghz = 1.8", "clock_ghs = 1.8", "clock_ghs: unknown field (did you mean "
                                                    "'clock_ghz'?)"),
    ("rpi4", 'name = "rpi4"', 'name = "rpi4b"', "name: is 'rpi4b' but the file is rpi4.toml"),
    ("rpi4", "l2 = { kib = 1024, shared_by = 4 }", "l2 = { kib = 1024, shared_by = 8 }",
     "caches.l2.shared_by: must be 1..cores (4), got 8"),
    ("rpi4", 'inherit = "cortex-a72"', 'inherit = "cortex-a72"\n'
     'cycles_per_instruction = { load = -2 }',
     "cost_model.cycles_per_instruction.load: must be > 0"),
])
def test_bad_profiles_are_rejected_naming_file_and_field(profile_dir, name, old, new, message):
    path = _break(profile_dir, name, old, new)
    with pytest.raises(DeviceProfileError) as error:
        load_device(name)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    with pytest.raises(DeviceProfileError, match=rf"^{path}: "):
        list_devices()


def test_a_broken_parent_is_reported_against_the_parent_file(profile_dir):
    parent = _break(profile_dir, "cortex-a76", "simd_mul = 0.75 ", "")
    with pytest.raises(DeviceProfileError) as error:
        load_device("rpi5")
    assert str(error.value).startswith(f"{parent}: cost_model.cycles_per_instruction.simd_mul")


def test_invalid_toml_names_the_file(profile_dir):
    (profile_dir / "rpi5.toml").write_text("name = \n")
    with pytest.raises(DeviceProfileError, match=r"rpi5\.toml: not valid TOML"):
        load_device("rpi5")


def test_profiles_folder_override(profile_dir):
    for path in profile_dir.glob("rpi*.toml"):
        path.unlink()
    assert [p.id for p in list_devices()] == ["cortex-a53", "cortex-a72", "cortex-a76"]
    assert devices.profiles_dir() == profile_dir


def test_profiles_folder_override_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv(devices.ENV_PROFILES, str(tmp_path / "missing"))
    with pytest.raises(DeviceProfileError, match="not a directory"):
        list_devices()


def test_table_has_one_row_per_profile():
    profiles = list_devices()
    lines = format_device_table(profiles).splitlines()
    assert lines[0].split()[:2] == ["id", "name"]
    assert "qemu -cpu" in lines[0] and lines[0].rstrip().endswith("L2")
    assert len(lines) == 1 + len(profiles)
    for line, p in zip(lines[1:], profiles):
        assert line.startswith(p.id + " ") and p.qemu_cpu in line
    row = dict(zip((p.id for p in profiles), lines[1:]))
    assert "4x Cortex-A72 @ 1.8 GHz" in row["rpi4"] and "1 MiB shared" in row["rpi4"]
    assert "4x Cortex-A53 @ 1.0 GHz" in row["rpi-zero-2w"]
    assert "512 KiB/core" in row["rpi5"] and "dotprod" in row["rpi5"]
    assert format_device_table(profiles[:2]).count("\n") == 2


def test_main_devices_table_and_json(capsys):
    assert main_devices(False) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 + len(SHIPPED)
    assert main_devices(True) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == list(SHIPPED)
    pi4 = data[SHIPPED.index("rpi4")]
    assert pi4["cost_model"]["inherited_from"] == "cortex-a72"
    assert pi4["caches"]["l2"] == {"kib": 1024, "shared_by": 4}
    assert list(pi4["cost_model"]["cycles_per_instruction"]) == list(INSTRUCTION_CLASSES)
    assert pi4["anchors"][0]["latency_ms"] == 93.48
    assert all(math.isfinite(v) for v in pi4["cost_model"]["cycles_per_instruction"].values())


def test_main_devices_reports_a_bad_profile(profile_dir, capsys):
    _break(profile_dir, "rpi5", "cores = 4", "cores = 0")
    assert main_devices(False) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "rpi5.toml: cores: must be >= 1" in err
