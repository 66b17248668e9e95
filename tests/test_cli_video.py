"""`adain video` end to end on the shared clips and on special ones: frames, timestamps, duration, size, audio
bit for bit, real stylization, each bad input handled, no overwrite, and Ctrl-C leaving a playable partial file."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cli
from clips import moved_toward_style, pattern, probe, write_audio_only, write_clip
from realtime.images import read_image, resize_shorter_side

ROOT = Path(__file__).resolve().parent.parent
STYLE = "vangogh_starry_night.jpg"


def style_args(media):
    return ["--style", str(media / "styles" / STYLE), "--model", "cd16x", "--style-size", "256"]


def toward_style(source_frames, output_frames, media) -> bool:
    return moved_toward_style(source_frames, output_frames,
                              resize_shorter_side(read_image(media / "styles" / STYLE).rgb, 256))


def test_shared_clip_keeps_frames_timestamps_duration_and_audio(media, tmp_path, capsys):
    source = media / "video/bbb_640x360_24fps_aac_stereo.mp4"
    out = tmp_path / "bbb.mp4"
    assert cli.main(["video", str(source), "-o", str(out), "--scale", "0.25", "--device", "cpu",
                     "--frame-workers", "2", *style_args(media)]) == 0  # frame workers are a CPU feature
    original, result = probe(source), probe(out)
    assert len(result.frames) == len(original.frames) == 238  # two frames in flight: every one, in order
    tick = float(result.time_base)
    assert np.abs(np.array(result.times) - original.times).max() <= tick
    assert result.duration == pytest.approx(original.duration, abs=0.05)
    assert result.frames[0].shape == (90, 160, 3)
    assert result.audio_codec == "aac" and result.audio_packets == original.audio_packets
    small = [resize_shorter_side(f, 90) for f in original.frames[::20]]
    assert toward_style(small, result.frames[::20], media)
    summary = capsys.readouterr().err
    assert "238 frame(s) in, 238 out" in summary and f"{out}: 238 frame(s), 160x90" in summary
    assert "2 frames at once" in summary


@pytest.mark.parametrize("size_args", [[], ["--content-size", "180"]], ids=["full", "content-size"])
def test_hd_clip_keeps_its_size_and_51_audio_for_the_part_asked(media, tmp_path, size_args):
    """Also with the networks at 320x180 (--content-size) and the default precision, bf16 on CPUs that
    have it: the output keeps the clip's 1280x720."""
    source = media / "video/bbb_1280x720_25fps_aac_5.1.mp4"
    out = tmp_path / "hd.mp4"
    assert cli.main(["video", str(source), "-o", str(out), "--start", "1", "--duration", "0.6",
                     *size_args, *style_args(media)]) == 0
    original, result = probe(source), probe(out)
    assert len(result.frames) == 15 and result.frames[0].shape == (720, 1280, 3)
    assert result.times[0] == 0.0 and result.times[-1] == pytest.approx(14 / 25, abs=1e-3)
    first = next(i for i, t in enumerate(original.times) if t >= 1.0)
    assert toward_style(original.frames[first:first + 15:7], result.frames[::7], media)
    # the 5.1 AAC packets of that second, copied unchanged, and about as long as the video
    assert result.audio_codec == "aac" and 25 <= len(result.audio_packets) <= 32
    start = original.audio_packets.index(result.audio_packets[0])
    assert result.audio_packets == original.audio_packets[start:start + len(result.audio_packets)]


def test_each_special_input_gives_the_right_output_or_a_clear_error(media, tmp_path, capsys):
    clips = tmp_path / "in"
    clips.mkdir()
    write_clip(clips / "odd.mp4", width=63, height=47)
    write_clip(clips / "rotated.mp4", rotation=-90)
    write_clip(clips / "vfr.mp4", pts=[0, 1, 2, 6, 7, 12, 13, 14])
    write_clip(clips / "vp9opus.webm", codec="libvpx-vp9", frames=10, audio="libopus")
    whole = write_clip(clips / "whole.mp4", frames=60, audio="aac", options={"movflags": "faststart"})
    (clips / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 4])
    whole.unlink()
    (clips / "empty.mp4").write_bytes(b"")
    (clips / "notes.mp4").write_text("not a video at all")
    write_audio_only(clips / "song.m4a")
    tree = media / "video/tree_handheld_320x240_15fps_noaudio.mp4"
    out = tmp_path / "out"
    code = cli.main(["video", str(clips / "*.*"), str(tree), "-o", str(out), "--duration", "1", *style_args(media)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for name, problem in [("empty.mp4", "empty file"), ("notes.mp4", "not a video file"),
                          ("song.m4a", "has no video stream (it holds audio only)")]:
        assert any(name in line and problem in line for line in err.splitlines()), (name, err)
    label = "vangogh_starry_night"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}_{label}{s}" for n, s in [("odd", ".mp4"), ("rotated", ".mp4"), ("vfr", ".mp4"), ("vp9opus", ".webm"),
                                       ("cut", ".mp4"), ("tree_handheld_320x240_15fps_noaudio", ".mp4")])
    odd = probe(out / f"odd_{label}.mp4")
    assert odd.frames[0].shape == (48, 64, 3) and "63x47 has an odd side" in err
    rotated = probe(out / f"rotated_{label}.mp4")
    assert rotated.frames[0].shape == (64, 48, 3) and rotated.rotation == 0
    assert probe(out / f"vfr_{label}.mp4").times == pytest.approx([t / 30 for t in (0, 1, 2, 6, 7, 12, 13, 14)])
    webm = probe(out / f"vp9opus_{label}.webm")
    assert webm.codecs == ["vp9", "opus"] and webm.audio_packets == probe(clips / "vp9opus.webm").audio_packets
    cut = probe(out / f"cut_{label}.mp4")
    assert 5 < len(cut.frames) < 25 and "the input is cut short" in err
    assert cut.audio_codec == "aac"
    tree_out = probe(out / f"tree_handheld_320x240_15fps_noaudio_{label}.mp4")
    assert tree_out.codecs == ["h264"] and len(tree_out.frames) == 15  # no audio in, none out; 1 s at 15 fps


def test_no_overwrite_without_the_flag_and_usage_errors(media, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", frames=4)
    out = tmp_path / "clip_out.mp4"
    out.write_bytes(b"keep me")
    assert cli.main(["video", str(clip), "-o", str(out), *style_args(media)]) == 2
    assert "output exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert cli.main(["video", str(clip), "-o", str(out), "--overwrite", "--codec", "hevc", "--crf", "30",
                     "--preset", "ultrafast", "--no-audio", *style_args(media)]) == 0
    assert probe(out).codecs == ["hevc"]
    for bad in (["--size", "12by4"], ["--scale", "-1"], ["--codec", "mpeg1"], ["--start", "x:y"], ["--start", "nan"],
                ["--duration", "inf"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["video", str(clip), *bad, *style_args(media)])
        assert exit_info.value.code == 2
    assert cli.main(["video", str(clip), "--style-cycle", "1", "--style-weights", "1,2", "--style",
                     str(media / "styles" / "munch_the_scream.jpg"), *style_args(media)]) == 2
    assert "--style-weights mixes styles" in capsys.readouterr().err


def test_an_input_is_never_written_over_even_with_overwrite(media, tmp_path, capsys):
    """`adain video` and `adain live` refuse an output that is their input, under its own name or a link."""
    clip = write_clip(tmp_path / "clip.mp4", width=64, height=48, frames=4)
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    before = clip.read_bytes()
    for out in (clip, link):
        assert cli.main(["video", str(clip), "-o", str(out), "--overwrite", *style_args(media)]) == 2
        assert f"{out}: is also an input; choose another output name" in capsys.readouterr().err
        assert cli.main(["live", "--input", str(clip), "--no-window", "--output", str(out), "--overwrite",
                         *style_args(media)]) == 2
        assert f"{out}: is also an input; choose another output name" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_an_output_path_ending_in_a_slash_is_a_folder_even_for_one_input(media, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", width=64, height=48, frames=3)
    assert cli.main(["video", str(clip), "-o", f"{tmp_path / 'renders'}/", *style_args(media)]) == 0
    assert len(probe(tmp_path / "renders" / "clip_vangogh_starry_night.mp4").frames) == 3


def test_an_image_sequence_with_a_bad_image_is_rendered_without_it(media, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in (1, 3):
        Image.fromarray(pattern(index, 64, 48)).save(frames / f"f{index}.png")
    (frames / "f2.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "seq.mp4"
    assert cli.main(["video", str(frames), "--fps", "10", "-o", str(out), *style_args(media)]) == 0
    assert probe(out).times == pytest.approx([0.0, 0.2])
    assert "1 unreadable image(s) skipped" in capsys.readouterr().err


def test_quiet_prints_only_warnings_and_errors(media, tmp_path, capsys):
    clip = write_clip(tmp_path / "odd.mp4", width=65, height=48, frames=4)  # an odd width: a warning
    out = tmp_path / "odd_out.mp4"
    try:
        assert cli.main(["-q", "video", str(clip), "-o", str(out), *style_args(media)]) == 0
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("WARNING: 65x48 has an odd side")  # no bar, no summary
        assert len(probe(out).frames) == 4
        assert cli.main(["-q", "video", str(clip), "-o", str(out), *style_args(media)]) == 2
        assert capsys.readouterr().err == f"error: {out}: output exists; pass --overwrite to replace it\n"
    finally:
        cli.configure_logging(0, quiet=False)  # the console is the process's: later tests print through it


def test_sigint_mid_render_leaves_a_partial_mp4_that_plays(media, tmp_path):
    out = tmp_path / "render.mp4"
    command = [sys.executable, "-m", "cli", "video", str(media / "video/bbb_640x360_24fps_aac_stereo.mp4"),
               "-o", str(out), *style_args(media)]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 20_000 for p in tmp_path.glob(".render.*")):  # frames are being encoded
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=10)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130 and "Traceback" not in err and "stopped by SIGINT" in err
    assert not out.exists() and not list(tmp_path.glob(".render.*"))
    partial = probe(tmp_path / "render.partial.mp4")
    assert 0 < len(partial.frames) < 238 and partial.audio_codec == "aac"
    assert partial.duration == pytest.approx(len(partial.frames) / 24, abs=0.15)  # audio stops with the video
