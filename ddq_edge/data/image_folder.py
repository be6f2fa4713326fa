"""Tasks from a ``root/<class>/<image>`` folder, and single-image preprocessing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ddq_edge.data.task import Task, build_task, normalise, stratified_split

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_MODES = {1: "L", 3: "RGB"}


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | tuple[int, int],
    grayscale: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:
    """Load ``root/<class>/<image>`` files into a normalised, split Task.

    Class names are the sorted sub-folder names; images are the files directly
    inside them ending in .png/.jpg/.jpeg/.bmp (any case). Every image is
    converted to RGB (or L when `grayscale`) and resized bilinearly to
    `image_size`, an int for square images or ``(height, width)``. The split is
    stratified and fixed by `seed`; mean and std come from the train split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    root = Path(root)
    class_names, files, labels = _scan(root)
    mode = "L" if grayscale else "RGB"
    images = torch.stack([_load_pixels(path, mode, size) for path in files])
    label_tensor = torch.from_numpy(labels)
    train_idx, test_idx = (
        torch.from_numpy(idx) for idx in stratified_split(labels, test_fraction, seed)
    )
    return build_task(
        root.name,
        images[train_idx],
        label_tensor[train_idx],
        images[test_idx],
        label_tensor[test_idx],
        class_names,
    )


def preprocess_image(
    path: str | os.PathLike[str],
    input_shape: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Load one image exactly as `load_image_folder` does: a (1, C, H, W) batch.

    `input_shape` is a task's (C, H, W) with C 1 (grayscale) or 3 (RGB);
    `mean` and `std` are the task's normalisation.
    """
    channels, height, width = input_shape
    if channels not in _MODES:
        raise ValueError(f"input_shape: expected 1 or 3 channels, got {channels}")
    pixels = _load_pixels(Path(path), _MODES[channels], (height, width))
    return normalise(pixels.unsqueeze(0), mean, std)


def _scan(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names, image paths and their int64 labels under `root`."""
    if not root.exists():
        raise FileNotFoundError(f"image folder root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder root {root} is not a directory")
    class_dirs = sorted(
        entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_dirs:
        raise ValueError(
            f"image folder root {root} has no class folders; expected root/<class>/<image>"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        images = sorted(
            entry
            for entry in class_dir.iterdir()
            if entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS
        )
        # Fewer than two images cannot put the class in both train and test.
        if len(images) < 2:
            raise ValueError(
                f"class folder {class_dir} has {len(images)} image(s); expected at "
                f"least 2 files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        files.extend(images)
        labels.extend([label] * len(images))
    return [d.name for d in class_dirs], files, np.array(labels, dtype=np.int64)


def _load_pixels(path: Path, mode: str, size: tuple[int, int]) -> torch.Tensor:
    """Read an image as a (C, H, W) float32 tensor in [0, 1]."""
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    height, width = size
    try:
        with Image.open(path) as image:
            resized = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
    except OSError as err:  # Pillow's "cannot identify" and truncated-file errors
        raise ValueError(f"cannot read image {path}: {err}") from err
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(pixels))
