"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def write_atomically(path: Path, write: Callable[[IO], None], mode: str = "wb") -> None:
    """Call `write` on a temporary file beside `path`, then rename it into place: readers, and a crash
    halfway, never leave half a file under the final name (the temporary one is removed on failure)."""
    path = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, mode) as out:
            write(out)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
