"""`adain image`: stylize a batch of still images, each failure reported and the rest still done."""

from __future__ import annotations

import glob
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .engine import StyleControls, Stylizer
from .errors import UserError
from .files import refuse_inputs_as_outputs
from .images import ALPHA_SUFFIXES, IMAGE_SUFFIXES, read_image, read_mask, write_image
from .styles import style_name
from .ui import item_progress

log = logging.getLogger(__name__)

_KEPT_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class ImageJob:
    """What to stylize and where the results go."""

    contents: Sequence[str]
    styles: Sequence[str]
    controls: StyleControls = StyleControls()
    output: str | Path | None = None  # a file, or a folder (several inputs, or a trailing slash)
    mask: Path | None = None
    overwrite: bool = False


@dataclass
class BatchResult:
    """Outputs written, and per-input problems as (path, one-line message)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def expand_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, directories (their images, sorted) and globs -> image paths, plus (pattern, message) for
    the patterns that matched nothing."""
    found: list[Path] = []
    missing: list[tuple[str, str]] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                missing.append((pattern, f"{pattern}: directory holds no images"))
            found.extend(images)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not matches:
                missing.append((pattern, f"{pattern}: pattern matches no files"))
            found.extend(matches)
        else:
            missing.append((pattern, f"{pattern}: no such file"))
    unique = list(dict.fromkeys(found))
    return unique, missing


def output_folder(output: str | Path | None, count: int) -> Path | None:
    """The folder -o names, created if missing, when it names one: for several inputs, an existing folder, or
    a path ending in a slash (`-o out/`); None when -o is a file name (or not given)."""
    if output is None or not (count > 1 or Path(output).is_dir() or str(output).endswith(("/", "\\"))):
        return None
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_paths(inputs: Sequence[Path], styles: Sequence[str], output: str | Path | None,
                 kept_suffixes: Sequence[str] = _KEPT_SUFFIXES, default_suffix: str = ".png") -> list[Path]:
    """One output per input: -o as a file for a single input, as a folder for several or when it ends in a
    slash (names say content and style; inputs with the same name from different folders get -2, -3... in
    input order); without -o, next to the input with a `_stylized` suffix. An input's file type is kept
    when it is one of `kept_suffixes`, else `default_suffix` is used. Creates the output folder."""
    style_label = "+".join(style_name(s) for s in styles)
    if output is not None and len(inputs) > 1 and Path(output).suffix.lower() in (*IMAGE_SUFFIXES, *kept_suffixes):
        raise UserError(f"-o {output}: several inputs need an output folder, not a file name")
    folder = output_folder(output, len(inputs))
    paths: list[Path] = []
    taken: set[Path] = set()
    for source in inputs:
        suffix = source.suffix.lower() if source.suffix.lower() in kept_suffixes else default_suffix
        if output is None:
            paths.append(source.with_name(f"{source.stem}_stylized{suffix}"))
        elif folder is not None:
            path, number = folder / f"{source.stem}_{style_label}{suffix}", 1
            while path in taken:  # a/cat.png and b/cat.png: cat, cat-2
                number += 1
                path = folder / f"{source.stem}-{number}_{style_label}{suffix}"
            taken.add(path)
            paths.append(path)
        else:
            paths.append(Path(output))
    return paths


def run_image_job(job: ImageJob, stylizer: Stylizer) -> BatchResult:
    """Stylize every input; a bad input is recorded and skipped, never fatal for the others."""
    for style in job.styles:  # a bad style or mask spoils every output: fail before any work
        stylizer.bank.image(style)
    if job.mask is not None:
        read_image(job.mask)
    inputs, missing = expand_inputs(job.contents)
    result = BatchResult(failed=missing)
    if not inputs:
        return result
    outputs = output_paths(inputs, job.styles, job.output)
    refuse_inputs_as_outputs(outputs, [*inputs, *job.styles, job.mask])
    with item_progress(disable=len(inputs) == 1) as bar:
        task = bar.add_task("stylize", total=len(inputs))
        for source, target in zip(inputs, outputs):
            try:
                result.seconds.append(_stylize_one(source, target, job, stylizer))
                result.written.append(target)
            except UserError as exc:
                result.failed.append((str(source), str(exc)))
            bar.advance(task)
    return result


def _stylize_one(source: Path, target: Path, job: ImageJob, stylizer: Stylizer) -> float:
    if target.exists() and not job.overwrite:
        raise UserError(f"{target}: output exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise UserError(f"{target.parent}: output folder does not exist")
    image = read_image(source)
    controls = job.controls
    if job.mask is not None:
        height, width = image.rgb.shape[:2]
        controls = StyleControls(controls.alpha, controls.weights, controls.preserve_color,
                                 read_mask(job.mask, width, height))
    start = time.perf_counter()
    out = stylizer.stylize(image.rgb, stylizer.prepare(list(job.styles), controls))
    elapsed = time.perf_counter() - start
    if image.alpha is not None and target.suffix.lower() not in ALPHA_SUFFIXES:
        log.warning("%s: transparency dropped (%s cannot store it; use .png to keep it)", source, target.suffix)
    write_image(target, out, image.alpha)
    log.info("%s -> %s (%dx%d, %.2f s)", source, target, out.shape[1], out.shape[0], elapsed)
    return elapsed
