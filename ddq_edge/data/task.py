"""The `Task` record and the steps every task builder shares: split and normalise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class Task:
    """A classification task ready for training and deployment.

    The tensors in `train` and `test` are already normalised:
    ``(pixels - mean) / std`` per channel, where pixels are in [0, 1]. A
    deployment reproduces the input from raw pixels with `mean` and `std`.
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"task {self.name!r}: mean and std need one value per channel "
                f"({channels}), got {len(self.mean)} and {len(self.std)}"
            )
        if len(self.labels) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: expected {self.num_classes} label names, "
                f"got {len(self.labels)}"
            )


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into sorted (train, test) index arrays, per class.

    Each class sends ``round(count * test_fraction)`` samples to test, but at
    least one to each side so both splits see every class.
    """
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if members.size < 2:
            raise ValueError(
                f"class {label.item()!r} has {members.size} sample; a stratified split "
                "needs at least 2"
            )
        n_test = min(max(round(members.size * test_fraction), 1), members.size - 1)
        shuffled = rng.permutation(members)
        test_parts.append(shuffled[:n_test])
        train_parts.append(shuffled[n_test:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))


def normalise(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Apply ``(images - mean) / std`` per channel to an (N, C, H, W) batch."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


def build_task(
    name: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    labels: Sequence[str],
) -> Task:
    """Normalise raw [0, 1] images with the train split's statistics into a Task.

    Statistics come from the train split only, so the test split stays unseen.
    """
    # float64 so the mean over millions of pixels does not drift.
    pixels = train_images.double()
    mean = pixels.mean(dim=(0, 2, 3)).tolist()
    std = pixels.std(dim=(0, 2, 3), correction=0).tolist()
    for channel, value in enumerate(std):
        if value == 0.0:
            raise ValueError(
                f"task {name!r}: channel {channel} of the train images is constant; "
                "expected some variation to normalise by"
            )
    return Task(
        name=name,
        train=TensorDataset(normalise(train_images, mean, std), train_labels),
        test=TensorDataset(normalise(test_images, mean, std), test_labels),
        num_classes=len(labels),
        input_shape=tuple(train_images.shape[1:]),
        mean=tuple(mean),
        std=tuple(std),
        labels=tuple(labels),
    )
