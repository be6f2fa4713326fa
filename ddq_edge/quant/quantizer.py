"""The DDQ quantizer: K precision gates, a learned range, one uniform b-bit grid.

Grid conventions (docs/ddq.md derives them):

* base step ``d`` from the learned range ``r`` (weights: symmetric narrow, ``d = r/(2^(K-1)-1)``;
  unsigned activations ``d = r/(2^K-1)``; signed activations ``d = r/2^(K-1)``);
* bits ``b = min_bits + sum_k prod_{j<=k} g_j`` with ``g_j = H(logit_j)``;
* merged step ``s_b = d * 2^(K-b)``: the b-bit grid is every 2^(K-b)-th base level, so it
  is uniform and contains 0 exactly;
* fast form ``s_b * (clamp(floor(x/s_b + 1/2) + z_b, qmin_b, qmax_b) - z_b)`` with
  ``z_b = 0`` (weights, unsigned activations) or ``2^(b-1)`` (signed activations).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .config import DDQConfig
from .ste import FakeQuantize, heaviside_ste, scale_grad

Role = Literal["weight", "activation"]
SENSITIVITY_DECAY = 0.9


@dataclass(frozen=True)
class IntegerGrid:
    """A quantizer's deployed form: ``x ≈ scale * (q - zero_point)``, q in [qmin, qmax]."""

    bits: int
    scale: torch.Tensor  # one per channel (weights) or a single element
    zero_point: int
    qmin: int
    qmax: int
    signed: bool


def gate_init_logits(config: DDQConfig) -> torch.Tensor:
    """Initial logits of the learnable gates (bits min_bits+1 .. max_bits).

    Gates below ``start_bits`` start on, the rest off. An active gate's logit grows with
    its depth under the top bit, so under a steady push towards fewer bits the top bit
    switches off first and precision is given up one bit at a time.
    """
    positions = torch.arange(config.min_bits + 1, config.max_bits + 1, dtype=torch.float32)
    depth = config.start_bits - positions + 1  # 1 for the top active bit
    return torch.where(depth > 0, depth, depth - 1) * config.gate_init_margin


class DDQQuantizer(nn.Module):
    """A learned b-bit uniform quantizer for weights (per channel) or activations.

    ``forward`` is the fast form used in training; ``ddq_edge.quant.matrix_form`` is the
    method's matrix form and a test proves the two agree.
    """

    def __init__(self, role: Role, config: DDQConfig, channels: int = 1) -> None:
        super().__init__()
        if role not in ("weight", "activation"):
            raise ValueError(f"DDQQuantizer: role must be 'weight' or 'activation', got {role!r}")
        self.role: Role = role
        self.max_bits = config.max_bits
        self.min_bits = config.min_bits
        self.gate_logits = nn.Parameter(gate_init_logits(config))
        self.range = nn.Parameter(torch.ones(channels))
        pinned = 0 if config.learn_bits else config.start_bits
        self.register_buffer("pinned_bits", torch.tensor(pinned, dtype=torch.int64))
        self.register_buffer("signed", torch.tensor(role == "weight"))
        self.register_buffer("initialized", torch.tensor(False))
        # Elements this quantizer covers: the whole weight, or one sample's activation.
        self.register_buffer("numel", torch.tensor(0, dtype=torch.int64))
        # Running estimate of E[sum of squared per-sample loss gradients] at the output,
        # per range: the curvature that turns quantization noise into loss (see noise_loss).
        self.register_buffer("sensitivity", torch.zeros(channels))
        self.track_sensitivity = config.sensitivity
        self.batch_size_hint = 1
        self._ready = False

    # -- bits -------------------------------------------------------------------------
    def bits(self) -> torch.Tensor:
        """Current bitwidth as a float tensor; gradients reach the gate logits (STE)."""
        gates = heaviside_ste(self.gate_logits)
        learned = self.min_bits + torch.cumprod(gates, dim=0).sum()
        pinned = self.pinned_bits.to(learned.dtype)
        return torch.where(self.pinned_bits > 0, pinned, learned)

    def current_bits(self) -> int:
        with torch.no_grad():
            return int(round(float(self.bits())))

    @property
    def is_pinned(self) -> bool:
        return bool(self.pinned_bits > 0)

    # -- grid -------------------------------------------------------------------------
    def base_step(self) -> torch.Tensor:
        """Step d of the finest (K-bit) grid, from the learned range."""
        r = self.range.abs() + 1e-12
        k = self.max_bits
        if self.role == "weight":
            return r / (2 ** (k - 1) - 1)
        return torch.where(self.signed, r / 2 ** (k - 1), r / (2**k - 1))

    def step(self) -> torch.Tensor:
        """The current b-bit step (per channel for weights), without gradient: the scale
        deployment uses."""
        with torch.no_grad():
            return self.base_step() * torch.exp2(self.max_bits - self.bits())

    def int_bounds(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(qmin, qmax, zero_point) of the b-bit grid as float tensors (differentiable in b)."""
        half = torch.exp2(bits - 1)
        if self.role == "weight":
            return 1 - half, half - 1, torch.zeros_like(half)
        zero = torch.where(self.signed, half, torch.zeros_like(half))
        return torch.zeros_like(half), 2 * half - 1, zero

    def _broadcast(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if t.numel() == 1:
            return t.reshape(())
        return t.reshape(-1, *([1] * (x.dim() - 1)))

    # -- forward ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ready:
            self._ready = bool(self.initialized)
            if not self._ready:
                self.calibrate(x)
        bits = self.bits()
        qmin, qmax, zero = self.int_bounds(bits)
        per_range = self.numel / self.range.numel()
        grad_factor = torch.rsqrt(per_range.clamp_min(1) * qmax.detach().clamp_min(1))
        step = scale_grad(self.base_step(), grad_factor) * torch.exp2(self.max_bits - bits)
        out = FakeQuantize.apply(x, self._broadcast(step, x), qmin, qmax, zero)
        if self.track_sensitivity and self.training and out.requires_grad:
            batch = x.shape[0] if self.role == "activation" else self.batch_size_hint
            out.register_hook(lambda grad: self._observe_gradient(grad, batch))
        return out

    @torch.no_grad()
    def _observe_gradient(self, grad: torch.Tensor, batch: int) -> None:
        # The loss is a batch mean, so a per-sample gradient is batch * grad; the mean over
        # samples of its square, summed over one sample's elements, is batch * sum(grad^2).
        # Weights get the batch-mean gradient: batch * its square estimates the per-sample
        # second moment when per-sample gradients are roughly independent.
        sq = grad.pow(2)
        per_range = sq.sum() if self.range.numel() == 1 else sq.reshape(sq.shape[0], -1).sum(1)
        self.sensitivity.mul_(SENSITIVITY_DECAY).add_(per_range * batch, alpha=1 - SENSITIVITY_DECAY)

    def noise_loss(self) -> torch.Tensor:
        """Second-order estimate of the loss the rounding noise costs: ½ F s_b² / 12.

        Differentiable in the bits only (the step's range part is detached): it is the
        part of the precision trade-off a first-order straight-through gradient cannot see,
        because the rounding error has zero mean.
        """
        step = self.base_step().detach() * torch.exp2(self.max_bits - self.bits())
        return 0.5 * (self.sensitivity * step.pow(2)).sum() / 12.0

    # -- range initialisation ---------------------------------------------------------
    def range_for_max(self, max_abs: torch.Tensor, bits: int) -> torch.Tensor:
        """The range whose ``bits``-bit grid reaches exactly ``max_abs`` at its largest level."""
        k = self.max_bits
        if self.role == "weight":
            return max_abs * (2 ** (k - 1) - 1) / (2 ** (k - bits) * (2 ** (bits - 1) - 1))
        if bool(self.signed):
            return max_abs  # the most negative level is -range at every b
        return max_abs * (2**k - 1) / (2 ** (k - bits) * (2**bits - 1))

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, bits: int | None = None) -> None:
        """Min-max initialisation from a tensor (a weight, or a batch of activations)."""
        bits = self.current_bits() if bits is None else bits
        if self.role == "weight":
            flat = x.detach().reshape(x.shape[0], -1) if self.range.numel() > 1 else x.reshape(1, -1)
            max_abs = flat.abs().amax(dim=1)
            self.numel.fill_(x.numel())
        else:
            self.signed.fill_(bool(x.min() < 0))
            max_abs = x.detach().abs().amax().reshape(1)
            self.numel.fill_(x[0].numel() if x.dim() > 1 else x.numel())
        max_abs = torch.where(max_abs > 0, max_abs, torch.ones_like(max_abs))
        self.range.copy_(self.range_for_max(max_abs, bits).to(self.range.dtype))
        self.initialized.fill_(True)
        self._ready = True

    def _load_from_state_dict(self, *args, **kwargs):  # noqa: D401 - torch hook
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = bool(self.initialized)

    # -- deployment view --------------------------------------------------------------
    @torch.no_grad()
    def integer_grid(self) -> IntegerGrid:
        """The b-bit grid this quantizer currently implements, for export."""
        bits = self.current_bits()
        qmin, qmax, zero = (int(v) for v in self.int_bounds(torch.tensor(float(bits))))
        return IntegerGrid(bits=bits, scale=self.step().clone(), zero_point=zero, qmin=qmin,
                           qmax=qmax, signed=bool(self.signed))

    @torch.no_grad()
    def quantize_to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``x`` on the current grid (what the converter stores)."""
        grid = self.integer_grid()
        step = self._broadcast(grid.scale.to(x.dtype), x)
        return torch.clamp(torch.floor(x / step + 0.5) + grid.zero_point, grid.qmin, grid.qmax)

    # -- pinning ----------------------------------------------------------------------
    @torch.no_grad()
    def pin(self, bits: int) -> None:
        """Fix this quantizer at ``bits`` (gates stop learning; 0 unpins)."""
        if bits and not (self.min_bits <= bits <= self.max_bits):
            raise ValueError(f"bits={bits} outside [{self.min_bits}, {self.max_bits}]")
        if bits:
            self.set_gates(bits)
        self.pinned_bits.fill_(bits)

    @torch.no_grad()
    def set_gates(self, bits: int) -> None:
        """Move the gate logits so that the learned bitwidth is ``bits``."""
        margin = max(float(self.gate_logits.abs().max()), 1e-3)
        positions = torch.arange(self.min_bits + 1, self.max_bits + 1, device=self.gate_logits.device)
        on = positions <= bits
        current = self.gate_logits.abs().clamp_min(1e-3)
        self.gate_logits.copy_(torch.where(on, current, -current.clamp_max(margin)))

    def extra_repr(self) -> str:
        return (f"role={self.role}, bits={self.current_bits()}, K={self.max_bits}, "
                f"min_bits={self.min_bits}, channels={self.range.numel()}")

