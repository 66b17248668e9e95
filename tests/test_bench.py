"""`adain bench` end to end at a tiny size: JSON that follows the schema, a markdown table, the plot extra;
and the pieces the figures rest on (sizes, FLOP counts). Speed itself is measured by benchmarks/, not here."""

import json
import sys

import pytest

import cli
from realtime.bench.machine import nvidia_driver
from realtime.bench.report import plot_series
from realtime.bench.runner import BenchRecord, frame_gflop, parse_size
from realtime.errors import UserError

REQUIRED = {"model": str, "size": str, "inference_size": str, "device": str, "precision": str, "mode": str,
            "fps": float, "latency_ms_p50": float, "latency_ms_p95": float, "peak_mem_mb": float,
            "gflop_per_frame": float, "achieved_gflops": float, "roofline_gflops": float, "pct_of_roofline": float,
            "frames_in_flight": int}
TINY = ["bench", "--models", "cd16x", "--sizes", "64x48", "--iters", "3", "--warmup", "1", "--max-seconds", "1"]


def check_schema(records: list) -> None:
    assert isinstance(records, list) and records
    for record in records:
        for key, kind in REQUIRED.items():
            assert isinstance(record[key], kind), (key, record[key])
        assert record["mode"] in ("model", "end_to_end", "baseline")
        assert record["frames_in_flight"] >= 1 and (record["mode"] != "baseline" or record["frames_in_flight"] == 1)
        assert record["fps"] > 0 and record["latency_ms_p50"] <= record["latency_ms_p95"]
        assert record["peak_mem_mb"] > 0 and record["gflop_per_frame"] > 0
        expected_pct = 100 * record["gflop_per_frame"] * record["fps"] / record["roofline_gflops"]
        assert record["pct_of_roofline"] == pytest.approx(expected_pct, rel=0.02, abs=0.1)
        assert record["environment"]["torch"] and record["environment"]["threads"] >= 1


def test_bench_writes_json_and_markdown(tmp_path, capsys):
    json_path, markdown_path = tmp_path / "bench.json", tmp_path / "bench.md"
    code = cli.main([*TINY, "--device", "cpu", "--modes", "baseline,model", "--precision", "fp32,bf16",
                     "--json", str(json_path), "--markdown", str(markdown_path)])
    assert code == 0
    records = json.loads(json_path.read_text())
    check_schema(records)
    assert [(r["mode"], r["precision"]) for r in records] == [("baseline", "fp32"), ("model", "fp32"),
                                                              ("model", "bf16")]
    assert all(r["size"] == r["inference_size"] == "64x48" and r["model"] == "cd16x" and r["device"] == "cpu"
               for r in records)
    model = records[1]
    assert model["speedup_vs_baseline"] == pytest.approx(model["fps"] / records[0]["fps"], rel=0.02)
    assert {"upload", "encoder", "adain", "decoder", "download"} <= set(model["stages_ms"])
    table = markdown_path.read_text().splitlines()
    assert table[0].startswith("| model | size | device | precision | mode | in flight | fps |")
    assert sum(line.startswith("| cd16x | 64x48 |") for line in table) == 3 + 2  # results + stage rows
    screen = capsys.readouterr().err  # the rich table, on an 80-column console here: not squeezed into it
    assert "% roofline" in screen and "x baseline" in screen and "peak MB" in screen and "…" not in screen


def test_quiet_bench_prints_no_table_but_writes_its_files(tmp_path, capsys):
    json_path = tmp_path / "bench.json"
    try:
        assert cli.main(["-q", *TINY, "--modes", "model", "--no-stages", "--json", str(json_path)]) == 0
    finally:
        cli.configure_logging(0, quiet=False)  # the console is the process's: later tests print through it
    assert capsys.readouterr().err == ""
    check_schema(json.loads(json_path.read_text()))


def test_bench_lower_resolution_mode_is_reported_apart(tmp_path):
    """--content-size rows name the networks' size, count the FLOPs done at it, time the resizing, and
    claim no speed-up over the full-resolution baseline."""
    json_path, markdown_path = tmp_path / "small.json", tmp_path / "small.md"
    # an odd size: the end-to-end clip is made in 4:4:4, which holds it
    assert cli.main(["bench", "--models", "cd16x", "--sizes", "129x97", "--iters", "3", "--warmup", "1",
                     "--max-seconds", "1", "--device", "cpu", "--modes", "baseline,model,end_to_end",
                     "--content-size", "48", "--json", str(json_path), "--markdown", str(markdown_path)]) == 0
    records = json.loads(json_path.read_text())
    check_schema(records)
    baseline, model, end_to_end = records
    assert baseline["inference_size"] == "129x97" and baseline["gflop_per_frame"] == pytest.approx(
        frame_gflop("cd16x", 97, 129), abs=1e-3)
    for record in (model, end_to_end):
        assert record["size"] == "129x97" and record["inference_size"] == "64x48"
        assert record["gflop_per_frame"] == pytest.approx(frame_gflop("cd16x", 48, 64), abs=1e-3)
        assert record["speedup_vs_baseline"] is None
    assert model["stages_ms"]["resize"] > 0
    assert "| cd16x | 129x97 at 64x48 |" in markdown_path.read_text()


def test_bench_end_to_end_through_the_video_pipeline(tmp_path):
    json_path = tmp_path / "e2e.json"
    assert cli.main([*TINY, "--modes", "model,end_to_end", "--json", str(json_path)]) == 0
    records = json.loads(json_path.read_text())
    check_schema(records)
    end_to_end = records[-1]
    assert end_to_end["mode"] == "end_to_end" and end_to_end["frames"] >= 10 and end_to_end["clip"] == "synthetic"
    assert {"decode", "stylize", "encode"} <= set(end_to_end["stages_ms"])


def test_bench_end_to_end_on_real_footage_and_a_bad_clip(media, tmp_path, capsys):
    json_path = tmp_path / "e2e.json"
    clip = media / "video/bbb_640x360_24fps_aac_stereo.mp4"
    assert cli.main([*TINY, "--modes", "end_to_end", "--clip", str(clip), "--json", str(json_path)]) == 0
    records = json.loads(json_path.read_text())
    check_schema(records)
    assert [(r["mode"], r["size"], r["clip"]) for r in records] == [("end_to_end", "64x48", clip.name)]
    assert records[0]["frames"] >= 10
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert cli.main([*TINY, "--modes", "end_to_end", "--clip", str(bad)]) == 2
    assert f"{bad}: not a video file" in capsys.readouterr().err


def test_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "fps.png"
    assert cli.main([*TINY, "--modes", "model", "--no-stages", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_series_keep_the_lower_resolution_mode_apart():
    def record(size: str, inference_size: str, fps: float) -> BenchRecord:
        return BenchRecord(model="cd16x", size=size, inference_size=inference_size, device="cpu", precision="bf16",
                           mode="model", fps=fps, latency_ms_p50=1.0, latency_ms_p95=1.0, peak_mem_mb=1.0,
                           gflop_per_frame=1.0, achieved_gflops=1.0, roofline_gflops=1.0, pct_of_roofline=1.0,
                           speedup_vs_baseline=None, compiled=False, frames_in_flight=1, frames=3, warmup_s=0.0)
    series = plot_series([record("1920x1080", "1920x1080", 5.0), record("1280x720", "1280x720", 10.0),
                          record("1920x1080", "640x360", 40.0), record("1280x720", "640x360", 45.0)])
    assert series == {"cd16x bf16 model (cpu)": [(0.9216, 10.0), (2.0736, 5.0)],
                      "cd16x bf16 model (cpu), networks at 360 px": [(0.9216, 45.0), (2.0736, 40.0)]}


def test_bench_plot_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main([*TINY, "--plot", str(tmp_path / "fps.png")]) == 2
    assert "realtime-adain[plot]" in capsys.readouterr().err


def test_bench_refuses_to_overwrite_and_bad_arguments(tmp_path, capsys):
    existing = tmp_path / "bench.json"
    existing.write_text("[]")
    assert cli.main([*TINY, "--json", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_text() == "[]"
    style = tmp_path / "style.png"
    style.write_bytes(b"not read: refused before")
    assert cli.main([*TINY, "--style", str(style), "--markdown", str(style), "--overwrite"]) == 2
    assert f"{style}: is also an input" in capsys.readouterr().err and style.read_bytes() == b"not read: refused before"
    assert cli.main([*TINY, "--modes", "everything"]) == 2
    assert cli.main([*TINY, "--max-seconds", "nan"]) == 2
    assert cli.main([*TINY, "--plot", str(tmp_path / "fps.txt")]) == 2  # before measuring, not after
    assert "matplotlib cannot write .txt" in capsys.readouterr().err
    assert cli.main([*TINY, "--json", str(tmp_path), "--overwrite"]) == 2
    assert f"{tmp_path}: is a folder; give a file name" in capsys.readouterr().err
    assert cli.main([*TINY, "--precision", "int8"]) == 2
    with pytest.raises(SystemExit):
        cli.main([*TINY[:3], "--sizes", "huge"])


def test_size_words():
    assert parse_size("720p") == (720, 1280) and parse_size("4K") == (2160, 3840)
    assert parse_size("256") == (256, 256) and parse_size("640x360") == (360, 640)
    for bad in ("8x8", "wide", "12x"):
        with pytest.raises(UserError):
            parse_size(bad)


def test_flop_counts_match_the_weight_readme():
    """../shared/weights/README.md: 31.6 GMAC (vgg) and 2.0 GMAC (cd16x) per 256x256 frame, x2 for FLOPs."""
    assert frame_gflop("vgg", 256, 256) == pytest.approx(2 * 31.6, rel=0.01)
    assert frame_gflop("cd16x", 256, 256) == pytest.approx(2 * 2.0, rel=0.03)
    assert frame_gflop("cd16x", 512, 512) == pytest.approx(4 * frame_gflop("cd16x", 256, 256), rel=0.001)
    # counted at the size the engine runs: padded to multiples of 8, at least 16 pixels
    assert frame_gflop("cd16x", 1076, 1916) == frame_gflop("cd16x", 1080, 1920) > frame_gflop("cd16x", 1072, 1920)
    assert frame_gflop("cd16x", 3, 5) == frame_gflop("cd16x", 16, 16) > 0


@pytest.mark.parametrize("banner,version", [
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)", "580.159.04"),
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023", "535.104.05")])
def test_nvidia_driver_version_is_read_from_either_banner(tmp_path, banner, version):
    (tmp_path / "version").write_text(banner + "\nGCC version: gcc 12\n")
    assert nvidia_driver(tmp_path / "version") == version
    assert nvidia_driver(tmp_path / "missing") is None
