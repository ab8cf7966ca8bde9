"""The SSH servers of :mod:`trollmoves_ssh.testing` as fixtures: OpenSSH sshd, and asyncssh for password logins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from trollmoves_ssh.testing import (
    INSTALL_HINT,
    PasswordSshServer,
    SshServer,
    sshd_available,
    start_password_server,
    start_sshd,
)


def require_sshd() -> None:
    if not sshd_available():
        pytest.skip(f"SSHD MISSING: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole session; key login for the current user; VERBOSE log."""
    require_sshd()
    server = start_sshd(tmp_path_factory.mktemp("sshd"), password_auth=True)
    yield server
    server.stop()


@pytest.fixture
def private_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A dedicated sshd for tests that stop, restart or kill it."""
    require_sshd()
    server = start_sshd(tmp_path_factory.mktemp("private-sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def password_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordSshServer]:
    """An asyncssh SFTP/SCP server that accepts one user and password (no system account needed)."""
    pytest.importorskip("asyncssh")
    server = start_password_server(tmp_path_factory.mktemp("password-sshd"))
    yield server
    server.stop()


@pytest.fixture
def ssh_params(sshd: SshServer) -> dict[str, str]:
    """Connection parameters that log in to ``sshd`` under the default (reject) host key policy."""
    return sshd.mover_params(retry_delay="0.01")


@pytest.fixture
def remote_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh directory the server writes into (the server runs on this machine), outside ``tmp_path``."""
    return tmp_path_factory.mktemp("remote")
