"""Image files in and out, and every colour/layout conversion (RGB uint8 HWC <-> float NCHW, resizing).

Images are read as users have them: EXIF orientation applied; grayscale, palette, CMYK and
16-bit images turned into 8-bit RGB; an alpha channel kept aside so it can be put back on
the stylized result (the networks see RGB only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError, first_line
from .files import write_atomically

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm")
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class LoadedImage:
    """An image as 8-bit RGB (H, W, 3), and its alpha channel (H, W) if it had one."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None


def read_image(path: str | Path) -> LoadedImage:
    """Read an image file into 8-bit RGB; every failure is a one-line UserError naming the file."""
    if "://" in str(path):  # Path would also fold the URL's // into one /
        raise UserError(f"{path}: images are read from files, not URLs; download it first")
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except PermissionError:
        raise UserError(f"{path}: cannot read the file (permission denied)") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise UserError(f"{path}: cannot decode image ({first_line(exc)})") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: image too large ({first_line(exc)})") from None


def _to_rgb(image: Image.Image) -> LoadedImage:
    """Convert any Pillow mode to RGB uint8, keeping transparency as a separate alpha plane."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return LoadedImage(np.repeat(gray[..., None], 3, axis=2))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = np.array(image.convert("RGBA"))
        return LoadedImage(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]))
    return LoadedImage(np.array(image.convert("RGB")))


def write_image(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write RGB (H, W, 3) uint8, with alpha where the format keeps it, via a temporary file and a rename
    so that a crash never leaves half an image under the final name."""
    path = Path(path)
    image = Image.fromarray(rgb, "RGB")
    if alpha is not None and path.suffix.lower() in ALPHA_SUFFIXES:
        image.putalpha(Image.fromarray(alpha, "L"))
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    fmt = image_format(path)
    write_atomically(path, lambda out: image.save(out, format=fmt, **options))


def image_format(path: str | Path) -> str:
    """The Pillow format an output file's extension asks for; a UserError when there is none (check
    outputs with it before long work, not only when writing)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: unknown image extension {path.suffix!r}; use .png or .jpg")
    return fmt


def resize_shorter_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is `size` pixels (area filter when shrinking, cubic when enlarging)."""
    height, width = rgb.shape[:2]
    scale = size / min(height, width)
    if scale == 1.0:
        return rgb
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def resize_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, C) image to exactly width x height."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrinking = width * height < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def read_mask(path: str | Path, width: int, height: int) -> np.ndarray:
    """A spatial-control mask as float32 (H, W) in [0, 1] at the given size (white = inside)."""
    loaded = read_image(path)
    gray = loaded.alpha if loaded.alpha is not None and loaded.alpha.min() < 255 else loaded.rgb.mean(axis=2)
    return resize_to(gray.astype(np.float32) / 255.0, width, height)


def frames_to_tensor(frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB, on any device -> (N, 3, H, W) float in [0, 1], channels_last.

    Converting on the device after a uint8 upload moves a quarter of the bytes of a float upload.
    """
    batch = frames.unsqueeze(0) if frames.dim() == 3 else frames
    # permute makes an NCHW view whose memory is already channels_last: no copy is made here
    return batch.permute(0, 3, 1, 2).to(dtype).div_(255.0)


def tensor_to_frames(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 RGB on the same device (rounded, clamped).

    Clamping after scaling matters in bf16/fp16, where 255 + 0.5 rounds to 256 and would wrap to 0.
    """
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def inference_size(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """The (H, W) the networks run at for an H x W frame: its own size, or (shorter_side > 0) scaled so that
    its shorter side is `shorter_side` pixels (at least 8, one feature cell), aspect ratio kept."""
    if not shorter_side or min(height, width) == shorter_side:
        return height, width
    scale = max(8, shorter_side) / min(height, width)
    return round(height * scale), round(width * scale)


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) float images to size (H, W), antialiased when shrinking, in their dtype.

    The resize runs in fp32 and NCHW: on CPUs the antialiased kernel has no bf16 or fp16 version, and
    both kernels are 2-4x slower on 3-channel channels_last or bf16 images (1280x720 <-> 640x360).
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    resized = F.interpolate(images.float().contiguous(), size=size, mode="bilinear",
                            antialias=_shrinks(images.shape[-2:], size), align_corners=False)
    return resized.to(images.dtype)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (N, H, W, 3) uint8 frames to size (H, W), antialiased when shrinking.

    CPUs resize the uint8 frames directly (1280x720 <-> 640x360 in ~1 ms on 2 cores, against 13 ms for
    the float upscale that torch.compile generates); other devices go through fp32.
    """
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    images = frames.permute(0, 3, 1, 2)  # an NCHW view of channels_last memory: no copy
    if frames.device.type != "cpu":
        images = images.float()
    resized = F.interpolate(images, size=size, mode="bilinear", antialias=_shrinks(frames.shape[1:3], size),
                            align_corners=False)
    if resized.dtype != torch.uint8:
        resized = resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized.permute(0, 2, 3, 1).contiguous()


def _shrinks(size: Sequence[int], new_size: Sequence[int]) -> bool:
    return new_size[0] < size[0] or new_size[1] < size[1]


def padded_size(height: int, width: int, multiple: int = 8) -> tuple[int, int]:
    """The size the networks see for an H x W image: multiples of `multiple`, and at least two of them, so
    that the deepest features are 2 pixels wide, enough for their reflection padding."""
    return max(height + -height % multiple, 2 * multiple), max(width + -width % multiple, 2 * multiple)


def pad_to_multiple(images: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right to `padded_size`; returns the original (H, W)."""
    height, width = images.shape[-2:]
    padded_height, padded_width = padded_size(height, width, multiple)
    pad_h, pad_w = padded_height - height, padded_width - width
    if pad_h or pad_w:
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        images = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
    return images, (height, width)


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (H, W, 3) -> RGB, contiguous."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_bgr(rgb: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) -> OpenCV's BGR, contiguous."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def rotate_rgb(rgb: np.ndarray, degrees_ccw: int) -> np.ndarray:
    """Rotate by a multiple of 90 degrees counterclockwise (a video's display-matrix rotation)."""
    turns = round(degrees_ccw / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last row/column where height/width is odd: 4:2:0 and 4:2:2 video needs even sizes."""
    height, width = rgb.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size `pad_to_even` gives."""
    return width + width % 2, height + height % 2


def fit_size(width: int, height: int, size: tuple[int, int] | None = None, scale: float | None = None) -> tuple[int, int]:
    """Output size for a frame: an explicit (width, height), or the frame's scaled by `scale`
    (at least 8 pixels a side, so the networks have something to work on); else unchanged."""
    if size is not None:
        return size
    if scale is not None:
        return max(8, round(width * scale)), max(8, round(height * scale))
    return width, height
