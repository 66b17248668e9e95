"""`adain`: the command line. Parses arguments, builds the package's objects, turns errors into exit codes.

Exit codes: 0 success, 1 failure while processing, 2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from rich.logging import RichHandler
from rich.table import Table

from realtime.engine import DEVICES, PRECISIONS, PRESERVE_COLOR, StyleControls, Stylizer
from realtime.errors import UserError
from realtime.image_batch import ImageJob, run_image_job
from realtime.ui import console
from realtime.weights import WeightStore

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("adain")


# --------------------------------------------------------------------------- argument types
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


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


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
    group.add_argument("--style-size", type=non_negative_int, default=512, metavar="N",
                       help="shorter side the style image is resized to before its statistics are taken (0: as is)")
    group.add_argument("--content-size", type=non_negative_int, default=0, metavar="N",
                       help="run the networks with the content's shorter side at N pixels, then scale the result "
                            "back to the input size (0, default: full resolution)")


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


def controls_from(args: argparse.Namespace) -> StyleControls:
    return StyleControls(alpha=args.alpha, weights=args.style_weights, preserve_color=args.preserve_color)


def stylizer_from(args: argparse.Namespace) -> Stylizer:
    return Stylizer(args.model, args.device, args.precision, style_size=args.style_size,
                    content_size=args.content_size, encoder_weights=args.encoder_weights,
                    decoder_weights=args.decoder_weights)


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


def _files_of(store: WeightStore, name: str) -> list[str]:
    if name in store.registry.files:
        return [name]
    model = store.registry.model(name)
    return [model.encoder, model.decoder]


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adain", description="Real-time arbitrary style transfer (AdaIN) for images, video files, cameras "
                                  "and streams.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    image = commands.add_parser(
        "image", help="stylize image files", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Stylize images. Transparency is kept in PNG/WebP/TIFF outputs and dropped (with a warning) "
                    "in JPEG ones; grayscale, palette, CMYK and 16-bit inputs are converted to 8-bit RGB; EXIF "
                    "orientation is applied.")
    image.add_argument("content", nargs="+", metavar="CONTENT", help="image files, directories or globs")
    add_style_options(image)
    add_model_options(image)
    image.add_argument("-o", "--output", type=Path, metavar="OUT",
                       help="output file (one input) or folder (several); default: next to each input, "
                            "with a _stylized suffix")
    image.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    image.set_defaults(run=cmd_image)

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
    return parser


def report_error(message: str) -> None:
    """One unwrapped line on stderr, whatever the terminal width, so it can be read and grepped."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", force=True,
                        handlers=[RichHandler(console=console, show_path=verbose > 1, markup=False)])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except UserError as exc:
        report_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
