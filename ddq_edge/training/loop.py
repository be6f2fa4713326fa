"""A plain training loop (single process or torchrun DDP) and evaluation."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..quant import budget_penalty
from ..quant.budget import unwrap
from .progress import progress_bar


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def is_main_process() -> bool:
    return not distributed() or torch.distributed.get_rank() == 0


def init_distributed_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); True if distributed."""
    if distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    return True


@dataclass
class PhaseSettings:
    """One training phase: epochs and learning rates of each parameter family."""

    epochs: int
    lr: float
    weight_decay: float = 1e-4
    range_lr: float = 1e-3
    gate_lr: float = 2e-3
    batch_size: int = 128
    use_budget_penalty: bool = False


def _param_groups(model: nn.Module, s: PhaseSettings) -> list[dict]:
    weights, ranges, gates = [], [], []
    for name, p in unwrap(model).named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith("gate_logits"):
            gates.append(p)
        elif name.endswith(".range"):
            ranges.append(p)
        else:
            weights.append(p)
    groups = [{"params": weights, "lr": s.lr, "weight_decay": s.weight_decay}]
    if ranges:
        groups.append({"params": ranges, "lr": s.range_lr, "weight_decay": 0.0})
    if gates:
        groups.append({"params": gates, "lr": s.gate_lr, "weight_decay": 0.0})
    return groups


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed) if distributed() else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, generator=generator, drop_last=shuffle)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent (eval mode; restores the previous mode)."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    model.train(was_training)
    return 100.0 * correct / max(total, 1)


def fit(model: nn.Module, dataset: Dataset, settings: PhaseSettings, *, seed: int = 0,
        desc: str = "train", on_epoch: Callable[[int, dict], None] | None = None,
        show_progress: bool = True) -> list[dict]:
    """Train ``model`` for ``settings.epochs`` with AdamW and a cosine schedule.

    Under torchrun the model is wrapped in DistributedDataParallel and each rank reads its
    shard; initialise the DDQ quantizers (``quantize(..., example_inputs=...)``) before, so
    rank 0's ranges are broadcast at wrapping. Returns per-epoch statistics.
    """
    torch.manual_seed(seed)
    net = nn.parallel.DistributedDataParallel(model) if distributed() else model
    optimizer = torch.optim.AdamW(_param_groups(model, settings))
    loader = make_loader(dataset, settings.batch_size, shuffle=True, seed=seed)
    total_steps = max(settings.epochs * len(loader), 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    history = []
    net.train()
    for epoch in range(settings.epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "penalty": 0.0, "correct": 0, "seen": 0}
        bar = progress_bar(loader, desc=f"{desc} {epoch + 1}/{settings.epochs}",
                           enabled=show_progress and is_main_process())
        for x, y in bar:
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            penalty = budget_penalty(model) if settings.use_budget_penalty else torch.zeros(())
            optimizer.zero_grad(set_to_none=True)
            (loss + penalty).backward()
            optimizer.step()
            schedule.step()
            sums["loss"] += float(loss.detach()) * len(y)
            sums["penalty"] += float(penalty.detach()) * len(y)
            sums["correct"] += int((logits.argmax(1) == y).sum())
            sums["seen"] += len(y)
            bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                            acc=f"{100 * sums['correct'] / sums['seen']:.1f}")
        stats = {"epoch": epoch + 1, "loss": sums["loss"] / max(sums["seen"], 1),
                 "penalty": sums["penalty"] / max(sums["seen"], 1),
                 "train_acc": 100.0 * sums["correct"] / max(sums["seen"], 1)}
        if on_epoch is not None:
            on_epoch(epoch, stats)
        history.append(stats)
    return history


def first_inputs(dataset: Dataset, n: int) -> torch.Tensor:
    """The first ``n`` inputs of ``dataset`` as one batch (for calibration)."""
    x, _ = next(iter(DataLoader(dataset, batch_size=n)))
    return x
