"""Files written whole or not at all, with the permissions a file written in place would get."""

import os
import stat

import pytest

from realtime.files import temporary_beside, write_atomically


@pytest.fixture()
def umask_027():
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def test_an_atomic_write_gets_the_umask_permissions_not_mkstemps(tmp_path, umask_027):
    path = tmp_path / "out.json"
    write_atomically(path, lambda out: out.write("{}"), mode="w")
    assert path.read_text() == "{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 less the umask; mkstemp alone gives 0600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failed_atomic_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def fail(out):
        out.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_temporary_file_is_hidden_beside_its_target(tmp_path, umask_027):
    handle, name = temporary_beside(tmp_path / "clip.mp4", ".tmp.mp4")
    os.close(handle)
    assert os.path.dirname(name) == str(tmp_path)
    assert os.path.basename(name).startswith(".clip.mp4.") and name.endswith(".tmp.mp4")
    assert stat.S_IMODE(os.stat(name).st_mode) == 0o640
