"""The naive per-frame loop that peer projects use (e.g. pytorch-AdaIN's test scripts), as the baseline
every result is compared with in the same run: fp32 weights, NCHW layout, the style image re-encoded
on every frame, and the frame converted on the host with numpy before and after the networks."""

from __future__ import annotations

import numpy as np
import torch

from .. import adain as A
from ..models import build_network
from ..weights import WeightStore


class NaiveLoop:
    """stylize(frame_rgb_uint8) -> stylized uint8, the way a straightforward script does it."""

    def __init__(self, model: str, device: torch.device, style_rgb: np.ndarray, store: WeightStore | None = None):
        store = store or WeightStore()
        entry = store.registry.model(model)
        self.device = device
        self.encoder = build_network("encoder", entry.architecture, store.resolve(entry.encoder)).to(device)
        self.decoder = build_network("decoder", entry.architecture, store.resolve(entry.decoder)).to(device)
        self.style_rgb = style_rgb

    @staticmethod
    def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rgb.astype(np.float32).transpose(2, 0, 1) / 255.0)[None]

    @torch.no_grad()
    def stylize(self, frame_rgb: np.ndarray) -> np.ndarray:
        content = self._to_tensor(frame_rgb).to(self.device)
        style = self._to_tensor(self.style_rgb).to(self.device)
        style_stats = A.channel_stats(self.encoder(style))  # re-encoded every frame
        out = self.decoder(A.adain(self.encoder(content), style_stats)).clamp(0, 1)
        return (out[0].cpu().numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
