"""The paper's objective (Huang & Belongie 2017, eqs. 11-13), measured by the normalised VGG-19 as loss network.

content loss  = MSE between the loss network's relu4_1 of the output and the AdaIN target t;
style loss    = sum over relu1_1, relu2_1, relu3_1, relu4_1 of MSE(channel means) + MSE(channel stds).

Mean squared errors as in the reference implementations (AdaIN-style, pytorch-AdaIN) rather than the
paper's plain L2 norms: same minimiser, and a scale that does not depend on the channel count.

The target t is always AdaIN in the loss network's relu4_1 space, computed from the content and the style
image, whatever encoder the decoder under test was trained for. So training a decoder for another
encoder (cd16x) optimises, and `adain eval` reports, the same quantity for every model: how far the
output's VGG features are from VGG-AdaIN's target, and how close its VGG statistics are to the style's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import adain as A
from .models import Features


class Targets(NamedTuple):
    """What a stylization of one content with one style should reach, in loss-network space."""

    content: torch.Tensor  # AdaIN target t at relu4_1, float32 (N, 512, H/8, W/8)
    style: tuple[A.StyleStats, ...]  # style statistics at relu1_1 .. relu4_1


class Losses(NamedTuple):
    """Unweighted content and style losses (scalars)."""

    content: torch.Tensor
    style: torch.Tensor

    def total(self, style_weight: float, content_weight: float = 1.0) -> torch.Tensor:
        """The training loss  content_weight * L_c + style_weight * L_s."""
        return content_weight * self.content + style_weight * self.style


def feature_stats(features: Features) -> tuple[A.StyleStats, ...]:
    """Channel mean and std (float32) at each of the four layers."""
    return tuple(A.channel_stats(layer) for layer in features)


def adain_target(content_relu4_1: torch.Tensor, style: tuple[A.StyleStats, ...]) -> torch.Tensor:
    """The AdaIN target t: the content's relu4_1 with the style's relu4_1 statistics (per sample), float32."""
    return A.adain(content_relu4_1, style[-1]).float()


def content_loss(output_relu4_1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the output's relu4_1 features and the AdaIN target, in float32."""
    return F.mse_loss(output_relu4_1.float(), target.float())


def style_loss(output: Features, style: tuple[A.StyleStats, ...]) -> torch.Tensor:
    """Sum over layers of MSE(means) + MSE(stds) between the output's and the style's statistics."""
    total = torch.zeros((), device=output.relu1_1.device)
    for produced, wanted in zip(feature_stats(output), style, strict=True):
        total = total + F.mse_loss(produced.mean, wanted.mean) + F.mse_loss(produced.std, wanted.std)
    return total


class LossNetwork(nn.Module):
    """The frozen normalised VGG-19 encoder used as a measuring instrument for training and evaluation."""

    def __init__(self, vgg_encoder: nn.Module) -> None:
        super().__init__()
        self.vgg = vgg_encoder.eval().requires_grad_(False)

    @torch.no_grad()
    def style_targets(self, style_rgb: torch.Tensor) -> tuple[A.StyleStats, ...]:
        """Statistics of the style images at the four layers."""
        return feature_stats(self.vgg.features(style_rgb))

    def losses(self, output_rgb: torch.Tensor, targets: Targets) -> Losses:
        """Content and style losses of decoded images (gradients flow to `output_rgb`, not to the VGG)."""
        features = self.vgg.features(output_rgb)
        return Losses(content_loss(features.relu4_1, targets.content), style_loss(features, targets.style))
