"""Pipelined SFTP requests (:mod:`trollmoves_ssh.pipeline`) on a real OpenSSH sftp-server."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from trollmoves_ssh.pipeline import WRITES_IN_FLIGHT, open_for_writing, write_file
from trollmoves_ssh.testing import SshServer


@pytest.fixture
def sftp(sshd: SshServer) -> Iterator[paramiko.SFTPClient]:
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    client.connect("127.0.0.1", sshd.port, sshd.user, key_filename=str(sshd.key_filename),
                   allow_agent=False, look_for_keys=False)
    try:
        yield client.open_sftp()
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
