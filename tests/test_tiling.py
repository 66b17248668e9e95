"""Tiled inference: the tile layout's properties, exactness against untiled inference, and no visible seams."""

import numpy as np
import pytest
import torch

from realtime import engine
from realtime.engine import Stylizer
from realtime.images import read_image, resize_to
from realtime.tiling import (BLEND_BAND, DECODER_MARGIN, ENCODER_MARGIN, MIN_TILE, STRIDE, auto_tile_size,
                             decode_tiled, encode_tiled, seam_weights, tile_spans)

from metrics import psnr

CASES = [(length, tile, margin) for length in (1, 2, 7, 16, 45, 100) for tile in (1, 3, 16, 64) for margin in (0, 2, 5)]


@pytest.mark.parametrize("length,tile,margin", CASES)
def test_cores_partition_the_axis_and_windows_add_the_margin(length, tile, margin):
    spans = tile_spans(length, tile, margin)
    assert spans[0].core_start == 0 and spans[-1].core_end == length
    for before, after in zip(spans, spans[1:]):
        assert before.core_end == after.core_start
    for span in spans:
        assert 0 < span.core_end - span.core_start <= tile
        assert span.start == max(0, span.core_start - margin) and span.end == min(length, span.core_end + margin)


@pytest.mark.parametrize("length,tile", [(45, 16), (100, 7), (64, 64), (33, 10)])
def test_seam_weights_sum_to_one_everywhere(length, tile):
    spans = tile_spans(length, tile, margin=2)
    total = torch.zeros(STRIDE * length)
    for span in spans:
        total[STRIDE * span.start:STRIDE * span.end] += seam_weights(span, length, band=BLEND_BAND)
    assert torch.allclose(total, torch.ones_like(total))


def test_auto_tile_size_tiles_only_what_does_not_fit():
    assert auto_tile_size(2160, 3840, 512, available_bytes=64 * 2 ** 30) is None
    assert auto_tile_size(2160, 3840, 512, available_bytes=None) is None
    side = auto_tile_size(2160, 3840, 512, available_bytes=2 * 2 ** 30)
    assert side is not None and side % 64 == 0 and side >= MIN_TILE
    window = side + 2 * STRIDE * max(ENCODER_MARGIN, DECODER_MARGIN)
    assert window ** 2 * 512 <= 2 * 2 ** 30 * 0.5
    assert auto_tile_size(2160, 3840, 512, available_bytes=1000) == MIN_TILE


@pytest.fixture(scope="module")
def street(media):
    return resize_to(read_image(media / "content" / "city_leuven_street_751x563.jpg").rgb, 512, 384)


@pytest.fixture(scope="module")
def style(media):
    return media / "styles" / "hokusai_great_wave.jpg"


@pytest.mark.parametrize("arch", ["cd16x", "vgg"])
def test_tiled_networks_equal_untiled_in_fp32(arch, street, style):
    stylizer = Stylizer(arch, "cpu", "fp32", tile=0)
    x = torch.from_numpy(street).permute(2, 0, 1)[None].float().div(255)[..., :192, :256]
    with torch.inference_mode():
        feats = stylizer.encoder(x)
        tiled_feats = encode_tiled(stylizer.encoder, x, tile=12)
        assert (tiled_feats - feats).abs().max() <= 1e-4 * feats.abs().max()
        out = stylizer.decoder(feats)
        tiled_out = decode_tiled(stylizer.decoder, feats, tile=12)
        assert (tiled_out - out).abs().max() <= 1e-4 * out.abs().max()


def seam_contrast(image: np.ndarray, seams: list[int], axis: int) -> float:
    """Mean step between neighbouring pixels across the seam lines (between index s-1 and s along
    `axis`) divided by the mean step across all lines. A visible seam moves it away from the same
    measure of the untiled image: up for an edge, down for the mirror-smooth join of reflection padding."""
    steps = np.abs(np.diff(image.astype(np.float64), axis=axis)).sum(axis=2)
    at_seams = np.take(steps, [s - 1 for s in seams], axis=axis)
    return float(at_seams.mean() / steps.mean())


def seam_visibility(image: np.ndarray, reference: np.ndarray, columns: list[int], rows: list[int]) -> float:
    """How far the seam contrast of `image` departs from that of `reference`, worst of both directions."""
    return max(abs(seam_contrast(image, columns, 1) - seam_contrast(reference, columns, 1)),
               abs(seam_contrast(image, rows, 0) - seam_contrast(reference, rows, 0)))


def test_tiled_stylization_matches_untiled_without_seams(street, style):
    whole = Stylizer("cd16x", "cpu", "bf16", tile=0)
    tiled = Stylizer("cd16x", "cpu", "bf16", tile=128)
    reference = whole.stylize(street, style).astype(np.float64)
    out = tiled.stylize(street, style)
    assert psnr(out, reference) >= 40
    columns = [STRIDE * span.core_start for span in tile_spans(512 // STRIDE, 128 // STRIDE, 0)[1:]]
    rows = [STRIDE * span.core_start for span in tile_spans(384 // STRIDE, 128 // STRIDE, 0)[1:]]
    assert columns == [128, 256, 384] and rows == [128, 256]
    assert seam_visibility(out, reference, columns, rows) < 0.02


def test_the_seam_measure_sees_seams_of_tiling_without_overlap(street, style):
    """Control for the test above: tiles without context around them leave visible seams."""
    stylizer = Stylizer("cd16x", "cpu", "fp32", tile=0)
    prepared = stylizer.prepare(style)
    x = torch.from_numpy(street).permute(2, 0, 1)[None].float().div(255)
    with torch.inference_mode():
        reference = stylizer.decoder(engine.A.adain(stylizer.encoder(x), prepared.mixed)).clamp(0, 1)
        naive = decode_tiled(stylizer.decoder, engine.A.adain(encode_tiled(stylizer.encoder, x, 16, margin=0),
                                                              prepared.mixed), 16, margin=1).clamp(0, 1)
    to_rgb = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round()
    assert seam_visibility(to_rgb(naive), to_rgb(reference), [128, 256, 384], [128, 256]) > 0.08


def test_auto_tiling_starts_when_memory_is_short(monkeypatch, street, style):
    monkeypatch.setattr(engine, "available_memory", lambda device: 64 * 2 ** 20)
    stylizer = Stylizer("cd16x", "cpu", "bf16")
    assert stylizer._tile_cells(1080, 1920) is not None
    assert stylizer._tile_cells(64, 64) is None
    whole = Stylizer("cd16x", "cpu", "bf16", tile=0).stylize(street, style).astype(np.float64)
    assert np.abs(stylizer.stylize(street, style) - whole).mean() < 0.5


def test_too_small_tile_is_a_user_error():
    with pytest.raises(engine.UserError, match="tile size"):
        Stylizer("cd16x", "cpu", "fp32", tile=64)


# ------------------------------------------------------------------------------- CUDA (a lent GPU runs these)
EIGHT_GIB_CARD = int(7.5 * 2 ** 30)
"""What an 8 GiB card leaves a process after the CUDA context (~0.5 GiB, outside the allocator's count)."""


@pytest.mark.gpu
@pytest.mark.parametrize("size", [(1080, 1920), (2160, 3840)])
def test_cuda_vgg_fp16_frames_fit_an_8_gib_card(size, street, style):
    """Issue 6: 1080p and 4K on an 8 GiB GPU. The caching allocator is capped at what such a card leaves
    (it raises out-of-memory past the cap), and the automatic tiling must plan for the cap, not for the
    lent card's free memory."""
    device = torch.device("cuda", torch.cuda.current_device())  # the memory cap wants an index
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(EIGHT_GIB_CARD / torch.cuda.mem_get_info(device)[1], device)
    try:
        stylizer = Stylizer("vgg", "cuda", "fp16")
        frame = resize_to(street, size[1], size[0])
        torch.cuda.reset_peak_memory_stats(device)
        out = stylizer.stylize(frame, stylizer.prepare(style))
        peak = torch.cuda.max_memory_allocated(device)
        tiled = stylizer._tile_cells(*size) is not None
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    assert out.shape == (*size, 3) and out.std() > 10
    assert peak <= EIGHT_GIB_CARD
    assert tiled == (size == (2160, 3840))  # 4K's activations (~4 GiB in fp16) pass half the headroom
