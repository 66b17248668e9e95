"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable

from .errors import UserError


def temporary_beside(path: Path, suffix: str) -> tuple[int, str]:
    """A new hidden file in `path`'s folder (an open descriptor and its name), to be renamed onto `path`
    once whole. It gets the permissions a plainly created file would (0666 less the umask), not mkstemp's
    0600, so that outputs stay readable to whoever could read a file written in place."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.fchmod(handle, 0o666 & ~_umask())
    return handle, name


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere os.umask must set one to read it, briefly."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def free_name(path: Path) -> Path:
    """`path`, or `stem-2.ext`, `stem-3.ext`... : the first name not taken."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def write_atomically(path: Path, write: Callable[[IO], None], mode: str = "wb") -> None:
    """Call `write` on a temporary file beside `path`, then rename it into place: readers, and a crash
    halfway, never leave half a file under the final name (the temporary one is removed on failure)."""
    path = Path(path)
    handle, tmp_name = temporary_beside(path, ".partial")
    try:
        with os.fdopen(handle, mode) as out:
            write(out)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def refuse_inputs_as_outputs(outputs: Iterable[Path], inputs: Iterable[object]) -> None:
    """Refuse an output that is one of the inputs (the same file under any name or link), even with
    --overwrite, as ffmpeg does: writing over a source destroys what is being read. `inputs` may hold
    URLs, globs and non-path styles; only existing files count."""
    sources = [Path(p) for p in inputs if isinstance(p, (str, Path)) and Path(p).is_file()]
    for output in outputs:
        if Path(output).is_file() and any(os.path.samefile(output, source) for source in sources):
            raise UserError(f"{output}: is also an input; choose another output name")
