"""Differentiable Dynamic Quantization: learned bits, range and step per layer."""
from .budget import (average_bits, bit_report, budget_met, budget_penalty, ddq_layers,
                     enforce_budget, freeze_bits, set_bits, unwrap)
from .config import DDQConfig
from .layers import DDQConv2d, DDQLinear
from .matrix_form import matrix_form
from .prepare import fold_batchnorm, quantize
from .quantizer import DDQQuantizer, IntegerGrid

__all__ = [
    "DDQConfig", "DDQConv2d", "DDQLinear", "DDQQuantizer", "IntegerGrid", "average_bits",
    "bit_report", "budget_met", "budget_penalty", "ddq_layers", "enforce_budget",
    "fold_batchnorm", "freeze_bits", "matrix_form", "quantize", "set_bits", "unwrap",
]
