"""ddq-edge: Differentiable Dynamic Quantization and low-bit deployment to ARM edge devices."""
__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .conversion import convert  # noqa: E402
from .runtime import Runtime  # noqa: E402
from .quant import (DDQConfig, bit_report, budget_penalty, enforce_budget, freeze_bits,  # noqa: E402
                    quantize, set_bits)

__all__ = [
    "DDQConfig", "bit_report", "budget_penalty", "convert", "enforce_budget", "freeze_bits",
    "load_checkpoint", "quantize", "Runtime", "save_checkpoint", "set_bits", "__version__",
]
