"""The SSH movers against the shared mover contract, on a real OpenSSH server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trollmoves_ssh.mover import ScpMover, SftpMover
from trollmoves_ssh.testing import SshServer

from trollmoves_core.mover import Mover
from trollmoves_core.testing import MoverContract


class _SshContract(MoverContract):
    scheme: str
    mover_class: type[Mover]

    @pytest.fixture
    def mover(self, ssh_params: dict[str, str]) -> Iterator[Mover]:
        with self.mover_class(ssh_params) as mover:
            yield mover

    @pytest.fixture
    def remote_dir(self, sshd: SshServer, remote_tmp: Path) -> str:
        return sshd.uri(self.scheme, f"{remote_tmp}/")

    @pytest.fixture
    def hashes_on_put(self) -> bool:
        return True

    @pytest.fixture
    def login_count(self, sshd: SshServer) -> Callable[[], int]:
        return sshd.login_count


class TestSftpContract(_SshContract):
    scheme, mover_class = "sftp", SftpMover


class TestSshAliasContract(_SshContract):
    scheme, mover_class = "ssh", SftpMover


class TestScpContract(_SshContract):
    scheme, mover_class = "scp", ScpMover
    reports_size = False
