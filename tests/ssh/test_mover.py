"""SSH-specific behaviour of the SFTP and SCP movers, on real OpenSSH servers."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from trollmoves_ssh.connection import SshConnection
from trollmoves_ssh.mover import ScpMover, SftpMover
from trollmoves_ssh.options import SESSIONS_PER_LOGIN
from trollmoves_ssh.pipeline import WRITES_IN_FLIGHT
from trollmoves_ssh.testing import PasswordSshServer, SshServer, start_sshd

from trollmoves_core.exceptions import ConfigError, TransferError
from trollmoves_core.mover import Mover

MOVERS = [pytest.param(SftpMover, "sftp", id="sftp"), pytest.param(ScpMover, "scp", id="scp")]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def count(pattern: str, server: SshServer) -> int:
    return len(re.findall(pattern, server.log()))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(os.urandom(700_000))
    return path


# -- host keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_unknown_host_key_is_a_clear_error_and_not_retried(sshd: SshServer, source: Path, remote_tmp: Path,
                                                           tmp_path: Path, cls: type[Mover], scheme: str) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    params = sshd.mover_params(known_hosts=str(empty), retries="3", retry_delay="0.01")
    connections, logins = sshd.connection_count(), sshd.login_count()
    with cls(params) as mover, pytest.raises(TransferError) as info:
        mover.put(source, sshd.uri(scheme, f"{remote_tmp}/"))
    message = str(info.value)
    assert "\n" not in message
    assert f"unknown SSH host key of 127.0.0.1:{sshd.port}" in message
    assert "known_hosts" in message and "host_key_policy" in message
    assert f"{scheme}://{sshd.user}@127.0.0.1:{sshd.port}{remote_tmp}/data.bin" in message
    assert not info.value.transient
    assert wait_until(lambda: sshd.connection_count() == connections + 1)
    time.sleep(0.2)  # a retry would show up as a second connection by now
    assert sshd.connection_count() == connections + 1
    assert sshd.login_count() == logins
    assert list(remote_tmp.iterdir()) == []


def test_changed_host_key_is_rejected_whatever_the_policy(sshd: SshServer, source: Path, remote_tmp: Path,
                                                          tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    with SftpMover(sshd.mover_params(known_hosts=str(wrong), host_key_policy="auto_add")) as mover, \
            pytest.raises(TransferError, match="does not match the known one") as info:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/"))
    assert not info.value.transient


@pytest.mark.parametrize("policy", ["auto_add", "warn"])
def test_lenient_host_key_policies_accept_unknown_hosts(sshd: SshServer, source: Path, remote_tmp: Path,
                                                        tmp_path: Path, policy: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with caplog.at_level(logging.WARNING, logger="trollmoves_ssh"), \
            SftpMover(sshd.mover_params(known_hosts=str(empty), host_key_policy=policy)) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/"))
    assert (remote_tmp / "data.bin").read_bytes() == source.read_bytes()
    warned = [r for r in caplog.records if "Accepting unknown SSH host key" in r.getMessage()]
    assert bool(warned) == (policy == "warn")


def test_host_key_accepted_by_auto_add_must_not_change_later(private_sshd: SshServer, source: Path,
                                                              remote_tmp: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    params = private_sshd.mover_params(known_hosts=str(empty), host_key_policy="auto_add", connection_uptime="0")
    with SftpMover(params) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        private_sshd.stop()
        for name in ("host_key", "host_key.pub"):
            (private_sshd.workdir / name).unlink()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(private_sshd.workdir / "host_key")],
                       check=True)
        private_sshd.start()
        with pytest.raises(TransferError, match="does not match the known one"):
            mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))
    assert not (remote_tmp / "two.bin").exists()


def test_missing_key_file_is_a_clear_error(sshd: SshServer, source: Path, remote_tmp: Path, tmp_path: Path) -> None:
    params = sshd.mover_params(ssh_key_filename=str(tmp_path / "no_such_key"))
    connections = sshd.connection_count()
    with SftpMover(params) as mover, pytest.raises(TransferError, match=r"cannot read SSH key file .*no_such_key") \
            as info:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/"))
    assert not info.value.transient
    assert sshd.connection_count() == connections


def test_bad_host_key_policy_names_the_key() -> None:
    with pytest.raises(ConfigError, match="host_key_policy"):
        SftpMover({"host_key_policy": "trust-me"})


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_wrong_key_is_an_authentication_error_tried_once(sshd: SshServer, source: Path, remote_tmp: Path,
                                                         tmp_path: Path, cls: type[Mover], scheme: str) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    params = sshd.mover_params(ssh_key_filename=str(stranger), retries="3", retry_delay="0.01")
    connections, failures = sshd.connection_count(), count(r"Failed publickey for ", sshd)
    with cls(params) as mover, pytest.raises(TransferError) as info:
        mover.put(source, sshd.uri(scheme, f"{remote_tmp}/"))
    assert f"authentication failed for {sshd.user}@127.0.0.1:{sshd.port}" in str(info.value)
    assert str(stranger) in str(info.value)
    assert not info.value.transient
    assert wait_until(lambda: count(r"Failed publickey for ", sshd) == failures + 1)
    time.sleep(0.2)  # a retry would show up as another connection and another failure by now
    assert sshd.connection_count() == connections + 1
    assert count(r"Failed publickey for ", sshd) == failures + 1


def test_private_key_file_is_upstream_sftp_spelling(sshd: SshServer, source: Path, remote_tmp: Path) -> None:
    params = sshd.mover_params()
    params["ssh_private_key_file"] = params.pop("ssh_key_filename")
    with SftpMover(params) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/"))
    assert (remote_tmp / "data.bin").exists()


@pytest.mark.parametrize("in_uri", [True, False], ids=["uri", "param"])
def test_password_is_offered_and_never_shown(sshd: SshServer, source: Path, remote_tmp: Path, in_uri: bool,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """The server sees a password attempt; the error and the logs never contain the password.

    A *successful* password login would need a real account with a known password on this
    machine; test_successful_password_login logs in to an asyncssh server instead.
    """
    secret = "n0t-the-real-Pw"
    params = {"known_hosts": str(sshd.known_hosts), "allow_agent": "false", "look_for_keys": "false"}
    uri = f"sftp://{sshd.user}:{secret}@127.0.0.1:{sshd.port}{remote_tmp}/"
    if not in_uri:
        params["password"] = secret
        uri = sshd.uri("sftp", f"{remote_tmp}/")
    before = count(r"Failed password for ", sshd)
    with caplog.at_level(logging.DEBUG), SftpMover(params) as mover, pytest.raises(TransferError) as info:
        mover.put(source, uri)
    assert "password" in str(info.value)  # what was tried
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert not info.value.transient
    assert wait_until(lambda: count(r"Failed password for ", sshd) == before + 1)


@pytest.mark.parametrize("in_uri", [True, False], ids=["password-in-uri", "password-param"])
@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_successful_password_login(password_sshd: PasswordSshServer, source: Path, remote_tmp: Path, tmp_path: Path,
                                   cls: type[Mover], scheme: str, in_uri: bool) -> None:
    """A password account on a real server: one login, the file arrives, the password is not in the URI."""
    params = password_sshd.mover_params(retry_delay="0.01")
    if in_uri:
        del params["password"]
    before = password_sshd.logins
    with cls(params) as mover:
        uri = mover.put(source, password_sshd.uri(scheme, f"{remote_tmp}/", password=in_uri))
        back = mover.get(uri, tmp_path / "back.bin")
    assert uri == password_sshd.uri(scheme, f"{remote_tmp}/data.bin")
    assert password_sshd.password not in uri
    assert (remote_tmp / "data.bin").read_bytes() == source.read_bytes() == Path(back).read_bytes()
    assert password_sshd.logins - before == 1


# -- the transfer itself -------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_upload_leaves_only_the_final_file_and_reports_progress(sshd: SshServer, ssh_params: dict[str, str],
                                                                source: Path, remote_tmp: Path, tmp_path: Path,
                                                                cls: type[Mover], scheme: str) -> None:
    sent: list[int] = []
    received: list[int] = []
    with cls(ssh_params) as mover:
        uri = mover.put(source, sshd.uri(scheme, f"{remote_tmp}/x/y/"), progress=sent.append)
        assert uri == sshd.uri(scheme, f"{remote_tmp}/x/y/data.bin")
        back = mover.get(uri, tmp_path / "back.bin", progress=received.append)
    assert sorted(p.name for p in (remote_tmp / "x" / "y").iterdir()) == ["data.bin"]
    assert Path(back).read_bytes() == source.read_bytes()
    assert sum(sent) == sum(received) == source.stat().st_size
    assert len(sent) > 1 and len(received) > 1 and min(sent) > 0


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_upload_replaces_an_existing_file(sshd: SshServer, ssh_params: dict[str, str], source: Path,
                                          remote_tmp: Path, cls: type[Mover], scheme: str) -> None:
    (remote_tmp / "data.bin").write_bytes(b"old")
    with cls(ssh_params) as mover:
        mover.put(source, sshd.uri(scheme, f"{remote_tmp}/"))
    assert (remote_tmp / "data.bin").read_bytes() == source.read_bytes()


def test_empty_file(sshd: SshServer, ssh_params: dict[str, str], tmp_path: Path, remote_tmp: Path) -> None:
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    for cls, scheme in ((SftpMover, "sftp"), (ScpMover, "scp")):
        with cls(ssh_params) as mover:
            mover.put(empty, sshd.uri(scheme, f"{remote_tmp}/{scheme}/"))
            assert Path(mover.get(sshd.uri(scheme, f"{remote_tmp}/{scheme}/empty.dat"),
                                  tmp_path / f"{scheme}.dat")).read_bytes() == b""


def test_permission_denied_is_not_transient(sshd: SshServer, ssh_params: dict[str, str], source: Path) -> None:
    # even root cannot create directories in /proc
    target = "/proc/trollmoves-cannot-write-here/" if os.geteuid() == 0 else "/root/trollmoves-cannot-write-here/"
    with SftpMover(ssh_params) as mover, pytest.raises(TransferError) as info:
        mover.put(source, sshd.uri("sftp", target))
    assert not info.value.transient
    assert "trollmoves-cannot-write-here" in str(info.value)


def test_scp_without_sftp_subsystem_uses_shell_commands(tmp_path_factory: pytest.TempPathFactory, source: Path,
                                                       remote_tmp: Path, tmp_path: Path) -> None:
    from trollmoves_ssh.testing import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("scp-only"), sftp=False)
    try:
        with ScpMover(server.mover_params()) as mover:
            (remote_tmp / "a b").mkdir()
            (remote_tmp / "a b" / "data.bin").write_bytes(b"old")
            mover.put(source, server.uri("scp", f"{remote_tmp}/a b/"))
            mover.put(source, server.uri("scp", f"{remote_tmp}/new/dir/"))
            assert Path(mover.get(server.uri("scp", f"{remote_tmp}/new/dir/data.bin"),
                                  tmp_path / "back.bin")).read_bytes() == source.read_bytes()
            mover.delete(server.uri("scp", f"{remote_tmp}/new/dir/data.bin"))
            left = remote_tmp / "a b" / ".left.part"  # a partial upload, from a connection lost since
            left.write_bytes(b"")
            conn = mover._sessions.pool._idle[next(iter(mover._sessions.pool._idle))][0][1]  # type: ignore[union-attr]
            conn.litter.append(str(left))
            conn.remove_litter()
            assert not left.exists() and conn.litter == []
        assert (remote_tmp / "a b" / "data.bin").read_bytes() == source.read_bytes()
        assert list((remote_tmp / "new" / "dir").iterdir()) == []
        assert "subsystem request for sftp" in server.log()  # the SFTP route was tried and refused
    finally:
        server.stop()


# -- connections ---------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_killed_connection_is_reopened_transparently(private_sshd: SshServer, source: Path, remote_tmp: Path,
                                                     cls: type[Mover], scheme: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with cls(private_sshd.mover_params()) as mover:
        mover.put(source, private_sshd.uri(scheme, f"{remote_tmp}/one.bin"))
        assert private_sshd.sessions()
        private_sshd.kill_sessions()
        with caplog.at_level(logging.WARNING):
            mover.put(source, private_sshd.uri(scheme, f"{remote_tmp}/two.bin"))
    assert (remote_tmp / "two.bin").read_bytes() == source.read_bytes()
    assert private_sshd.login_count() == 2
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # no retry was needed
    # what the lost connection had opened (ahead, or half written) the next one deleted
    assert sorted(p.name for p in remote_tmp.iterdir()) == ["one.bin", "two.bin"]


def _hidden(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_the_next_temporary_file_is_opened_ahead_in_the_last_directory(sshd: SshServer, ssh_params: dict[str, str],
                                                                       source: Path, remote_tmp: Path) -> None:
    (remote_tmp / "a").mkdir()
    (remote_tmp / "b").mkdir()
    with SftpMover(ssh_params) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/a/one.bin"))
        assert wait_until(lambda: _hidden(remote_tmp / "a"))  # its OPEN went after the rename
        [ahead] = _hidden(remote_tmp / "a")
        assert re.fullmatch(r"\.trollmoves\.[0-9a-f]+\.part", ahead)
        assert (remote_tmp / "a" / ahead).stat().st_size == 0
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/a/two.bin"))  # into the file opened ahead
        assert wait_until(lambda: len(_hidden(remote_tmp / "a")) == 1 and ahead not in _hidden(remote_tmp / "a"))
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/b/three.bin"))  # elsewhere: that one is deleted
        assert wait_until(lambda: len(_hidden(remote_tmp / "b")) == 1)
        assert wait_until(lambda: not _hidden(remote_tmp / "a"))
    assert sorted(p.name for p in (remote_tmp / "a").iterdir()) == ["one.bin", "two.bin"]
    assert sorted(p.name for p in (remote_tmp / "b").iterdir()) == ["three.bin"]  # closing deleted the last
    for name in ("a/one.bin", "a/two.bin", "b/three.bin"):
        assert (remote_tmp / name).read_bytes() == source.read_bytes()


def test_the_file_opened_ahead_is_deleted_once_the_connection_is_idle(private_sshd: SshServer, source: Path,
                                                                      remote_tmp: Path) -> None:
    """Long before ``connection_uptime``, so that a process killed later leaves nothing behind."""
    with SftpMover(private_sshd.mover_params()) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        assert wait_until(lambda: _hidden(remote_tmp))
        assert wait_until(lambda: not _hidden(remote_tmp))
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))  # on the same login, still open
        assert private_sshd.login_count() == 1
    assert sorted(p.name for p in remote_tmp.iterdir()) == ["one.bin", "two.bin"]


def test_open_ahead_can_be_turned_off(sshd: SshServer, ssh_params: dict[str, str], source: Path,
                                      remote_tmp: Path) -> None:
    with SftpMover({**ssh_params, "open_ahead": "false"}) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/two.bin"))
        assert sorted(p.name for p in remote_tmp.iterdir()) == ["one.bin", "two.bin"]


def test_a_file_opened_ahead_and_deleted_meanwhile_fails_once_and_is_retried(
        sshd: SshServer, ssh_params: dict[str, str], source: Path, remote_tmp: Path) -> None:
    with SftpMover({**ssh_params, "retry_delay": "0.01"}) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        assert wait_until(lambda: _hidden(remote_tmp))  # the server has opened the next one ahead
        for name in _hidden(remote_tmp):  # a clean-up job deletes hidden files
            (remote_tmp / name).unlink()
        sent: list[int] = []
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/two.bin"), progress=sent.append)
    assert (remote_tmp / "two.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in remote_tmp.iterdir()) == ["one.bin", "two.bin"]
    assert sum(sent) == source.stat().st_size  # the bandwidth limit and the metrics pay for it once


@pytest.mark.parametrize("during", ["rename", "next upload"])
def test_a_file_opened_ahead_on_a_connection_lost_is_deleted_later(
        private_sshd: SshServer, source: Path, remote_tmp: Path, monkeypatch: pytest.MonkeyPatch,
        during: str) -> None:
    """The link drops before the answers to the rename and the OPEN behind it arrive, or before the
    next upload takes the file opened ahead: the next connection deletes it."""
    import paramiko
    import trollmoves_ssh.pipeline as pipeline

    answer = pipeline.Requests.answer
    lost, armed = threading.Event(), threading.Event()

    def dropping(self: pipeline.Requests, number: int) -> object:
        if armed.is_set():
            armed.clear()
            assert wait_until(lambda: (remote_tmp / "two.bin").exists() and len(_hidden(remote_tmp)) == 1)
            lost.set()  # the server has done the rename and the OPEN; their answers are lost
        if lost.is_set():
            self.sftp.sock.get_transport().sock.close()
            raise paramiko.SSHException("Server connection dropped: ")  # what paramiko raises on EOF
        return answer(self, number)

    rename = pipeline.rename

    def renaming(sftp: paramiko.SFTPClient, source: str, dest: str, spare: str | None = None) -> object:
        if during == "rename" and dest.endswith("two.bin"):
            armed.set()
        return rename(sftp, source, dest, spare)

    monkeypatch.setattr(pipeline.Requests, "answer", dropping)
    monkeypatch.setattr(pipeline, "rename", renaming)
    with SftpMover(private_sshd.mover_params(retry_delay="0.01", retries="1")) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        if during == "next upload":
            assert wait_until(lambda: len(_hidden(remote_tmp)) == 1)
            lost.set()
        with pytest.raises(TransferError):
            mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))
        lost.clear()
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/three.bin"))
    names = sorted(p.name for p in remote_tmp.iterdir())
    assert names == (["one.bin", "three.bin", "two.bin"] if during == "rename" else ["one.bin", "three.bin"])


def test_litter_is_kept_while_the_connection_to_delete_it_is_lost_too(
        private_sshd: SshServer, source: Path, remote_tmp: Path) -> None:
    left = remote_tmp / ".left.part"
    with SftpMover(private_sshd.mover_params(open_ahead="false")) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        conn = mover._sessions.pool._idle[next(iter(mover._sessions.pool._idle))][0][1]  # type: ignore[union-attr]
        left.write_bytes(b"")
        conn.litter.append(str(left))
        conn.drop_sftp()
        private_sshd.kill_sessions()
        assert wait_until(lambda: not conn.is_alive())
        conn.remove_litter()  # raises nothing, forgets nothing
        assert conn.litter == [str(left)]
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))  # the next connection deletes it
    assert sorted(p.name for p in remote_tmp.iterdir()) == ["one.bin", "two.bin"]


def test_restarted_server_is_reconnected_transparently(private_sshd: SshServer, source: Path,
                                                       remote_tmp: Path) -> None:
    with SftpMover(private_sshd.mover_params()) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        private_sshd.stop()
        private_sshd.start()
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))
    assert (remote_tmp / "two.bin").read_bytes() == source.read_bytes()
    assert private_sshd.login_count() == 2


def test_connection_dropped_after_the_liveness_probe_is_reopened_once(
        private_sshd: SshServer, source: Path, remote_tmp: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The server drops the connection between the pool's probe and its use (a NAT timeout, say)."""
    with SftpMover(private_sshd.mover_params()) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        private_sshd.kill_sessions()
        assert wait_until(lambda: not private_sshd.sessions())
        conn = mover._sessions.pool._idle[next(iter(mover._sessions.pool._idle))][0][1]  # type: ignore[union-attr]
        assert wait_until(lambda: not conn.is_alive())
        monkeypatch.setattr(mover._sessions.pool, "_is_alive", lambda _conn: True)  # type: ignore[union-attr]
        with caplog.at_level(logging.INFO, logger="trollmoves_ssh"):
            mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))
    assert (remote_tmp / "two.bin").read_bytes() == source.read_bytes()
    assert any("was dropped" in r.getMessage() for r in caplog.records)
    assert private_sshd.login_count() == 2


def test_idle_connections_close_after_connection_uptime(private_sshd: SshServer, source: Path,
                                                        remote_tmp: Path) -> None:
    with SftpMover(private_sshd.mover_params(connection_uptime="0.3")) as mover:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/one.bin"))
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/two.bin"))
        assert private_sshd.login_count() == 1
        assert wait_until(lambda: not private_sshd.sessions())
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/three.bin"))
    assert private_sshd.login_count() == 2


def test_concurrent_first_uploads_share_one_login(private_sshd: SshServer, source: Path, remote_tmp: Path) -> None:
    start = threading.Barrier(SESSIONS_PER_LOGIN)
    with SftpMover(private_sshd.mover_params()) as mover:
        def upload(i: int) -> str:
            start.wait()
            return mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/{i}.bin"))

        with ThreadPoolExecutor(SESSIONS_PER_LOGIN) as pool:
            list(pool.map(upload, range(SESSIONS_PER_LOGIN)))
    assert private_sshd.login_count() == 1
    assert all((remote_tmp / f"{i}.bin").read_bytes() == source.read_bytes() for i in range(SESSIONS_PER_LOGIN))


@pytest.mark.parametrize("per_login", [None, 2])
def test_connections_in_use_at_once_share_logins(private_sshd: SshServer, source: Path, remote_tmp: Path,
                                                  per_login: int | None) -> None:
    params = private_sshd.mover_params(**({} if per_login is None else {"sessions_per_login": str(per_login)}))
    per_login = per_login or SESSIONS_PER_LOGIN
    with SftpMover(params) as mover, contextlib.ExitStack() as held:
        mover.put(source, private_sshd.uri("sftp", f"{remote_tmp}/first.bin"))
        sessions = mover._sessions
        assert sessions is not None
        key = next(iter(sessions.pool._idle))
        conns = [held.enter_context(sessions.pool.connection(key)) for _ in range(per_login + 1)]
        for conn in conns:
            conn.sftp().stat(str(remote_tmp))  # each has its own SFTP session, on a shared login
        assert len({id(conn.client) for conn in conns}) == 2
        assert private_sshd.login_count() == 2
    assert wait_until(lambda: not private_sshd.sessions())


def test_a_server_with_fewer_sessions_per_login_gets_more_logins(
        tmp_path_factory: pytest.TempPathFactory, source: Path, remote_tmp: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """sshd's MaxSessions 5 under sessions_per_login = 8: the refused sessions open on a new login."""
    server = start_sshd(tmp_path_factory.mktemp("sshd-max5"), max_sessions=5)
    start = threading.Barrier(8)
    try:
        with SftpMover(server.mover_params(sessions_per_login="8", retries="1")) as mover, \
                caplog.at_level(logging.WARNING, logger="trollmoves_ssh"):
            def upload(i: int) -> str:
                start.wait()
                return mover.put(source, server.uri("sftp", f"{remote_tmp}/{i}.bin"))

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(upload, range(8)))
            with ThreadPoolExecutor(8) as pool:  # the logins known to be full are not asked again
                list(pool.map(upload, range(8)))
    finally:
        server.stop()
    assert all((remote_tmp / f"{i}.bin").read_bytes() == source.read_bytes() for i in range(8))
    assert sorted(p.name for p in remote_tmp.iterdir()) == sorted(f"{i}.bin" for i in range(8))
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("trollmoves")]
    assert len(warnings) == 1 and "sessions_per_login" in warnings[0], warnings


def test_upload_of_more_blocks_than_writes_in_flight(sshd: SshServer, ssh_params: dict[str, str],
                                                     tmp_path: Path, remote_tmp: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(WRITES_IN_FLIGHT * 3 * 1024 + 5))
    with SftpMover({**ssh_params, "block_size": "1024"}) as mover:
        mover.put(big, sshd.uri("sftp", f"{remote_tmp}/"))
    assert (remote_tmp / "big.bin").read_bytes() == big.read_bytes()


def test_keepalive_is_set_on_pooled_connections(sshd: SshServer, ssh_params: dict[str, str], source: Path,
                                                remote_tmp: Path) -> None:
    with SftpMover({**ssh_params, "keepalive_interval": "7"}) as mover:
        mover.put(source, sshd.uri("sftp", f"{remote_tmp}/"))
        conn: SshConnection = mover._sessions.pool._idle[next(iter(mover._sessions.pool._idle))][0][1]  # type: ignore[union-attr]
        assert conn.transport.packetizer._Packetizer__keepalive_interval == 7  # type: ignore[attr-defined]
        assert conn.transport.local_cipher == "aes128-gcm@openssh.com"


def test_unreachable_server_is_transient_and_retried(source: Path, caplog: pytest.LogCaptureFixture) -> None:
    from trollmoves_ssh.testing import free_port

    port = free_port()
    with caplog.at_level(logging.WARNING), SftpMover({"retries": "2", "retry_delay": "0.01"}) as mover, \
            pytest.raises(TransferError) as info:
        mover.put(source, f"sftp://nobody@127.0.0.1:{port}/tmp/")
    assert info.value.transient
    assert f"127.0.0.1:{port}" in str(info.value)
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 1


@pytest.mark.parametrize(("cls", "scheme"), MOVERS)
def test_server_stopped_mid_upload_leaves_no_final_file(private_sshd: SshServer, tmp_path: Path,
                                                        remote_tmp: Path, cls: type[Mover], scheme: str) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(24 * 1024 * 1024))
    calls = []

    def stop_server(nbytes: int) -> None:
        calls.append(nbytes)
        if len(calls) == 2:
            private_sshd.stop()

    with cls(private_sshd.mover_params(retries="2", retry_delay="0.01")) as mover, \
            pytest.raises(TransferError) as info:
        mover.put(big, private_sshd.uri(scheme, f"{remote_tmp}/big.bin"), progress=stop_server)
    assert info.value.transient
    assert not (remote_tmp / "big.bin").exists()
    assert [p.name for p in remote_tmp.iterdir() if not p.name.startswith(".")] == []


# -- the launcher --------------------------------------------------------------------------


def _trollmoves() -> str:
    script = Path(sys.executable).parent / "trollmoves"
    if not script.exists():
        pytest.skip(f"console script {script} not installed")
    return str(script)


def test_cli_move_and_get_over_sftp(sshd: SshServer, source: Path, remote_tmp: Path, tmp_path: Path) -> None:
    opts = ["-o", f"ssh_key_filename={sshd.key_filename}", "-o", f"known_hosts={sshd.known_hosts}"]
    done = subprocess.run([_trollmoves(), "move", str(source), sshd.uri("sftp", f"{remote_tmp}/cli/"), *opts],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (remote_tmp / "cli" / "data.bin").read_bytes() == source.read_bytes()
    done = subprocess.run([_trollmoves(), "get", sshd.uri("scp", f"{remote_tmp}/cli/data.bin"),
                           f"{tmp_path}/fetched/", *opts], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fetched" / "data.bin").read_bytes() == source.read_bytes()


def test_cli_unknown_host_is_one_line_and_exit_1(sshd: SshServer, source: Path, remote_tmp: Path,
                                                 tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    done = subprocess.run([_trollmoves(), "move", str(source), sshd.uri("sftp", f"{remote_tmp}/"),
                           "-o", f"ssh_key_filename={sshd.key_filename}", "-o", f"known_hosts={empty}"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"unknown SSH host key of 127.0.0.1:{sshd.port}" in done.stderr
