"""DDQ Conv2d and Linear: a weight quantizer, and an activation quantizer on the input."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import DDQConfig
from .quantizer import DDQQuantizer
from .ste import round_ste


def bias_codes(bias: torch.Tensor, input_step: torch.Tensor, weight_step: torch.Tensor) -> torch.Tensor:
    """The int32 bias deployment adds to the accumulator: floor(b / (s_in s_w) + 1/2).

    Computed in float32 exactly as training rounds it, so the converter stores what the
    trained model used.
    """
    return torch.floor(bias.detach() / (input_step * weight_step) + 0.5)


class _DDQLayer:
    """Shared behaviour of the DDQ layers (mixed into the torch layer classes).

    ``quantize_input`` is False when the input tensor is already quantized upstream by a
    quantizer shared with the tensor's other consumers (see ``placement``); the layer then
    still holds a reference to that shared quantizer in ``input_quantizer`` so reports and
    the converter see its bits.
    """

    weight_quantizer: DDQQuantizer
    input_quantizer: DDQQuantizer
    quantize_input: bool

    def _init_quantizers(self, config: DDQConfig, out_channels: int) -> None:
        channels = out_channels if config.per_channel else 1
        self.weight_quantizer = DDQQuantizer("weight", config, channels)
        self.input_quantizer = DDQQuantizer("activation", config)
        self.quantize_input = True
        # MACs for one sample, recorded on the first forward (for BOPs and reports).
        self.register_buffer("macs", torch.tensor(0, dtype=torch.int64))
        self._macs_known = False

    def _quantized_operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if self.quantize_input:
            x = self.input_quantizer(x)
        self.weight_quantizer.batch_size_hint = x.shape[0] if x.dim() > 1 else 1
        w = self.weight_quantizer(self.weight)
        bias = None
        if self.bias is not None:
            # The bias lives on the accumulator grid (s_in * s_w) in deployment.
            acc_step = self.input_quantizer.step() * self.weight_quantizer.step()
            bias = round_ste(self.bias / acc_step) * acc_step
        return x, w, bias

    def _record_macs(self, y: torch.Tensor, per_output: int) -> None:
        if not self._macs_known:
            per_sample = y[0].numel() if y.dim() > 1 else y.numel()
            self.macs.fill_(per_sample * per_output)
            self._macs_known = True

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._macs_known = bool(self.macs > 0)


class DDQConv2d(_DDQLayer, nn.Conv2d):
    """Conv2d whose weights (per output channel) and input are DDQ-quantized."""

    def __init__(self, *args, config: DDQConfig, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quantizers(config, self.out_channels)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, config: DDQConfig) -> "DDQConv2d":
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode, config=config)
        layer.to(device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w, bias = self._quantized_operands(x)
        y = self._conv_forward(x, w, bias)
        self._record_macs(y, (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1])
        return y


class DDQLinear(_DDQLayer, nn.Linear):
    """Linear whose weights (per output feature) and input are DDQ-quantized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 config: DDQConfig) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self._init_quantizers(config, out_features)

    @classmethod
    def from_float(cls, linear: nn.Linear, config: DDQConfig) -> "DDQLinear":
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    config=config)
        layer.to(device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, w, bias = self._quantized_operands(x)
        y = F.linear(x, w, bias)
        self._record_macs(y, self.in_features)
        return y


DDQ_LAYERS = (DDQConv2d, DDQLinear)
