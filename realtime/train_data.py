"""Training images: folders read once into memory, and random augmented crops drawn from them.

As in the paper, every image is resized so its shorter side is `load_size` (512) and training sees
random square crops (256). Augmentation adds scale jitter (the crop window is up to `scale_jitter`
larger or smaller than the crop, then resized to it) and horizontal flips. Every random choice comes
from one `torch.Generator`, so a run restored with the generator's state draws the same batches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .image_batch import expand_inputs
from .images import read_image, resize_shorter_side

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augmentation:
    """How crops are drawn: size, scale jitter (0.25: window side in [0.75, 1.25] x crop) and flips."""

    crop: int = 256
    scale_jitter: float = 0.25
    flip: bool = True

    def __post_init__(self) -> None:
        if self.crop < 16 or self.crop % 8:
            raise UserError(f"--crop must be a multiple of 8 and at least 16, got {self.crop}")
        if not 0.0 <= self.scale_jitter < 1.0:
            raise UserError(f"--scale-jitter must lie in [0, 1), got {self.scale_jitter}")


@dataclass(frozen=True)
class ImageSet:
    """Decoded RGB images (uint8 tensors (3, H, W)) and the files they came from."""

    paths: tuple[Path, ...]
    images: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return len(self.images)


def load_image_set(patterns: Sequence[str], load_size: int, what: str) -> ImageSet:
    """Read every image under the folders/files/globs, shorter side resized to `load_size`.

    Unreadable images are skipped with a warning naming the file; finding none at all is a UserError.
    """
    paths, missing = expand_inputs(patterns)
    if missing:
        raise UserError(f"{what}: {missing[0][1]}")
    kept_paths, images = [], []
    for path in paths:
        try:
            rgb = read_image(path).rgb
        except UserError as exc:
            log.warning("skipping %s image: %s", what, exc)
            continue
        rgb = resize_shorter_side(rgb, load_size)
        kept_paths.append(path)
        images.append(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
    if not images:
        raise UserError(f"{what}: no readable images in {', '.join(patterns)}")
    return ImageSet(tuple(kept_paths), tuple(images))


def random_crops(images: ImageSet, count: int, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """`count` random augmented crops of random images: float (count, 3, crop, crop) in [0, 1]."""
    crop = augmentation.crop
    picks = torch.randint(len(images), (count,), generator=generator).tolist()
    scales = 1.0 + augmentation.scale_jitter * (2.0 * torch.rand(count, generator=generator) - 1.0)
    flips = torch.rand(count, generator=generator) < 0.5
    corners = torch.rand(count, 2, generator=generator)
    out = []
    for index, scale, flip, corner in zip(picks, scales.tolist(), flips.tolist(), corners):
        image = images.images[index]
        height, width = image.shape[-2:]
        side = min(round(crop * scale), height, width)
        top = int(corner[0] * (height - side + 1))
        left = int(corner[1] * (width - side + 1))
        window = image[None, :, top:top + side, left:left + side].float().div_(255.0)
        if side != crop:
            window = F.interpolate(window, size=(crop, crop), mode="bilinear", antialias=side > crop,
                                   align_corners=False).clamp_(0, 1)
        if augmentation.flip and flip:
            window = window.flip(-1)
        out.append(window)
    return torch.cat(out)


def center_crops(images: ImageSet, count: int, crop: int) -> torch.Tensor:
    """Deterministic centre crops of the first `count` images (for sample sheets)."""
    out = []
    for image in images.images[:count]:
        height, width = image.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        window = image[None, :, top:top + side, left:left + side].float().div_(255.0)
        out.append(F.interpolate(window, size=(crop, crop), mode="bilinear", antialias=True,
                                 align_corners=False).clamp_(0, 1))
    return torch.cat(out)
