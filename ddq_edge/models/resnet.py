"""The CIFAR ResNet: three stages of basic blocks, depth 6n+2."""

from __future__ import annotations

import torch
from torch import nn

from ddq_edge.models.common import PooledClassifier
from ddq_edge.models.mobilenet_v2 import conv_bn, init_weights

# Inputs at least this wide get an ImageNet-style downsampling stem.
_LARGE_INPUT = 64


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers plus a shortcut, then ReLU after the add.

    The shortcut is the identity, or a 1x1 conv+BN projection when the
    stride or channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride, activation=nn.ReLU)
        self.conv2 = conv_bn(out_channels, out_channels, 3)
        self.shortcut = (
            conv_bn(in_channels, out_channels, 1, stride)
            if stride != 1 or in_channels != out_channels
            else None
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.conv2(self.conv1(x)) + skip)


class ResNet(PooledClassifier):
    """`features` (stem and stages) -> global average pool -> `classifier` (linear)."""


def resnet(
    depth: int = 20,
    num_classes: int = 10,
    input_size: int = 32,
    in_channels: int = 3,
    width: int = 16,
) -> nn.Module:
    """Build a CIFAR ResNet of `depth` = 6n+2 layers (20, 32, 44, 56, ...).

    Stages of n basic blocks have `width`, 2x and 4x channels and strides 1,
    2, 2. Inputs under 64 pixels get a stride-1 3x3 stem (total stride 4: 8x8
    features at 32x32); larger inputs get a stride-2 stem and a 3x3 stride-2
    max-pool (total stride 16: 14x14 features at 224).
    """
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"depth: expected 6n+2 with n >= 1 (8, 14, 20, ...), got {depth}")
    if width < 1:
        raise ValueError(f"width: expected a positive channel count, got {width}")
    if input_size < 1:
        raise ValueError(f"input_size: expected a positive int, got {input_size}")
    blocks_per_stage = (depth - 2) // 6
    large = input_size >= _LARGE_INPUT
    stem = conv_bn(in_channels, width, 3, 2 if large else 1, activation=nn.ReLU)
    layers: list[nn.Module] = [stem]
    if large:
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    channels = width
    for stage, stride in enumerate((1, 2, 2)):
        out_channels = width * 2**stage
        for block in range(blocks_per_stage):
            layers.append(BasicBlock(channels, out_channels, stride if block == 0 else 1))
            channels = out_channels
    model = ResNet(nn.Sequential(*layers), nn.Linear(channels, num_classes))
    init_weights(model)
    return model
