"""scikit-learn's 8x8 digits as a clean 16x16 task and a hard 32x32 task.

Both tasks use one fixed stratified split of the 1797 originals, so a test
image never derives from an original seen in training. The `seed` of the hard
task only drives its augmentation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ddq_edge.data.task import Task, build_task, stratified_split

DIGIT_LABELS = tuple(str(digit) for digit in range(10))
SPLIT_SEED = 0
TEST_FRACTION = 0.25
CLEAN_SIZE = 16
HARD_SIZE = 32
TRAIN_COPIES = 6
TEST_COPIES = 5

# Augmentation ranges of the hard task: lengths in output pixels, angles in
# degrees, intensities in [0, 1] pixel units.
MAX_ROTATION_DEG = 20.0
SCALE_RANGE = (0.8, 1.15)
MAX_SHIFT_PX = 3.0
MAX_SHEAR_DEG = 8.0
CONTRAST_RANGE = (0.5, 1.2)
BRIGHTNESS_RANGE = (-0.1, 0.25)
NOISE_STD_RANGE = (0.02, 0.12)
MAX_STROKES = 3
STROKE_LENGTH_PX = (4.0, 10.0)
STROKE_SIGMA_PX = 0.7
STROKE_INTENSITY = (0.2, 0.5)
FRAGMENT_PROBABILITY = 0.5
FRAGMENT_INTENSITY = (0.2, 0.45)
FRAGMENT_MAX_ROTATION_DEG = 45.0
FRAGMENT_SCALE_RANGE = (0.8, 1.2)
# A fragment is another digit pushed this far off-centre (in half-frames),
# so the frame edge crops it to a piece.
FRAGMENT_OFFSET = (0.8, 1.2)


def _originals() -> tuple[torch.Tensor, torch.Tensor]:
    """All originals as (N, 1, 8, 8) float32 pixels in [0, 1] and int64 labels."""
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the originals in the fixed stratified 75/25 (train, test) split."""
    _, labels = _originals()
    return stratified_split(labels.numpy(), TEST_FRACTION, SPLIT_SEED)


def digits_task() -> Task:
    """The clean task: originals bilinearly upsampled to 1x16x16.

    It has no randomness beyond the fixed split, hence no seed.
    """
    images, labels = _originals()
    images = F.interpolate(images, size=CLEAN_SIZE, mode="bilinear", align_corners=False)
    train_idx, test_idx = (torch.from_numpy(idx) for idx in digits_split())
    return build_task(
        "digits",
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        DIGIT_LABELS,
    )


def digits_hard_task(seed: int = 0, size: int = HARD_SIZE) -> Task:
    """The hard task: augmented 1x`size`x`size` copies of the originals of each split.

    Train holds `TRAIN_COPIES` copies of each train original, test holds
    `TEST_COPIES` of each test original; copies of one original are adjacent.
    Train and test draw from independent streams derived from `seed`. Images are made
    at 32x32; a smaller `size` averages them down (area resampling), which keeps the
    noise and clutter but makes a model 4x cheaper to train at 16x16.
    """
    images, labels = _originals()
    train_idx, test_idx = (torch.from_numpy(idx) for idx in digits_split())
    train_seed, test_seed = (
        int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(2)
    )
    train_images = augment_digits(
        images[train_idx], TRAIN_COPIES, torch.Generator().manual_seed(train_seed)
    )
    test_images = augment_digits(
        images[test_idx], TEST_COPIES, torch.Generator().manual_seed(test_seed)
    )
    if size != HARD_SIZE:
        train_images, test_images = (
            F.interpolate(x, size=(size, size), mode="area") for x in (train_images, test_images)
        )
    return build_task(
        "digits-hard" if size == 16 else f"digits-hard-{size}",
        train_images,
        labels[train_idx].repeat_interleave(TRAIN_COPIES),
        test_images,
        labels[test_idx].repeat_interleave(TEST_COPIES),
        DIGIT_LABELS,
    )


def augment_digits(
    originals: torch.Tensor, copies: int, generator: torch.Generator
) -> torch.Tensor:
    """Make `copies` distorted 32x32 versions of each (N, 1, H, W) original.

    Row ``i`` of the (N * copies, 1, 32, 32) result comes from original
    ``i // copies``. Each copy gets a random affine warp, clutter (short
    strokes, sometimes a cropped piece of another original of the same batch,
    so clutter never leaks across splits), random contrast and brightness and
    Gaussian noise; pixels stay in [0, 1].
    """
    if originals.ndim != 4 or originals.shape[1] != 1:
        raise ValueError(
            f"originals: expected shape (N, 1, H, W), got {tuple(originals.shape)}"
        )
    if copies < 1:
        raise ValueError(f"copies: expected a positive int, got {copies}")
    if originals.shape[0] < 2:
        raise ValueError(
            f"originals: expected at least 2 images to draw clutter from, "
            f"got {originals.shape[0]}"
        )
    count = originals.shape[0] * copies
    own = torch.arange(originals.shape[0]).repeat_interleave(copies)

    digits = _warp(originals[own], _digit_thetas(count, generator))
    clutter = torch.maximum(
        _strokes(count, generator), _fragments(originals, own, generator)
    )
    pixels = torch.maximum(digits, clutter)

    contrast = _uniform((count, 1, 1, 1), CONTRAST_RANGE, generator)
    brightness = _uniform((count, 1, 1, 1), BRIGHTNESS_RANGE, generator)
    noise_std = _uniform((count, 1, 1, 1), NOISE_STD_RANGE, generator)
    noise = torch.randn(pixels.shape, generator=generator) * noise_std
    return (pixels * contrast + brightness + noise).clamp_(0.0, 1.0)


def _uniform(
    shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator
) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)


def _affine_theta(
    angle: torch.Tensor, shear: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """(N, 2, 3) `affine_grid` matrices for rotate(shear(scale(x))) + shift.

    Angles in radians, shift in normalised [-1, 1] frame coordinates.
    """
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.zeros_like(rotation)
    shearing[:, 0, 0] = 1.0
    shearing[:, 0, 1] = shear.tan()
    shearing[:, 1, 1] = 1.0
    forward = rotation @ shearing * scale.view(-1, 1, 1)
    # affine_grid maps output positions back to source positions: the inverse.
    inverse = torch.linalg.inv(forward)
    return torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)


def _warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample 8x8 images onto a warped 32x32 grid.

    Sampling the 8x8 source directly upsamples and warps in one bilinear
    step, which blurs less than upsampling first and warping after.
    """
    grid = F.affine_grid(
        theta, [images.shape[0], 1, HARD_SIZE, HARD_SIZE], align_corners=False
    )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _digit_thetas(count: int, generator: torch.Generator) -> torch.Tensor:
    max_rotation = math.radians(MAX_ROTATION_DEG)
    max_shear = math.radians(MAX_SHEAR_DEG)
    max_shift = MAX_SHIFT_PX * 2.0 / HARD_SIZE
    return _affine_theta(
        _uniform((count,), (-max_rotation, max_rotation), generator),
        _uniform((count,), (-max_shear, max_shear), generator),
        _uniform((count,), SCALE_RANGE, generator),
        _uniform((count, 2), (-max_shift, max_shift), generator),
    )


def _fragments(
    originals: torch.Tensor, own: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Faint, frame-cropped pieces of a different original for about half the copies."""
    count, pool = own.shape[0], originals.shape[0]
    # Adding 1..N-1 modulo N always picks an original other than the copy's own.
    other = (own + torch.randint(1, pool, (count,), generator=generator)) % pool
    direction = _uniform((count,), (0.0, 2.0 * math.pi), generator)
    offset = _uniform((count,), FRAGMENT_OFFSET, generator)
    max_rotation = math.radians(FRAGMENT_MAX_ROTATION_DEG)
    theta = _affine_theta(
        _uniform((count,), (-max_rotation, max_rotation), generator),
        torch.zeros(count),
        _uniform((count,), FRAGMENT_SCALE_RANGE, generator),
        torch.stack([direction.cos(), direction.sin()], -1) * offset.unsqueeze(-1),
    )
    intensity = _uniform((count, 1, 1, 1), FRAGMENT_INTENSITY, generator)
    present = torch.rand((count, 1, 1, 1), generator=generator) < FRAGMENT_PROBABILITY
    return _warp(originals[other], theta) * intensity * present


def _strokes(count: int, generator: torch.Generator) -> torch.Tensor:
    """Up to `MAX_STROKES` short, soft line segments per image, (count, 1, 32, 32)."""
    coords = torch.arange(HARD_SIZE, dtype=torch.float32)
    pixel_y, pixel_x = coords.view(1, -1, 1), coords.view(1, 1, -1)
    strokes_per_image = torch.randint(0, MAX_STROKES + 1, (count,), generator=generator)
    canvas = torch.zeros(count, HARD_SIZE, HARD_SIZE)
    for stroke in range(MAX_STROKES):
        start = _uniform((count, 2), (2.0, HARD_SIZE - 3.0), generator)
        direction = _uniform((count,), (0.0, 2.0 * math.pi), generator)
        length = _uniform((count,), STROKE_LENGTH_PX, generator)
        intensity = _uniform((count,), STROKE_INTENSITY, generator)
        dx = (direction.cos() * length).view(-1, 1, 1)
        dy = (direction.sin() * length).view(-1, 1, 1)
        rel_x = pixel_x - start[:, 0].view(-1, 1, 1)
        rel_y = pixel_y - start[:, 1].view(-1, 1, 1)
        # Project each pixel onto the segment to get its distance to the stroke.
        along = ((rel_x * dx + rel_y * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0)
        distance_sq = (rel_x - along * dx) ** 2 + (rel_y - along * dy) ** 2
        active = (stroke < strokes_per_image).float() * intensity
        ink = torch.exp(-distance_sq / (2.0 * STROKE_SIGMA_PX**2)) * active.view(-1, 1, 1)
        canvas = torch.maximum(canvas, ink)
    return canvas.unsqueeze(1)
