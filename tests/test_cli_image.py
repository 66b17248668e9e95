"""`adain image` end to end: outputs, naming, the no-overwrite rule, and every kind of bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def inputs(tmp_path, media):
    folder = tmp_path / "in"
    folder.mkdir()
    cat = np.asarray(Image.open(media / "content" / "animal_cat_chelsea_451x300.png").convert("RGB"))
    Image.fromarray(cat[::3, ::3]).save(folder / "cat.png")
    rgba = np.dstack([cat[::4, ::4], np.full(cat[::4, ::4].shape[:2], 90, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "logo.png")
    return folder


@pytest.fixture()
def style(media):
    return str(media / "styles" / "picabia_udnie.jpg")


def test_single_image_default_name_and_no_overwrite(inputs, style, capsys):
    source = inputs / "cat.png"
    assert cli.main(["image", str(source), "--style", style]) == 0
    out = inputs / "cat_stylized.png"
    assert Image.open(out).size == Image.open(source).size
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as if written in place: readable to the group too
    before = out.read_bytes()
    assert cli.main(["image", str(source), "--style", style, "--alpha", "0.2"]) == 2
    assert "output exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert cli.main(["image", str(source), "--style", style, "--alpha", "0.2", "--overwrite"]) == 0
    assert out.read_bytes() != before


def test_folder_input_goes_to_an_output_folder_with_content_and_style_names(inputs, style, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["image", str(inputs), "--style", style, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cat_picabia_udnie.png", "logo_picabia_udnie.png"]
    logo = Image.open(out / "logo_picabia_udnie.png")
    assert logo.mode == "RGBA" and np.asarray(logo)[..., 3].max() == 90  # transparency kept


def test_bad_inputs_are_reported_one_line_each_and_the_rest_is_done(inputs, style, tmp_path, capsys):
    (inputs / "empty.jpg").write_bytes(b"")
    (inputs / "notes.png").write_text("hello")
    good = (inputs / "cat.png").read_bytes()
    (inputs / "cut.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    code = cli.main(["image", str(inputs), str(tmp_path / "nope.png"), "--style", style, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    for name, problem in [("empty.jpg", "empty file"), ("notes.png", "not an image"), ("cut.png", "cannot decode"),
                          ("nope.png", "no such file")]:
        assert any(name in line and problem in line for line in err.splitlines()), (name, err)
    assert (out / "cat_picabia_udnie.png").is_file() and (out / "logo_picabia_udnie.png").is_file()
    assert "Traceback" not in err


def test_bad_style_and_usage_errors(inputs, style, tmp_path, capsys):
    source = str(inputs / "cat.png")
    assert cli.main(["image", source, "--style", str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg: no such file" in capsys.readouterr().err
    assert cli.main(["image", source, "--style", style, "--model", "vggg"]) == 2
    assert "did you mean 'vgg'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["image", source, "--style", style, "--alpha", "3"])
    assert exit_info.value.code == 2
    assert cli.main(["image", source, "--style", style, "--style", style, "--style-weights", "1"]) == 2
    assert not (inputs / "cat_stylized.png").exists()


def test_mask_and_interpolation_from_the_command_line(inputs, style, media, tmp_path):
    mask = np.zeros((100, 151), np.uint8)
    mask[:, :75] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    other = str(media / "styles" / "munch_the_scream.jpg")
    out = tmp_path / "masked.png"
    assert cli.main(["image", str(inputs / "cat.png"), "--style", style, "--style", other,
                     "--mask", str(tmp_path / "mask.png"), "-o", str(out)]) == 0
    assert cli.main(["image", str(inputs / "cat.png"), "--style", style, "--style", other,
                     "--style-weights", "2,1", "--preserve-color", "luminance", "-o", str(tmp_path / "mix.png")]) == 0
    assert Image.open(out).size == (151, 100) and Image.open(tmp_path / "mix.png").size == (151, 100)


def test_console_script_exit_code_and_no_traceback(tmp_path, style):
    (tmp_path / "junk.jpg").write_text("junk")
    env = dict(os.environ)
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "image", str(tmp_path / "junk.jpg"),
                             "--style", style], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "junk.jpg: not an image file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["image", "video", "live", "bench", "train", "eval", "weights"])
def test_help_shows_only_real_defaults(command):
    """Every option's help names its default where it has one, and never pads it with "(default: None)"."""
    parser = cli.build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    text = " ".join(subparser.format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    if command == "video":
        assert "--pix-fmt FMT pixel format" in text and "(default: yuv420p)" in text


def test_an_input_is_never_written_over_even_with_overwrite(inputs, style, tmp_path, capsys):
    """Neither the content, nor a style, nor the same file under a link: refused before any work, as ffmpeg does."""
    source = inputs / "cat.png"
    own_style = tmp_path / "style.png"
    Image.open(style).save(own_style)
    link = tmp_path / "link.png"
    link.symlink_to(source)
    before = {path: path.read_bytes() for path in (source, own_style)}
    for out in (source, own_style, link):
        assert cli.main(["image", str(source), "--style", str(own_style), "-o", str(out), "--overwrite"]) == 2
        assert f"{out}: is also an input; choose another output name" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in before} == before


def test_same_named_inputs_from_two_folders_get_two_outputs(inputs, style, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Image.open(inputs / "cat.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other / "cat.png")
    out = tmp_path / "out"
    for _ in range(2):  # the second time replaces both, each with its own picture again
        assert cli.main(["image", str(inputs / "cat.png"), str(other / "cat.png"), "--style", style, "-o", str(out),
                         "--overwrite"]) == 0
    first, second = out / "cat_picabia_udnie.png", out / "cat-2_picabia_udnie.png"
    assert {p.name for p in out.iterdir()} == {first.name, second.name}
    for source, batch_output in ((inputs / "cat.png", first), (other / "cat.png", second)):  # each input's own
        alone = tmp_path / "alone.png"
        assert cli.main(["image", str(source), "--style", style, "-o", str(alone), "--overwrite"]) == 0
        assert np.array_equal(np.asarray(Image.open(alone)), np.asarray(Image.open(batch_output)))


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 180399600000 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    Exception("OpenCV(5.0.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 48000000000 bytes"),
])
def test_running_out_of_memory_is_one_line_and_exit_1(inputs, style, monkeypatch, capsys, error):
    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "run_image_job", exhausted)
    assert cli.main(["image", str(inputs / "cat.png"), "--style", style]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: out of memory") and errors[0].endswith("--tile")


def test_other_failures_are_not_dressed_up_as_memory_errors(inputs, style, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(cli, "run_image_job", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["image", str(inputs / "cat.png"), "--style", style])


def test_style_and_content_sizes_are_bounded(inputs, style):
    for option in ("--style-size", "--content-size"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["image", str(inputs / "cat.png"), "--style", style, option, "100000"])
        assert exit_info.value.code == 2


def test_an_output_path_ending_in_a_slash_is_a_folder_even_for_one_input(inputs, style, tmp_path):
    out = tmp_path / "new" / "folder"
    assert cli.main(["image", str(inputs / "cat.png"), "--style", style, "-o", f"{out}/"]) == 0
    assert [p.name for p in out.iterdir()] == ["cat_picabia_udnie.png"]

