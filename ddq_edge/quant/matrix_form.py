"""The DDQ matrix form ``x_q = q^T Z U onehot(x)`` — the method written once, literally.

Training uses the equivalent fast form (``DDQQuantizer.forward``); this module exists so
the equivalence can be checked and read. It handles per-tensor quantizers (one range).

* ``q``: the 2^K base levels ``d * (i - z_K)``, i = 0 .. 2^K-1, with ``z_K = 2^(K-1)`` for
  weights and signed activations and 0 for unsigned activations.
* ``U = U_1 ⊗ ... ⊗ U_K`` with ``U_k = g~_k I_2 + (1 - g~_k) 1 1^T`` and cumulative gates
  ``g~_k = prod_{j<=k} g_j`` (the first ``min_bits`` gates are fixed on). The Kronecker
  factor U_1 acts on the most significant bit of the level index, so switching gate k off
  merges adjacent blocks of 2^(K-k) levels and nothing else.
* ``onehot(x)``: the base cell that holds ``x + s_b/2`` (``s_b = d 2^(K-b)``); shifting by
  half a merged step puts each merged block's boundaries midway between b-bit levels.
* ``Z``: maps each merged block (B = 2^(K-b) levels) to its representative, the block's
  first level, which lies on the b-bit grid (``z_K`` is a multiple of B). Narrow-range
  weights have no level at ``-2^(b-1)``: block 0 maps to block 1's representative.
"""
from __future__ import annotations

import torch

from .quantizer import DDQQuantizer
from .ste import heaviside_ste


def full_gates(quantizer: DDQQuantizer) -> torch.Tensor:
    """All K gates: ``min_bits`` fixed ones, then H(logits) (or the pinned pattern)."""
    learned = heaviside_ste(quantizer.gate_logits)
    if quantizer.is_pinned:
        positions = torch.arange(quantizer.min_bits + 1, quantizer.max_bits + 1)
        learned = (positions <= int(quantizer.pinned_bits)).to(learned.dtype)
    fixed = torch.ones(quantizer.min_bits, dtype=learned.dtype)
    return torch.cat([fixed, learned])


def merge_matrix(cumulative_gates: torch.Tensor) -> torch.Tensor:
    """U = ⊗_k (g~_k I + (1 - g~_k) 1 1^T), a 2^K x 2^K matrix."""
    eye = torch.eye(2, dtype=cumulative_gates.dtype)
    ones = torch.ones(2, 2, dtype=cumulative_gates.dtype)
    u = torch.ones(1, 1, dtype=cumulative_gates.dtype)
    for g in cumulative_gates:
        u = torch.kron(u, g * eye + (1 - g) * ones)
    return u


def representative_matrix(max_bits: int, bits: int, narrow: bool, dtype: torch.dtype) -> torch.Tensor:
    """Z: column i (a level in merged block m) carries 1/B to row rep(m); Z @ (block indicator) = onehot(rep)."""
    n, block = 2**max_bits, 2 ** (max_bits - bits)
    z = torch.zeros(n, n, dtype=dtype)
    for i in range(n):
        m = i // block
        if narrow and m == 0:
            m = 1
        z[m * block, i] = 1.0 / block
    return z


def matrix_form(quantizer: DDQQuantizer, x: torch.Tensor) -> torch.Tensor:
    """``q^T Z U onehot(x)`` for every element of ``x`` (per-tensor quantizers only)."""
    if quantizer.range.numel() != 1:
        raise ValueError("matrix_form handles per-tensor quantizers (one range)")
    k = quantizer.max_bits
    n = 2**k
    cumulative = torch.cumprod(full_gates(quantizer).to(x.dtype), dim=0)
    bits = int(round(float(cumulative.detach().sum())))
    d = quantizer.base_step().to(x.dtype).reshape(())
    step = d * 2 ** (k - bits)
    centred = quantizer.role == "weight" or bool(quantizer.signed)
    zero_k = 2 ** (k - 1) if centred else 0

    levels = d * (torch.arange(n, dtype=x.dtype) - zero_k)  # q
    cell = torch.clamp(torch.floor((x.detach().reshape(-1) + step.detach() / 2) / d.detach()) + zero_k, 0, n - 1)
    onehot = torch.nn.functional.one_hot(cell.long(), n).to(x.dtype).T  # n x N
    u = merge_matrix(cumulative)
    z = representative_matrix(k, bits, narrow=quantizer.role == "weight", dtype=x.dtype)
    return (levels @ z @ u @ onehot).reshape(x.shape)
