"""MobileNetV2, plus the conv+BN unit and init rule the other models share.

The shared pieces live here because this is the family that defines them;
`mobilenet_v1` and `resnet` import them so there is one definition of the
fold-able conv+BN unit.
"""

from __future__ import annotations

import torch
from torch import nn

from ddq_edge.models.common import PooledClassifier

# (expansion, output channels, blocks, stride of the first block) per stage.
_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round `value` to the nearest multiple of `divisor`, losing at most 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def small_input_strides(input_size: int) -> tuple[int, int]:
    """Strides of (the stem, the first stride-2 stage) for a square input.

    Small inputs skip the early downsampling, as CIFAR adaptations do, so the
    last feature map stays a few pixels wide: the stem has stride 1 below 64
    pixels, and the first stride-2 stage also has stride 1 at 32 pixels or less.
    """
    if input_size < 1:
        raise ValueError(f"input_size: expected a positive int, got {input_size}")
    return (1 if input_size < 64 else 2), (1 if input_size <= 32 else 2)


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = None,
) -> nn.Sequential:
    """A bias-free "same"-padded Conv2d, its BatchNorm2d and an optional activation.

    Keeping conv and BN adjacent in one Sequential is what lets BN be folded.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        # Not in place: an in-place activation would overwrite the BN output
        # that calibration hooks may still hold.
        layers.append(activation())
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit/zero BatchNorm, zero Linear biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), with a skip if shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(in_channels * expansion)
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn(in_channels, hidden, 1, activation=nn.ReLU6))
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6))
        layers.append(conv_bn(hidden, out_channels, 1))
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(PooledClassifier):
    """`features` (conv stack) -> global average pool -> `classifier` (dropout, linear)."""


def mobilenet_v2(
    width: float = 1.0,
    num_classes: int = 1000,
    input_size: int = 224,
    in_channels: int = 3,
    dropout: float = 0.2,
) -> nn.Module:
    """Build MobileNetV2 (inverted residuals, expansion 6, ReLU6, linear bottlenecks).

    Channels are ``width`` times the standard ones rounded to multiples of 8;
    the last conv has ``1280 * max(1, width)`` channels. At ``input_size >= 64``
    the layout is the standard ImageNet one (total stride 32: 7x7 features at
    224). Smaller inputs drop early downsampling (see `small_input_strides`):
    total stride 16 for 33..63 pixels, 8 at 32 or less (4x4 features at 32x32,
    2x2 at 16x16).
    """
    if width <= 0:
        raise ValueError(f"width: expected a positive multiplier, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
    stem_stride, first_downsample_stride = small_input_strides(input_size)
    channels = make_divisible(_STEM_CHANNELS * width)
    layers: list[nn.Module] = [conv_bn(in_channels, channels, 3, stem_stride, activation=nn.ReLU6)]
    downsampled = False
    for expansion, base_channels, blocks, stride in _STAGES:
        if stride == 2 and not downsampled:
            stride, downsampled = first_downsample_stride, True
        out_channels = make_divisible(base_channels * width)
        for block in range(blocks):
            layers.append(
                InvertedResidual(channels, out_channels, stride if block == 0 else 1, expansion)
            )
            channels = out_channels
    last_channels = make_divisible(_LAST_CHANNELS * max(1.0, width))
    layers.append(conv_bn(channels, last_channels, 1, activation=nn.ReLU6))
    model = MobileNetV2(
        nn.Sequential(*layers),
        nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes)),
    )
    init_weights(model)
    return model
