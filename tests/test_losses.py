"""The paper's losses, measured by the real normalised VGG: zero exactly where they should be, and only there."""

import pytest
import torch

from realtime import adain as A
from realtime.losses import LossNetwork, Losses, Targets, adain_target, content_loss, feature_stats, style_loss
from realtime.models import build_network


@pytest.fixture(scope="module")
def loss_net(weights_dir):
    return LossNetwork(build_network("encoder", "vgg", weights_dir / "adain-vgg/vgg.pth"))


def targets_of(loss_net, content, style):
    stats = loss_net.style_targets(style)
    with torch.no_grad():
        return Targets(adain_target(loss_net.vgg(content), stats), stats)


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(1)
    content = torch.rand(2, 3, 32, 32, generator=generator)
    style = torch.rand(2, 3, 32, 32, generator=generator).pow(3)  # darker, different statistics
    return content, style


def test_target_carries_the_style_statistics_at_relu4_1(loss_net, images):
    content, style = images
    targets = targets_of(loss_net, content, style)
    got = A.channel_stats(targets.content)
    varying = A.channel_stats(loss_net.vgg(content)).std > 0.05  # a constant channel cannot take a std
    assert varying.float().mean() > 0.5
    assert torch.allclose(got.mean[varying], targets.style[-1].mean[varying], rtol=1e-3, atol=1e-4)
    assert torch.allclose(got.std[varying], targets.style[-1].std[varying], rtol=1e-3, atol=3e-3)  # eps


def test_style_loss_is_zero_for_the_style_itself_and_positive_for_the_content(loss_net, images):
    content, style = images
    targets = targets_of(loss_net, content, style)
    with torch.no_grad():
        assert style_loss(loss_net.vgg.features(style), targets.style).item() == pytest.approx(0.0, abs=1e-6)
        assert style_loss(loss_net.vgg.features(content), targets.style).item() > 1e-2


def test_content_loss_is_a_mean_squared_error():
    target = torch.zeros(1, 4, 2, 2)
    produced = torch.zeros(1, 4, 2, 2)
    produced[0, 0, 0, 0] = 4.0
    assert content_loss(produced, target).item() == pytest.approx(16.0 / 16)
    assert content_loss(target.bfloat16(), target).dtype == torch.float32


def test_gradients_reach_the_output_image_but_not_the_loss_network(loss_net, images):
    content, style = images
    output = content.clone().requires_grad_(True)
    losses = loss_net.losses(output, targets_of(loss_net, content, style))
    losses.total(style_weight=10.0).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss_net.parameters())


def test_total_weights_the_two_terms():
    losses = Losses(torch.tensor(2.0), torch.tensor(3.0))
    assert losses.total(style_weight=10.0).item() == 32.0
    assert losses.total(style_weight=1.0, content_weight=0.5).item() == 4.0


def test_feature_stats_are_float32_even_for_bf16_features(loss_net, images):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = loss_net.vgg.features(images[0])
    assert all(s.mean.dtype == torch.float32 and s.std.dtype == torch.float32 for s in feature_stats(features))
