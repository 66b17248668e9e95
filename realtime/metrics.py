"""`adain eval`: the paper's content and style losses and the speed of any model, over all content x style pairs.

Each content is resized to a shorter side of `size` (and centre-cropped to multiples of 8, so the output's
relu4_1 lines up with the target); each style to a shorter side of `style_size`, the size the Stylizer
takes its statistics at. For every pair the model stylizes the content exactly as `adain image` would
(same Stylizer, precision and style statistics); the loss network (normalised VGG-19, float32) then
measures the output against the AdaIN target t in VGG space and the style's VGG statistics (see
`losses.py`). fps counts the per-frame work only (encoder, AdaIN, decoder; style statistics prepared
beforehand, as in a live stream), timed after a warm-up run at each content size.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .engine import Stylizer, select_device
from .errors import UserError
from .files import write_atomically
from .images import tensor_to_frames
from .losses import LossNetwork, adain_target, content_loss, style_loss
from .models import build_network
from .runtime import synchronize
from .sheets import compose_grid, fit_cell
from .train_data import ImageSet, load_image_set
from .ui import item_progress
from .weights import WeightStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate on, at which sizes, on which device; `cell` is the contact sheet's tile size."""

    content: tuple[str, ...]
    styles: tuple[str, ...]
    size: int = 512
    style_size: int = 512
    device: str = "auto"
    precision: str = "auto"
    cell: int = 128

    def __post_init__(self) -> None:
        if self.size < 64 or self.style_size < 64:
            raise UserError(f"--size and --style-size must be at least 64, got {self.size} and {self.style_size}")


@dataclass(frozen=True)
class PairScore:
    content: str
    style: str
    content_loss: float
    style_loss: float
    seconds: float


@dataclass
class ModelScores:
    """One model's scores over all pairs, and the sheet tiles of its outputs (not serialised)."""

    model: str
    decoder: str
    precision: str
    pairs: list[PairScore] = field(default_factory=list)
    tiles: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def content_loss(self) -> float:
        return statistics.fmean(p.content_loss for p in self.pairs)

    @property
    def style_loss(self) -> float:
        return statistics.fmean(p.style_loss for p in self.pairs)

    @property
    def fps(self) -> float:
        return len(self.pairs) / sum(p.seconds for p in self.pairs)

    def summary(self) -> dict:
        return {"content_loss": self.content_loss, "style_loss": self.style_loss, "fps": self.fps,
                "pairs": len(self.pairs), "decoder": self.decoder, "precision": self.precision,
                "per_pair": [asdict(p) for p in self.pairs]}


class Evaluator:
    """Holds the evaluation images and their loss-network targets, computed once for every model."""

    def __init__(self, settings: EvalSettings, store: WeightStore | None = None) -> None:
        self.settings = settings
        self.store = store or WeightStore()
        self.device = select_device(settings.device)
        self.contents = _multiple_of_8(load_image_set(settings.content, settings.size, "content"))
        self.styles = load_image_set(settings.styles, settings.style_size, "style")
        vgg = build_network("encoder", "vgg", self.store.resolve(self.store.registry.model("vgg").encoder))
        self.loss_net = LossNetwork(vgg).to(self.device)
        with torch.no_grad():
            self.style_targets = [self.loss_net.style_targets(self._float(s)) for s in self.styles.images]
            self.content_relu4_1 = [self.loss_net.vgg(self._float(c)) for c in self.contents.images]

    def _float(self, image: torch.Tensor) -> torch.Tensor:
        return image[None].to(self.device).float().div_(255.0)

    @property
    def content_names(self) -> list[str]:
        return [p.name for p in self.contents.paths]

    @property
    def style_names(self) -> list[str]:
        return [p.name for p in self.styles.paths]

    def evaluate(self, model: str, decoder_weights: Path | None = None,
                 encoder_weights: Path | None = None) -> ModelScores:
        """Stylize every content with every style with `model` and score each result."""
        stylizer = Stylizer(model, self.settings.device, self.settings.precision, style_size=self.settings.style_size,
                            encoder_weights=encoder_weights, decoder_weights=decoder_weights, store=self.store)
        scores = ModelScores(model, str(stylizer.info.decoder_path), str(stylizer.dtype).removeprefix("torch."))
        prepared = [stylizer.prepare(style.permute(1, 2, 0).numpy()) for style in self.styles.images]
        with torch.inference_mode():  # warm-up: the first run at each input size sets up kernels
            for shape in dict.fromkeys(image.shape for image in self.contents.images):
                stylizer.stylize_images(torch.zeros(1, *shape, device=self.device, dtype=stylizer.dtype), prepared[0])
        pairs = [(c, s) for c in range(len(self.contents)) for s in range(len(self.styles))]
        with item_progress() as bar:
            task = bar.add_task(f"eval {model}", total=len(pairs))
            for c, s in pairs:
                scores.pairs.append(self._score_pair(stylizer, prepared[s], c, s, scores.tiles))
                bar.advance(task)
        return scores

    def _score_pair(self, stylizer: Stylizer, prepared, c: int, s: int,
                    tiles: dict[tuple[int, int], np.ndarray]) -> PairScore:
        x = self._float(self.contents.images[c]).to(stylizer.dtype)
        with torch.inference_mode():
            synchronize(self.device)
            start = time.perf_counter()
            output = stylizer.stylize_images(x, prepared)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            target = adain_target(self.content_relu4_1[c], self.style_targets[s])
            features = self.loss_net.vgg.features(output.float())
            c_loss = content_loss(features.relu4_1, target).item()
            s_loss = style_loss(features, self.style_targets[s]).item()
        tiles[(c, s)] = fit_cell(tensor_to_frames(output.float())[0].cpu().numpy(), self.settings.cell)
        return PairScore(self.content_names[c], self.style_names[s], c_loss, s_loss, seconds)

    def sheet(self, results: Sequence[ModelScores]) -> np.ndarray:
        """Rows contents (one row per model under each content), columns styles; the first row shows the styles."""
        as_rgb = [image.permute(1, 2, 0).numpy() for image in self.styles.images]
        rows: list[list[np.ndarray | None]] = [[None, *as_rgb]]
        labels: list[str | None] = [None]
        for c, content in enumerate(self.contents.images):
            for result in results:
                rows.append([content.permute(1, 2, 0).numpy(),
                             *(result.tiles[(c, s)] for s in range(len(self.styles)))])
                labels.append(result.model)
        return compose_grid(rows, self.settings.cell, labels)


def write_report(path: Path, evaluator: Evaluator, results: Sequence[ModelScores]) -> None:
    """All figures (per model and per pair) as JSON, written atomically."""
    report = {"settings": asdict(evaluator.settings), "contents": evaluator.content_names,
              "styles": evaluator.style_names, "models": {r.model: r.summary() for r in results}}
    write_atomically(path, lambda out: out.write(json.dumps(report, indent=1) + "\n"), mode="w")


def _multiple_of_8(images: ImageSet) -> ImageSet:
    """Centre-crop each image to multiples of 8, so that its relu4_1 is exactly H/8 x W/8."""
    cropped = []
    for image in images.images:
        height, width = image.shape[-2:]
        top, left = (height % 8) // 2, (width % 8) // 2
        cropped.append(image[:, top:top + height - height % 8, left:left + width - width % 8].contiguous())
    return ImageSet(images.paths, tuple(cropped))
