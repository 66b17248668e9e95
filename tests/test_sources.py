"""Sources read real files: every frame with its timestamp, rotation applied, damage counted, bad inputs refused,
live playback dropping stale frames, and threads that stop when asked."""

import time
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from clips import pattern, write_audio_only, write_clip, write_corrupt_copy
from realtime import sources
from realtime.errors import UserError
from realtime.sources import CameraSource, ImageSequenceSource, SourceSpec, image_files, open_source

CLIP = "video/bbb_640x360_24fps_aac_stereo.mp4"


def test_file_source_delivers_every_frame_with_its_timestamp(media):
    path = media / CLIP
    with av.open(str(path)) as container:  # the reference: a plain PyAV decode of the same clip
        expected = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    with open_source(SourceSpec(str(path))) as source:
        frames = list(source)
        info, report = source.info, source.report
    assert [f.pts for f in frames] == [pts for pts, _ in expected]
    assert [f.index for f in frames] == list(range(len(expected)))
    assert (info.width, info.height, info.fps, info.time_base) == (640, 360, 24.0, Fraction(1, 12288))
    assert info.frame_count == len(expected) == 238 and info.audio_path == str(path)
    assert report.delivered == 238 and report.dropped == 0 and report.cut_at is None
    # colours within the difference between BT.601 and BT.709 decoding of an untagged clip
    assert np.abs(frames[100].rgb.astype(int) - expected[100][1]).mean() < 4


def test_start_duration_and_scale(media):
    spec = SourceSpec(str(media / CLIP), start=2.0, duration=0.5, scale=0.25)
    with open_source(spec) as source:
        frames = list(source)
        assert source.info.start == 2.0 and (source.info.width, source.info.height) == (160, 90)
    assert len(frames) == 12 and frames[0].time == 0.0 and frames[0].rgb.shape == (90, 160, 3)
    assert frames[-1].time == pytest.approx(11 / 24)


def test_rotation_metadata_is_applied(tmp_path):
    path = write_clip(tmp_path / "rotated.mp4", rotation=-90)  # display matrix: turn 90 degrees clockwise
    with open_source(SourceSpec(str(path))) as source:
        frame = next(iter(source))
        assert (source.info.width, source.info.height) == (48, 64)
    assert frame.rgb.shape == (64, 48, 3)
    # the white top-left corner of the stored picture is shown top-right
    assert frame.rgb[:8, -6:].mean() > 230 and frame.rgb[:8, :6].mean() < 200


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    stamps = [0, 1, 3, 4, 8, 9, 10, 15]
    path = write_clip(tmp_path / "vfr.mp4", pts=stamps)
    with open_source(SourceSpec(str(path))) as source:
        times = [frame.time for frame in source]
    assert times == pytest.approx([s / 30 for s in stamps])


@pytest.mark.parametrize("cpus", [2, 16])
def test_corrupt_packets_are_skipped_and_counted(tmp_path, monkeypatch, cpus):
    """Also on a many-core machine, where unbounded frame threading lost 13 frames and one of the errors."""
    monkeypatch.setattr(sources, "usable_cpus", lambda: list(range(cpus)))
    good = write_clip(tmp_path / "good.mp4", frames=30)
    bad = write_corrupt_copy(good, tmp_path / "bad.mkv", bad_packets=(8, 20))
    with open_source(SourceSpec(str(bad))) as source:
        frames = list(source)
        report = source.report
    assert report.corrupt_packets == 2
    assert 20 <= len(frames) < 30


def test_truncated_file_gives_every_decodable_frame_and_says_it_was_cut(tmp_path):
    whole = write_clip(tmp_path / "whole.mp4", frames=90, options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with open_source(SourceSpec(str(cut))) as source:
        frames = list(source)
        report = source.report
    assert 20 < len(frames) < 90
    assert report.expected_end == pytest.approx(3.0)
    assert report.cut_at == pytest.approx(len(frames) / 30, abs=0.05)


@pytest.mark.parametrize("name,make,message", [
    ("empty.mp4", lambda p: p.write_bytes(b""), "empty file"),
    ("notes.mp4", lambda p: p.write_text("not a video"), "not a video file"),
    ("sound.m4a", write_audio_only, "has no video stream (it holds audio only)"),
    ("missing.mp4", lambda p: None, "no such file"),
])
def test_bad_inputs_are_one_line_user_errors(tmp_path, name, make, message):
    path = tmp_path / name
    make(path)
    with pytest.raises(UserError, match=f"{name}: {message}".replace("(", r"\(").replace(")", r"\)")):
        open_source(SourceSpec(str(path)))


def test_start_past_the_end_is_refused(media):
    with pytest.raises(UserError, match="past the end"):
        open_source(SourceSpec(str(media / CLIP), start=60))


def test_a_file_played_live_keeps_real_time_and_drops_what_a_slow_consumer_misses(media):
    path = media / "video/tree_handheld_320x240_15fps_noaudio.mp4"
    with open_source(SourceSpec(str(path), live=True, duration=None)) as source:
        start = time.monotonic()
        got = []
        for frame in source:
            got.append((frame, time.monotonic()))
            time.sleep(0.2)  # a consumer three times slower than the 15 fps source
            if time.monotonic() - start > 2.0:
                break
        dropped = source.report.dropped
    latencies = [seen - frame.captured for frame, seen in got]
    assert dropped > 2 * len(got) / 3  # about two of every three frames were stale
    assert max(latencies) < 0.2 + 1 / 15 + 0.1  # one consumer step plus one frame, never a backlog
    times = [frame.time for frame, _ in got]
    assert times[-1] == pytest.approx(time.monotonic() - start, abs=0.5)  # the picture keeps up with the clock


def test_close_returns_promptly_when_the_consumer_stops_early(media):
    source = open_source(SourceSpec(str(media / CLIP)))
    next(iter(source))  # the reader thread is now blocked on a full queue
    start = time.monotonic()
    source.close()
    assert time.monotonic() - start < 1.0
    source.close()  # idempotent


def test_stop_ends_the_iteration(media):
    with open_source(SourceSpec(str(media / CLIP))) as source:
        frames = iter(source)
        next(frames)
        source.stop()
        assert list(frames) == []


def test_image_sequence_in_natural_order(tmp_path):
    for index in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), pattern(index, 40, 30))
    assert [p.name for p in image_files(str(tmp_path))] == ["frame1.png", "frame2.png", "frame10.png"]
    with open_source(SourceSpec(str(tmp_path / "*.png"), fps=10)) as source:
        assert isinstance(source, ImageSequenceSource)
        frames = list(source)
    assert [f.time for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    assert frames[2].rgb[0, 0, 2] == pattern(10, 40, 30)[0, 0, 2]  # BGR on disk, RGB in memory
    with open_source(SourceSpec(str(tmp_path), fps=10, start=0.1, duration=0.1)) as source:
        assert [f.rgb[0, 0, 2] for f in source] == [pattern(2, 40, 30)[0, 0, 2]]  # the part asked for


def test_image_sequence_skips_an_unreadable_image_and_stretches_other_sizes(tmp_path, caplog):
    """As a corrupt packet in a video: the bad image is skipped (its time stays a gap) and counted; an image
    of another size is stretched to the first one's, and said once."""
    cv2.imwrite(str(tmp_path / "f1.png"), pattern(1, 40, 30))
    (tmp_path / "f2.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "f3.png"), pattern(3, 60, 20))
    cv2.imwrite(str(tmp_path / "f4.png"), pattern(4, 50, 50))
    with open_source(SourceSpec(str(tmp_path), fps=10)) as source:
        frames = list(source)
        report = source.report
    assert [f.time for f in frames] == pytest.approx([0.0, 0.2, 0.3])
    assert all(f.rgb.shape == (30, 40, 3) for f in frames)
    assert report.unreadable_images == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("f2.png" in w and "not an image" in w for w in warnings)
    assert sum("stretched to 40x30" in w for w in warnings) == 1 and any("f3.png: 60x20" in w for w in warnings)


def test_camera_that_cannot_be_opened_is_a_clear_error():
    with pytest.raises(UserError, match="camera /dev/video-none: cannot be opened"):
        CameraSource(SourceSpec("/dev/video-none", camera=True))


def test_camera_capture_reads_through_opencv_and_a_lost_device_is_a_clear_error(tmp_path):
    # OpenCV opens a video file like a capture device, so the capture, colour, drop and retry code run for
    # real. The file is deleted once open: at its end the one reconnection fails, like an unplugged camera.
    path = write_clip(tmp_path / "device.avi", width=160, height=120, frames=150)
    source = CameraSource(SourceSpec(str(path), camera=True))
    path.unlink()
    frames = []
    with pytest.raises(UserError, match="stopped delivering frames"), source:
        for frame in source:
            frames.append(frame)
    assert source.info.live and frames[0].rgb[:30, :40].mean() > 230  # the white corner, top-left: RGB order
    assert len(frames) + source.report.dropped == 150  # every frame read once: shown or dropped as stale
