"""The resource budget: averages of learned bits, the penalty, and its final guarantee."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from .config import DDQConfig
from .layers import DDQ_LAYERS
from .quantizer import DDQQuantizer


def unwrap(model: nn.Module) -> nn.Module:
    """The DDQ model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def ddq_config(model: nn.Module) -> DDQConfig:
    config = getattr(unwrap(model), "ddq_config", None)
    if config is None:
        raise ValueError(f"{type(unwrap(model)).__name__} is not a DDQ model: "
                         "call ddq_edge.quantize(model, config) first")
    return config


def ddq_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) for every DDQ Conv2d/Linear, in module order."""
    return [(name, m) for name, m in unwrap(model).named_modules() if isinstance(m, DDQ_LAYERS)]


def _budget_quantizers(model: nn.Module) -> tuple[list[tuple[str, DDQQuantizer]], list[tuple[str, DDQQuantizer]]]:
    """Weight quantizers and (deduplicated, shared inputs counted once) input quantizers."""
    weights, acts, seen = [], [], set()
    for name, layer in ddq_layers(model):
        weights.append((name, layer.weight_quantizer))
        if id(layer.input_quantizer) not in seen:
            seen.add(id(layer.input_quantizer))
            acts.append((name, layer.input_quantizer))
    return weights, acts


def _require_counts(quantizers: list[tuple[str, DDQQuantizer]]) -> None:
    missing = [name for name, q in quantizers if int(q.numel) == 0]
    if missing:
        raise RuntimeError("element counts are unknown for " + ", ".join(missing[:5]) +
                           ": run one forward pass (or pass example_inputs to quantize) first")


def _weighted_mean(values: list[torch.Tensor], weights: list[int]) -> torch.Tensor:
    total = float(sum(weights))
    return sum(v * (w / total) for v, w in zip(values, weights))


def average_bits(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-weighted average weight bits and activation bits (differentiable)."""
    weights, acts = _budget_quantizers(model)
    _require_counts(weights + acts)
    w = _weighted_mean([q.bits() for _, q in weights], [int(q.numel) for _, q in weights])
    a = _weighted_mean([q.bits() for _, q in acts], [int(q.numel) for _, q in acts])
    return w, a


def average_bops_bits(model: nn.Module) -> torch.Tensor:
    """sqrt of the MAC-weighted mean of weight_bits * activation_bits (an 'effective bits')."""
    layers = ddq_layers(model)
    macs = [int(layer.macs) for _, layer in layers]
    if not all(macs):
        raise RuntimeError("MAC counts are unknown: run one forward pass first")
    products = [layer.weight_quantizer.bits() * layer.input_quantizer.bits() for _, layer in layers]
    return torch.sqrt(_weighted_mean(products, macs))


def budget_penalty(model: nn.Module) -> torch.Tensor:
    """What a training loop adds to its loss: ``loss = task_loss + budget_penalty(model)``.

    ``penalty_weight`` times the hinge on the budget (zero once it is met), plus, with
    ``config.sensitivity``, each quantizer's estimated noise loss, whose gradient pushes
    bits up where they pay most. Gradients reach every unpinned gate.
    """
    config = ddq_config(model)
    if config.budget == "bops":
        excess = torch.relu(average_bops_bits(model) - config.target_bits)
    else:
        w, a = average_bits(model)
        excess = torch.relu(w - config.target_bits) + torch.relu(a - config.act_target)
    penalty = config.penalty_weight * excess
    if config.sensitivity:
        weights, acts = _budget_quantizers(model)
        penalty = penalty + sum(q.noise_loss() for _, q in weights + acts)
    return penalty


def budget_met(model: nn.Module) -> bool:
    config = ddq_config(model)
    with torch.no_grad():
        if config.budget == "bops":
            return float(average_bops_bits(model)) <= config.target_bits + 1e-9
        w, a = average_bits(model)
        return float(w) <= config.target_bits + 1e-9 and float(a) <= config.act_target + 1e-9


@dataclass
class BitChange:
    layer: str
    operand: str  # "weight" or "activation"
    bits_before: int
    bits_after: int


def _lowering_candidates(model: nn.Module, config: DDQConfig) -> list[tuple[str, str, DDQQuantizer]]:
    weights, acts = _budget_quantizers(model)
    with torch.no_grad():
        w, a = average_bits(model)
    families = []
    if config.budget == "bops" or float(w) > config.target_bits + 1e-9:
        families += [(n, "weight", q) for n, q in weights]
    if config.budget == "bops" or float(a) > config.act_target + 1e-9:
        families += [(n, "activation", q) for n, q in acts]
    return [(n, kind, q) for n, kind, q in families
            if not q.is_pinned and q.current_bits() > q.min_bits]


@torch.no_grad()
def enforce_budget(model: nn.Module) -> list[BitChange]:
    """Lower bits until the budget holds; the guarantee behind every exported model.

    Each step takes one bit from the unpinned quantizer where that costs the least
    estimated loss per element saved (the noise-loss estimate once gradients have been
    observed, else the top gate's logit: the gate least sure of itself). Raises if
    pinned layers alone exceed the budget.
    """
    config = ddq_config(model)
    changes = []
    while not budget_met(model):
        candidates = _lowering_candidates(model, config)
        if not candidates:
            raise ValueError("the budget cannot be met: every layer that could give up bits "
                             "is pinned or at min_bits; raise target_bits or unpin layers")

        measured = any(float(q.sensitivity.sum()) > 0 for _, _, q in candidates)

        def keep_score(item: tuple[str, str, DDQQuantizer]) -> float:
            # Loss added per element-bit saved: a bit less quadruples the noise variance.
            _, _, q = item
            if measured:
                cost = 3.0 * float(q.noise_loss())
            else:
                cost = float(q.gate_logits[q.current_bits() - q.min_bits - 1])
            return cost / max(int(q.numel), 1)

        name, kind, q = min(candidates, key=keep_score)
        before = q.current_bits()
        q.set_gates(before - 1)
        changes.append(BitChange(name, kind, before, q.current_bits()))
    return changes


@torch.no_grad()
def freeze_bits(model: nn.Module) -> None:
    """Pin every quantizer at its current bits (for fine-tuning a final assignment)."""
    for _, layer in ddq_layers(model):
        for q in (layer.weight_quantizer, layer.input_quantizer):
            if not q.is_pinned:
                q.pin(q.current_bits())


def set_bits(model: nn.Module, bits: Mapping[str, tuple[int | None, int | None]]) -> None:
    """Pin layers by hand: ``{layer_name: (weight_bits, act_bits)}``; None leaves one as is,
    0 unpins it. Activation bits pin the layer's input quantizer (shared if the input is)."""
    layers = dict(ddq_layers(model))
    unknown = sorted(set(bits) - set(layers))
    if unknown:
        raise KeyError(f"set_bits: no DDQ layer named {unknown}; layers are {sorted(layers)}")
    for name, pair in bits.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"set_bits: {name!r} needs (weight_bits, act_bits), got {pair!r}")
        for quantizer, value, what in ((layers[name].weight_quantizer, pair[0], "weight_bits"),
                                       (layers[name].input_quantizer, pair[1], "act_bits")):
            if value is None:
                continue
            try:
                quantizer.pin(int(value))
            except ValueError as error:
                raise ValueError(f"set_bits: {name!r} {what}: {error}") from None


def bit_report(model: nn.Module) -> dict[str, Any]:
    """Per-layer weight/activation bits, element counts, MACs, and the achieved averages."""
    config = ddq_config(model)
    rows = []
    for name, layer in ddq_layers(model):
        wq, aq = layer.weight_quantizer, layer.input_quantizer
        rows.append({
            "layer": name,
            "type": type(layer).__name__.removeprefix("DDQ"),
            "depthwise": bool(getattr(layer, "groups", 1) > 1 and
                              getattr(layer, "groups", 1) == getattr(layer, "in_channels", 0)),
            "weight_bits": wq.current_bits(),
            "act_bits": aq.current_bits(),
            "act_signed": bool(aq.signed),
            "weight_pinned": wq.is_pinned,
            "act_pinned": aq.is_pinned,
            "weight_elements": int(wq.numel),
            "act_elements": int(aq.numel),
            "macs": int(layer.macs),
        })
    with torch.no_grad():
        w, a = average_bits(model)
        macs = sum(r["macs"] for r in rows)
        bops = sum(r["macs"] * r["weight_bits"] * r["act_bits"] for r in rows)
    return {
        "layers": rows,
        "average_weight_bits": float(w),
        "average_act_bits": float(a),
        "effective_bops_bits": (bops / macs) ** 0.5 if macs else None,
        "bops": bops,
        "target_bits": config.target_bits,
        "target_act_bits": config.act_target,
        "budget": config.budget,
        "budget_met": budget_met(model),
        "weight_elements": sum(r["weight_elements"] for r in rows),
        "macs": macs,
        "tensor_quantizers_8bit": len(getattr(getattr(unwrap(model), "ddq_placement", None),
                                              "tensor_quantizers", []) or []),
    }
