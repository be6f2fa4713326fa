"""The shape every zoo model shares: a feature stack, global average pooling, a classifier."""
from __future__ import annotations

import torch
from torch import nn


class PooledClassifier(nn.Module):
    """`features` (conv stack) -> global average pool -> `classifier`."""

    def __init__(self, features: nn.Sequential, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
