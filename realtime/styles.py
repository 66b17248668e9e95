"""The style bank: each style's feature statistics, computed once and cached in memory and on disk.

A style is identified by the sha256 of its file's bytes (or of the pixels, for arrays), so a
renamed or copied file hits the cache and an edited one does not. The key also names the
encoder (by its weights' hash), the style size and the variant (full colour, or luminance
only for colour preservation), because each of those changes the statistics.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch

from .adain import StyleStats
from .files import write_atomically
from .images import read_image, resize_shorter_side
from .weights import sha256_of

log = logging.getLogger(__name__)

StyleSource = Union[str, Path, np.ndarray, StyleStats]
"""A style given as an image path, an RGB uint8 array, or statistics computed earlier."""

Encoder = Callable[[np.ndarray, str], StyleStats]
"""Computes statistics from an RGB uint8 image in a variant ('rgb' or 'luma')."""


@dataclass(frozen=True)
class StyleImage:
    """A style image read into memory, with its content key and a short name for file names and the HUD."""

    key: str
    name: str
    rgb: np.ndarray


def style_name(source: StyleSource) -> str:
    """A short label for a style: the file's stem, or 'array'/'stats'."""
    if isinstance(source, (str, Path)):
        return Path(source).stem
    return "stats" if isinstance(source, StyleStats) else "array"


@dataclass
class StyleBank:
    """Statistics per style, computed by `encode` at most once per key, kept in memory and under `cache_dir`.

    `cache_dir=None` keeps the cache in memory only.
    """

    encode: Encoder
    encoder_id: str
    style_size: int
    cache_dir: Path | None
    _memory: dict[tuple[str, str], StyleStats] = field(default_factory=dict, repr=False)
    _images: dict[tuple[str, int, int], StyleImage] = field(default_factory=dict, repr=False)

    def image(self, source: str | Path | np.ndarray) -> StyleImage:
        """The style image at the bank's style size (read once per file version)."""
        if isinstance(source, np.ndarray):
            rgb = self._resized(source)
            return StyleImage(_array_key(source), "array", rgb)
        path = Path(source)
        stat = path.stat() if path.is_file() else None
        memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns) if stat else None
        if memo is not None and memo in self._images:
            return self._images[memo]
        loaded = read_image(path)  # raises a UserError for missing or bad files
        image = StyleImage(sha256_of(path), path.stem, self._resized(loaded.rgb))
        if memo is not None:
            self._images[memo] = image
        return image

    def stats(self, source: StyleSource, variant: str = "rgb") -> StyleStats:
        """Statistics of a style, from memory, the disk cache, or computed now (and then stored)."""
        if isinstance(source, StyleStats):
            return source
        image = self.image(source)
        memory_key = (image.key, variant)
        if memory_key in self._memory:
            return self._memory[memory_key]
        stats = self._load(image.key, variant)
        if stats is None:
            stats = self.encode(image.rgb, variant)
            stats = StyleStats(stats.mean.detach().float().cpu(), stats.std.detach().float().cpu())
            self._store(image.key, variant, stats)
        self._memory[memory_key] = stats
        return stats

    def _resized(self, rgb: np.ndarray) -> np.ndarray:
        return resize_shorter_side(rgb, self.style_size) if self.style_size > 0 else rgb

    def _path(self, key: str, variant: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "styles" / self.encoder_id / f"{self.style_size}-{variant}" / f"{key}.pt"

    def _load(self, key: str, variant: str) -> StyleStats | None:
        path = self._path(key, variant)
        if path is None or not path.is_file():
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return StyleStats(data["mean"], data["std"])
        except Exception as exc:  # a damaged cache entry is recomputed, never fatal
            log.warning("%s: unreadable style cache entry (%s); recomputing", path, type(exc).__name__)
            return None

    def _store(self, key: str, variant: str, stats: StyleStats) -> None:
        path = self._path(key, variant)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda out: torch.save({"mean": stats.mean, "std": stats.std}, out))
        except OSError as exc:  # a read-only cache slows later runs but must not fail this one
            log.warning("cannot write style cache %s (%s)", path, exc)


def _array_key(rgb: np.ndarray) -> str:
    digest = hashlib.sha256(str(rgb.shape).encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()
