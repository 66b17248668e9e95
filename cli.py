"""`adain`: the command line. Parses arguments, builds the package's objects, turns errors into exit codes.

Exit codes: 0 success, 1 failure while processing, 2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Callable

from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from realtime.bench import report
from realtime.bench.end_to_end import check_footage, measure_end_to_end
from realtime.bench.runner import MODES, NAMED_SIZES, BenchRecord, BenchSettings, parse_size, run_bench
from realtime.engine import DEVICES, PRECISIONS, PRESERVE_COLOR, StyleControls, Stylizer
from realtime.errors import UserError, first_line, is_out_of_memory
from realtime.image_batch import ImageJob, run_image_job
from realtime.images import image_format, write_image
from realtime.metrics import EvalSettings, Evaluator, write_report
from realtime.pipeline import StylePlan
from realtime.sinks import CODECS, EncoderSettings
from realtime.train import STYLE_STATS, TrainingDiverged, TrainSettings, train
from realtime.ui import console, print_wide
from realtime.video_jobs import Framing, JobResult, LiveJob, VideoJob, run_live_job, run_video_job
from realtime.weights import WeightStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("adain")


# --------------------------------------------------------------------------- argument types
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help, unless there is none to show (None, off) or the help
    already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default" in text:
            return text
        return super()._get_help_string(action)


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


MAX_SIDE = 8192
"""The largest --style-size and --content-size: beyond 8K a side, resizing alone needs tens of GiB."""


def side_length(text: str) -> int:
    value = non_negative_int(text)
    if value > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SIDE} pixels, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def frame_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with sides of at least 8 pixels, got {text!r}")
    return int(width), int(height)


def seconds(text: str) -> float:
    """'90', '1:30' or '00:01:30.5' -> seconds."""
    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}") from None
    if not 0 <= value < math.inf or text.count(":") > 2:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}")
    return value
def word_list(text: str) -> tuple[str, ...]:
    words = tuple(part.strip() for part in text.split(",") if part.strip())
    if not words:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return words


def size_list(text: str) -> tuple[tuple[int, int], ...]:
    try:
        return tuple(parse_size(part) for part in word_list(text))
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- shared option groups
def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and device")
    group.add_argument("--model", default="cd16x",
                       help="network pair: cd16x (fast, default) or vgg (the paper's, best quality, ~16x slower)")
    group.add_argument("--device", choices=DEVICES, default="auto", help="auto takes CUDA, then MPS, then CPU")
    group.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                       help="auto: fp16 on GPUs, bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32")
    group.add_argument("--encoder-weights", type=Path, metavar="FILE",
                       help="use this encoder file instead of the registry's (e.g. pytorch-AdaIN's vgg_normalised.pth)")
    group.add_argument("--decoder-weights", type=Path, metavar="FILE",
                       help="use this decoder file instead of the registry's (e.g. pytorch-AdaIN's decoder.pth)")
    group.add_argument("--style-size", type=side_length, default=512, metavar="N",
                       help="shorter side the style image is resized to before its statistics are taken (0: as is)")
    group.add_argument("--content-size", type=side_length, default=0, metavar="N",
                       help="run the networks with the content's shorter side at N pixels, then scale the result "
                            "back to the input size: faster, less detail (e.g. 360 for HD video on a CPU; "
                            "0, default: full resolution)")
    add_speed_options(group)


def add_speed_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the per-frame path (faster frames; the first frame of each size "
                            "compiles, tens of seconds on a CPU)")
    group.add_argument("--tile", type=non_negative_int, default=None, metavar="PX",
                       help="process frames in overlapping tiles of PX pixels (default: only where a frame "
                            "would not fit in memory; 0: never)")
    group.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="torch's CPU threads: on a CPU they run the networks (default: one per physical "
                            "core, or $OMP_NUM_THREADS); on a CUDA GPU they only copy frames (default: 1)")
    group.add_argument("--frame-workers", type=positive_int, default=None, metavar="N",
                       help="video frames stylized at once on a CPU, each on its share of --threads (default: 2 "
                            "with 2 or more threads where a frame's activations are small: cd16x up to 1280x720, "
                            "vgg up to 640x360 in bf16; else 1; live input: always 1)")


def add_style_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("style controls")
    group.add_argument("--style", action="append", required=True, metavar="STYLE",
                       help="style image; repeat to interpolate several styles (or to give inside/outside styles "
                            "with --mask)")
    group.add_argument("--style-weights", type=float_list, metavar="W,...",
                       help="interpolation weights, one per --style (normalised to sum 1; default equal)")
    group.add_argument("--alpha", type=unit_interval, default=1.0, metavar="A",
                       help="content-style trade-off: 0 gives the content back, 1 (default) full style")
    group.add_argument("--preserve-color", choices=PRESERVE_COLOR, default="none",
                       help="keep the content's colours: histogram (match the style's colour mean and covariance "
                            "to the content's) or luminance (stylize luminance only, keep the content's chroma)")
    group.add_argument("--mask", type=Path, metavar="MASK",
                       help="spatial control: image whose white part gets the first style and black part the second "
                            "style (or stays unstylized with one style)")


def add_frame_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("frames")
    size = group.add_mutually_exclusive_group()
    size.add_argument("--size", type=frame_size, metavar="WxH", help="resize frames to WxH (e.g. 1280x720)")
    size.add_argument("--scale", type=positive_float, metavar="F", help="resize frames by a factor (e.g. 0.5)")
    group.add_argument("--fps", type=positive_float, metavar="FPS",
                       help="frame rate of image sequences (default 25), or the rate asked of a camera")
    group.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    group.add_argument("--style-cycle", type=positive_float, metavar="SECONDS",
                       help="switch to the next --style every SECONDS (of video time); without a window this is "
                            "how styles change during a run")


def add_encoder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("encoding")
    group.add_argument("--codec", choices=tuple(CODECS),
                       help="video codec (default: vp9 for .webm, h264 otherwise)")
    group.add_argument("--crf", type=non_negative_int, metavar="Q",
                       help="constant quality, lower is better: h264 and hevc take 0-51, vp9 and av1 0-63 "
                            "(default: h264 23, hevc 28, vp9 32, av1 35)")
    group.add_argument("--preset", metavar="NAME",
                       help="encoder speed preset (default: veryfast for h264/hevc, h264's without its p8x8/b8x8 "
                            "partition search; cpu-used 8 for vp9, preset 10 for av1: fast enough to keep up with "
                            "the networks)")
    group.add_argument("--pix-fmt", default="yuv420p", metavar="FMT",
                       help="pixel format (yuv420p plays everywhere; yuv444p keeps full colour and odd sizes)")
    group.add_argument("--no-audio", action="store_true", help="drop the input's audio (default: copy it)")
    group.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def add_frames_command(commands: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int],
                       help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that stylizes frames: style, model, frame and encoder options, then its own."""
    parser = commands.add_parser(name, help=help, description=description,
                                 formatter_class=HelpFormatter)
    add_style_options(parser)
    add_model_options(parser)
    add_frame_options(parser)
    add_encoder_options(parser)
    parser.set_defaults(run=run)
    return parser


def encoder_from(args: argparse.Namespace) -> EncoderSettings:
    return EncoderSettings(args.codec, args.crf, args.preset, args.pix_fmt, audio=not args.no_audio)


def framing_from(args: argparse.Namespace) -> Framing:
    return Framing(args.size, args.scale, getattr(args, "start", 0.0), getattr(args, "duration", None), args.fps)


def plan_from(args: argparse.Namespace, playlist: bool) -> StylePlan:
    """One look mixing every --style (as `adain image` does), or, as a playlist, one look per --style."""
    if playlist and args.style_weights is not None and len(args.style) > 1:
        raise UserError("--style-weights mixes styles, but here each --style is its own look (switched with keys "
                        "or --style-cycle); mix styles with adain video without --style-cycle")
    entries = tuple((style,) for style in args.style) if playlist else (tuple(args.style),)
    return StylePlan(entries, controls_from(args), args.mask, args.style_cycle)


def controls_from(args: argparse.Namespace) -> StyleControls:
    return StyleControls(alpha=args.alpha, weights=args.style_weights, preserve_color=args.preserve_color)


def stylizer_from(args: argparse.Namespace) -> Stylizer:
    return Stylizer(args.model, args.device, args.precision, style_size=args.style_size,
                    content_size=args.content_size, encoder_weights=args.encoder_weights,
                    decoder_weights=args.decoder_weights, compile=args.compile, tile=args.tile,
                    threads=args.threads, frame_workers=args.frame_workers)


# --------------------------------------------------------------------------- commands
def cmd_image(args: argparse.Namespace) -> int:
    job = ImageJob(contents=args.content, styles=args.style, controls=controls_from(args), output=args.output,
                   mask=args.mask, overwrite=args.overwrite)
    result = run_image_job(job, stylizer_from(args))
    for source, message in result.failed:
        report_error(message)
    if result.seconds:
        console.print(f"{len(result.written)} image(s), {sum(result.seconds) / len(result.seconds):.2f} s per image "
                      "(networks only)", highlight=False)
    return EXIT_USAGE if result.failed else EXIT_OK


def cmd_video(args: argparse.Namespace) -> int:
    job = VideoJob(args.input, plan_from(args, playlist=args.style_cycle is not None), args.output,
                   framing_from(args), encoder_from(args), args.overwrite, args.max_frames)
    return exit_code(run_video_job(job, stylizer_from(args)))


def cmd_live(args: argparse.Namespace) -> int:
    job = LiveJob(plan_from(args, playlist=True), args.camera, args.input, args.output, not args.no_window,
                  args.virtual_cam, framing_from(args), encoder_from(args), args.overwrite, args.max_frames,
                  args.snapshot_dir)
    return exit_code(run_live_job(job, stylizer_from(args)))


def exit_code(result: JobResult) -> int:
    for source, message in result.failed:
        report_error(message)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_USAGE if result.failed else EXIT_OK


def cmd_weights(args: argparse.Namespace) -> int:
    store = WeightStore()
    if args.action == "fetch":
        names = store.registry.files if args.name == "all" else _files_of(store, args.name)
        for name in names:
            console.print(f"{name}: {store.fetch(name, force=args.force)}", highlight=False)
        return EXIT_OK
    table = Table("model", "file", "found at", "origin", "sha256")
    bad = 0
    for model in store.registry.models.values():
        for name in (model.encoder, model.decoder):
            found = store.locate(name)
            if found is None:
                table.add_row(model.name, name, "-", "missing", "[yellow]not found[/yellow]")
                bad += args.action == "verify"
                continue
            status = "[green]ok[/green]" if found.verified else "[red]MISMATCH[/red]"
            bad += not found.verified
            table.add_row(model.name, name, str(found.path), found.origin, status)
    console.print(table)
    return EXIT_USAGE if bad and args.action == "verify" else EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    settings = BenchSettings(models=args.models, sizes=args.sizes, precisions=args.precision, devices=args.device,
                             modes=args.modes, compile=args.compile, iters=args.iters, warmup=args.warmup,
                             max_seconds=args.max_seconds, threads=args.threads, frame_workers=args.frame_workers,
                             tile=args.tile, style=args.style, stages=not args.no_stages, clip=args.clip,
                             encoder_preset=args.encoder_preset, content_size=args.content_size)
    report.check_outputs((args.json, args.markdown, args.plot), args.overwrite, (args.clip, args.style))
    if args.clip is not None:
        check_footage(args.clip)
    if args.plot:
        report.check_plot_path(args.plot)

    def show(record: BenchRecord) -> None:
        console.print(f"{record.model} {record.size} {record.precision} {record.mode}: {record.fps:.2f} fps, "
                      f"p50 {record.latency_ms_p50:.1f} ms, {record.pct_of_roofline:.0f}% of roofline", highlight=False)

    records = run_bench(settings, show, end_to_end=measure_end_to_end)
    print_wide(report.rich_table(records), 176)  # 14 columns: never squeezed
    if args.json:
        report.write_json(args.json, records)
    if args.markdown:
        report.write_markdown(args.markdown, records)
    if args.plot:
        report.write_plot(args.plot, records)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    settings = TrainSettings(
        content=tuple(args.content), styles=tuple(args.styles), out=args.out, encoder=args.encoder,
        encoder_weights=args.encoder_weights, init_decoder=args.init_decoder, iters=args.iters,
        batch_size=args.batch_size, crop=args.crop, load_size=args.load_size, scale_jitter=args.scale_jitter,
        flip=not args.no_flip, style_stats=args.style_stats, lr=args.lr, lr_decay=args.lr_decay, style_weight=args.style_weight,
        content_weight=args.content_weight, ema=args.ema, seed=args.seed, save_every=args.save_every,
        sample_every=args.sample_every, device=args.device, precision=args.precision, threads=args.threads, resume=args.resume)
    try:
        result = train(settings)
    except TrainingDiverged as exc:
        report_error(str(exc))
        return EXIT_FAILED
    losses = (f": content loss {result.last['content_loss']:.3f}, style loss {result.last['style_loss']:.3f}"
              if result.last else "")
    console.print(f"iteration {result.iteration}{losses}; {result.elapsed_s / 60:.1f} min in all; "
                  f"decoder {result.decoder}, checkpoint {result.checkpoint}", highlight=False)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    models = args.model or ["cd16x"]
    if (args.decoder_weights or args.encoder_weights) and len(models) > 1:
        raise UserError("--decoder-weights/--encoder-weights apply to one model; give a single --model")
    store = WeightStore()
    for model in models:  # unknown names fail before any image is read
        store.registry.model(model)
    report.check_outputs((args.json, args.sheet), args.overwrite, (*args.content, *args.styles))
    if args.sheet is not None:
        image_format(args.sheet)
    evaluator = Evaluator(EvalSettings(tuple(args.content), tuple(args.styles), size=args.size,
                                       style_size=args.style_size, device=args.device, precision=args.precision,
                                       cell=args.cell), store)
    results = [evaluator.evaluate(model, args.decoder_weights, args.encoder_weights) for model in models]
    table = Table("model", "content loss", "style loss", "fps", f"content / {models[0]}", f"style / {models[0]}",
                  title=f"{len(evaluator.content_names)} contents x {len(evaluator.style_names)} styles, "
                        f"shorter side {args.size}")
    for result in results:
        table.add_row(result.model, f"{result.content_loss:.3f}", f"{result.style_loss:.3f}", f"{result.fps:.2f}",
                      f"{result.content_loss / results[0].content_loss:.2f}x",
                      f"{result.style_loss / results[0].style_loss:.2f}x")
    console.print(table)
    if args.json is not None:
        write_report(args.json, evaluator, results)
    if args.sheet is not None:
        write_image(args.sheet, evaluator.sheet(results))
    return EXIT_OK


def _files_of(store: WeightStore, name: str) -> list[str]:
    if name in store.registry.files:
        return [name]
    model = store.registry.model(name)
    return [model.encoder, model.decoder]


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adain", description="Real-time arbitrary style transfer (AdaIN) for images, video files, cameras "
                                  "and streams.", formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only warnings and errors (no progress bars, summaries or tables)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    image = commands.add_parser(
        "image", help="stylize image files", formatter_class=HelpFormatter,
        description="Stylize images. Transparency is kept in PNG/WebP/TIFF outputs and dropped (with a warning) "
                    "in JPEG ones; grayscale, palette, CMYK and 16-bit inputs are converted to 8-bit RGB; EXIF "
                    "orientation is applied.")
    image.add_argument("content", nargs="+", metavar="CONTENT", help="image files, directories or globs")
    add_style_options(image)
    add_model_options(image)
    image.add_argument("-o", "--output", metavar="OUT",
                       help="output file (one input) or folder (several inputs, or a path ending in /, created "
                            "if missing); default: next to each input, with a _stylized suffix")
    image.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    image.set_defaults(run=cmd_image)

    video = add_frames_command(
        commands, "video", run=cmd_video, help="stylize video files, image sequences or streams into video files",
        description="Stylize videos frame by frame. Frame timestamps are kept (variable frame rate stays "
                    "variable), rotation metadata is applied, the audio is copied without re-encoding where the "
                    "output container can hold it, and corrupt or truncated inputs are rendered as far as they "
                    "decode. Output is written under a temporary name and moved into place when complete; Ctrl-C "
                    "keeps what was done as NAME.partial.EXT.")
    video.add_argument("input", nargs="+", metavar="INPUT",
                       help="video files, URLs, or image sequences (a folder, or a glob such as 'frames/*.png')")
    video.add_argument("-o", "--output", metavar="OUT",
                       help="output file (one input), folder (several inputs, or a path ending in /, created if "
                            "missing), or stream URL (udp://, rtmp://, srt://); default: next to each input, with a "
                            "_stylized suffix")
    part = video.add_argument_group("part of the input")
    part.add_argument("--start", type=seconds, default=0.0, metavar="T", help="start T seconds in ([HH:]MM:SS too)")
    part.add_argument("--duration", type=seconds, metavar="T", help="render at most T seconds")

    live = add_frames_command(
        commands, "live", run=cmd_live, help="stylize a camera, stream or file live, in a window and/or to an output",
        description="Live stylization. Each --style is a look to switch between: keys in the window (n/p style, "
                    "+/- alpha, c colour preservation, b side by side, s snapshot, space pause, f fullscreen, "
                    "h HUD, q quit) or --style-cycle. When inference is slower than the source, stale frames are "
                    "dropped so latency stays bounded. --input FILE plays a file in real time, as if it were live.")
    source = live.add_mutually_exclusive_group()
    source.add_argument("--camera", metavar="N|DEVICE", help="camera index or device path (default: 0)")
    source.add_argument("--input", metavar="URL|FILE", help="a network stream (udp://, rtsp://, ...) or a file "
                                                             "played in real time")
    outputs = live.add_argument_group("outputs")
    outputs.add_argument("--output", metavar="FILE|URL", help="also record to a file or send to a stream URL")
    outputs.add_argument("--no-window", action="store_true", help="no preview window (headless)")
    outputs.add_argument("--virtual-cam", action="store_true",
                         help="send to a virtual camera (optional extra 'virtualcam'; v4l2loopback on Linux)")
    outputs.add_argument("--snapshot-dir", type=Path, default=Path("."), metavar="DIR",
                         help="where the s key saves PNG snapshots")

    weights = commands.add_parser("weights", help="list, verify or fetch weight files",
                                  description="Weight files are looked up in: --encoder-weights/--decoder-weights; "
                                              "$REALTIME_ADAIN_WEIGHTS (a mirror folder laid out like "
                                              "../shared/weights); the project's bundled weights; the user cache "
                                              "($REALTIME_ADAIN_CACHE or ~/.cache/realtime-adain); then they are "
                                              "downloaded ($REALTIME_ADAIN_WEIGHTS_URL overrides the address).")
    actions = weights.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="each model's files, where they resolve and whether their sha256 matches")
    actions.add_parser("verify", help="like list, but exit with code 2 if any file is missing or corrupt")
    fetch = actions.add_parser("fetch", help="download a model's files (or one file, or 'all') into the cache")
    fetch.add_argument("name", help="model name (vgg, cd16x), file name (cd16x/encoder_relu41.pth) or 'all'")
    fetch.add_argument("--force", action="store_true", help="download even if an intact copy is cached")
    weights.set_defaults(run=cmd_weights)

    bench = commands.add_parser(
        "bench", help="measure frames per second per model, size, precision and device",
        formatter_class=HelpFormatter,
        description="Measure model-only fps (median and p95 latency, stage breakdown, peak memory), the naive "
                    "loop peer projects use (fp32, NCHW, style re-encoded per frame) and the end-to-end video "
                    "pipeline, in the same run. Every figure is also given as achieved GFLOP/s against a dense "
                    "2048x2048 matmul timed alongside (the machine's roofline). Stop other CPU work first.")
    bench.add_argument("--models", type=word_list, default="vgg,cd16x", metavar="M,...", help="models")
    bench.add_argument("--sizes", type=size_list, default=",".join(NAMED_SIZES), metavar="S,...",
                       help=f"frame sizes: {', '.join(NAMED_SIZES)} or WIDTHxHEIGHT")
    bench.add_argument("--precision", type=word_list, default="auto", metavar="P,...",
                       help=f"auto or any of {', '.join(PRECISIONS)}")
    bench.add_argument("--device", type=word_list, default="auto", metavar="D,...",
                       help=f"any of {', '.join(DEVICES)}")
    bench.add_argument("--modes", type=word_list, default=",".join(MODES), metavar="M,...",
                       help="model (networks only), end_to_end (decode + stylize + encode a clip), baseline")
    bench.add_argument("--iters", type=positive_int, default=30, metavar="N", help="timed frames per measurement")
    bench.add_argument("--warmup", type=non_negative_int, default=3, metavar="N", help="untimed frames first")
    bench.add_argument("--max-seconds", type=float, default=10.0, metavar="S",
                       help="stop a measurement after S seconds (at least 3 frames)")
    add_speed_options(bench)
    bench.add_argument("--style", type=Path, metavar="STYLE", help="style image (default: a synthetic one; "
                                                                   "timing does not depend on it)")
    bench.add_argument("--clip", type=Path, metavar="VIDEO",
                       help="end_to_end: make the clip from this video's first frames, resized to each size "
                            "(default: a synthetic panning scene; real footage costs the encoder more)")
    bench.add_argument("--encoder-preset", metavar="PRESET",
                       help="encoder speed preset for end_to_end (e.g. ultrafast; default: adain video's)")
    bench.add_argument("--content-size", type=side_length, default=0, metavar="N",
                       help="the lower-resolution mode: run the networks with each frame's shorter side at N "
                            "pixels and scale back; its rows show both sizes and get no speed-up over the "
                            "full-resolution baseline (default: 0, full resolution)")
    bench.add_argument("--no-stages", action="store_true", help="skip the per-stage breakdown")
    bench.add_argument("--json", type=Path, metavar="FILE", help="write the records as JSON")
    bench.add_argument("--markdown", type=Path, metavar="FILE", help="write markdown tables")
    bench.add_argument("--plot", type=Path, metavar="FILE", help="plot fps against frame size (needs the plot extra)")
    bench.add_argument("--overwrite", action="store_true", help="replace existing output files")
    bench.set_defaults(run=cmd_bench)
    add_train_parser(commands)
    add_eval_parser(commands)
    return parser


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    train_cmd = commands.add_parser(
        "train", help="train a decoder for an encoder with the paper's objective",
        formatter_class=HelpFormatter,
        description="Train an AdaIN decoder (Huang & Belongie 2017): content loss at relu4_1 against the AdaIN "
                    "target, style loss on channel means and stds at relu1_1..relu4_1, both measured by the "
                    "normalised VGG-19 whatever the encoder. Images are resized to --load-size on their shorter "
                    "side and trained on as random --crop crops (with scale jitter and flips). The run folder "
                    "(--out) gets checkpoint.pt, decoder.pth, log.csv and samples/; --resume continues exactly "
                    "where a run stopped. Ctrl-C (or SIGTERM) saves a checkpoint first.")
    data = train_cmd.add_argument_group("data")
    data.add_argument("--content", nargs="+", required=True, metavar="DIR",
                      help="content images: folders, files or globs (unreadable images are skipped with a warning)")
    data.add_argument("--styles", nargs="+", required=True, metavar="DIR", help="style images: folders, files or globs")
    data.add_argument("--load-size", type=positive_int, default=512, metavar="N",
                      help="shorter side every image is resized to before cropping")
    data.add_argument("--crop", type=positive_int, default=256, metavar="N", help="training crop size (multiple of 8)")
    data.add_argument("--scale-jitter", type=float, default=0.25, metavar="J",
                      help="crop windows are J times larger or smaller than --crop at most, then resized to it")
    data.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    data.add_argument("--style-stats", choices=STYLE_STATS, default="crop",
                      help="style statistics of random style crops (the paper) or of whole style images (as the "
                           "stylizer uses them; faster, and a better match for small --crop sizes)")
    model = train_cmd.add_argument_group("networks")
    model.add_argument("--encoder", choices=("vgg", "cd16x"), default="cd16x", help="the frozen encoder to train for")
    model.add_argument("--encoder-weights", type=Path, metavar="FILE", help="encoder file instead of the registry's")
    model.add_argument("--init-decoder", metavar="MODEL|FILE",
                       help="start from this decoder (a model name such as cd16x-recon, or a file) instead of a "
                            "random initialisation (not needed with --resume: the checkpoint holds the weights)")
    optim = train_cmd.add_argument_group("optimisation")
    optim.add_argument("--iters", type=positive_int, default=160_000, metavar="N", help="total iterations of the run")
    optim.add_argument("--batch-size", type=positive_int, default=8, metavar="B")
    optim.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    optim.add_argument("--lr-decay", type=float, default=5e-5,
                       help="learning rate at iteration i: lr / (1 + lr_decay * i)")
    optim.add_argument("--style-weight", type=float, default=10.0, help="weight of the style loss")
    optim.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss")
    optim.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                       help="keep an exponential moving average of the weights with this decay (e.g. 0.998) and "
                            "ship it as decoder.pth: smoother than the last weights; 0 turns it off; may be "
                            "switched on when resuming")
    optim.add_argument("--seed", type=int, default=0, help="seed of the data sampling (and of a random decoder)")
    run = train_cmd.add_argument_group("run")
    run.add_argument("--out", type=Path, default=Path("runs/train"), metavar="DIR", help="run folder")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument("--save-every", type=positive_int, default=500, metavar="N", help="checkpoint interval")
    run.add_argument("--sample-every", type=non_negative_int, default=500, metavar="N",
                     help="write a sheet of sample stylizations every N iterations (0: never)")
    run.add_argument("--device", choices=DEVICES, default="auto", help="auto takes CUDA, then MPS, then CPU")
    run.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                     help="autocast dtype; auto: bf16 where the hardware has it (CPUs with AVX512-BF16/AMX, "
                          "recent GPUs), fp16 on older GPUs, else fp32")
    run.add_argument("--threads", type=non_negative_int, default=0, metavar="N",
                     help="CPU threads (0: one per core); on a CPU shared with other jobs, 1 is often faster")
    train_cmd.set_defaults(run=cmd_train)


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    eval_cmd = commands.add_parser(
        "eval", help="content and style losses and fps of models over content x style pairs",
        formatter_class=HelpFormatter,
        description="Stylize every content with every style and report the paper's content loss (relu4_1 of the "
                    "output against the AdaIN target, in VGG space) and style loss (channel means and stds at "
                    "relu1_1..relu4_1), both measured by the normalised VGG-19 and averaged over all pairs, and "
                    "the frames per second of the per-frame work (encoder, AdaIN, decoder).")
    eval_cmd.add_argument("--model", action="append", metavar="MODEL",
                          help="model to evaluate (repeat to compare several; the first is the reference of the "
                               "ratio columns); default cd16x")
    eval_cmd.add_argument("--content", nargs="+", required=True, metavar="DIR", help="content folders, files or globs")
    eval_cmd.add_argument("--styles", nargs="+", required=True, metavar="DIR", help="style folders, files or globs")
    eval_cmd.add_argument("--size", type=positive_int, default=512, metavar="N", help="shorter side of the contents")
    eval_cmd.add_argument("--style-size", type=positive_int, default=512, metavar="N", help="shorter side of the styles")
    eval_cmd.add_argument("--decoder-weights", type=Path, metavar="FILE",
                          help="evaluate this decoder file (e.g. a training run's decoder.pth) with the model's encoder")
    eval_cmd.add_argument("--encoder-weights", type=Path, metavar="FILE", help="encoder file instead of the registry's")
    eval_cmd.add_argument("--device", choices=DEVICES, default="auto", help="auto takes CUDA, then MPS, then CPU")
    eval_cmd.add_argument("--precision", choices=("auto", *PRECISIONS), default="auto",
                          help="precision of the stylization (the loss network always runs in fp32)")
    eval_cmd.add_argument("--json", type=Path, metavar="FILE", help="write all figures, per pair too, as JSON")
    eval_cmd.add_argument("--sheet", type=Path, metavar="FILE",
                          help="write a contact sheet: rows contents (one per model), columns styles")
    eval_cmd.add_argument("--cell", type=positive_int, default=128, metavar="PX", help="contact sheet tile size")
    eval_cmd.add_argument("--overwrite", action="store_true", help="replace existing --json/--sheet files")
    eval_cmd.set_defaults(run=cmd_eval)


def report_error(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width, so it can be read and grepped."""
    if console.quiet:  # -q silences the console, never an error
        sys.stderr.write(f"error: {message}\n")
    else:
        console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def configure_logging(verbose: int, quiet: bool) -> None:
    """-q: no progress bars, summaries or tables, and only warnings and errors, as plain lines. Otherwise log
    records go through the console, so that they print above a live progress bar instead of into it."""
    console.quiet = quiet
    if quiet:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    else:
        handler = RichHandler(console=console, show_path=verbose > 1, markup=False)
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True, handlers=[handler])
    # --compile on a CPU-only machine: torch notes that it found no CUDA runtime, which is expected.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.WARNING if verbose > 1 else logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UserError as exc:
        report_error(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - only running out of memory is reported; the rest re-raised
        if not is_out_of_memory(exc):
            raise
        report_error(f"out of memory: {first_line(exc)[:200]}; try smaller frames (--size, --content-size, "
                     "--style-size) or --tile")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
