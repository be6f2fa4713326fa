"""Pictures and the markdown summary of a profile (the dict `profile.profile` returns)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .profile import ENGINE_LABELS, format_table, speedups


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_layers(result: dict[str, Any], path: Path) -> Path:
    """Per weighted layer: the learned weight and activation bits, and its share of the time
    (host wall clock) and, when emulated, of the retired instructions."""
    plt = _pyplot()
    rows = [r for r in result["ops"] if r["weight_bits"] is not None]
    total_ms = sum(r.get("native_ms", 0.0) for r in result["ops"]) or 1.0
    total_insn = sum(r.get("instructions", 0) for r in result["ops"]) or 1
    index = list(range(len(rows)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.2]})
    top.step(index, [r["weight_bits"] for r in rows], where="mid", label="weight bits", lw=2)
    top.step(index, [r["act_bits"] for r in rows], where="mid", label="input activation bits", lw=2, ls="--")
    top.set_ylabel("bits")
    top.set_ylim(0, 9)
    top.set_yticks(range(0, 9, 2))
    top.legend(loc="lower left", ncols=2)
    top.set_title("Learned bits per layer and each layer's share of the inference")
    series = []
    if any("native_ms" in r for r in rows):
        series.append(([100 * r.get("native_ms", 0.0) / total_ms for r in rows], "host wall-clock share"))
    if any("instructions" in r for r in rows):
        series.append(([100 * r.get("instructions", 0) / total_insn for r in rows],
                       f"instruction share ({result['device']['qemu_cpu']}, emulated)"))
    width = 0.8 / max(1, len(series))
    for j, (values, label) in enumerate(series):
        bottom.bar([i + (j - (len(series) - 1) / 2) * width for i in index], values, width, label=label)
    total_macs = sum(r["macs"] for r in rows) or 1
    bottom.plot(index, [100 * r["macs"] / total_macs for r in rows], color="black", lw=1, marker=".",
                label="share of the MACs (the work)")
    bottom.set_ylabel("% of inference")
    bottom.set_xlabel("weighted layer (conv / fully connected), input to output")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_speedups(result: dict[str, Any], path: Path) -> Path:
    """ddq-edge's speed-up over each baseline, one group of bars per baseline and measure."""
    plt = _pyplot()
    ups = speedups(result)
    measures = [("native", "host wall clock"), ("instructions", "retired instructions (emulated)"),
                ("modelled", "modelled device latency")]
    present = [(m, label) for m, label in measures if any(m in row for row in ups.values())]
    keys = list(ups)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(present))
    for j, (m, label) in enumerate(present):
        xs = [i + (j - (len(present) - 1) / 2) * width for i in range(len(keys))]
        values = [ups[k].get(m, 0.0) for k in keys]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, labels=[f"{v:.2f}x" if v else "" for v in values], fontsize=8)
    ax.axhline(1.0, color="black", lw=1)
    shown = [v for row in ups.values() for v in row.values() if v > 0]
    if shown and (max(shown) / min(shown) > 20 or min(shown) < 0.1):
        ax.set_yscale("log")  # ratios spanning orders of magnitude stay readable
    ax.set_xticks(range(len(keys)), [ENGINE_LABELS[k] for k in keys], rotation=12)
    ax.set_ylabel("baseline time / ddq-edge time")
    device = result.get("device")
    where = f", emulated on {device['display_name']}" if device and any("instructions" in r for r in ups.values()) else ""
    ax.set_title(f"ddq-edge speed-up over each baseline (>1: ddq-edge faster){where}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: dict[str, Any], directory: Path, stem: str = "profile") -> dict[str, Path]:
    """JSON, the terminal table as text, and the two pictures, into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "json": directory / f"{stem}.json",
        "table": directory / f"{stem}.txt",
        "layers": directory / f"{stem}-layers.png",
        "speedup": directory / f"{stem}-speedup.png",
    }
    files["json"].write_text(json.dumps(result, indent=1))
    files["table"].write_text(format_table(result) + "\n")
    plot_layers(result, files["layers"])
    if speedups(result):
        plot_speedups(result, files["speedup"])
    else:
        del files["speedup"]
    return files
