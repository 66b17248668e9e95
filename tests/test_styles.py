"""The style bank computes each style's statistics once and keys them by file content."""

import shutil

import numpy as np
import torch

from realtime.adain import StyleStats
from realtime.styles import StyleBank


class _CountingEncoder:
    def __init__(self):
        self.calls = 0

    def __call__(self, rgb: np.ndarray, variant: str) -> StyleStats:
        self.calls += 1
        mean = torch.tensor(rgb.mean(axis=(0, 1)), dtype=torch.float32).view(1, 3, 1, 1)
        return StyleStats(mean + (variant == "luma"), mean * 0 + 1)


def test_statistics_are_computed_once_and_reused_from_disk(tmp_path, media):
    style = media / "styles" / "picabia_udnie.jpg"
    encoder = _CountingEncoder()
    bank = StyleBank(encoder, "enc", 64, tmp_path)
    first = bank.stats(style)
    again = bank.stats(str(style))
    assert encoder.calls == 1 and torch.equal(first.mean, again.mean)
    copy = tmp_path / "renamed.jpg"
    shutil.copy(style, copy)
    fresh = StyleBank(encoder, "enc", 64, tmp_path)  # a new process: memory empty, disk cache warm
    assert torch.equal(fresh.stats(copy).mean, first.mean) and encoder.calls == 1
    fresh.stats(copy, variant="luma")
    StyleBank(encoder, "other-encoder", 64, tmp_path).stats(style)
    StyleBank(encoder, "enc", 128, tmp_path).stats(style)
    assert encoder.calls == 4  # variant, encoder and style size are part of the key


def test_a_damaged_cache_entry_is_recomputed(tmp_path, media):
    style = media / "styles" / "picabia_udnie.jpg"
    encoder = _CountingEncoder()
    StyleBank(encoder, "enc", 64, tmp_path).stats(style)
    for entry in tmp_path.rglob("*.pt"):
        entry.write_bytes(b"damaged")
    StyleBank(encoder, "enc", 64, tmp_path).stats(style)
    assert encoder.calls == 2


def test_arrays_and_precomputed_statistics_are_accepted(tmp_path):
    encoder = _CountingEncoder()
    bank = StyleBank(encoder, "enc", 0, None)
    rgb = np.full((10, 12, 3), 50, np.uint8)
    assert bank.stats(rgb).mean.flatten()[0] == 50
    given = StyleStats(torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1))
    assert bank.stats(given) is given
    assert encoder.calls == 1
