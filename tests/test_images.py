"""Image inputs as users have them, and one clear error per bad file."""

import numpy as np
import pytest
from PIL import Image

from realtime.errors import UserError
import torch

from realtime.images import (frames_to_tensor, inference_size, pad_to_multiple, padded_size, read_image,
                             resize_frames, resize_images, resize_shorter_side, tensor_to_frames, write_image)


def _gradient(width=40, height=30):
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 128.0)], axis=2).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    rgb = _gradient(40, 30)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = read_image(tmp_path / "rotated.jpg").rgb
    assert loaded.shape == (40, 30, 3)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16", "LA"])
def test_modes_become_8_bit_rgb(tmp_path, mode):
    rgb = _gradient()
    if mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode == "LA":
        image = Image.fromarray(rgb).convert("LA")
    else:
        image = Image.fromarray(rgb).convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    image.save(tmp_path / f"img{suffix}")
    loaded = read_image(tmp_path / f"img{suffix}")
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (30, 40, 3)
    if mode == "I;16":  # 16-bit values are scaled, not clipped
        assert abs(int(loaded.rgb[0, -1, 0]) - 255) <= 1 and loaded.rgb[0, 0, 0] == 0
    if mode == "LA":
        assert loaded.alpha is not None


def test_rgba_keeps_its_alpha_through_a_png_round_trip(tmp_path):
    rgba = np.dstack([_gradient(), np.full((30, 40), 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    loaded = read_image(tmp_path / "a.png")
    assert np.array_equal(loaded.alpha, rgba[..., 3])
    write_image(tmp_path / "b.png", loaded.rgb, loaded.alpha)
    back = np.asarray(Image.open(tmp_path / "b.png"))
    assert back.shape == (30, 40, 4) and np.array_equal(back[..., 3], rgba[..., 3])


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, media):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    data = (media / "content" / "city_leuven_street_751x563.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    cases = {"empty.png": "empty file", "text.jpg": "not an image", "cut.jpg": "cannot decode",
             "missing.png": "no such file"}
    for name, message in cases.items():
        with pytest.raises(UserError) as info:
            read_image(tmp_path / name)
        text = str(info.value)
        assert name in text and message in text and "\n" not in text
    with pytest.raises(UserError, match=r"^https://example.com/wave.jpg: images are read from files, not URLs"):
        read_image("https://example.com/wave.jpg")


def test_resize_and_pad_helpers():
    rgb = _gradient(40, 30)
    assert resize_shorter_side(rgb, 15).shape == (15, 20, 3)
    x = torch.rand(1, 3, 30, 41)
    padded, size = pad_to_multiple(x)
    assert padded.shape[-2:] == (32, 48) and size == (30, 41)
    assert torch.equal(padded[..., :30, :41], x)
    assert [padded_size(*s) for s in [(30, 41), (720, 1280), (1076, 1916), (3, 5), (9, 201), (16, 17)]] == \
        [(32, 48), (720, 1280), (1080, 1920), (16, 16), (16, 208), (16, 24)]
    tiny, size = pad_to_multiple(torch.rand(1, 3, 3, 5))
    assert tiny.shape[-2:] == (16, 16) and size == (3, 5)


@pytest.mark.parametrize("height,width,side,expected", [
    (720, 1280, 360, (360, 640)), (1080, 1920, 360, (360, 640)), (1280, 720, 360, (640, 360)),
    (360, 640, 720, (720, 1280)), (250, 333, 100, (100, 133)), (720, 1280, 0, (720, 1280)),
    (480, 640, 480, (480, 640)), (16, 4000, 2, (8, 2000))])
def test_inference_size_sets_the_shorter_side_and_keeps_the_aspect(height, width, side, expected):
    assert inference_size(height, width, side) == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [(15, 20), (60, 80), (30, 40)])
def test_frames_and_float_images_resize_alike_in_any_precision(dtype, size):
    """uint8 frames (the fast path) and float images (the general path, bf16 included: the antialiased
    kernel has no bf16 version on CPUs) shrink and enlarge to the same picture, within one level."""
    frames = torch.from_numpy(np.stack([_gradient(40, 30), _gradient(40, 30)[::-1].copy()]))
    by_frames = resize_frames(frames, size)
    by_images = tensor_to_frames(resize_images(frames_to_tensor(frames, dtype), size))
    assert by_frames.shape == (2, *size, 3) and by_frames.dtype == torch.uint8
    assert by_images.shape == by_frames.shape
    tolerance = 1 if dtype == torch.float32 else 2  # bf16 holds 8 bits of mantissa
    assert (by_frames.int() - by_images.int()).abs().max() <= tolerance
    assert resize_frames(frames, (30, 40)) is frames
    on_other_device = resize_frames(frames.to("meta"), size)  # GPUs resize through fp32: shapes and types only
    assert on_other_device.shape == by_frames.shape and on_other_device.dtype == torch.uint8


@pytest.mark.gpu
@pytest.mark.parametrize("size", [(360, 640), (1080, 1920)])
def test_cuda_frames_resize_like_on_the_cpu(size):
    """GPUs resize uint8 frames through fp32 (the CPU resizes them as uint8): the same picture within one level."""
    frames = torch.from_numpy(np.stack([_gradient(1280, 720), _gradient(1280, 720)[::-1].copy()]))
    on_cpu = resize_frames(frames, size)
    on_cuda = resize_frames(frames.cuda(), size)
    assert on_cuda.device.type == "cuda" and on_cuda.dtype == torch.uint8 and on_cuda.shape == on_cpu.shape
    assert (on_cuda.cpu().int() - on_cpu.int()).abs().max() <= 1


def test_shrinking_frames_is_antialiased():
    """A one-pixel checkerboard shrunk 3x comes out grey; point sampling (plain bilinear at this factor)
    would give pure black and white."""
    board = (np.indices((30, 30)).sum(axis=0) % 2 * 255).astype(np.uint8)
    frames = torch.from_numpy(np.repeat(board[None, :, :, None], 3, axis=3))
    small = resize_frames(frames, (10, 10)).int()
    assert (small - 128).abs().max() <= 30
