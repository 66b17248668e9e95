"""Training data: folders read once, bad images skipped with a warning, crops reproducible from the RNG state."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from realtime.errors import UserError
from realtime.train_data import Augmentation, ImageSet, center_crops, load_image_set, random_crops


@pytest.fixture()
def folder_with_bad_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (folder / "truncated.jpg").write_bytes((folder / "b.jpg").read_bytes()[:200])
    (folder / "notes.txt").write_text("not an image, and not named like one: ignored silently")
    return folder


def test_bad_images_are_skipped_with_a_warning_naming_each(folder_with_bad_images, caplog):
    with caplog.at_level(logging.WARNING, logger="realtime.train_data"):
        images = load_image_set([str(folder_with_bad_images)], 32, "content")
    assert [p.name for p in images.paths] == ["a.png", "b.jpg"]
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for bad in ("empty.png", "garbage.jpg", "truncated.jpg"):
        assert bad in warned
    assert "notes.txt" not in warned
    assert all(image.shape[0] == 3 and min(image.shape[1:]) == 32 for image in images.images)


def test_no_readable_image_or_missing_folder_is_a_user_error(folder_with_bad_images, tmp_path):
    for good in ("a.png", "b.jpg"):
        (folder_with_bad_images / good).unlink()
    with pytest.raises(UserError, match="style: no readable images"):
        load_image_set([str(folder_with_bad_images)], 32, "style")
    with pytest.raises(UserError, match="nowhere"):
        load_image_set([str(tmp_path / "nowhere")], 32, "content")


def _coordinate_image(height: int, width: int) -> torch.Tensor:
    """R = row, G = column: every window of it says where it was taken from."""
    rows, cols = np.mgrid[0:height, 0:width]
    rgb = np.stack([rows, cols, np.zeros_like(rows)]).astype(np.uint8)
    return torch.from_numpy(rgb)


def test_crops_without_jitter_are_exact_windows_some_of_them_mirrored():
    images = ImageSet((), (_coordinate_image(100, 120),))
    crops = random_crops(images, 24, Augmentation(crop=32, scale_jitter=0.0, flip=True), torch.Generator().manual_seed(0))
    assert crops.shape == (24, 3, 32, 32)
    flipped = 0
    for crop in (crops * 255).round().to(torch.uint8):
        mirrored = bool(crop[1, 0, 0] > crop[1, 0, -1])
        window = crop.flip(-1) if mirrored else crop
        top, left = int(window[0, 0, 0]), int(window[1, 0, 0])
        assert torch.equal(window, images.images[0][:, top:top + 32, left:left + 32])
        flipped += mirrored
    assert 0 < flipped < 24


def test_crops_are_reproducible_from_the_generator_state_and_stay_in_range():
    images = ImageSet((), (_coordinate_image(80, 90), _coordinate_image(64, 64)))
    augmentation = Augmentation(crop=32, scale_jitter=0.5)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    first = random_crops(images, 6, augmentation, generator)
    generator.set_state(state)
    assert torch.equal(first, random_crops(images, 6, augmentation, generator))
    assert not torch.equal(first, random_crops(images, 6, augmentation, generator))
    assert first.min() >= 0 and first.max() <= 1


def test_center_crops_and_augmentation_checks():
    images = ImageSet((), (_coordinate_image(40, 80),))
    crop = center_crops(images, 5, 40)
    assert crop.shape == (1, 3, 40, 40) and round(float(crop[0, 1, 0, 0]) * 255) == 20
    with pytest.raises(UserError, match="multiple of 8"):
        Augmentation(crop=30)
    with pytest.raises(UserError, match="scale-jitter"):
        Augmentation(scale_jitter=1.5)
