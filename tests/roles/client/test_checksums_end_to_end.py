"""Checksums end to end: our server announces size and checksum, movers and the client verify the
copies against them, and real corruption (an FTP server that truncates or flips a byte, a file
rewritten after its announcement) is detected, retried and reported, never published as delivered."""

from __future__ import annotations

import base64
import hashlib
import mmap
import os
from pathlib import Path

import pytest
from support.bus import BusRecorder, free_port, wait_until
from support.client import InProcessClient, client_section, prime, results
from support.files import payload, write_file
from support.ini import write_ini
from trollmoves_ftp.testing import FtpServerThread, ftp_uri, start_server

pytestmark = pytest.mark.timeout(180)

FAILED = "/trollmoves/client/failed/test"
QUICK_GIVE_UP = {"give_up_after": 5, "retry_delay": 0.5, "max_retry_delay": 1}


def _b64(algorithm: str, content: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, content).digest()).decode()


def _client(tmp_path: Path, providers: str, destination: str, **extra: object) -> tuple[InProcessClient, BusRecorder]:
    """Our client, chain ``test``, and a recorder of everything it publishes (results and failures)."""
    port = free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(providers, destination, port, **extra)})
    return InProcessClient(config), BusRecorder([f"tcp://127.0.0.1:{port}"], ["/"])


def _failure(recorder: BusRecorder, uid: str, timeout: float = 30.0):
    found = recorder.wait_for(lambda m: m.subject == FAILED and m.data.get("uid") == uid, timeout=timeout)
    assert found, f"no failure message for {uid}"
    return found[0]


class _Corrupting:
    """pyftpdlib hooks that damage the stored copy of files named ``bad*`` (``times`` uploads at most)."""

    def __init__(self, how: str, times: int = 1000) -> None:
        self.how, self.times, self.damaged = how, times, 0

    def attrs(self) -> dict[str, object]:
        corrupting = self

        def on_file_received(_handler: object, path: str) -> None:
            if not os.path.basename(path).lstrip(".").startswith("bad") or corrupting.damaged >= corrupting.times:
                return
            corrupting.damaged += 1
            if corrupting.how == "truncate":
                os.truncate(path, os.path.getsize(path) // 2)
            else:
                with open(path, "r+b") as stored:
                    stored.seek(5)
                    byte = stored.read(1)
                    stored.seek(5)
                    stored.write(bytes([byte[0] ^ 0xFF]))

        return {"on_file_received": on_file_received}


@pytest.fixture
def corrupting_ftp(tmp_path: Path):
    started: list[FtpServerThread] = []

    def start(hooks: _Corrupting) -> FtpServerThread:
        started.append(start_server(tmp_path / "ftproot", handler_attrs=hooks.attrs()))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_announcements_carry_size_and_checksum_and_results_carry_them_on(servers, tmp_path):
    plain = servers("sha256")
    strong = servers("sha512", extra={"checksum": "sha512"})
    without = servers("none", extra={"checksum": "none"})
    client, recorder = _client(tmp_path, " ".join(s.provider for s in (plain, strong, without)), f"{tmp_path}/out/")
    try:
        prime(lambda name: write_file(plain.inbox, f"{name}.dat", b"probe"), recorder)
        contents = {"f256.dat": payload(1), "f512.dat": payload(2), "fnone.dat": payload(3)}
        for server, (name, content) in zip((plain, strong, without), contents.items(), strict=True):
            write_file(server.inbox, name, content)
        assert wait_until(lambda: len(results(recorder)) >= 3, timeout=30)
    finally:
        client.stop()
        recorder.close()
    got = {m.data["uid"]: m.data for m in results(recorder)}
    assert got["f256.dat"]["size"] == len(contents["f256.dat"])
    assert got["f256.dat"]["integrity"] == {"method": "sha256", "value": _b64("sha256", contents["f256.dat"])}
    assert got["f512.dat"]["integrity"] == {"method": "sha512", "value": _b64("sha512", contents["f512.dat"])}
    assert "size" not in got["fnone.dat"] and "integrity" not in got["fnone.dat"]
    assert all((tmp_path / "out" / name).read_bytes() == content for name, content in contents.items())


def test_truncating_ftp_destination_is_refused_retried_and_reported(servers, corrupting_ftp, tmp_path):
    """The server's FTP mover compares the stored size before the rename: the truncated copy never
    gets its final name; the client retries until it gives up and says expected vs found."""
    hooks = _Corrupting("truncate")
    ftp = corrupting_ftp(hooks)
    server = servers("srv", extra={"connection_parameters__retries": 1})
    client, recorder = _client(tmp_path, server.provider, ftp_uri(ftp, "/out/"), ftp_root=str(ftp.root),
                               **QUICK_GIVE_UP)
    content = os.urandom(100_000)
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_file(server.inbox, "bad.dat", content)
        failure = _failure(recorder, "bad.dat")
    finally:
        client.stop()
        recorder.close()
    assert f"size {len(content) // 2} bytes, expected {len(content)}" in failure.data["error"]
    assert hooks.damaged >= 2  # the first push and at least one retry
    assert not (ftp.root / "out" / "bad.dat").exists()
    assert not [p for p in (ftp.root / "out").iterdir() if p.name.startswith(".bad")]  # temporary copies removed
    assert not [m for m in results(recorder, "bad")]
    assert "s3cret-pw" not in str(failure.data)


def test_byte_flipped_by_the_ftp_server_is_found_by_the_client_and_fetched_again(servers, corrupting_ftp, tmp_path):
    """FTP cannot tell a flipped byte (same size): the client reads its copy back (``ftp_root``),
    deletes it, asks the server to push again, and publishes only the good copy."""
    hooks = _Corrupting("flip", times=1)
    ftp = corrupting_ftp(hooks)
    server = servers("srv")
    client, recorder = _client(tmp_path, server.provider, ftp_uri(ftp, "/out/"), ftp_root=str(ftp.root),
                               **QUICK_GIVE_UP)
    content = os.urandom(1_500_000)  # above INLINE_BYTES: read back on the chain's worker thread
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        write_file(server.inbox, "bad.dat", content)
        assert wait_until(lambda: results(recorder, "bad"), timeout=30)
    finally:
        client.stop()
        recorder.close()
    assert hooks.damaged == 1
    assert (ftp.root / "out" / "bad.dat").read_bytes() == content
    [result] = results(recorder, "bad")
    assert result.data["integrity"]["value"] == _b64("sha256", content)
    assert "found its copy of" in server.log() and "pushing it again" in server.log()
    assert not recorder.wait_for(lambda m: m.subject == FAILED, timeout=0.1)


def _prime_delayed(inbox: Path, recorder: BusRecorder) -> None:
    """:func:`prime` for a client with a ``processing_delay``: one probe, waited for longer."""
    write_file(inbox, "probe.dat", b"probe")
    assert recorder.wait_for(lambda m: m.type == "file" and m.data.get("uid") == "probe.dat", timeout=30)


def _change_unseen(path: Path, change: str) -> None:
    """Truncate the file or flip one byte in place, through a hard link in another directory: the
    watched directory gets no event (size may change, the inode does not), so the server does not
    announce the file again and still holds the announcement's checksum."""
    link = path.parent.parent / f"elsewhere-{path.name}"
    os.link(path, link)
    try:
        if change == "truncate":
            os.truncate(link, 1000)
        else:
            with open(link, "r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
                mapped[10] ^= 0xFF
    finally:
        os.unlink(link)


@pytest.mark.parametrize("change", ["truncate", "flip"])
def test_file_rewritten_between_announcement_and_push_is_refused_by_the_server(servers, tmp_path, change):
    """A copying server hashes as it copies: the changed file is never delivered under its name."""
    server = servers("srv", extra={"connection_parameters__mode": "copy"})
    out = tmp_path / "out"
    client, recorder = _client(tmp_path, server.provider, f"{out}/", processing_delay=2, **QUICK_GIVE_UP)
    content = os.urandom(20_000)
    announced = BusRecorder([f"tcp://{server.provider}"], ["/test/data"])
    try:
        _prime_delayed(server.inbox, recorder)
        path = write_file(server.inbox, "bad.dat", content)
        assert announced.wait_for(lambda m: m.data.get("uid") == "bad.dat", timeout=20)
        _change_unseen(path, change)
        failure = _failure(recorder, "bad.dat")
    finally:
        client.stop()
        recorder.close()
        announced.close()
    expected = f"expected {len(content)}" if change == "truncate" else f"expected {_b64('sha256', content)}"
    assert expected in failure.data["error"]
    assert "changed since it was announced" in failure.data["error"]
    assert not (out / "bad.dat").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".bad")]
    assert not results(recorder, "bad")


def test_hard_linked_file_rewritten_after_announcement_is_found_by_the_client(servers, tmp_path):
    """A hard link reads no data, so only the client's read-back can tell: the copy is deleted and
    the failure names the checksums."""
    server = servers("srv")  # the file mover's default: hard links
    out = tmp_path / "out"
    client, recorder = _client(tmp_path, server.provider, f"{out}/", processing_delay=2, **QUICK_GIVE_UP)
    content = os.urandom(20_000)
    announced = BusRecorder([f"tcp://{server.provider}"], ["/test/data"])
    try:
        _prime_delayed(server.inbox, recorder)
        path = write_file(server.inbox, "bad.dat", content)
        assert announced.wait_for(lambda m: m.data.get("uid") == "bad.dat", timeout=20)
        _change_unseen(path, "flip")
        failure = _failure(recorder, "bad.dat")
    finally:
        client.stop()
        recorder.close()
        announced.close()
    assert f"expected {_b64('sha256', content)}" in failure.data["error"]
    assert not (out / "bad.dat").exists()
    assert not results(recorder, "bad")


def test_file_rewritten_and_announced_again_is_fetched_in_its_new_version(servers, tmp_path):
    """A file changed after its announcement is a new file: the server announces it again with
    its new checksum and the client fetches that one, not the announced-then-changed one."""
    server = servers("srv")
    out = tmp_path / "out"
    client, recorder = _client(tmp_path, server.provider, f"{out}/", processing_delay=2, **QUICK_GIVE_UP)
    first, second = os.urandom(20_000), os.urandom(25_000)
    announced = BusRecorder([f"tcp://{server.provider}"], ["/test/data"])
    try:
        _prime_delayed(server.inbox, recorder)
        path = write_file(server.inbox, "new.dat", first)
        assert announced.wait_for(lambda m: m.data.get("uid") == "new.dat", timeout=20)
        path.write_bytes(second)  # rewritten in place: a close after writing, so announced again
        assert announced.wait_for(lambda m: m.data.get("uid") == "new.dat", count=2, timeout=20)
        [result] = recorder.wait_for(lambda m: m.type == "file" and m.data.get("uid") == "new.dat", timeout=30)
    finally:
        client.stop()
        recorder.close()
        announced.close()
    assert (out / "new.dat").read_bytes() == second
    assert result.data["size"] == len(second)
    assert result.data["integrity"]["value"] == _b64("sha256", second)
    assert not recorder.wait_for(lambda m: m.subject == FAILED, timeout=0.1)


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_a_copy_our_server_hashed_as_it_stored_it_is_not_read_back(servers, tmp_path, monkeypatch, mode):
    """Our server on this host says in its push reply (``copy_verified``) that its mover hashed the
    copy it stored: the client reads nothing back. A hard link reads no data: no such word, and the
    client reads its copies back (a small one on the loop, a big one on a worker)."""
    from trollmoves_roles.client import verification

    read_back: list[str] = []
    real_verify = verification.verify_file

    def spy(path, expected, what=None):
        if expected.method:  # a read; a size alone is a stat
            read_back.append(os.path.basename(path))
        real_verify(path, expected, what)

    monkeypatch.setattr(verification, "verify_file", spy)
    server = servers("srv", extra={"connection_parameters__mode": mode})
    out = tmp_path / "out"
    client, recorder = _client(tmp_path, server.provider, f"{out}/")
    contents = {"f-small.dat": os.urandom(20_000), "f-big.dat": os.urandom(verification.INLINE_BYTES + 1000)}
    try:
        prime(lambda name: write_file(server.inbox, f"{name}.dat", b"probe"), recorder)
        read_back.clear()
        for name, content in contents.items():
            write_file(server.inbox, name, content)
        assert wait_until(lambda: len(results(recorder)) >= 2, timeout=30)
    finally:
        client.stop()
        recorder.close()
    assert all((out / name).read_bytes() == content for name, content in contents.items())
    assert sorted(read_back) == ([] if mode == "copy" else sorted(contents))
    assert (os.stat(out / "f-big.dat").st_ino == os.stat(server.inbox / "f-big.dat").st_ino) == (mode == "hardlink")


def test_a_vouched_copy_is_still_checked_for_its_size(tmp_path):
    """With ``copy_verified`` from a server on this host, the client does not read its copies back
    but still finds one that is missing or of another size (a server writing where this host does
    not see, as in a container with other mounts): the size is a stat, not a read."""
    from trollmoves_roles.client import verification

    from trollmoves_core.checksum import Digest

    present, short = tmp_path / "present.dat", tmp_path / "short.dat"
    present.write_bytes(b"12345")
    short.write_bytes(b"123")
    integrity = {"method": "sha256", "value": _b64("sha256", b"12345")}
    result = {"dataset": [{"uri": str(path), "uid": path.name, "size": 5, "integrity": integrity}
                          for path in (present, short, tmp_path / "missing.dat")]}
    checks = verification.local_checks(result, f"file://{tmp_path}/", "127.0.0.1:9", verified_by="sha256")
    assert [check.expected for check in checks] == [Digest(5)] * 3
    assert verification.verify(checks[:1]) is None
    assert "size 3 bytes, expected 5" in verification.verify(checks[1:2])
    assert "cannot be read" in verification.verify(checks[2:])
    assert not short.exists()
