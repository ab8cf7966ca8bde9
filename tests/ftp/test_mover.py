"""FtpMover behaviour beyond the contract: errors, TLS, credentials, reuse, failure cleanup."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from trollmoves_ftp.mover import FtpMover
from trollmoves_ftp.testing import (
    HOST,
    PASSWORD,
    READER,
    USER,
    FtpServerThread,
    fresh_dir,
    ftp_uri,
    make_cert,
    start_server,
)

from trollmoves_core.exceptions import ConfigError, TransferError


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(100_000))
    return path


@pytest.fixture
def quick_mover() -> Iterator[FtpMover]:
    with FtpMover({"retry_delay": 0.01}) as mover:
        yield mover


def server_files(server: FtpServerThread, directory: str) -> list[str]:
    return sorted(p.name for p in (server.root / directory.strip("/")).iterdir())


# -- errors are classified, named and never leak the password -------------------------------


def test_wrong_password_fails_once_without_retry(ftp_server: FtpServerThread, source: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    directory = fresh_dir(ftp_server, "badpw")
    failed_before, logins_before = ftp_server.counters.failed_logins, ftp_server.counters.logins
    with FtpMover({"retries": 5, "retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
        mover.put(source, ftp_uri(ftp_server, directory, password="wrong-horse-battery"))
    assert not info.value.transient
    assert "530" in str(info.value)
    assert f"ftp://{USER}@{HOST}:{ftp_server.port}{directory}data.bin" in str(info.value)
    assert "wrong-horse-battery" not in str(info.value)
    assert "wrong-horse-battery" not in caplog.text
    assert ftp_server.counters.failed_logins - failed_before == 1
    assert ftp_server.counters.logins == logins_before


def test_permission_denied_is_not_retried(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "readonly")
    with FtpMover({"retries": 5, "retry_delay": 0.01}) as mover:
        with pytest.raises(TransferError) as info:
            mover.put(source, ftp_uri(ftp_server, directory, user=READER))
        assert not info.value.transient
        assert "550" in str(info.value)
        assert mover.connections_opened == 1
    assert server_files(ftp_server, directory) == []


def test_temporary_server_refusal_is_retried(tmp_path: Path, source: Path) -> None:
    refusals = []

    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:
        if not refusals:
            refusals.append(file)
            self.respond("451 Local error, try again later.")
            return None
        return type(self).__mro__[1].ftp_STOR(self, file, mode)

    server = start_server(tmp_path / "root", handler_attrs={"ftp_STOR": ftp_STOR})
    try:
        with FtpMover({"retry_delay": 0.01}) as mover:
            mover.put(source, ftp_uri(server, "/in/"))
            assert mover.connections_opened == 1  # a clean 4xx reply keeps the session usable
        assert len(refusals) == 1
        assert (server.root / "in" / "data.bin").read_bytes() == source.read_bytes()
        assert server_files(server, "/in/") == ["data.bin"]
    finally:
        server.stop()


def test_unreachable_server_is_transient(tmp_path: Path, source: Path) -> None:
    server = start_server(tmp_path / "root")
    server.stop()  # the port is now closed
    with FtpMover({"retries": 2, "retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
        mover.put(source, ftp_uri(server, "/in/"))
    assert info.value.transient
    assert PASSWORD not in str(info.value)


# -- TLS -----------------------------------------------------------------------------------


def test_ftps_without_the_ca_fails_verification(ftps_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftps_server, "noca")
    with FtpMover({"retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
        mover.put(source, ftp_uri(ftps_server, directory, scheme="ftps"))
    assert "certificate verification failed" in str(info.value)
    assert "ca_file" in str(info.value)
    assert not info.value.transient
    assert server_files(ftps_server, directory) == []


def test_ftps_with_verification_off_works(ftps_server: FtpServerThread, source: Path, tmp_path: Path) -> None:
    directory = fresh_dir(ftps_server, "noverify")
    with FtpMover({"verify": "false"}) as mover:
        mover.put(source, ftp_uri(ftps_server, directory, scheme="ftps"))
        back = mover.get(ftp_uri(ftps_server, directory + "data.bin", scheme="ftps"), tmp_path / "back.bin")
    assert Path(back).read_bytes() == source.read_bytes()


def test_ftps_checks_the_host_name(tmp_path: Path, source: Path) -> None:
    cert, key = make_cert(tmp_path, san="DNS:elsewhere.example")  # valid, but not for 127.0.0.1
    server = start_server(tmp_path / "root", tls=(cert, key))
    try:
        with FtpMover({"ca_file": str(cert), "retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
            mover.put(source, ftp_uri(server, "/", scheme="ftps"))
    finally:
        server.stop()
    assert "certificate verification failed" in str(info.value)
    assert "127.0.0.1" in str(info.value)  # the mismatch is named
    assert not info.value.transient


def test_plain_ftp_against_a_tls_only_server_says_so(ftps_server: FtpServerThread, source: Path) -> None:
    with FtpMover({"retry_delay": 0.01}) as mover, pytest.raises(TransferError) as info:
        mover.put(source, ftp_uri(ftps_server, fresh_dir(ftps_server, "plain")))
    assert not info.value.transient
    assert "requires TLS" in str(info.value) and "ftps://" in str(info.value)


# -- credentials ---------------------------------------------------------------------------


def test_credentials_from_connection_params(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "params")
    with FtpMover({"username": USER, "password": PASSWORD}) as mover:
        uri = mover.put(source, f"ftp://{HOST}:{ftp_server.port}{directory}")
    assert uri == f"ftp://{HOST}:{ftp_server.port}{directory}data.bin"
    assert server_files(ftp_server, directory) == ["data.bin"]


@pytest.mark.parametrize("auth", ["", f"{USER}@"])
def test_credentials_from_netrc(ftp_server: FtpServerThread, source: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, auth: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine {HOST} login {USER} password {PASSWORD}\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    directory = fresh_dir(ftp_server, "netrc")
    with FtpMover() as mover:
        mover.put(source, f"ftp://{auth}{HOST}:{ftp_server.port}{directory}")
    assert server_files(ftp_server, directory) == ["data.bin"]


def test_anonymous_login_without_credentials(ftp_server: FtpServerThread, source: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    with FtpMover() as mover, pytest.raises(TransferError, match="530"):
        mover.put(source, f"ftp://{HOST}:{ftp_server.port}/")
    assert ftp_server.counters.failed_users[-1] == "anonymous"


# -- connections ---------------------------------------------------------------------------


def test_dropped_idle_connection_is_replaced(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "dropped")
    with FtpMover({"retries": 1}) as mover:  # no retry: the replacement must come from the probe
        mover.put(source, ftp_uri(ftp_server, directory + "one.bin"))
        ftp_server.drop_sessions()
        mover.put(source, ftp_uri(ftp_server, directory + "two.bin"))
        assert mover.connections_opened == 2
    assert server_files(ftp_server, directory) == ["one.bin", "two.bin"]


def test_zero_uptime_logs_in_for_every_file(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "nouptime")
    before = ftp_server.counters.logins
    with FtpMover({"connection_uptime": 0}) as mover:
        for name in ("a", "b", "c"):
            mover.put(source, ftp_uri(ftp_server, directory + name))
    assert ftp_server.counters.logins - before == 3


def test_parallel_puts_use_separate_connections(ftp_server: FtpServerThread, tmp_path: Path) -> None:
    directory = fresh_dir(ftp_server, "parallel")
    errors: list[BaseException] = []
    sources = []
    for i in range(4):
        path = tmp_path / f"p{i}.bin"
        path.write_bytes(os.urandom(500_000))
        sources.append(path)
    with FtpMover() as mover:
        def put(path: Path) -> None:
            try:
                mover.put(path, ftp_uri(ftp_server, directory))
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=put, args=(p,)) for p in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    for path in sources:
        assert (ftp_server.root / directory.strip("/") / path.name).read_bytes() == path.read_bytes()


# -- atomic delivery -----------------------------------------------------------------------


def test_existing_target_is_replaced(ftp_server: FtpServerThread, tmp_path: Path) -> None:
    directory = fresh_dir(ftp_server, "replace")
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"old")
    second.write_bytes(b"new")
    with FtpMover() as mover:
        mover.put(first, ftp_uri(ftp_server, directory + "f.dat"))
        mover.put(second, ftp_uri(ftp_server, directory + "f.dat"))
    assert (ftp_server.root / directory.strip("/") / "f.dat").read_bytes() == b"new"
    assert server_files(ftp_server, directory) == ["f.dat"]


def test_server_refusing_rename_onto_existing_file(tmp_path: Path) -> None:
    def ftp_RNTO(self, path: str) -> object:
        if os.path.exists(path):
            self._rnfr = None
            self.respond("550 File exists.")
            return None
        return type(self).__mro__[1].ftp_RNTO(self, path)

    server = start_server(tmp_path / "root", handler_attrs={"ftp_RNTO": ftp_RNTO})
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"old")
    second.write_bytes(b"new")
    try:
        with FtpMover() as mover:
            mover.put(first, ftp_uri(server, "/out/f.dat"))
            mover.put(second, ftp_uri(server, "/out/f.dat"))
        assert (server.root / "out" / "f.dat").read_bytes() == b"new"
        assert server_files(server, "/out/") == ["f.dat"]
    finally:
        server.stop()


def test_refused_rename_fails_and_keeps_the_session_in_step(tmp_path: Path, source: Path) -> None:
    refusals = [1]

    def ftp_RNFR(self, path: str) -> object:
        if refusals:
            refusals.pop()
            self.respond("550 Not now.")
            return None
        return type(self).__mro__[1].ftp_RNFR(self, path)

    server = start_server(tmp_path / "root", handler_attrs={"ftp_RNFR": ftp_RNFR})
    try:
        with FtpMover({"retries": 1}) as mover:
            with pytest.raises(TransferError, match="550 Not now"):
                mover.put(source, ftp_uri(server, "/out/one.bin"))
            mover.put(source, ftp_uri(server, "/out/two.bin"))  # RNTO's "bad sequence" reply was read
            assert mover.connections_opened == 1
        assert server_files(server, "/out/") == ["two.bin"]
    finally:
        server.stop()


def test_interrupted_put_removes_its_temporary_file(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "cleanup")

    def explode(_nbytes: int) -> None:
        raise RuntimeError("stop here")

    with FtpMover() as mover, pytest.raises(TransferError, match="stop here"):
        mover.put(source, ftp_uri(ftp_server, directory), progress=explode)
    assert server_files(ftp_server, directory) == []


def test_server_stopping_midway_leaves_no_final_file(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(48):
            out.write(os.urandom(1024 * 1024))
    server = start_server(tmp_path / "root")
    blocks = []

    def stop_server_after_first_block(nbytes: int) -> None:
        blocks.append(nbytes)
        if len(blocks) == 1:
            server.stop()

    try:
        with FtpMover({"retries": 2, "retry_delay": 0.01, "timeout": 5}) as mover, \
                pytest.raises(TransferError) as info:
            mover.put(big, ftp_uri(server, "/out/"), progress=stop_server_after_first_block)
    finally:
        server.stop()
    assert info.value.transient
    assert sum(blocks) < big.stat().st_size
    out = server.root / "out"
    assert not (out / "big.bin").exists()
    assert all(p.name.startswith(".big.bin.") and p.name.endswith(".part") for p in out.iterdir())


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "passive"), [({}, True), ({"passive": "no"}, False), ({"active": True}, False),
                                                 ({"active": "false"}, True), ({"passive": "1", "active": "0"}, True)])
def test_transfer_mode_options(params: dict, passive: bool) -> None:
    assert FtpMover(params).passive is passive


@pytest.mark.parametrize(("params", "key"), [({"passive": "maybe"}, "passive"),
                                             ({"passive": "true", "active": "true"}, "passive"),
                                             ({"verify": "sometimes"}, "verify"),
                                             ({"timeout": "soon"}, "timeout"),
                                             ({"ca_file": "/nonexistent/ca.pem"}, "ca_file")])
def test_bad_options_name_the_key(params: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: "):
        FtpMover(params)


def test_directory_removed_between_uploads_is_recreated(ftp_server: FtpServerThread, source: Path) -> None:
    directory = fresh_dir(ftp_server, "removed")
    with FtpMover({"retries": 1}) as mover:
        mover.put(source, ftp_uri(ftp_server, directory + "sub/one.bin"))
        shutil.rmtree(ftp_server.root / directory.strip("/") / "sub")
        mover.put(source, ftp_uri(ftp_server, directory + "sub/two.bin"))
        assert mover.connections_opened == 1
    assert server_files(ftp_server, directory + "sub/") == ["two.bin"]
