"""Run a bundle on images or arrays: inputs, preprocessing from the bundle's metadata, top-k.

``ddq-edge run`` is a thin layer over this module. Images are preprocessed by the same code as
training (:func:`ddq_edge.data.preprocess_image`), driven only by the bundle's metadata:
``input_shape`` ([C, H, W]; C = 1 grayscale, C = 3 RGB), ``layout`` ("NCHW") and
``preprocessing`` (``mean`` and ``std`` per channel, ``input_range`` [lo, hi]): resize to H x W,
scale the pixels to [lo, hi], normalise with ``(x - mean) / std``. A ``.npy`` input is taken as
already preprocessed: float32, (C, H, W) or (N, C, H, W).

Every problem with an input is an :class:`InputError` whose message names the file; problems
with what the metadata says are its subclass :class:`MetadataError`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ImagePreprocessing", "InputError", "MetadataError", "Prediction", "class_labels",
           "class_scores", "load_inputs", "preprocess_image_file", "softmax", "top_k"]


class InputError(ValueError):
    """An input file cannot be read, or does not fit the model."""


class MetadataError(InputError):
    """The bundle's metadata lacks what preprocessing or labelling needs, or contradicts the graph."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ImagePreprocessing:
    """How raw images become the model's input, as the bundle's metadata states it."""

    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_range: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any],
                      graph_input_shape: Sequence[int] | None = None) -> "ImagePreprocessing":
        """Read and check the metadata; ``graph_input_shape`` (N, C, H, W) fills in or checks
        ``input_shape``. Raises :class:`MetadataError` saying what is missing or wrong."""
        def bad(message: str) -> MetadataError:
            return MetadataError(f"bundle metadata: {message}; cannot preprocess images "
                              "(pass an already preprocessed .npy instead)")

        graph_chw = tuple(int(d) for d in graph_input_shape[1:]) if graph_input_shape else None
        shape = metadata.get("input_shape")
        if shape is None:
            if graph_chw is None:
                raise bad("no input_shape")
            shape = graph_chw
        if (not isinstance(shape, (list, tuple)) or len(shape) != 3
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
            raise bad(f"input_shape: expected [C, H, W], got {shape!r}")
        shape = tuple(shape)
        if graph_chw is not None and shape != graph_chw:
            raise bad(f"input_shape {list(shape)} disagrees with the graph's input "
                      f"(N, {', '.join(map(str, graph_chw))})")
        layout = metadata.get("layout", "NCHW")
        if layout != "NCHW":
            raise bad(f"layout {layout!r}; only NCHW is supported")
        if shape[0] not in (1, 3):
            raise bad(f"input_shape {list(shape)} has {shape[0]} channels; images need 1 "
                      "(grayscale) or 3 (RGB)")
        pre = metadata.get("preprocessing")
        if not isinstance(pre, dict):
            raise bad("no preprocessing (mean, std, input_range)")
        channels = shape[0]
        values = {}
        for key in ("mean", "std"):
            v = pre.get(key)
            if (not isinstance(v, (list, tuple)) or len(v) != channels
                    or not all(_number(x) for x in v)):
                raise bad(f"preprocessing.{key}: expected {channels} number(s), got {v!r}")
            values[key] = tuple(float(x) for x in v)
        if any(s == 0.0 for s in values["std"]):
            raise bad(f"preprocessing.std has a zero: {list(values['std'])}")
        rng = pre.get("input_range", [0.0, 1.0])
        if (not isinstance(rng, (list, tuple)) or len(rng) != 2 or not all(_number(x) for x in rng)
                or not rng[0] < rng[1]):
            raise bad(f"preprocessing.input_range: expected [lo, hi] with lo < hi, got {rng!r}")
        return cls(shape, values["mean"], values["std"], (float(rng[0]), float(rng[1])))


def preprocess_image_file(path: str | os.PathLike, prep: ImagePreprocessing) -> np.ndarray:
    """One image file as a float32 (1, C, H, W) model input.

    Loading and resizing is :func:`ddq_edge.data.preprocess_image` (the training code) with an
    identity normalisation, which gives the raw pixels in [0, 1] exactly; they are scaled to
    ``input_range`` and normalised by :func:`ddq_edge.data.task.normalise`. For the default
    range [0, 1] the result is bit-identical to ``preprocess_image(path, shape, mean, std)``.
    """
    from .data import preprocess_image
    from .data.task import normalise

    channels = prep.input_shape[0]
    try:
        pixels = preprocess_image(path, prep.input_shape, [0.0] * channels, [1.0] * channels)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except ValueError as error:  # not an image Pillow can open (the cause is Pillow's OSError)
        raise InputError(f"{path}: cannot read as an image: {error.__cause__ or error}") from None
    lo, hi = prep.input_range
    if (lo, hi) != (0.0, 1.0):
        pixels = pixels * (hi - lo) + lo
    return normalise(pixels, prep.mean, prep.std).numpy().astype(np.float32, copy=False)


def _image_extensions() -> set[str]:
    from PIL import Image

    from .data.image_folder import IMAGE_EXTENSIONS

    return {ext.lower() for ext in Image.registered_extensions()} | set(IMAGE_EXTENSIONS)


def _load_npy(path: Path, chw: tuple[int, ...]) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: cannot read .npy: {error}") from None
    if not isinstance(x, np.ndarray):
        raise InputError(f"{path}: expected one array, got an .npz archive")
    if x.dtype != np.float32:
        raise InputError(f"{path}: expected a float32 array, got {x.dtype} "
                         "(save it with x.astype(np.float32))")
    expected = ", ".join(map(str, chw))
    if x.ndim == len(chw):
        x = x[None]
    if x.ndim != len(chw) + 1 or tuple(x.shape[1:]) != tuple(chw) or x.shape[0] < 1:
        raise InputError(f"{path}: expected shape ({expected}) or (N, {expected}), got {x.shape}")
    return np.ascontiguousarray(x)


def load_inputs(path: str | os.PathLike, metadata: dict[str, Any],
                graph_input_shape: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """The float32 (N, C, H, W) batch at ``path`` and a name for each sample.

    ``path`` is a ``.npy`` array (used as is: already preprocessed), an image file (anything
    Pillow opens) or a directory whose image files (sorted by name, not recursive) are one
    sample each. Images are preprocessed from ``metadata``; ``graph_input_shape`` is the
    model's input (N, C, H, W).
    """
    path = Path(path)
    chw = tuple(int(d) for d in graph_input_shape[1:])
    if path.is_dir():
        extensions = _image_extensions()
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions)
        if not files:
            raise InputError(f"{path}: no image files in this directory")
        prep = ImagePreprocessing.from_metadata(metadata, graph_input_shape)
        return np.concatenate([preprocess_image_file(f, prep) for f in files]), [str(f) for f in files]
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".npy":
        x = _load_npy(path, chw)
        names = [str(path)] if x.shape[0] == 1 else [f"{path}[{i}]" for i in range(x.shape[0])]
        return x, names
    prep = ImagePreprocessing.from_metadata(metadata, graph_input_shape)
    return preprocess_image_file(path, prep), [str(path)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Prediction:
    rank: int
    index: int
    label: str
    score: float


def class_labels(metadata: dict[str, Any], num_classes: int) -> list[str]:
    """The metadata's class names, or the class indices as strings when it has none."""
    labels = metadata.get("labels")
    if labels is None:
        return [str(i) for i in range(num_classes)]
    if not isinstance(labels, (list, tuple)) or len(labels) != num_classes:
        count = len(labels) if isinstance(labels, (list, tuple)) else repr(labels)
        raise MetadataError(f"bundle metadata: {count} labels, but the model outputs "
                         f"{num_classes} class scores")
    return [str(label) for label in labels]


def top_k(outputs: np.ndarray, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """For each row of (N, K) logits, the ``min(k, K)`` most probable classes (softmax),
    best first; ties keep the lower class index first."""
    probs = softmax(outputs)
    k = max(1, min(int(k), probs.shape[1]))
    result = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        result.append([Prediction(rank + 1, int(i), labels[i], float(row[i]))
                       for rank, i in enumerate(order)])
    return result


def class_scores(outputs: np.ndarray) -> np.ndarray | None:
    """``outputs`` as (N, K) class logits (dropping trailing 1-sized dims, as in (N, K, 1, 1)),
    or None if they are not class scores."""
    out = outputs
    while out.ndim > 2 and out.shape[-1] == 1:
        out = out[..., 0]
    return out if out.ndim == 2 else None
