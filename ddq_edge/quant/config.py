"""DDQ configuration: bit range, budget and how hard the budget pulls."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

# Deployment stores activations one per byte and packs weights at 2..8 bits.
DEPLOYABLE_BITS = (2, 8)


@dataclass
class DDQConfig:
    """How a model is quantized with Differentiable Dynamic Quantization.

    max_bits: K, the number of binary precision gates (the finest grid has 2^K levels).
    min_bits: the floor; the first ``min_bits`` gates are always on.
    target_bits: the budget for the element-weighted average weight bits and average
        activation bits (``target_act_bits`` overrides the activation budget).
    budget: ``"bits"`` holds both averages under their targets; ``"bops"`` holds the
        MAC-weighted product of weight and activation bits under ``target_bits**2``.
    penalty_weight: scale of the hinge penalty returned by ``budget_penalty``.
    init_bits: bits every layer starts from (default ``max_bits``).
    learn_bits: False pins every layer at ``init_bits`` (LSQ at fixed bits).
    per_channel: one weight range per output channel (else one per layer).
    fold_bn: fold BatchNorm into the preceding convolution before quantizing, so the
        trained weights are exactly the deployed ones.
    sensitivity: add to ``budget_penalty`` the second-order (Fisher) estimate of the loss
        that each quantizer's rounding noise costs, so the gates see the benefit of
        precision that the first-order straight-through gradient averages away.
    gate_init_margin: distance of the first gate logit from its switching point; lower
        gates sit proportionally further, so precision is given up from the top bit down.
    """

    max_bits: int = 8
    min_bits: int = 2
    target_bits: float = 4.0
    target_act_bits: float | None = None
    budget: Literal["bits", "bops"] = "bits"
    penalty_weight: float = 1.0
    init_bits: int | None = None
    learn_bits: bool = True
    per_channel: bool = True
    fold_bn: bool = True
    sensitivity: bool = True
    gate_init_margin: float = 0.02

    def __post_init__(self) -> None:
        self.validate()

    @property
    def start_bits(self) -> int:
        return self.max_bits if self.init_bits is None else self.init_bits

    @property
    def act_target(self) -> float:
        return self.target_bits if self.target_act_bits is None else self.target_act_bits

    def validate(self) -> None:
        lo, hi = DEPLOYABLE_BITS
        if not (lo <= self.min_bits <= self.max_bits <= hi):
            raise ValueError(
                f"DDQConfig: need {lo} <= min_bits <= max_bits <= {hi}, "
                f"got min_bits={self.min_bits}, max_bits={self.max_bits}")
        for name, target in (("target_bits", self.target_bits),
                             ("target_act_bits", self.act_target)):
            if target < self.min_bits:
                raise ValueError(
                    f"DDQConfig: {name}={target} is below min_bits={self.min_bits}; "
                    f"no assignment of bits in [{self.min_bits}, {self.max_bits}] can meet it")
        if not (self.min_bits <= self.start_bits <= self.max_bits):
            raise ValueError(
                f"DDQConfig: init_bits={self.init_bits} must lie in "
                f"[min_bits={self.min_bits}, max_bits={self.max_bits}]")
        if self.budget not in ("bits", "bops"):
            raise ValueError(f"DDQConfig: budget must be 'bits' or 'bops', got {self.budget!r}")
        if self.penalty_weight < 0:
            raise ValueError(f"DDQConfig: penalty_weight must be >= 0, got {self.penalty_weight}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DDQConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"DDQConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)
