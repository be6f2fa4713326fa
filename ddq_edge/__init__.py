"""ddq-edge: Differentiable Dynamic Quantization and low-bit deployment to ARM edge devices."""
from .checkpoint import load_checkpoint, save_checkpoint
from .quant import (DDQConfig, bit_report, budget_penalty, enforce_budget, freeze_bits,
                    quantize, set_bits)

__version__ = "0.1.0"

__all__ = [
    "DDQConfig", "bit_report", "budget_penalty", "enforce_budget", "freeze_bits",
    "load_checkpoint", "quantize", "save_checkpoint", "set_bits", "__version__",
]
