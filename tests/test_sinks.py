"""Sinks write real containers that are read back: timestamps, sizes, codecs, audio copied bit for bit,
partial files after an unfinished render, streams over a loopback socket, and clear errors."""

import logging
import re
import socket
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from clips import pattern, probe, write_clip
from realtime.errors import UserError
from realtime.sinks import EncoderSettings, StreamSink, VideoFileSink, VirtualCamSink
from realtime.sources import Frame, SourceInfo, SourceSpec, StreamSource, open_source


def info_for(width=64, height=48, fps=30.0, time_base=Fraction(1, 30), **extra) -> SourceInfo:
    return SourceInfo("test", width, height, fps, time_base, live=False, **extra)


def frames(count, width=64, height=48, step=1, time_base=Fraction(1, 30)):
    return [Frame(pattern(i, width, height), i, i * step, time_base, 0.0) for i in range(count)]


def render(path, info, items, settings=EncoderSettings(), finish=True, **kwargs):
    sink = VideoFileSink(path, settings, info, **kwargs)
    with sink:
        for frame in items:
            sink.write(frame, frame.rgb)
        if finish:
            sink.finish(source_ended=True)
    return sink


def test_copy_keeps_timestamps_and_audio_packets_bit_for_bit(tmp_path):
    source_path = write_clip(tmp_path / "in.mp4", pts=[0, 1, 2, 5, 6, 9, 10, 11], audio="aac")
    out = tmp_path / "out.mp4"
    with open_source(SourceSpec(str(source_path))) as source:
        render(out, source.info, list(source))
    original, copy = probe(source_path), probe(out)
    assert copy.times == original.times  # variable frame rate kept
    assert copy.audio_codec == "aac" and copy.audio_packets == original.audio_packets
    assert copy.duration == pytest.approx(original.duration, abs=0.02)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("codec,decoded_as", [("h264", "h264"), ("hevc", "hevc"), ("vp9", "vp9"),
                                              ("av1", "libdav1d")])
def test_each_codec_writes_a_file_that_decodes(tmp_path, codec, decoded_as):
    out = tmp_path / f"{codec}.mkv"
    render(out, info_for(64, 64), frames(6, 64, 64), EncoderSettings(codec=codec, crf=30))
    result = probe(out)
    assert result.codecs == [decoded_as] and len(result.frames) == 6
    assert result.frames[0].shape == (64, 64, 3)
    assert np.abs(result.frames[3].astype(int) - pattern(3, 64, 64)).mean() < 12  # the picture, not noise


def x264_analyse_flags(path) -> str:
    """The partition flags x264 records in its settings message in the first frame (I-frames:P/B-frames)."""
    with av.open(str(path)) as container:
        packet = bytes(next(container.demux(video=0)))
    return re.search(rb"analyse=(\S+)", packet).group(1).decode()


def test_default_h264_skips_the_p8x8_and_b8x8_partition_search_a_named_preset_keeps_it(tmp_path):
    render(tmp_path / "default.mp4", info_for(), frames(4))
    render(tmp_path / "veryfast.mp4", info_for(), frames(4), EncoderSettings(preset="veryfast"))
    assert x264_analyse_flags(tmp_path / "default.mp4") == "0x3:0x3"  # i4x4 + i8x8 only
    assert x264_analyse_flags(tmp_path / "veryfast.mp4") == "0x3:0x113"  # x264's veryfast: + p8x8, b8x8


def test_webm_output_reencodes_aac_audio_and_says_so(tmp_path, caplog):
    source_path = write_clip(tmp_path / "in.mp4", frames=15, audio="aac")
    with open_source(SourceSpec(str(source_path))) as source, caplog.at_level(logging.WARNING):
        render(tmp_path / "out.webm", source.info, list(source))
    result = probe(tmp_path / "out.webm")
    assert result.codecs == ["vp9", "opus"] and len(result.frames) == 15
    assert "cannot hold aac audio, so the audio is re-encoded to opus" in caplog.text


def test_no_audio_setting_drops_it(tmp_path):
    source_path = write_clip(tmp_path / "in.mp4", frames=6, audio="aac")
    with open_source(SourceSpec(str(source_path))) as source:
        render(tmp_path / "out.mp4", source.info, list(source), EncoderSettings(audio=False))
    assert probe(tmp_path / "out.mp4").codecs == ["h264"]


def test_unfinished_render_is_kept_under_a_partial_name_and_plays(tmp_path):
    out = tmp_path / "render.mp4"
    sink = render(out, info_for(), frames(5), finish=False)
    assert not out.exists()
    assert sink.partial_path == tmp_path / "render.partial.mp4"
    assert len(probe(sink.partial_path).frames) == 5
    again = render(out, info_for(), frames(2), finish=False)
    assert again.partial_path == tmp_path / "render.partial-2.mp4"  # an earlier partial file is never replaced


def test_nothing_is_left_when_no_frame_was_written(tmp_path):
    render(tmp_path / "never.mp4", info_for(), [], finish=False)
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_padded_for_420_and_kept_for_444(tmp_path):
    odd = frames(4, 63, 47)
    render(tmp_path / "padded.mp4", info_for(63, 47), odd)
    render(tmp_path / "exact.mp4", info_for(63, 47), odd, EncoderSettings(pix_fmt="yuv444p"))
    assert probe(tmp_path / "padded.mp4").frames[0].shape == (48, 64, 3)
    exact = probe(tmp_path / "exact.mp4").frames[0]
    assert exact.shape == (47, 63, 3)
    assert np.abs(exact.astype(int) - pattern(0, 63, 47)).mean() < 6


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(UserError, match="output exists; pass --overwrite"):
        VideoFileSink(out, EncoderSettings(), info_for())
    assert out.read_bytes() == b"precious"
    render(out, info_for(), frames(2), overwrite=True)
    assert len(probe(out).frames) == 2


@pytest.mark.parametrize("name,settings,message", [
    ("out.xyz", EncoderSettings(), "unknown video file type '.xyz'"),
    ("out.webm", EncoderSettings(codec="h264"), "a webm file cannot hold h264 video"),
    ("out.mp4", EncoderSettings(pix_fmt="rgb48le"), "--pix-fmt rgb48le: libx264 takes yuv420p"),
    ("no/such/dir/out.mp4", EncoderSettings(), "output folder does not exist"),
    ("out.mp4", EncoderSettings(preset="bogus"), "libx264 refuses 64x48 yuv420p with --preset bogus --crf 23 (Invalid argument)"),
    ("out.mp4", EncoderSettings(crf=52), "--crf 52: libx264 takes 0-51"),
    ("out.webm", EncoderSettings(crf=64), "--crf 64: libvpx-vp9 takes 0-63"),
])
def test_bad_output_settings_are_user_errors_before_any_work(tmp_path, name, settings, message):
    with pytest.raises(UserError, match=re.escape(message)):
        VideoFileSink(tmp_path / name, settings, info_for())
    assert list(tmp_path.iterdir()) == []


def test_stream_sink_sends_frames_a_stream_source_receives(tmp_path, monkeypatch):
    monkeypatch.setattr(StreamSource, "READ_TIMEOUT_S", 1.0)  # the stream counts as ended 1 s after the last data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    url = f"udp://127.0.0.1:{port}"
    received, errors = [], []

    def receive():
        try:
            with StreamSource(SourceSpec(url)) as source:
                for frame in source:
                    received.append(frame)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    receiver = threading.Thread(target=receive)
    receiver.start()
    time.sleep(0.5)
    sink = StreamSink(url, EncoderSettings(), info_for(96, 64))
    with sink:
        for frame in frames(60, 96, 64):
            sink.write(frame, frame.rgb)
            time.sleep(1 / 30)
        sink.finish(source_ended=True)
    receiver.join(timeout=StreamSource.READ_TIMEOUT_S + 5)
    assert not errors and not receiver.is_alive()
    assert len(received) > 20 and received[-1].rgb.shape == (64, 96, 3)


def test_virtual_camera_without_its_extra_or_device_is_a_clear_error():
    with pytest.raises(UserError, match=r"^--virtual-cam.*(pip install|modprobe v4l2loopback)"):
        VirtualCamSink(info_for())


def test_an_encoder_failure_reaches_the_caller_and_leaves_no_stray_file(tmp_path):
    sink = VideoFileSink(tmp_path / "broken.mp4", EncoderSettings(), info_for())
    bad = np.zeros((48, 64, 4), np.uint8)  # four channels: the encode thread cannot make a video frame of it
    with pytest.raises(ValueError):
        with sink:
            for frame in frames(20):
                sink.write(frame, bad)
    assert list(tmp_path.iterdir()) == []
