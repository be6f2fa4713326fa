"""`ddq-edge demo`: the whole product on the built-in task, written up in one folder.

Train with DDQ under a 4-bit budget, convert to an edge bundle, check that the C runtime gives
the numpy reference's outputs bit for bit, profile natively against the float and int8
baselines, and — where QEMU and the aarch64 cross compiler are available — on emulated
Raspberry Pi 4 and 5 cores. The folder gets `summary.md`, `demo.json` and the profile PNGs.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

EMULATED_DEVICES = ("rpi4", "rpi5")


@dataclass
class DemoResult:
    folder: Path
    steps: dict[str, float] = field(default_factory=dict)  # step → seconds
    facts: dict[str, Any] = field(default_factory=dict)


def check_runtime_against_reference(bundle: Path, task: str, samples: int = 256) -> dict[str, Any]:
    """The C runtime and the numpy reference on the task's first test images: equal bits?"""
    from .data import get_task
    from .reference import run
    from .runtime import Runtime

    x, y = get_task(task).test.tensors
    x = np.asarray(x[:samples], np.float32)
    labels = np.asarray(y[:samples])
    ours = Runtime(bundle).run(x)
    reference = run(bundle, x)
    equal = np.all(ours.view(np.uint32) == reference.view(np.uint32), axis=1)
    return {"samples": int(len(x)), "bit_exact_samples": int(equal.sum()),
            "top1": float((ours.argmax(1) == labels).mean() * 100)}


def emulation_available() -> tuple[bool, str]:
    from .emulation import EmulatorUnavailable, check_tools

    try:
        check_tools()
    except EmulatorUnavailable as error:
        return False, str(error)
    return True, ""


def write_summary(result: DemoResult, profiles: dict[str, dict[str, Any]], images: dict[str, dict[str, Path]]) -> Path:
    from .profiling.profile import ENGINE_LABELS, speedups

    f = result.facts
    lines = ["# ddq-edge demo", ""]
    train = f["training"]
    lines += [f"Task `{train['task']}`, MobileNetV2 ×0.5, DDQ under a 4-bit budget: float top-1 "
              f"{train['float_top1']:.2f} %, DDQ top-1 {train['ddq_top1']:.2f} % at "
              f"{train['average_weight_bits']:.2f} / {train['average_act_bits']:.2f} average weight / "
              f"activation bits.", ""]
    b = f["bundle"]
    lines += [f"Edge bundle `{b['path']}`: {b['bytes']:,} bytes ({b['macs'] / 1e6:.1f} M MACs per inference).", ""]
    c = f["runtime_check"]
    lines += [f"C runtime vs numpy reference on {c['samples']} test images: {c['bit_exact_samples']} of "
              f"{c['samples']} outputs identical bit for bit; top-1 on these images {c['top1']:.2f} %.", ""]
    for name, result_profile in profiles.items():
        lines += [f"## Profile: {name}", "", "```", _table(result_profile), "```", ""]
        ups = speedups(result_profile)
        if ups:
            lines += ["| baseline | " + " | ".join(m for m in ("native", "instructions", "modelled")
                                                   if any(m in r for r in ups.values())) + " |"]
            measures = [m for m in ("native", "instructions", "modelled") if any(m in r for r in ups.values())]
            lines += ["|---|" + "---|" * len(measures)]
            for key, row in ups.items():
                lines += [f"| {ENGINE_LABELS[key]} | " + " | ".join(f"{row[m]:.2f}×" if m in row else "—"
                                                                    for m in measures) + " |"]
            lines += ["", "Speed-up = baseline time (or instructions) / ddq-edge's; above 1 means ddq-edge is faster.", ""]
        for kind, path in images.get(name, {}).items():
            if path.suffix == ".png":
                lines += [f"![{name} {kind}]({path.name})", ""]
    if f.get("emulation_skipped"):
        lines += ["## Emulation", "", f"Skipped: {f['emulation_skipped']}", ""]
    lines += ["## Steps", ""] + [f"- {step}: {seconds:.0f} s" for step, seconds in result.steps.items()]
    path = result.folder / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _table(result_profile: dict[str, Any]) -> str:
    from .profiling.profile import format_table

    return format_table(result_profile)


def run_demo(folder: Path, train: Callable[[Path], dict[str, Any]], *, emulate: str = "auto",
             devices: tuple[str, ...] = EMULATED_DEVICES, rounds: int = 50,
             progress: Callable[[str], None] = print) -> DemoResult:
    """Run every step; `train(checkpoint_path)` trains and returns the training summary.

    `emulate`: "auto" (when QEMU and the cross compiler are there), "always" (raise
    EmulatorUnavailable before training if they are not) or "never"."""
    from .conversion import convert
    from .inspect import summarize
    from .profiling.profile import ProfileRequest, profile
    from .profiling.report import write_report

    if emulate == "always":  # say so before training, not after it
        from .emulation import check_tools

        check_tools()
    folder.mkdir(parents=True, exist_ok=True)
    result = DemoResult(folder)

    def step(name: str, fn: Callable[[], Any]) -> Any:
        progress(f"== {name}")
        start = time.perf_counter()
        value = fn()
        result.steps[name] = time.perf_counter() - start
        return value

    checkpoint = folder / "ddq-model.pt"
    summary = step("train (float, DDQ search under a 4-bit budget, fine-tune)", lambda: train(checkpoint))
    bundle = step("convert to an edge bundle", lambda: convert(checkpoint, folder / "ddq-model.ddqb"))
    inspected = summarize(bundle)
    result.facts["training"] = {
        "task": summary["plan"]["task"], "float_top1": summary["float"]["top1"],
        "ddq_top1": summary["ddq"]["top1"],
        "average_weight_bits": summary["ddq"]["bits"]["average_weight_bits"],
        "average_act_bits": summary["ddq"]["bits"]["average_act_bits"],
    }
    result.facts["bundle"] = {"path": bundle.name, "bytes": bundle.stat().st_size,
                              "macs": inspected["totals"]["macs"]}
    result.facts["runtime_check"] = step(
        "check the C runtime against the numpy reference",
        lambda: check_runtime_against_reference(bundle, summary["plan"]["task"]))
    profiles: dict[str, dict[str, Any]] = {}
    images: dict[str, dict[str, Path]] = {}
    profiles["native"] = step("profile natively against the float and int8 baselines", lambda: profile(
        ProfileRequest(bundle, rounds=rounds, baselines_dir=folder / "baselines"), progress))
    images["native"] = write_report(profiles["native"], folder, "profile-native")
    available, why = emulation_available() if emulate != "never" else (False, "--no-emulate")
    if available:
        from .emulation import setup as setup_lab

        step("set up the emulated aarch64 lab (cached)", lambda: setup_lab(progress=progress))
        for device in devices:
            name = f"emulated {device}"
            profiles[name] = step(f"profile on an emulated {device}", lambda d=device: profile(
                ProfileRequest(bundle, device=d, emulate=True, baselines_dir=folder / "baselines",
                               native=False, memory=False), progress))
            images[name] = write_report(profiles[name], folder, f"profile-{device}")
    else:
        result.facts["emulation_skipped"] = why
    result.facts["profiles"] = profiles
    (folder / "demo.json").write_text(json.dumps({"steps": result.steps, **result.facts}, indent=1, default=str))
    write_summary(result, profiles, images)
    return result
