"""Training recipes: float pre-training, DDQ fine-tuning, and the fixed-bit baselines.

Every method starts from the same float model and sees the same data, so their accuracies
compare at equal budgets: float, min-max post-training quantization at fixed bits, LSQ at
fixed bits (DDQ's quantizer with its bits pinned: a learned step, LSQ's gradients) and DDQ.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..data import Task
from ..models import build_model
from ..quant import DDQConfig, bit_report, enforce_budget, freeze_bits, quantize
from .loop import PhaseSettings, evaluate, first_inputs, fit, is_main_process

CALIBRATION_SAMPLES = 512


def log(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


def build_for_task(arch: str, task: Task, **arch_kwargs: Any) -> nn.Module:
    """A zoo model shaped for ``task`` (classes, input channels and size)."""
    channels, height, _ = task.input_shape
    return build_model(arch, num_classes=task.num_classes, input_size=height,
                       in_channels=channels, **arch_kwargs)


def train_float(model: nn.Module, task: Task, settings: PhaseSettings, seed: int = 0) -> dict:
    start = time.perf_counter()
    history = fit(model, task.train, settings, seed=seed, desc="float",
                  on_epoch=lambda e, st: log(f"float {e + 1}: loss {st['loss']:.3f}, "
                                             f"train top-1 {st['train_acc']:.1f}%"))
    result = {"top1": evaluate(model, task.test), "history": history,
              "seconds": time.perf_counter() - start}
    log(f"float: top-1 {result['top1']:.2f}% ({result['seconds']:.0f} s)")
    return result


def ptq_minmax(float_model: nn.Module, task: Task, bits: int) -> tuple[nn.Module, dict]:
    """Uniform min-max post-training quantization at ``bits`` for weights and activations."""
    config = DDQConfig(init_bits=bits, learn_bits=False, target_bits=bits,
                       min_bits=min(2, bits), max_bits=8)
    model = quantize(float_model, config, example_inputs=first_inputs(task.train, CALIBRATION_SAMPLES))
    result = {"top1": evaluate(model, task.test), "bits": bit_report(model)}
    log(f"min-max PTQ {bits}-bit: top-1 {result['top1']:.2f}%")
    return model, result


def train_lsq(float_model: nn.Module, task: Task, bits: int, settings: PhaseSettings,
              seed: int = 0) -> tuple[nn.Module, dict]:
    """LSQ at fixed ``bits``: DDQ's quantizer with every bitwidth pinned."""
    config = DDQConfig(init_bits=bits, learn_bits=False, target_bits=bits, max_bits=8)
    model = quantize(float_model, config, example_inputs=first_inputs(task.train, CALIBRATION_SAMPLES))
    start = time.perf_counter()
    history = fit(model, task.train, settings, seed=seed, desc=f"lsq-{bits}")
    result = {"top1": evaluate(model, task.test), "bits": bit_report(model), "history": history,
              "seconds": time.perf_counter() - start}
    log(f"LSQ {bits}-bit: top-1 {result['top1']:.2f}% ({result['seconds']:.0f} s)")
    return model, result


def train_ddq(float_model: nn.Module, task: Task, config: DDQConfig, search: PhaseSettings,
              finetune: PhaseSettings, seed: int = 0) -> tuple[nn.Module, dict]:
    """DDQ: learn bits, ranges and weights under the budget, then guarantee the budget,
    freeze the assignment and fine-tune ranges and weights."""
    model = quantize(float_model, config, example_inputs=first_inputs(task.train, CALIBRATION_SAMPLES))
    start = time.perf_counter()
    trace = []

    def record(epoch: int, stats: dict) -> None:
        report = bit_report(model)
        stats["avg_weight_bits"] = report["average_weight_bits"]
        stats["avg_act_bits"] = report["average_act_bits"]
        trace.append(stats)
        log(f"ddq search {epoch + 1}: loss {stats['loss']:.3f}, avg bits "
            f"w {stats['avg_weight_bits']:.2f} / a {stats['avg_act_bits']:.2f}")

    search_history = fit(model, task.train, search, seed=seed, desc="ddq search", on_epoch=record)
    searched = bit_report(model)
    changes = enforce_budget(model)
    freeze_bits(model)
    after_search = evaluate(model, task.test)
    finetune_history = fit(model, task.train, finetune, seed=seed + 1, desc="ddq finetune")
    result = {
        "top1": evaluate(model, task.test),
        "top1_before_finetune": after_search,
        "bits": bit_report(model),
        "bits_after_search": {k: searched[k] for k in ("average_weight_bits", "average_act_bits")},
        "budget_changes": [asdict(c) for c in changes],
        "history": {"search": search_history, "finetune": finetune_history},
        "seconds": time.perf_counter() - start,
    }
    bits = result["bits"]
    log(f"DDQ (target {config.target_bits}): top-1 {result['top1']:.2f}%, avg bits "
        f"w {bits['average_weight_bits']:.2f} / a {bits['average_act_bits']:.2f} "
        f"({result['seconds']:.0f} s)")
    return model, result


@dataclass
class TrainPlan:
    """Everything ``ddq-edge train`` does, with defaults that finish in minutes on 2 cores."""

    task: str = "digits-hard"
    arch: str = "mobilenet_v2"
    arch_kwargs: dict = field(default_factory=lambda: {"width": 0.5})
    target_bits: float = 4.0
    float_epochs: int = 6
    search_epochs: int = 3
    finetune_epochs: int = 1
    batch_size: int = 128
    float_lr: float = 3e-3
    ddq_lr: float = 5e-4
    gate_lr: float = 2e-3
    penalty_weight: float = 1.0
    seed: int = 0

    def float_phase(self) -> PhaseSettings:
        return PhaseSettings(epochs=self.float_epochs, lr=self.float_lr, batch_size=self.batch_size)

    def search_phase(self) -> PhaseSettings:
        return PhaseSettings(epochs=self.search_epochs, lr=self.ddq_lr, gate_lr=self.gate_lr,
                             batch_size=self.batch_size, use_budget_penalty=True)

    def finetune_phase(self) -> PhaseSettings:
        return PhaseSettings(epochs=self.finetune_epochs, lr=self.ddq_lr / 2,
                             batch_size=self.batch_size)

    def ddq_config(self, target_bits: float | None = None) -> DDQConfig:
        return DDQConfig(target_bits=self.target_bits if target_bits is None else target_bits,
                         penalty_weight=self.penalty_weight)

