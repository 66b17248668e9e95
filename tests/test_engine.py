"""The Stylizer: any frame size, every input type, the controls, device and precision choice."""

import numpy as np
import pytest
import torch

from realtime.adain import StyleStats
from realtime.engine import StyleControls, Stylizer, select_device, select_precision
from realtime.errors import UserError
from realtime.images import frames_to_tensor, read_image, tensor_to_frames


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer("cd16x", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def style(media):
    return media / "styles" / "vangogh_starry_night.jpg"


@pytest.mark.parametrize("height,width", [(37, 53), (64, 64), (9, 201), (120, 7)])
def test_any_size_comes_back_at_exactly_that_size(stylizer, style, height, width):
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = stylizer.stylize(frame, style)
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_tensor_batches_keep_their_type_and_layout(stylizer, style):
    batch = torch.randint(0, 256, (2, 24, 40, 3), dtype=torch.uint8)
    out = stylizer.stylize(batch, style)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    floats = torch.rand(2, 3, 24, 40)
    out = stylizer.stylize(floats, style)
    assert out.shape == floats.shape and out.dtype == floats.dtype and 0 <= out.min() and out.max() <= 1


def test_frames_in_a_batch_are_stylized_independently(stylizer, style):
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    together = stylizer.stylize(frames, style)
    alone = stylizer.stylize(frames[1:], style)
    assert (together[1:].int() - alone.int()).abs().max() <= 1


def test_alpha_zero_reconstructs_the_content(style, media):
    stylizer = Stylizer("cd16x-recon", device="cpu", precision="fp32")  # the decoder trained to reconstruct
    content = read_image(media / "content" / "portrait_astronaut_512x512.png").rgb[::2, ::2].copy()
    recon = stylizer.stylize(content, style, StyleControls(alpha=0.0)).astype(np.float64)
    styled = stylizer.stylize(content, style).astype(np.float64)
    error_recon = np.abs(recon - content).mean()
    error_styled = np.abs(styled - content).mean()
    assert error_recon < 20 and error_recon < error_styled / 2


def test_colour_preservation_keeps_content_colours(stylizer, style, media):
    content = read_image(media / "content" / "indoor_coffee_cup_600x400.png").rgb[::2, ::2].copy()
    plain = stylizer.stylize(content, style)
    for method in ("histogram", "luminance"):
        kept = stylizer.stylize(content, style, StyleControls(preserve_color=method))
        content_mean = content.reshape(-1, 3).mean(axis=0)
        assert np.abs(kept.reshape(-1, 3).mean(axis=0) - content_mean).max() < \
            np.abs(plain.reshape(-1, 3).mean(axis=0) - content_mean).max()


def test_mask_keeps_the_outside_close_to_the_content_with_one_style(stylizer, style, media):
    content = read_image(media / "content" / "animal_cat_chelsea_451x300.png").rgb
    mask = np.zeros(content.shape[:2], np.float32)
    mask[:, :200] = 1.0
    out = stylizer.stylize(content, style, StyleControls(mask=mask)).astype(np.float64)
    inside = np.abs(out[:, :180] - content[:, :180]).mean()
    outside = np.abs(out[:, 260:] - content[:, 260:]).mean()
    assert outside < inside / 2
    with pytest.raises(UserError, match="one or two styles"):
        stylizer.prepare([style, style, style], StyleControls(mask=mask))


def test_precomputed_statistics_and_interpolation(stylizer, style, media):
    other = media / "styles" / "munch_the_scream.jpg"
    stats = stylizer.bank.stats(style)
    assert isinstance(stats, StyleStats)
    frame = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    by_stats = stylizer.stylize(frame, stats)
    by_path = stylizer.stylize(frame, style)
    assert np.array_equal(by_stats, by_path)
    only_first = stylizer.stylize(frame, [style, other], StyleControls(weights=(1.0, 0.0)))
    assert np.abs(only_first.astype(int) - by_path).max() <= 1
    with pytest.raises(UserError, match="style-weights"):
        stylizer.prepare([style, other], StyleControls(weights=(1.0,)))


def test_bf16_agrees_with_fp32_on_shared_media(media, style):
    content = read_image(media / "content" / "city_leuven_street_751x563.jpg").rgb
    fp32 = Stylizer("cd16x", device="cpu", precision="fp32").stylize(content, style).astype(np.float64)
    bf16 = Stylizer("cd16x", device="cpu", precision="bf16").stylize(content, style).astype(np.float64)
    assert _psnr(fp32, bf16) >= 30


def test_device_and_precision_choice():
    assert select_device("cpu").type == "cpu"
    assert select_precision("fp32", torch.device("cpu")) == torch.float32
    assert select_precision("auto", torch.device("cuda")) == torch.float16
    assert select_precision("auto", torch.device("cpu")) in (torch.bfloat16, torch.float32)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            select_device("cuda")
    with pytest.raises(UserError):
        select_precision("int8", torch.device("cpu"))
    with pytest.raises(UserError, match="alpha"):
        StyleControls(alpha=2.0)


def test_content_size_runs_the_networks_small_on_the_fast_path(style, media):
    """--content-size: the plain path shrinks the uint8 frame, stylizes it and scales the result back, in
    bf16 too (whose float resize once failed on CPUs); it agrees with the general path, which resizes
    float images, within the networks' sensitivity to one level of input rounding."""
    stylizer = Stylizer("cd16x", device="cpu", precision="bf16", content_size=180)
    seen = []
    frames_path = stylizer._frames_path
    stylizer._frames_path = lambda frames, *args: seen.append(tuple(frames.shape)) or frames_path(frames, *args)
    content = read_image(media / "content" / "city_leuven_street_751x563.jpg").rgb
    prepared = stylizer.prepare(style)
    fast = stylizer.stylize(content, prepared)
    assert fast.shape == content.shape and seen == [(1, 180, 240, 3)]
    with torch.inference_mode():
        general = stylizer.stylize_images(frames_to_tensor(torch.from_numpy(content), stylizer.dtype), prepared)
    general = tensor_to_frames(general)[0].numpy()
    assert _psnr(fast, general) >= 35
    kept = stylizer.stylize(content, style, StyleControls(preserve_color="luminance"))
    assert kept.shape == content.shape and seen == [(1, 180, 240, 3)]  # not the fast path
    assert stylizer.frames_in_flight(563, 751) == stylizer.frames_in_flight(180, 240)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
