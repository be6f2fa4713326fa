"""The numpy integer reference: fixed-point primitives, one function per IR op kind, and
the graph executor (`run`, `run_integer`) that every runtime kernel is held to."""
from .fixed_point import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                          quantize_multiplier, quantize_multipliers)
from .ops import (ADD_LEFT_SHIFT, act_range, add, add_multipliers, avg_pool, conv2d,
                  conv_multipliers, dequantize, fully_connected, global_avg_pool,
                  global_avg_pool_multiplier, max_pool, quantize, requantize,
                  requantize_multiplier, reshape)
from .executor import run, run_all, run_integer
