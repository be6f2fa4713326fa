"""The integer graph (IR): tensors with bits, scale and zero point; integer ops.

This is what the converter produces, the bundle stores, the numpy reference executes and the
C runtime loads. Arithmetic of every op: ``docs/arithmetic.md``.

Conventions:
* activations are NCHW (4-D) or NC (2-D); the batch dimension is stored as 1 and any batch
  size runs;
* activation tensors hold b-bit codes in a uint8 container, ``x ≈ scale * (q - zero_point)``;
* weight tensors hold signed b-bit codes (narrow range, zero point 0) in an int8 container,
  one scale per output channel; biases are int32 at ``scale_in * scale_w[c]``;
* ``Quantize`` takes the float32 graph input, ``Dequantize`` gives float32 outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES = ("float32", "uint8", "int8", "int32")

# Attributes per kind (all integers; act_min/act_max are output codes that fold ReLU/ReLU6):
#   conv2d: stride [sh, sw], padding [top, left, bottom, right], dilation [1, 1], groups,
#           act_min, act_max. Weight (O, I/groups, kh, kw) int8 codes, bias (O,) int32.
#   fully_connected: act_min, act_max. Weight (O, I), bias (O,).
#   add, requantize, global_avg_pool: act_min, act_max.
#   avg_pool, max_pool: kernel [kh, kw], stride [sh, sw], padding [t, l, b, r]
#           (+ act_min, act_max for avg_pool); input and output share one grid.
#   reshape: shape (the output shape, batch dimension included as 1).
# Requantization multipliers are not stored: they follow from the tensors' float32 scales
# (docs/arithmetic.md), so the bundle carries only learned quantities.
OP_KINDS = {
    # kind: (number of inputs, number of outputs)
    "quantize": (1, 1),
    "dequantize": (1, 1),
    "conv2d": (3, 1),           # input, weight, bias
    "fully_connected": (3, 1),  # input, weight, bias
    "add": (2, 1),
    "avg_pool": (1, 1),
    "global_avg_pool": (1, 1),
    "max_pool": (1, 1),
    "requantize": (1, 1),
    "reshape": (1, 1),
}


@dataclass
class QuantParams:
    """An integer grid: ``real = scale * (q - zero_point)``, q in [qmin, qmax]."""

    scale: np.ndarray  # float32, shape (1,) per tensor or (C,) per output channel
    zero_point: int
    bits: int
    qmin: int
    qmax: int

    def __post_init__(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.float32).reshape(-1)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: QuantParams | None = None
    data: np.ndarray | None = None  # constants only (weights, biases)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: dtype {self.dtype!r} not in {DTYPES}")
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"op {self.name!r}: unknown kind {self.kind!r}; known: {sorted(OP_KINDS)}")
        n_in, n_out = OP_KINDS[self.kind]
        if len(self.inputs) != n_in or len(self.outputs) != n_out:
            raise ValueError(f"op {self.name!r} ({self.kind}) takes {n_in} input(s) and {n_out} "
                             f"output(s), got {len(self.inputs)} and {len(self.outputs)}")


@dataclass
class Graph:
    """Tensors by name, ops in execution order, graph inputs/outputs, free-form metadata."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def add_tensor(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise ValueError(f"duplicate tensor name {tensor.name!r}")
        self.tensors[tensor.name] = tensor
        return tensor

    def add_op(self, op: Op) -> Op:
        missing = [t for t in op.inputs + op.outputs if t not in self.tensors]
        if missing:
            raise ValueError(f"op {op.name!r} refers to unknown tensors {missing}")
        self.ops.append(op)
        return op

    def validate(self) -> None:
        """Every op reads tensors that exist and are produced before it (or are inputs/constants)."""
        ready = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_constant}
        for op in self.ops:
            for name in op.inputs:
                if name not in ready:
                    raise ValueError(f"op {op.name!r} reads {name!r} before it is produced")
            ready.update(op.outputs)
        for name in self.outputs:
            if name not in ready:
                raise ValueError(f"graph output {name!r} is never produced")
