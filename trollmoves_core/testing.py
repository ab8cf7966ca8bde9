"""A conformance suite for movers, for our plugins and third-party ones alike.

Subclass :class:`MoverContract` in a test module and provide two fixtures::

    class TestSftpMover(MoverContract):
        @pytest.fixture
        def mover(self, sshd_server):
            with SftpMover({"ssh_key_filename": ...}) as mover:
                yield mover

        @pytest.fixture
        def remote_dir(self, sshd_server, tmp_path):
            return f"sftp://{user}@127.0.0.1:{port}{tmp_path}/"

``remote_dir`` is the URI of an empty, writable directory, ending in ``/``. Override
``login_count`` to return how many logins the server has seen, to check connection reuse, and
``hashes_on_put`` to return True when the mover's ``_put_verified`` hashes what it sends (then a
file that differs from its announced checksum, at the same size, must be refused), and
``sends_on_put`` to return False for a mover configured to link rather than copy (a bandwidth
limit then charges nothing for a put).
"""

from __future__ import annotations

import gc
import os
import pathlib
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from trollmoves_core.bwlimit import Limits, Schedule, Throttle
from trollmoves_core.checksum import ChecksumMismatch, Digest, file_digest
from trollmoves_core.exceptions import TransferError
from trollmoves_core.mover import Mover


class _Abort(Exception):
    pass


def pathlib_leftovers(action: Callable[[], None]) -> list[tracemalloc.Trace]:
    """Run ``action`` under :mod:`tracemalloc`; return the allocations pathlib made on its call
    stack that are still alive afterwards: a mover that builds a ``Path`` per file leaves one per
    distinct file name (see the str-path rule in :mod:`trollmoves_core.mover`). Allocations of
    other threads (a test server's, say) are not counted.
    """
    gc.collect()
    tracemalloc.start(64)
    try:
        action()
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return [trace for trace in snapshot.traces
            if trace.traceback[-1].filename == pathlib.__file__
            and any(frame.filename == __file__ for frame in trace.traceback)]


def describe_leftovers(leftovers: list[tracemalloc.Trace]) -> str:
    """An assertion message naming where the first few pathlib allocations came from."""
    lines = [f"{len(leftovers)} allocations ({sum(t.size for t in leftovers)} bytes) made in pathlib survive:"]
    for trace in leftovers[:3]:
        caller = next(f for f in reversed(trace.traceback) if f.filename != pathlib.__file__)
        lines.append(f"  pathlib.py:{trace.traceback[-1].lineno} called from {caller.filename}:{caller.lineno}")
    return "\n".join(lines)


class MoverContract:
    """The behaviour every mover promises (see :mod:`trollmoves_core.mover`).

    Set ``reports_size = False`` for a mover whose ``size`` always answers None.
    """

    reports_size: bool = True

    @pytest.fixture
    def mover(self) -> Mover:
        raise NotImplementedError("provide a 'mover' fixture")

    @pytest.fixture
    def remote_dir(self) -> str:
        raise NotImplementedError("provide a 'remote_dir' fixture: URI of an empty directory ending in '/'")

    @pytest.fixture
    def login_count(self) -> None:
        """Return a callable giving the server's login count, or None to skip the reuse test."""
        return None

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        """Whether ``put(..., expected=...)`` hashes the data it sends (see the module docstring)."""
        return False

    @pytest.fixture
    def sends_on_put(self) -> bool:
        """Whether ``put`` moves the file's bytes (False for a hard link: no bandwidth limit applies)."""
        return True

    @pytest.fixture
    def payload(self, tmp_path: Path) -> Path:
        path = tmp_path / "src" / "payload.dat"
        path.parent.mkdir()
        path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
        return path

    def test_put_then_get_is_byte_identical(self, mover: Mover, remote_dir: str, payload: Path,
                                            tmp_path: Path) -> None:
        uri = mover.put(payload, remote_dir)
        assert uri.endswith("/payload.dat")
        back = mover.get(remote_dir + "payload.dat", tmp_path / "back" / "copy.dat")
        assert type(back) is str and back == str(tmp_path / "back" / "copy.dat")
        assert Path(back).read_bytes() == payload.read_bytes()

    def test_trailing_slash_keeps_name_otherwise_renames(self, mover: Mover, remote_dir: str, payload: Path,
                                                        tmp_path: Path) -> None:
        mover.put(payload, remote_dir + "renamed.dat")
        got = mover.get(remote_dir + "renamed.dat", f"{tmp_path}/dl/")
        assert got == f"{tmp_path}/dl/renamed.dat"
        assert Path(got).read_bytes() == payload.read_bytes()

    def test_creates_nested_directories(self, mover: Mover, remote_dir: str, payload: Path,
                                        tmp_path: Path) -> None:
        uri = mover.put(payload, remote_dir + "a/b/c/")
        assert "/a/b/c/payload.dat" in uri
        assert os.path.getsize(mover.get(remote_dir + "a/b/c/payload.dat", tmp_path / "n.dat")) == \
            payload.stat().st_size

    @pytest.mark.parametrize("name", ["with space.dat", "näive-ø.dat", "semi;colon#hash.dat"])
    def test_odd_file_names(self, mover: Mover, remote_dir: str, tmp_path: Path, name: str) -> None:
        source = tmp_path / name
        source.write_bytes(b"odd name\n")
        mover.put(source, remote_dir)
        assert Path(mover.get(remote_dir + name, f"{tmp_path}/back/")).read_bytes() == b"odd name\n"

    def test_size_of_a_remote_file(self, mover: Mover, remote_dir: str, payload: Path) -> None:
        mover.put(payload, remote_dir)
        assert mover.size(remote_dir + "payload.dat") == (payload.stat().st_size if self.reports_size else None)
        assert mover.size(remote_dir + "missing.dat") is None

    def test_delete_removes_the_file(self, mover: Mover, remote_dir: str, payload: Path, tmp_path: Path) -> None:
        mover.put(payload, remote_dir)
        mover.delete(remote_dir + "payload.dat")
        with pytest.raises(TransferError):
            mover.get(remote_dir + "payload.dat", tmp_path / "gone.dat")
        assert not (tmp_path / "gone.dat").exists()

    def test_get_missing_file_is_a_clear_error(self, mover: Mover, remote_dir: str, tmp_path: Path) -> None:
        with pytest.raises(TransferError) as info:
            mover.get(remote_dir + "missing.dat", tmp_path / "m.dat")
        assert "missing.dat" in str(info.value)
        assert not info.value.transient
        assert list(tmp_path.iterdir()) == []

    def test_interrupted_put_leaves_nothing_under_final_name(self, mover: Mover, remote_dir: str,
                                                             payload: Path, tmp_path: Path) -> None:
        def explode(_nbytes: int) -> None:
            raise _Abort("interrupted by the test")

        with pytest.raises(TransferError, match="interrupted by the test"):
            mover.put(payload, remote_dir, progress=explode)
        with pytest.raises(TransferError):
            mover.get(remote_dir + "payload.dat", tmp_path / "partial.dat")

    def test_interrupted_get_leaves_no_local_file(self, mover: Mover, remote_dir: str, payload: Path,
                                                  tmp_path: Path) -> None:
        mover.put(payload, remote_dir)

        def explode(_nbytes: int) -> None:
            raise _Abort("interrupted by the test")

        target = tmp_path / "local" / "payload.dat"
        with pytest.raises(TransferError):
            mover.get(remote_dir + "payload.dat", target, progress=explode)
        assert not target.exists()
        assert list(target.parent.iterdir()) == []

    def test_distinct_file_names_leave_nothing_in_pathlib(self, mover: Mover, remote_dir: str,
                                                           tmp_path: Path) -> None:
        """No ``Path`` per file on the put and get paths (the str-path rule of the mover contract)."""
        source_dir, back_dir = str(tmp_path / "many"), f"{tmp_path}/many-back/"
        os.mkdir(source_dir)
        names = [f"n{os.urandom(6).hex()}_{i}.dat" for i in range(21)]  # fresh: nothing interned them yet
        for name in names:
            with open(os.path.join(source_dir, name), "wb") as out:
                out.write(name.encode())

        def transfer(batch: list[str]) -> None:
            for name in batch:
                mover.put(os.path.join(source_dir, name), remote_dir)
                mover.get(remote_dir + name, back_dir)

        transfer(names[:1])  # lazily created per-mover state is not a per-file cost
        leftovers = pathlib_leftovers(lambda: transfer(names[1:]))
        assert sorted(os.listdir(back_dir)) == sorted(names)
        assert not leftovers, describe_leftovers(leftovers)

    def test_connections_are_reused(self, mover: Mover, remote_dir: str, tmp_path: Path, login_count) -> None:
        if login_count is None:
            pytest.skip("this server cannot count logins")
        before = login_count()
        for i in range(5):
            source = tmp_path / f"f{i}.dat"
            source.write_bytes(b"x" * i)
            mover.put(source, remote_dir)
        assert login_count() - before <= 1

    def test_a_bandwidth_limit_is_taken_block_by_block(self, mover: Mover, remote_dir: str, payload: Path,
                                                       tmp_path: Path, sends_on_put: bool) -> None:
        """Under a limit (:mod:`trollmoves_core.bwlimit`) every byte put or got is taken from the
        bucket, in blocks as the data goes (one take of the whole file would be a burst)."""
        size = payload.stat().st_size
        for direction in ("put", "get"):
            blocks: list[int] = []
            throttle = Limits().throttle([(direction, Schedule.parse("10G"))], blocks.append)
            assert isinstance(throttle, Throttle)
            if direction == "put":
                mover.put(payload, remote_dir, progress=throttle)
            else:
                mover.get(remote_dir + "payload.dat", tmp_path / "limited.dat", progress=throttle)
                assert (tmp_path / "limited.dat").read_bytes() == payload.read_bytes()
            charged = size if direction == "get" or sends_on_put else 0
            assert throttle.buckets[0].taken == charged, direction
            assert sum(blocks) == size, direction
            if charged:
                assert len(blocks) > 1, f"{direction}: the whole file in one block"

    # -- verification against the announced size and checksum ------------------------------

    def test_verified_put_and_get_deliver(self, mover: Mover, remote_dir: str, payload: Path,
                                          tmp_path: Path) -> None:
        digest = file_digest(payload, "sha256")
        mover.put(payload, remote_dir, expected=digest)
        back = mover.get(remote_dir + "payload.dat", tmp_path / "back.dat", expected=digest)
        assert Path(back).read_bytes() == payload.read_bytes()

    def test_put_of_a_file_changed_since_announced_is_refused(self, mover: Mover, remote_dir: str,
                                                               payload: Path, tmp_path: Path) -> None:
        announced = file_digest(payload, "sha256")
        with open(payload, "ab") as grow:
            grow.write(b"appended after the announcement")
        with pytest.raises(ChecksumMismatch, match=f"expected {announced.size}") as info:
            mover.put(payload, remote_dir, expected=announced)
        assert not info.value.transient
        with pytest.raises(TransferError):
            mover.get(remote_dir + "payload.dat", tmp_path / "never.dat")

    def test_put_of_other_content_of_the_same_size_is_refused(self, mover: Mover, remote_dir: str, payload: Path,
                                                               tmp_path: Path, hashes_on_put: bool) -> None:
        if not hashes_on_put:
            pytest.skip("this mover does not hash what it sends")
        announced = file_digest(payload, "sha256")
        data = bytearray(payload.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one byte flipped after the announcement
        payload.write_bytes(bytes(data))
        with pytest.raises(ChecksumMismatch, match=re.escape(announced.value or "")) as info:
            mover.put(payload, remote_dir, expected=announced)
        assert "sha256" in str(info.value)
        with pytest.raises(TransferError):
            mover.get(remote_dir + "payload.dat", tmp_path / "never.dat")

    def test_get_that_does_not_match_leaves_no_local_file(self, mover: Mover, remote_dir: str, payload: Path,
                                                          tmp_path: Path) -> None:
        mover.put(payload, remote_dir)
        real = file_digest(payload, "sha256")
        wrong = Digest(real.size, "sha256", file_digest(__file__, "sha256").value)
        target = tmp_path / "local" / "payload.dat"
        with pytest.raises(ChecksumMismatch, match=re.escape(f"expected {wrong.value}")):
            mover.get(remote_dir + "payload.dat", target, expected=wrong)
        assert list(target.parent.iterdir()) == []
        with pytest.raises(ChecksumMismatch, match="size"):
            mover.get(remote_dir + "payload.dat", target, expected=Digest(real.size + 1, "sha256", real.value))
        assert list(target.parent.iterdir()) == []
