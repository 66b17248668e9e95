"""AdaIN math as small pure functions: statistics, AdaIN, style mixing, masks, colour.

Feature tensors are (N, C, H, W); images are float RGB (N, 3, H, W) in [0, 1]. Statistics are
always computed in float32, whatever the features' dtype, because a bf16/fp16 variance of
large activations loses most of its digits. This module imports only torch (and math).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

EPS = 1e-5
"""Added to the variance before the square root (the paper's and pytorch-AdaIN's choice)."""


class StyleStats(NamedTuple):
    """Channel-wise mean and standard deviation of a feature map, each (N, C, 1, 1) float32."""

    mean: torch.Tensor
    std: torch.Tensor


def channel_stats(feat: torch.Tensor, eps: float = EPS, mask: torch.Tensor | None = None) -> StyleStats:
    """Per-channel mean and std = sqrt(population variance + eps) over H and W.

    With `mask` (N, 1, H', W', values in [0, 1]) the statistics are weighted by the mask, so they
    describe only the masked region; the mask is resized to the features' size if needed.
    """
    if feat.dim() != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(feat.shape)}")
    x = feat.float()
    if mask is None:
        # two passes (mean, then centred squares): torch.var_mean is ~4x slower on channels_last CPU tensors
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).square().mean(dim=(2, 3), keepdim=True)
        return StyleStats(mean, (var + eps).sqrt())
    weight = _mask_like(mask, x)
    total = weight.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
    mean = (x * weight).sum(dim=(2, 3), keepdim=True) / total
    var = ((x - mean).square() * weight).sum(dim=(2, 3), keepdim=True) / total
    return StyleStats(mean, (var + eps).sqrt())


def adain_coefficients(content: StyleStats, style: StyleStats,
                       alpha: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with  f * scale + shift = alpha * AdaIN(f, style) + (1 - alpha) * f.

    AdaIN is an affine map per channel, and so is the content-style trade-off, so the whole
    per-frame operation folds into one multiply-add on the features. `alpha` may be a tensor
    (compiled and CUDA-graph paths, where a Python check would force a device sync); only
    numbers are range-checked here.
    """
    if not isinstance(alpha, torch.Tensor):
        _check_alpha(alpha)
    ratio = style.std / content.std
    scale = alpha * ratio + (1.0 - alpha)
    shift = alpha * (style.mean - content.mean * ratio)
    return scale, shift


def adain(content_feat: torch.Tensor, style: StyleStats, alpha: float | torch.Tensor = 1.0,
          eps: float = EPS) -> torch.Tensor:
    """t = std(s) * (f - mean(f)) / std(f) + mean(s), blended as alpha * t + (1 - alpha) * f.

    The result keeps the dtype of `content_feat`.
    """
    scale, shift = adain_coefficients(channel_stats(content_feat, eps), style, alpha)
    return torch.addcmul(shift.to(content_feat.dtype), content_feat, scale.to(content_feat.dtype))


def mix_stats(stats: Sequence[StyleStats], weights: Sequence[float] | None = None) -> StyleStats:
    """Interpolate several styles by a weighted average of their means and stds.

    Weights are normalised to sum to 1 (equal weights when None). Because AdaIN is affine in
    (std, mean) for fixed content features, AdaIN with the mixed statistics equals the paper's
    weighted mix of the separate AdaIN outputs, at the cost of one AdaIN instead of K.
    """
    if not stats:
        raise ValueError("mix_stats needs at least one style")
    w = normalise_weights(weights if weights is not None else [1.0] * len(stats), len(stats))
    mean = sum(wi * s.mean for wi, s in zip(w, stats))
    std = sum(wi * s.std for wi, s in zip(w, stats))
    return StyleStats(mean, std)


def normalise_weights(weights: Sequence[float], count: int) -> list[float]:
    """Check interpolation weights (one per style, non-negative, not all zero) and scale them to sum 1."""
    if len(weights) != count:
        raise ValueError(f"got {len(weights)} style weights for {count} styles")
    if not all(0 <= w < math.inf for w in weights) or sum(weights) <= 0:  # written so that NaN fails too
        raise ValueError(f"style weights must be finite, non-negative and not all zero, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def masked_adain(
    content_feat: torch.Tensor,
    regions: Sequence[tuple[torch.Tensor, StyleStats | None]],
    alpha: float = 1.0,
    eps: float = EPS,
) -> torch.Tensor:
    """Spatial control: a different style in each region, with content statistics taken per region.

    `regions` pairs a soft mask (N, 1, H', W' in [0, 1]; the masks should sum to 1 everywhere)
    with the style for that region, or None to keep the content's own features there.
    """
    out = torch.zeros_like(content_feat, dtype=torch.float32)
    for mask, style in regions:
        weight = _mask_like(mask, content_feat)
        if style is None:
            out += weight * content_feat.float()
            continue
        region_stats = channel_stats(content_feat, eps, mask=weight)
        scale, shift = adain_coefficients(region_stats, style, alpha)
        out += weight * (content_feat.float() * scale + shift)
    return out.to(content_feat.dtype)


def match_color(source: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour `source` so that its RGB mean and covariance equal those of `reference`.

    The paper's first colour-preservation method: applied to the style image with the content
    image as reference, before the style is encoded. x' = C_r^(1/2) C_s^(-1/2) (x - mu_s) + mu_r.
    """
    src = source.float().flatten(2)  # (N, 3, P)
    ref = reference.float().flatten(2)
    mu_s, cov_s = _color_moments(src, eps)
    mu_r, cov_r = _color_moments(ref, eps)
    transform = _sym_matrix_power(cov_r, 0.5) @ _sym_matrix_power(cov_s, -0.5)
    out = transform @ (src - mu_s) + mu_r
    return out.reshape(source.shape).clamp(0, 1).to(source.dtype)


# ITU-R BT.601 YIQ, the colour space Gatys et al. use for luminance-only transfer.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB to YIQ (Y is the luminance in [0, 1])."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(rgb.device, rgb.dtype), rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) YIQ back to RGB (not clamped)."""
    inverse = torch.linalg.inv(_RGB_TO_YIQ.double()).to(yiq.device, yiq.dtype)
    return torch.einsum("ij,njhw->nihw", inverse, yiq)


def luminance_image(rgb: torch.Tensor) -> torch.Tensor:
    """The image's luminance repeated in three channels: what the networks see in luminance-only mode."""
    return rgb_to_yiq(rgb)[:, :1].expand(-1, 3, -1, -1)


def combine_luminance(stylized_rgb: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """The paper's second colour-preservation method: the stylized luminance with the content's chroma."""
    luma = rgb_to_yiq(stylized_rgb)[:, :1]
    chroma = rgb_to_yiq(content_rgb)[:, 1:]
    return yiq_to_rgb(torch.cat([luma, chroma], dim=1)).clamp(0, 1)


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")


def _mask_like(mask: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    """A float32 (N, 1, H, W) weight map at the features' resolution."""
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (N, 1, H, W), got shape {tuple(mask.shape)}")
    weight = mask.to(device=feat.device, dtype=torch.float32)
    if weight.shape[-2:] != feat.shape[-2:]:
        weight = F.interpolate(weight, size=feat.shape[-2:], mode="bilinear", align_corners=False)
    return weight


def _color_moments(pixels: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (N, 3, 1) and regularised covariance (N, 3, 3) of (N, 3, P) pixels."""
    mean = pixels.mean(dim=2, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.transpose(1, 2) / pixels.shape[2]
    return mean, cov + eps * torch.eye(3, device=pixels.device)


def _sym_matrix_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    """Power of a symmetric positive-definite matrix by eigendecomposition."""
    values, vectors = torch.linalg.eigh(matrix.double())
    scaled = vectors * values.clamp_min(1e-12).pow(power).unsqueeze(-2)
    return (scaled @ vectors.transpose(-1, -2)).to(matrix.dtype)
