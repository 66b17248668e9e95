"""Properties of the pure AdaIN math."""

import pytest
import torch

from realtime import adain as A


def _feats(*shape, seed=0, scale=3.0, shift=1.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator) * scale + shift


def test_channel_stats_match_torch_definition():
    feat = _feats(2, 5, 7, 9)
    stats = A.channel_stats(feat)
    assert torch.allclose(stats.mean.flatten(), feat.mean(dim=(2, 3)).flatten(), atol=1e-5)
    expected_std = (feat.var(dim=(2, 3), unbiased=False) + A.EPS).sqrt()
    assert torch.allclose(stats.std.flatten(), expected_std.flatten(), atol=1e-5)
    assert stats.mean.shape == (2, 5, 1, 1) and stats.mean.dtype == torch.float32


def test_adain_output_takes_the_style_statistics():
    content, style = _feats(1, 8, 16, 16, seed=1), _feats(1, 8, 12, 12, seed=2, scale=0.5, shift=-4)
    out = A.adain(content, A.channel_stats(style))
    got, want = A.channel_stats(out), A.channel_stats(style)
    assert torch.allclose(got.mean, want.mean, atol=1e-4)
    assert torch.allclose(got.std, want.std, atol=1e-3)


def test_alpha_zero_gives_the_content_back_and_alpha_blends_linearly():
    content, style = _feats(1, 4, 8, 8, seed=3), A.channel_stats(_feats(1, 4, 8, 8, seed=4, scale=9))
    assert torch.allclose(A.adain(content, style, alpha=0.0), content, atol=1e-5)
    full = A.adain(content, style, alpha=1.0)
    assert torch.allclose(A.adain(content, style, alpha=0.3), 0.3 * full + 0.7 * content, atol=1e-4)
    with pytest.raises(ValueError):
        A.adain(content, style, alpha=1.5)


def test_adain_keeps_the_feature_dtype():
    content = _feats(1, 4, 8, 8).to(torch.bfloat16)
    style = A.channel_stats(_feats(1, 4, 8, 8, seed=9))
    assert A.adain(content, style).dtype == torch.bfloat16


def test_mixing_statistics_equals_mixing_adain_outputs():
    content = _feats(1, 6, 10, 10, seed=5)
    styles = [A.channel_stats(_feats(1, 6, 10, 10, seed=s, scale=s, shift=-s)) for s in (6, 7, 8)]
    weights = [1.0, 2.0, 5.0]
    mixed = A.adain(content, A.mix_stats(styles, weights), alpha=0.8)
    normalised = [w / sum(weights) for w in weights]
    by_outputs = sum(w * A.adain(content, s, alpha=0.8) for w, s in zip(normalised, styles))
    assert torch.allclose(mixed, by_outputs, atol=1e-4)


def test_interpolation_weights_are_checked_and_normalised():
    styles = [A.channel_stats(_feats(1, 2, 4, 4, seed=s)) for s in (1, 2)]
    one_hot = A.mix_stats(styles, [0.0, 3.0])
    assert torch.allclose(one_hot.mean, styles[1].mean) and torch.allclose(one_hot.std, styles[1].std)
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0]):
        with pytest.raises(ValueError):
            A.mix_stats(styles, bad)


def test_masked_adain_gives_each_region_its_style_and_keeps_the_unstyled_region():
    content = _feats(1, 3, 8, 8, seed=10)
    inside = torch.zeros(1, 1, 8, 8)
    inside[..., :4] = 1.0
    style_a = A.StyleStats(torch.full((1, 3, 1, 1), 5.0), torch.full((1, 3, 1, 1), 0.5))
    style_b = A.StyleStats(torch.full((1, 3, 1, 1), -2.0), torch.full((1, 3, 1, 1), 2.0))
    out = A.masked_adain(content, [(inside, style_a), (1 - inside, style_b)])
    left, right = A.channel_stats(out[..., :4]), A.channel_stats(out[..., 4:])
    assert torch.allclose(left.mean, style_a.mean, atol=1e-4) and torch.allclose(left.std, style_a.std, atol=1e-3)
    assert torch.allclose(right.mean, style_b.mean, atol=1e-4) and torch.allclose(right.std, style_b.std, atol=1e-3)
    kept = A.masked_adain(content, [(inside, style_a), (1 - inside, None)])
    assert torch.equal(kept[..., 4:], content[..., 4:])


def test_masked_statistics_only_see_the_masked_region():
    feat = torch.cat([torch.full((1, 1, 4, 2), 1.0), torch.full((1, 1, 4, 2), 9.0)], dim=3)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:] = 1
    stats = A.channel_stats(feat, mask=mask)
    assert stats.mean.item() == pytest.approx(9.0) and stats.std.item() == pytest.approx(A.EPS ** 0.5, rel=1e-3)


def test_match_color_gives_the_reference_mean_and_covariance():
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, 32, 32, generator=generator) * 0.5 + 0.25
    reference = torch.rand(1, 3, 32, 32, generator=generator) * torch.tensor([0.2, 0.4, 0.1]).view(1, 3, 1, 1) + 0.3
    out = A.match_color(source, reference)
    flat_out, flat_ref = out.flatten(2)[0], reference.flatten(2)[0]
    assert torch.allclose(flat_out.mean(dim=1), flat_ref.mean(dim=1), atol=1e-4)
    assert torch.allclose(torch.cov(flat_out, correction=0), torch.cov(flat_ref, correction=0), atol=1e-4)


def test_luminance_transfer_keeps_content_chroma_and_yiq_round_trips():
    generator = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, 8, 8, generator=generator) * 0.4 + 0.3
    assert torch.allclose(A.yiq_to_rgb(A.rgb_to_yiq(content)), content, atol=1e-5)
    stylized = torch.rand(1, 3, 8, 8, generator=generator) * 0.2 + 0.4
    out = A.combine_luminance(stylized, content)
    assert torch.allclose(A.rgb_to_yiq(out)[:, 1:], A.rgb_to_yiq(content)[:, 1:], atol=1e-4)
    assert torch.allclose(A.rgb_to_yiq(out)[:, :1], A.rgb_to_yiq(stylized)[:, :1], atol=1e-4)
    gray = A.luminance_image(content)
    assert gray.shape == content.shape and torch.equal(gray[:, 0], gray[:, 2])
