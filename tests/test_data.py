"""Tests for ddq_edge.data: the digits tasks and image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddq_edge.data import Task, get_task, load_image_folder, preprocess_image
from ddq_edge.data.digits import (
    TEST_COPIES,
    TRAIN_COPIES,
    augment_digits,
    digits_split,
)
from ddq_edge.data.task import stratified_split

DIGIT_LABELS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def digits() -> Task:
    return get_task("digits")


@pytest.fixture(scope="module")
def hard() -> Task:
    return get_task("digits-hard-32", seed=0)


def _original_labels() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.from_numpy(load_digits().target.astype(np.int64))


def _nearest_centroid_accuracy(task: Task) -> float:
    x, y = task.train.tensors
    test_x, test_y = task.test.tensors
    centroids = torch.stack([x[y == k].mean(0) for k in range(task.num_classes)]).flatten(1)
    predicted = torch.cdist(test_x.flatten(1), centroids).argmin(1)
    return (predicted == test_y).float().mean().item()


def _assert_normalised_train(task: Task) -> None:
    x, _ = task.train.tensors
    for channel in range(task.input_shape[0]):
        values = x[:, channel].double()
        assert abs(values.mean().item()) < 1e-4
        assert values.std(correction=0).item() == pytest.approx(1.0, abs=1e-4)


def _assert_raw_pixels_in_unit_range(task: Task) -> None:
    for dataset in (task.train, task.test):
        x, _ = dataset.tensors
        mean = torch.tensor(task.mean).view(1, -1, 1, 1)
        std = torch.tensor(task.std).view(1, -1, 1, 1)
        raw = x * std + mean
        assert raw.min().item() >= -1e-5
        assert raw.max().item() <= 1 + 1e-5


def test_split_is_stratified_disjoint_and_complete() -> None:
    train_idx, test_idx = digits_split()
    assert np.intersect1d(train_idx, test_idx).size == 0
    assert np.array_equal(np.union1d(train_idx, test_idx), np.arange(1797))
    labels = _original_labels().numpy()
    for digit in range(10):
        in_class = labels == digit
        fraction = np.isin(np.flatnonzero(in_class), test_idx).mean()
        assert 0.23 < fraction < 0.27, f"class {digit} test fraction {fraction}"


def test_split_is_fixed() -> None:
    first, second = digits_split(), digits_split()
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_digits_shapes_and_types(digits: Task) -> None:
    train_idx, test_idx = digits_split()
    x, y = digits.train.tensors
    test_x, test_y = digits.test.tensors
    assert digits.name == "digits"
    assert x.shape == (len(train_idx), 1, 16, 16)
    assert test_x.shape == (len(test_idx), 1, 16, 16)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert digits.input_shape == (1, 16, 16)
    assert digits.num_classes == 10 and digits.labels == DIGIT_LABELS
    labels = _original_labels()
    assert torch.equal(y, labels[train_idx])
    assert torch.equal(test_y, labels[test_idx])


def test_digits_normalisation(digits: Task) -> None:
    _assert_normalised_train(digits)
    _assert_raw_pixels_in_unit_range(digits)


def test_digits_hard_sizes_and_labels(hard: Task) -> None:
    train_idx, test_idx = digits_split()
    x, y = hard.train.tensors
    test_x, test_y = hard.test.tensors
    assert hard.name == "digits-hard-32"
    assert x.shape == (len(train_idx) * TRAIN_COPIES, 1, 32, 32)
    assert test_x.shape == (len(test_idx) * TEST_COPIES, 1, 32, 32)
    assert 7500 < len(x) < 8500 and 1800 < len(test_x) < 2500
    assert x.dtype == torch.float32 and test_x.dtype == torch.float32
    assert y.dtype == torch.int64 and test_y.dtype == torch.int64
    assert hard.input_shape == (1, 32, 32) and hard.labels == DIGIT_LABELS
    # Copies are built from their own split's originals only, adjacent per original.
    labels = _original_labels()
    assert torch.equal(y, labels[train_idx].repeat_interleave(TRAIN_COPIES))
    assert torch.equal(test_y, labels[test_idx].repeat_interleave(TEST_COPIES))


def test_digits_hard_class_balance(hard: Task) -> None:
    for dataset in (hard.train, hard.test):
        _, y = dataset.tensors
        counts = torch.bincount(y, minlength=10).double()
        assert ((counts - counts.mean()).abs() / counts.mean()).max().item() < 0.05


def test_digits_hard_normalisation(hard: Task) -> None:
    _assert_normalised_train(hard)
    _assert_raw_pixels_in_unit_range(hard)


def test_digits_hard_is_deterministic_per_seed(hard: Task) -> None:
    again = get_task("digits-hard-32", seed=0)
    other = get_task("digits-hard-32", seed=1)
    for split in ("train", "test"):
        x, y = getattr(hard, split).tensors
        x_again, y_again = getattr(again, split).tensors
        x_other, y_other = getattr(other, split).tensors
        assert torch.equal(x, x_again) and torch.equal(y, y_again)
        # Same originals and labels, different augmentation.
        assert torch.equal(y, y_other)
        assert (x - x_other).abs().mean().item() > 0.1


def test_digits_hard_copies_of_one_original_differ(hard: Task) -> None:
    x, _ = hard.train.tensors
    first_original = x[:TRAIN_COPIES].flatten(1)
    distances = torch.cdist(first_original, first_original)
    off_diagonal = distances[~torch.eye(TRAIN_COPIES, dtype=torch.bool)]
    assert off_diagonal.min().item() > 1.0


def test_digits_hard_is_harder_but_learnable(digits: Task, hard: Task) -> None:
    clean_accuracy = _nearest_centroid_accuracy(digits)
    hard_accuracy = _nearest_centroid_accuracy(hard)
    assert clean_accuracy > 0.8
    assert 0.3 < hard_accuracy < clean_accuracy - 0.15


def test_augment_digits_range_and_layout() -> None:
    originals = torch.rand(4, 1, 8, 8)
    out = augment_digits(originals, 3, torch.Generator().manual_seed(5))
    assert out.shape == (12, 1, 32, 32) and out.dtype == torch.float32
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    again = augment_digits(originals, 3, torch.Generator().manual_seed(5))
    assert torch.equal(out, again)


def test_augment_digits_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"originals: expected shape \(N, 1, H, W\)"):
        augment_digits(torch.rand(4, 8, 8), 2, torch.Generator())


def test_get_task_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown task 'mnist'.*digits, digits-hard, digits-hard-32"):
        get_task("mnist")


def test_stratified_split_needs_two_per_class() -> None:
    with pytest.raises(ValueError, match="class 1 has 1 sample"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)


# Image folders ------------------------------------------------------------

CLASS_COLOURS = {
    "cat": [(200, 10, 10), (180, 30, 20), (220, 0, 40), (160, 50, 0), (240, 20, 20)],
    "dog": [(10, 200, 10), (30, 180, 20), (0, 220, 40), (50, 160, 0), (20, 240, 20)],
    "owl": [(10, 10, 200), (30, 20, 180), (40, 0, 220), (0, 50, 160), (20, 20, 240)],
}


def _write_folder(root: Path) -> dict[Path, int]:
    """Write small two-tone PNGs plus a non-image file; return PNG -> label index."""
    files = {}
    for label, (name, colours) in enumerate(sorted(CLASS_COLOURS.items())):
        (root / name).mkdir(parents=True)
        for index, colour in enumerate(colours):
            pixels = np.zeros((12, 10, 3), dtype=np.uint8)
            pixels[:6] = colour
            pixels[6:] = [255 - c for c in colour]
            path = root / name / f"img{index}.png"
            Image.fromarray(pixels).save(path)
            files[path] = label
    (root / "cat" / "notes.txt").write_text("not an image")
    return files


def _match_samples_to_files(task: Task, files: dict[Path, int]) -> None:
    """Every sample equals the preprocessed version of a file of its class."""
    loaded = {
        path: preprocess_image(path, task.input_shape, task.mean, task.std)[0]
        for path in files
    }
    matched = []
    for dataset in (task.train, task.test):
        for image, label in zip(*dataset.tensors):
            hits = [path for path, pixels in loaded.items() if torch.equal(pixels, image)]
            assert len(hits) == 1
            assert files[hits[0]] == label.item()
            matched.append(hits[0])
    assert sorted(matched) == sorted(files)


def test_image_folder_rgb_round_trip(tmp_path: Path) -> None:
    files = _write_folder(tmp_path / "pets")
    task = load_image_folder(tmp_path / "pets", image_size=8, test_fraction=0.2, seed=3)
    assert task.name == "pets"
    assert task.labels == ("cat", "dog", "owl") and task.num_classes == 3
    assert task.input_shape == (3, 8, 8)
    assert len(task.mean) == 3 and len(task.std) == 3
    x, y = task.train.tensors
    test_x, test_y = task.test.tensors
    assert x.shape == (12, 3, 8, 8) and test_x.shape == (3, 3, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert sorted(test_y.tolist()) == [0, 1, 2]
    _assert_normalised_train(task)
    _match_samples_to_files(task, files)


def test_image_folder_grayscale_and_rectangular(tmp_path: Path) -> None:
    files = _write_folder(tmp_path / "pets")
    task = load_image_folder(tmp_path / "pets", image_size=(6, 4), grayscale=True)
    assert task.input_shape == (1, 6, 4)
    assert task.train.tensors[0].shape[1:] == (1, 6, 4)
    assert len(task.mean) == 1
    _match_samples_to_files(task, files)


def test_image_folder_split_depends_on_seed_only(tmp_path: Path) -> None:
    _write_folder(tmp_path / "pets")
    first = load_image_folder(tmp_path / "pets", 8, seed=0)
    again = load_image_folder(tmp_path / "pets", 8, seed=0)
    assert torch.equal(first.test.tensors[0], again.test.tensors[0])
    others = [load_image_folder(tmp_path / "pets", 8, seed=s).test.tensors[0] for s in (1, 2, 3)]
    assert any(not torch.equal(first.test.tensors[0], other) for other in others)


def test_image_folder_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere", 8)


def test_image_folder_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no class folders"):
        load_image_folder(tmp_path, 8)


def test_image_folder_unreadable_image_is_named(tmp_path: Path) -> None:
    _write_folder(tmp_path / "pets")
    (tmp_path / "pets" / "dog" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path / "pets", 8)


def test_image_folder_class_with_one_image(tmp_path: Path) -> None:
    _write_folder(tmp_path / "pets")
    (tmp_path / "pets" / "yak").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "pets" / "yak" / "only.jpg")
    with pytest.raises(ValueError, match="yak has 1 image"):
        load_image_folder(tmp_path / "pets", 8)


def test_image_folder_bad_test_fraction(tmp_path: Path) -> None:
    _write_folder(tmp_path / "pets")
    with pytest.raises(ValueError, match="test_fraction"):
        load_image_folder(tmp_path / "pets", 8, test_fraction=1.0)


def test_preprocess_image_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.png"):
        preprocess_image(tmp_path / "missing.png", (3, 8, 8), (0.5,) * 3, (0.5,) * 3)
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match="expected 1 or 3 channels, got 2"):
        preprocess_image(tmp_path / "ok.png", (2, 8, 8), (0.5,) * 2, (0.5,) * 2)


def test_digits_hard_is_the_32px_task_averaged_down_to_16px():
    small, large = get_task("digits-hard"), get_task("digits-hard-32")
    assert small.input_shape == (1, 16, 16) and small.name == "digits-hard"
    assert len(small.train) == len(large.train) and len(small.test) == len(large.test)
    assert torch.equal(small.train.tensors[1], large.train.tensors[1])
