"""MobileNetV1: a stack of depthwise-separable convolutions."""

from __future__ import annotations

from torch import nn

from ddq_edge.models.common import PooledClassifier
from ddq_edge.models.mobilenet_v2 import conv_bn, init_weights, make_divisible, small_input_strides

_STEM_CHANNELS = 32
# (output channels, stride) of each depthwise-separable block.
_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


class MobileNetV1(PooledClassifier):
    """`features` (conv stack) -> global average pool -> `classifier` (linear)."""


def mobilenet_v1(
    width: float = 1.0,
    num_classes: int = 1000,
    input_size: int = 224,
    in_channels: int = 3,
) -> nn.Module:
    """Build MobileNetV1 with ReLU6, each block a depthwise 3x3 then a pointwise 1x1.

    Channels are ``width`` times the standard ones rounded to multiples of 8.
    Strides follow the MobileNetV2 small-input rule (`small_input_strides`):
    the stem has stride 1 below 64 pixels and the first stride-2 block (128
    channels) has stride 1 at 32 pixels or less, giving 7x7 features at 224,
    4x4 at 32 and 2x2 at 16.
    """
    if width <= 0:
        raise ValueError(f"width: expected a positive multiplier, got {width}")
    stem_stride, first_downsample_stride = small_input_strides(input_size)
    channels = make_divisible(_STEM_CHANNELS * width)
    layers: list[nn.Module] = [conv_bn(in_channels, channels, 3, stem_stride, activation=nn.ReLU6)]
    downsampled = False
    for base_channels, stride in _BLOCKS:
        if stride == 2 and not downsampled:
            stride, downsampled = first_downsample_stride, True
        out_channels = make_divisible(base_channels * width)
        layers.append(conv_bn(channels, channels, 3, stride, groups=channels, activation=nn.ReLU6))
        layers.append(conv_bn(channels, out_channels, 1, activation=nn.ReLU6))
        channels = out_channels
    model = MobileNetV1(nn.Sequential(*layers), nn.Linear(channels, num_classes))
    init_weights(model)
    return model
