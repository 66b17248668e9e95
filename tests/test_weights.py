"""Weight resolution, verification and downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from realtime.errors import UserError
from realtime.weights import Registry, WeightStore

NAME = "cd16x/decoder_relu41.pth"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; paths under /cut/ send half of the file and then drop the connection."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = (Path(self.directory) / self.path.removeprefix("/cut/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture()
def server(tmp_path, weights_dir):
    """Serves a copy of the shared weights (plus a corrupted file under /bad/) on a free loopback port."""
    root = tmp_path / "served"
    shutil.copytree(weights_dir / "cd16x", root / "cd16x")
    bad = root / "bad" / NAME
    bad.parent.mkdir(parents=True)
    data = bytearray((weights_dir / NAME).read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _store(tmp_path: Path, base_url: str | None, mirror: Path | None = None) -> WeightStore:
    return WeightStore(mirror_dir=mirror, cache_dir=tmp_path / "cache", base_url=base_url)


def test_registry_hashes_match_the_shared_files(weights_dir):
    registry = Registry.load()
    for name, entry in registry.files.items():
        if entry.bundled:
            continue
        path = weights_dir / name
        assert path.stat().st_size == entry.size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256


def test_download_is_verified_and_moved_into_the_cache(tmp_path, server, weights_dir):
    store = _store(tmp_path, server)
    path = store.resolve(NAME)
    assert path == tmp_path / "cache" / "weights" / NAME
    assert path.read_bytes() == (weights_dir / NAME).read_bytes()
    found = store.locate(NAME)
    assert found.origin == "cache" and found.verified
    assert list(path.parent.glob("*.partial")) == []


def test_corrupted_download_is_rejected_and_leaves_nothing(tmp_path, server):
    store = _store(tmp_path, server + "/bad")
    with pytest.raises(UserError, match="sha256 mismatch"):
        store.fetch(NAME)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_transfer_cut_off_midway_leaves_nothing(tmp_path, server):
    store = _store(tmp_path, server + "/cut")
    with pytest.raises(UserError) as info:
        store.fetch(NAME)
    assert "cut off" in str(info.value) or "cannot download" in str(info.value)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_offline_gives_a_clear_error_that_says_what_to_set(tmp_path):
    store = _store(tmp_path, "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(UserError, match="REALTIME_ADAIN_WEIGHTS"):
        store.resolve(NAME)


def test_mirror_with_a_wrong_checksum_is_refused(tmp_path, weights_dir):
    mirror = tmp_path / "mirror"
    (mirror / "cd16x").mkdir(parents=True)
    data = bytearray((weights_dir / NAME).read_bytes())
    data[-10] ^= 1
    (mirror / NAME).write_bytes(bytes(data))
    store = _store(tmp_path, None, mirror)
    assert store.locate(NAME).verified is False
    with pytest.raises(UserError, match="sha256 does not match"):
        store.resolve(NAME)


def test_a_mirror_folder_that_does_not_exist_is_named_instead_of_downloading(tmp_path, server):
    store = _store(tmp_path, server, tmp_path / "typo")
    with pytest.raises(UserError, match=r"^REALTIME_ADAIN_WEIGHTS=.*typo: no such folder"):
        store.resolve(NAME)
    assert not (tmp_path / "cache" / "weights" / NAME).exists()  # nothing was downloaded


def test_a_corrupt_cached_copy_is_downloaded_again(tmp_path, server, weights_dir):
    store = _store(tmp_path, server)
    cached = tmp_path / "cache" / "weights" / NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"junk")
    assert store.resolve(NAME).read_bytes() == (weights_dir / NAME).read_bytes()


def test_mirror_comes_before_the_cache(tmp_path, weights_dir):
    store = _store(tmp_path, None, weights_dir)
    assert store.resolve(NAME) == weights_dir / NAME
    assert store.locate(NAME).origin == "mirror"


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UserError, match="did you mean 'cd16x'"):
        Registry.load().model("cd16")


def test_weights_commands_list_verify_and_fetch(tmp_path, server, weights_dir, monkeypatch, capsys):
    import cli

    assert cli.main(["weights", "verify"]) == 0
    assert "MISMATCH" not in capsys.readouterr().err
    mirror = tmp_path / "mirror"
    shutil.copytree(weights_dir / "cd16x", mirror / "cd16x")
    data = bytearray((mirror / NAME).read_bytes())
    data[500] ^= 1
    (mirror / NAME).write_bytes(bytes(data))
    monkeypatch.setenv("REALTIME_ADAIN_WEIGHTS", str(mirror))
    assert cli.main(["weights", "verify"]) == 2  # one corrupt file, and the vgg files are missing
    err = capsys.readouterr().err
    assert "MISMATCH" in err and "not found" in err
    monkeypatch.delenv("REALTIME_ADAIN_WEIGHTS")
    monkeypatch.setenv("REALTIME_ADAIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REALTIME_ADAIN_WEIGHTS_URL", server)
    assert cli.main(["weights", "fetch", "cd16x-recon"]) == 0  # cd16x's own decoder is bundled: nothing to fetch
    assert (tmp_path / "cache" / "weights" / NAME).read_bytes() == (weights_dir / NAME).read_bytes()
    assert cli.main(["weights", "fetch", "nonsense"]) == 2
