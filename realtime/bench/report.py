"""Benchmark records as JSON, a rich table on screen, markdown tables and a plot of fps against frame size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from rich.table import Table

from ..errors import UserError
from ..files import refuse_inputs_as_outputs
from ..image_batch import expand_inputs
from .runner import BenchRecord

COLUMNS = (("model", "model"), ("size_shown", "size"), ("device", "device"), ("precision", "precision"),
           ("mode", "mode"), ("frames_in_flight", "in flight"), ("fps", "fps"), ("latency_ms_p50", "p50 ms"),
           ("latency_ms_p95", "p95 ms"), ("gflop_per_frame", "GFLOP/frame"), ("achieved_gflops", "GFLOP/s"),
           ("pct_of_roofline", "% roofline"), ("speedup_vs_baseline", "x baseline"), ("peak_mem_mb", "peak MB"))
STAGES = ("upload", "resize", "to_float", "encoder", "adain", "decoder", "to_uint8", "download",
          "decode", "stylize", "encode")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def rows(records: Sequence[BenchRecord]) -> list[list[str]]:
    return [[_cell(getattr(record, key)) for key, _ in COLUMNS] for record in records]


def stage_rows(records: Sequence[BenchRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of per-stage milliseconds, for the records that have a breakdown."""
    with_stages = [r for r in records if r.stages_ms]
    present = [stage for stage in STAGES if any(stage in r.stages_ms for r in with_stages)]
    header = ["model", "size", "precision", "mode", *present]
    body = [[r.model, r.size_shown, r.precision, r.mode, *(_cell(r.stages_ms.get(stage)) for stage in present)]
            for r in with_stages]
    return header, body


def rich_table(records: Sequence[BenchRecord]) -> Table:
    table = Table(*(title for _, title in COLUMNS), title="adain bench")
    table.columns[1].no_wrap = True  # "1280x720 at 640x360" in the lower-resolution mode
    for row in rows(records):
        table.add_row(*row)
    return table


def markdown(records: Sequence[BenchRecord]) -> str:
    """A results table, then the stage breakdown (ms per frame)."""
    lines = [_markdown_table([title for _, title in COLUMNS], rows(records))]
    header, body = stage_rows(records)
    if body:
        lines += ["", "Stage breakdown (median ms per frame, each stage timed on its own):", "",
                  _markdown_table(header, body)]
    return "\n".join(lines) + "\n"


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    numeric = [all(_is_number(row[i]) for row in body) for i in range(len(header))] if body else []
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---:" if is_num else "---" for is_num in numeric) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"


def check_outputs(paths: Sequence[Path | None], overwrite: bool, inputs: Sequence[object] = ()) -> None:
    """Refuse before any measuring starts: an existing output without --overwrite, one of the `inputs`
    (files, folders or globs, as `adain image` takes them) even with it, or a missing folder."""
    given = [path for path in paths if path is not None]
    for path in given:
        if path.is_dir():
            raise UserError(f"{path}: is a folder; give a file name")
        if path.exists() and not overwrite:
            raise UserError(f"{path}: output exists; pass --overwrite to replace it")
        if not path.parent.is_dir():
            raise UserError(f"{path.parent}: output folder does not exist")
    refuse_inputs_as_outputs(given, expand_inputs([str(p) for p in inputs if isinstance(p, (str, Path))])[0])


def write_json(path: Path, records: Sequence[BenchRecord]) -> None:
    path.write_text(json.dumps([record.to_json() for record in records], indent=2) + "\n")


def write_markdown(path: Path, records: Sequence[BenchRecord]) -> None:
    path.write_text(markdown(records))


def check_plot_path(path: Path) -> None:
    """--plot needs the optional extra and a file type matplotlib writes; say so before the run, not after it."""
    try:
        import matplotlib  # noqa: F401 - first: a submodule already imported would not say the package is gone
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'realtime-adain[plot]'") from None
    kinds = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in kinds:
        raise UserError(f"{path}: matplotlib cannot write {path.suffix or 'a file without an extension'}; "
                        f"use .png, .svg or .pdf")


def plot_series(records: Sequence[BenchRecord]) -> dict[str, list[tuple[float, float]]]:
    """(megapixels per frame, fps) points, sorted, one series per model x precision x mode x device, and
    per --content-size for the lower-resolution mode's rows (whatever the frame size)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        width, height = (int(v) for v in record.size.split("x"))
        label = f"{record.model} {record.precision} {record.mode} ({record.device})"
        if record.inference_size != record.size:
            label += f", networks at {min(int(v) for v in record.inference_size.split('x'))} px"
        series.setdefault(label, []).append((width * height / 1e6, record.fps))
    return {label: sorted(points) for label, points in series.items()}


def write_plot(path: Path, records: Sequence[BenchRecord]) -> None:
    """fps against megapixels per frame, one line per series of `plot_series` (log-log axes)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, points in plot_series(records).items():
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("megapixels per frame")
    axes.set_ylabel("frames per second")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
