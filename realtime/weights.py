"""The weight registry: where each weight file comes from, how to find it, check it and download it.

Resolution order for a file: an explicit path given by the user; the mirror folder named by
$REALTIME_ADAIN_WEIGHTS (laid out like ../shared/weights); files bundled with the project; the
user cache; a download (from $REALTIME_ADAIN_WEIGHTS_URL + the file's mirror path, or the
registry's upstream URL) that is hashed while streaming and moved into the cache only when
its sha256 matches. This is the only module that touches the network.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import UserError
from .files import temporary_beside
from .ui import byte_progress

log = logging.getLogger(__name__)

MIRROR_ENV = "REALTIME_ADAIN_WEIGHTS"
BASE_URL_ENV = "REALTIME_ADAIN_WEIGHTS_URL"
CACHE_ENV = "REALTIME_ADAIN_CACHE"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class WeightFile:
    """One weight file, named by its path in a mirror (e.g. 'cd16x/encoder_relu41.pth')."""

    name: str
    sha256: str
    size: int
    url: str | None
    licence: str
    layout: str
    source: str
    bundled: bool = False
    training: dict | None = None  # for weights this project trained: commands, data list, evaluation figures


@dataclass(frozen=True)
class ModelEntry:
    """A named encoder/decoder pair."""

    name: str
    architecture: str
    encoder: str
    decoder: str
    description: str


@dataclass(frozen=True)
class Resolved:
    """Where a weight file was found, and whether its sha256 was checked against the registry."""

    path: Path
    origin: str  # explicit, mirror, bundled, cache, download
    verified: bool


def user_cache_dir() -> Path:
    """$REALTIME_ADAIN_CACHE, else $XDG_CACHE_HOME/realtime-adain, else ~/.cache/realtime-adain."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "realtime-adain"


def bundled_dir() -> Path:
    """The project's weights/ folder (a data package, so it is found in a checkout and when installed)."""
    return Path(str(resources.files("realtime.bundled")))


@dataclass(frozen=True)
class Registry:
    files: dict[str, WeightFile]
    models: dict[str, ModelEntry]

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        path = path or bundled_dir() / "registry.json"
        data = json.loads(path.read_text())
        files = {name: WeightFile(name=name, **entry) for name, entry in data["files"].items()}
        models = {name: ModelEntry(name=name, **entry) for name, entry in data["models"].items()}
        for model in models.values():
            for needed in (model.encoder, model.decoder):
                if needed not in files:
                    raise ValueError(f"{path}: model {model.name!r} names unknown file {needed!r}")
        return cls(files, models)

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            close = difflib.get_close_matches(name, self.models, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"unknown model {name!r}{hint}; known models: {', '.join(self.models)}")
        return self.models[name]

    def file(self, name: str) -> WeightFile:
        if name not in self.files:
            raise UserError(f"unknown weight file {name!r}; known files: {', '.join(self.files)}")
        return self.files[name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class WeightStore:
    """Finds, verifies and downloads the registry's files. Holds only a per-process memo of checks."""

    registry: Registry = field(default_factory=Registry.load)
    mirror_dir: Path | None = field(default_factory=lambda: _env_path(MIRROR_ENV))
    cache_dir: Path = field(default_factory=user_cache_dir)
    base_url: str | None = field(default_factory=lambda: os.environ.get(BASE_URL_ENV) or None)
    _checked: dict[tuple[str, int, int], bool] = field(default_factory=dict, repr=False)

    def candidates(self, entry: WeightFile) -> list[tuple[Path, str]]:
        """Places the file may already be, in resolution order."""
        places = []
        if self.mirror_dir is not None:
            places.append((self.mirror_dir / entry.name, "mirror"))
        if entry.bundled:
            places.append((bundled_dir() / Path(entry.name).name, "bundled"))
        places.append((self.cache_dir / "weights" / entry.name, "cache"))
        return places

    def is_intact(self, path: Path, entry: WeightFile) -> bool:
        """Size and sha256 match the registry (hashed once per process per file version)."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._checked:
            self._checked[key] = stat.st_size == entry.size and sha256_of(path) == entry.sha256
        return self._checked[key]

    def locate(self, name: str) -> Resolved | None:
        """The first existing copy of a file, verified; None when there is none (nothing is downloaded)."""
        entry = self.registry.file(name)
        for path, origin in self.candidates(entry):
            if path.is_file():
                return Resolved(path, origin, self.is_intact(path, entry))
        return None

    def resolve(self, name: str, download: bool = True) -> Path:
        """A verified local path of a registry file, downloading it into the cache if needed."""
        entry = self.registry.file(name)
        found = self.locate(name)
        if found is not None and found.verified:
            return found.path
        if found is not None and found.origin != "cache":
            raise UserError(f"{found.path}: sha256 does not match the registry (corrupt or a different file); "
                            f"replace it, or unset {MIRROR_ENV} and run `adain weights fetch`")
        if found is not None:
            log.warning("%s: cached copy is corrupt; downloading it again", found.path)
        elif self.mirror_dir is not None and not self.mirror_dir.is_dir():  # a typo, not a wish to download
            raise UserError(f"{MIRROR_ENV}={self.mirror_dir}: no such folder; point it at a folder laid out like "
                            "../shared/weights, or unset it to download the weights")
        if not download:
            raise UserError(f"weight file {name} not found; {self.how_to_get(entry)}")
        return self.fetch(name)

    def fetch(self, name: str, force: bool = False) -> Path:
        """Download a file into the cache (atomically, checked by sha256), unless an intact copy is bundled or cached."""
        entry = self.registry.file(name)
        bundled = bundled_dir() / Path(entry.name).name
        if entry.bundled and bundled.is_file() and self.is_intact(bundled, entry):
            return bundled  # shipped with the project: nothing to download
        dest = self.cache_dir / "weights" / entry.name
        if dest.is_file() and not force and self.is_intact(dest, entry):
            return dest
        url = self.url_of(entry)
        if url is None:
            raise UserError(f"weight file {name} has no public download address; {self.how_to_get(entry)}")
        download(url, dest, entry)
        return dest

    def url_of(self, entry: WeightFile) -> str | None:
        if self.base_url:
            return self.base_url.rstrip("/") + "/" + entry.name
        return entry.url

    def how_to_get(self, entry: WeightFile) -> str:
        where = f"download it from {entry.url} or " if entry.url else ""
        return (f"{where}set {MIRROR_ENV} to a folder laid out like ../shared/weights "
                f"(or {BASE_URL_ENV} to such a mirror over HTTP) and run `adain weights fetch`")


def download(url: str, dest: Path, entry: WeightFile) -> None:
    """Stream `url` into a temporary file beside `dest`, hashing as it goes; move it into place only if
    size and sha256 match. The temporary file is removed whatever happens."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = temporary_beside(dest, ".partial")
    tmp = Path(tmp_name)
    digest, received = hashlib.sha256(), 0
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=30) as response, \
                byte_progress() as bar:
            task = bar.add_task(f"fetch {entry.name}", total=int(response.headers.get("Content-Length") or entry.size))
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(task, advance=len(chunk))
        if received != entry.size:
            raise UserError(f"{url}: transfer cut off after {received} of {entry.size} bytes; try again")
        if digest.hexdigest() != entry.sha256:
            raise UserError(f"{url}: sha256 mismatch (expected {entry.sha256[:12]}…, got {digest.hexdigest()[:12]}…); "
                            "the server sent a different or corrupt file")
        os.replace(tmp, dest)
        log.info("downloaded %s to %s", entry.name, dest)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise UserError(f"cannot download {entry.name} from {url} ({reason}); offline? set {MIRROR_ENV} "
                        "to a folder laid out like ../shared/weights") from None
    finally:
        tmp.unlink(missing_ok=True)


def _env_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None
