"""Straight-through estimators: hard values forward, useful gradients backward."""
from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half up (floor(x + 1/2)) forward; identity gradient backward.

    Half-up rather than torch.round's half-to-even so that the integer kernels, which
    add half and shift, reproduce training bit for bit.
    """
    # hard + (x - x.detach()) is exactly ``hard`` in value (x - x is 0), unlike
    # x + (hard - x).detach(), which can be one ulp off after two roundings.
    return torch.floor(x + 0.5).detach() + (x - x.detach())


def heaviside_ste(logits: torch.Tensor) -> torch.Tensor:
    """Binary gate H(logit >= 0) forward; identity gradient backward."""
    return (logits >= 0).to(logits.dtype).detach() + (logits - logits.detach())


def scale_grad(x: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Same value, gradient multiplied by ``scale`` (LSQ's step-size gradient scaling)."""
    scaled = x * scale
    return x.detach() + (scaled - scaled.detach())


def _sum_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce a broadcast gradient to ``shape`` (a scalar, or same rank with 1s)."""
    if len(shape) == 0:
        return grad.sum()
    dims = [i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1]
    return grad.sum(dim=dims, keepdim=True) if dims else grad


class FakeQuantize(torch.autograd.Function):
    """``step * (clamp(floor(x/step + 1/2) + zero, qmin, qmax) - zero)`` in one fused node.

    Same values and gradients as composing ``round_ste`` with clamp (the LSQ gradients:
    identity for x inside the grid, ``q - zero - x/step`` for the step, the clamp bound for
    clipped elements), but with a fraction of the memory traffic of the composed graph.
    """

    @staticmethod
    def forward(ctx, x, step, qmin, qmax, zero):
        v = x / step
        q = torch.clamp(torch.floor(v + 0.5) + zero, qmin, qmax)
        ctx.save_for_backward(x, step, qmin, qmax, zero)
        return (q - zero) * step

    @staticmethod
    def backward(ctx, grad):
        x, step, qmin, qmax, zero = ctx.saved_tensors
        v = x / step
        unclamped = torch.floor(v + 0.5) + zero
        low, high = unclamped < qmin, unclamped > qmax
        inside = ~(low | high)
        # d out / d step: the rounding residual inside the grid, the clamp level outside.
        residual = torch.where(inside, unclamped - zero - v, torch.where(low, qmin, qmax) - zero)
        grad_step = _sum_to(grad * residual, step.shape)
        grad_qmin = (grad * low * step).sum().reshape(qmin.shape)
        grad_qmax = (grad * high * step).sum().reshape(qmax.shape)
        # A clipped output is (bound - zero) * step, so the zero point's gradient is
        # minus the bounds' gradients.
        grad_zero = -(grad_qmin + grad_qmax)
        return grad * inside, grad_step, grad_qmin, grad_qmax, grad_zero
