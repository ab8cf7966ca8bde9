"""Pipelined SFTP requests (:mod:`trollmoves_ssh.pipeline`) on a real OpenSSH sftp-server."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from trollmoves_ssh.pipeline import WRITES_IN_FLIGHT, open_for_writing, rename, write_file
from trollmoves_ssh.testing import SshServer


@pytest.fixture
def sftp(sshd: SshServer) -> Iterator[paramiko.SFTPClient]:
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    client.connect("127.0.0.1", sshd.port, sshd.user, key_filename=str(sshd.key_filename),
                   allow_agent=False, look_for_keys=False)
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(10)  # a request waited for twice fails instead of hanging
        yield sftp
    finally:
        client.close()


def test_write_file_reports_the_stored_size(sftp: paramiko.SFTPClient, remote_tmp: Path) -> None:
    data = os.urandom(WRITES_IN_FLIGHT * 2 * 1024 + 7)
    blocks: list[bytes] = []
    handle = open_for_writing(sftp, f"{remote_tmp}/f.bin")
    assert write_file(sftp, handle, io.BytesIO(data), 1024, blocks.append) == len(data)
    assert (remote_tmp / "f.bin").read_bytes() == data == b"".join(blocks)
    assert sftp.stat(str(remote_tmp)).st_size is not None  # the session is still in step


def test_a_refused_write_raises_and_leaves_the_session_in_step(sftp: paramiko.SFTPClient, remote_tmp: Path) -> None:
    handle = open_for_writing(sftp, "/dev/full")  # every write fails: no space left on device
    with pytest.raises(OSError):
        write_file(sftp, handle, io.BytesIO(b"x" * 10_000), 1024, lambda _data: None)
    handle = open_for_writing(sftp, f"{remote_tmp}/after.bin")
    assert write_file(sftp, handle, io.BytesIO(b"ok"), 1024, lambda _data: None) == 2


def test_opening_in_a_missing_directory_is_file_not_found(sftp: paramiko.SFTPClient, remote_tmp: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_for_writing(sftp, f"{remote_tmp}/missing/f.bin")


def test_rename_opens_the_spare_behind_it(sftp: paramiko.SFTPClient, remote_tmp: Path) -> None:
    handle = open_for_writing(sftp, f"{remote_tmp}/.f.part")
    write_file(sftp, handle, io.BytesIO(b"data"), 1024, lambda _data: None)
    spare = rename(sftp, f"{remote_tmp}/.f.part", f"{remote_tmp}/f", f"{remote_tmp}/.spare.part")
    assert spare is not None and spare.directory == str(remote_tmp)
    assert (remote_tmp / "f").read_bytes() == b"data"
    handle = spare.handle()
    assert handle is not None and spare.handle() == handle
    assert write_file(sftp, handle, io.BytesIO(b"next"), 1024, lambda _data: None) == 4
    assert (remote_tmp / ".spare.part").read_bytes() == b"next"


def test_a_refused_spare_is_answered_once_and_discarded_without_waiting(sftp: paramiko.SFTPClient,
                                                                        remote_tmp: Path) -> None:
    handle = open_for_writing(sftp, f"{remote_tmp}/.f.part")
    write_file(sftp, handle, io.BytesIO(b"data"), 1024, lambda _data: None)
    spare = rename(sftp, f"{remote_tmp}/.f.part", f"{remote_tmp}/f", f"{remote_tmp}/missing/.spare.part")
    assert spare is not None
    assert spare.handle() is None
    assert spare.handle() is None  # asked again: no second wait for an answer already taken
    spare.discard(wait=True)
    spare.discard(wait=False)
    assert sorted(p.name for p in remote_tmp.iterdir()) == ["f"]
    assert sftp.stat(str(remote_tmp)).st_size is not None  # the session is still in step


def test_a_refused_rename_discards_its_spare(sftp: paramiko.SFTPClient, remote_tmp: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rename(sftp, f"{remote_tmp}/.absent.part", f"{remote_tmp}/f", f"{remote_tmp}/.spare.part")
    sftp.stat(str(remote_tmp))  # the CLOSE and REMOVE were answered (and dropped) before this one
    assert list(remote_tmp.iterdir()) == []
