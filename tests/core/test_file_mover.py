"""The file mover against the shared mover contract, plus its own modes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from trollmoves_core.file_mover import FileMover
from trollmoves_core.testing import MoverContract


class TestFileMoverContract(MoverContract):
    @pytest.fixture(params=["copy", "hardlink"])
    def mover(self, request: pytest.FixtureRequest) -> FileMover:
        return FileMover({"mode": request.param})

    @pytest.fixture
    def remote_dir(self, tmp_path: Path) -> str:
        return f"file://{tmp_path}/remote/"

    @pytest.fixture
    def hashes_on_put(self, mover: FileMover) -> bool:
        return mover.mode == "copy"  # a hard link reads no data: only the size is checked

    @pytest.fixture
    def sends_on_put(self, mover: FileMover) -> bool:
        return mover.mode == "copy"  # a hard link moves no bytes: no bandwidth limit applies


def test_plain_paths_work_like_file_uris(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    FileMover({"mode": "copy"}).put(src, str(tmp_path / "out") + "/")
    assert (tmp_path / "out" / "a.txt").read_text() == "hello"


def test_copy_preserves_mtime(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    os.utime(src, (1_000_000_000, 1_000_000_000))
    FileMover({"mode": "copy"}).put(src, f"{tmp_path}/out/")
    assert (tmp_path / "out" / "a.txt").stat().st_mtime == 1_000_000_000


def test_hardlink_shares_the_inode(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    FileMover().put(src, f"{tmp_path}/out/")
    assert (tmp_path / "out" / "a.txt").stat().st_ino == src.stat().st_ino


def test_move_removes_the_source(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    FileMover({"mode": "move"}).put(src, f"{tmp_path}/out/b.txt")
    assert not src.exists()
    assert (tmp_path / "out" / "b.txt").read_text() == "hello"


def test_symlink_points_at_the_absolute_source(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    FileMover({"mode": "symlink"}).put(src, f"{tmp_path}/out/")
    link = tmp_path / "out" / "a.txt"
    assert link.is_symlink() and os.readlink(link) == str(src)


def test_host_part_of_file_uri_is_ignored_like_upstream(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    FileMover({"mode": "copy"}).put(src, f"file://somehost{tmp_path}/out/")
    assert (tmp_path / "out" / "a.txt").exists()


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown mode 'teleport'"):
        FileMover({"mode": "teleport"})


def test_existing_target_is_replaced_atomically(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old")
    src = tmp_path / "a.txt"
    src.write_text("new")
    FileMover({"mode": "copy"}).put(src, f"{tmp_path}/out/")
    assert (tmp_path / "out" / "a.txt").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt"]



class RecordingMover(FileMover):
    """Records the resolved target instead of writing to the root directory."""

    def _put(self, local_path, target, progress):
        self.target = target


def test_uri_with_a_host_and_no_path_means_the_root_directory(tmp_path: Path) -> None:
    src = tmp_path / "a.nc"
    src.write_text("x")
    mover = RecordingMover()
    assert mover.put(src, "file://somehost") == "file://somehost/a.nc"
    assert mover.target.path == "/a.nc"


@pytest.mark.parametrize("slow_hash", [False, True])
@pytest.mark.parametrize("size", [16 * 1024 * 1024 - 1, 16 * 1024 * 1024, 21 * 1024 * 1024 + 3])
def test_a_big_copy_hashed_beside_its_writes_is_the_file_and_its_digest(tmp_path: Path, size: int,
                                                                       slow_hash: bool,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """From 16 MiB on, the kernel copies and a second thread hashes the copied blocks read back:
    same bytes, same digest, also when hashing is slower than copying (the blocks are hashed in
    order through one buffer)."""
    import time

    from trollmoves_core import file_mover
    from trollmoves_core.checksum import Digest, Hasher, file_digest
    from trollmoves_core.file_mover import hashing_copy

    if slow_hash:
        class SlowHasher(Hasher):
            def update(self, data: bytes | memoryview) -> None:
                time.sleep(0.02)
                super().update(data)

        monkeypatch.setattr(file_mover, "Hasher", SlowHasher)

    source, dest = tmp_path / "big.dat", tmp_path / "copy.dat"
    block = os.urandom(1024 * 1024 + 7)  # blocks that do not line up with the copy's
    with open(source, "wb") as out:
        for start in range(0, size, len(block)):
            out.write(block[:size - start])
    got = hashing_copy(str(source), str(dest), "sha256").digest()
    assert dest.read_bytes() == source.read_bytes()
    assert got == file_digest(str(source), "sha256")
    assert isinstance(got, Digest) and got.size == size


def _big_file(path: Path, size: int = 17 * 1024 * 1024 + 5) -> bytes:
    content = os.urandom(size)
    path.write_bytes(content)
    return content


def test_a_big_copy_is_hashed_as_stored_not_as_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte the destination stores wrong (here a sendfile that flips one) is found before the
    rename: the hash is of what the copy holds, and a bad copy never gets the final name."""
    from trollmoves_core.checksum import ChecksumMismatch, file_digest

    source = tmp_path / "big.dat"
    _big_file(source)
    expected = file_digest(str(source), "sha256")
    real_sendfile = os.sendfile

    def flipping_sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        sent = real_sendfile(out_fd, in_fd, offset, count)
        if offset == 0 and sent:
            os.pwrite(out_fd, bytes([os.pread(out_fd, 1, 3)[0] ^ 0xFF]), 3)
        return sent

    monkeypatch.setattr(os, "sendfile", flipping_sendfile)
    with pytest.raises(ChecksumMismatch, match=re.escape(str(expected.value))) as raised:
        FileMover({"mode": "copy", "retries": 1}).put(source, f"{tmp_path}/out/", expected=expected)
    assert "copy stored at" in str(raised.value) and raised.value.transient  # not "changed since announced"
    assert not list((tmp_path / "out").iterdir())


def test_a_copy_stored_wrong_once_is_copied_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source still matches its announcement: the bad copy is a transient failure, retried."""
    from trollmoves_core.checksum import file_digest

    source = tmp_path / "big.dat"
    _big_file(source)
    expected = file_digest(str(source), "sha256")
    real_sendfile = os.sendfile
    flipped: list[int] = []

    def flipping_once(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        sent = real_sendfile(out_fd, in_fd, offset, count)
        if offset == 0 and sent and not flipped:
            flipped.append(out_fd)
            os.pwrite(out_fd, bytes([os.pread(out_fd, 1, 3)[0] ^ 0xFF]), 3)
        return sent

    monkeypatch.setattr(os, "sendfile", flipping_once)
    FileMover({"mode": "copy", "retries": 2, "retry_delay": 0}).put(source, f"{tmp_path}/out/", expected=expected)
    assert flipped and (tmp_path / "out" / "big.dat").read_bytes() == source.read_bytes()


def test_put_checked_says_whether_the_stored_bytes_were_hashed(tmp_path: Path) -> None:
    """True for a verified copy only: a hard link's bytes were not read, an unverified copy's not hashed."""
    from trollmoves_core.checksum import file_digest

    source = tmp_path / "a.dat"
    _big_file(source, 50_000)
    expected = file_digest(str(source), "sha256")
    copy = FileMover({"mode": "copy"})
    assert copy.put_checked(source, f"{tmp_path}/c/", expected=expected) == (f"file://{tmp_path}/c/a.dat", True)
    assert copy.put_checked(source, f"{tmp_path}/d/") == (f"file://{tmp_path}/d/a.dat", False)
    assert FileMover({"mode": "hardlink"}).put_checked(source, f"{tmp_path}/e/", expected=expected)[1] is False
    assert (tmp_path / "c" / "a.dat").read_bytes() == source.read_bytes()


def test_a_big_copy_without_sendfile_goes_through_a_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trollmoves_core.checksum import file_digest
    from trollmoves_core.file_mover import copy_file, hashing_copy

    def unsupported(*args: object) -> int:
        raise OSError(22, "Invalid argument")

    source = tmp_path / "big.dat"
    content = _big_file(source)
    monkeypatch.setattr(os, "sendfile", unsupported)
    got = hashing_copy(str(source), str(tmp_path / "h.dat"), "sha256").digest()
    copy_file(str(source), str(tmp_path / "c.dat"))
    assert got == file_digest(str(source), "sha256")
    assert (tmp_path / "h.dat").read_bytes() == content == (tmp_path / "c.dat").read_bytes()
