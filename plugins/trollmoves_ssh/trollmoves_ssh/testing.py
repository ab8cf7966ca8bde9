"""Throwaway SSH servers on 127.0.0.1, for tests and benchmarks.

:func:`start_sshd` writes a host key, a client key, ``authorized_keys``, a ``known_hosts``
file naming the server's key and an ``sshd_config`` into a working directory, starts
OpenSSH's ``sshd -D`` on a free port and waits for its ``SSH-2.0-`` banner. It logs in as the
user running it by key (root may also log in by password where ``/etc/shadow`` allows it).

:func:`start_password_server` runs an asyncssh SFTP and SCP server in a thread of the calling
process that accepts one user name and password (no system account needed); it needs
``pip install trollmoves-ssh[test]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trollmoves_core.ports import free_port

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "OpenSSH sshd not found at /usr/sbin/sshd: install it with `apt-get install openssh-server` " \
               "(or run scripts/install-system-deps as root)"


def sshd_available() -> bool:
    """True when an OpenSSH server binary and ``ssh-keygen`` are installed."""
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


@dataclass
class SshServer:
    """A running sshd and everything a client needs to log in to it."""

    workdir: Path
    port: int
    user: str
    key_filename: Path
    known_hosts: Path
    log_path: Path
    config_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return HOST

    def uri(self, scheme: str, path: str) -> str:
        """``scheme://user@127.0.0.1:port/path`` (``path`` is absolute)."""
        return f"{scheme}://{self.user}@{HOST}:{self.port}{path}"

    def mover_params(self, **extra: str) -> dict[str, str]:
        """Connection parameters that log in with the client key under the default host key policy."""
        return {"ssh_key_filename": str(self.key_filename), "known_hosts": str(self.known_hosts),
                "allow_agent": "false", "look_for_keys": "false", **extra}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def login_count(self) -> int:
        """Successful logins so far, read from the sshd log (needs LogLevel VERBOSE or INFO)."""
        return len(re.findall(r"^.*Accepted (?:publickey|password) for ", self.log(), re.MULTILINE))

    def connection_count(self) -> int:
        """TCP connections the server has accepted so far."""
        return len(re.findall(r"^.*Connection from 127\.0\.0\.1 port ", self.log(), re.MULTILINE))

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) sshd on ``self.port``; raise RuntimeError if it does not come up."""
        self.process = subprocess.Popen([SSHD, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"sshd exited with {self.process.returncode}: {err.strip()} {self.log()[-500:]}")
            if _banner(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd on port {self.port} sent no SSH banner within {timeout} s")

    def sessions(self) -> list[int]:
        """Process ids of the per-connection sshd processes (descendants of the listener)."""
        if self.process is None:
            return []
        return _descendants(self.process.pid)

    def kill_sessions(self) -> None:
        """Drop every open connection by killing its server-side processes."""
        _kill(self.sessions())

    def stop(self) -> None:
        """Stop the listener and every session it started."""
        if self.process is None:
            return
        sessions = self.sessions()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        _kill(sessions)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None


def start_sshd(workdir: Path, *, password_auth: bool = False, sftp: bool = True, attempts: int = 3,
               max_sessions: int = 100) -> SshServer:
    """Create keys and config in ``workdir`` and start sshd on a free port.

    ``sftp=False`` leaves out the SFTP subsystem (an SCP-only server); ``max_sessions`` is the
    channels one login may open (sshd's ``MaxSessions``).

    Retries with another port when the chosen one was taken in the meantime.
    """
    if not sshd_available():
        raise RuntimeError(INSTALL_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_key", workdir / "client_key"
    for key in (host_key, client_key):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "trollmoves-test", "-f", str(key)],
                           check=True, stdin=subprocess.DEVNULL)
    authorized = workdir / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    last_error: Exception | None = None
    for _ in range(attempts):
        port = free_port()
        config = workdir / "sshd_config"
        config.write_text(_config(workdir, port, password_auth, sftp, max_sessions))
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[{HOST}]:{port} {host_pub}\n")
        server = SshServer(workdir=workdir, port=port, user=getpass.getuser(), key_filename=client_key,
                           known_hosts=known_hosts, log_path=workdir / "sshd.log", config_path=config)
        try:
            server.start()
            return server
        except RuntimeError as err:  # most likely the port was taken in the meantime
            last_error = err
    raise RuntimeError(f"could not start sshd after {attempts} attempts: {last_error}")


def _config(workdir: Path, port: int, password_auth: bool, sftp: bool, max_sessions: int) -> str:
    return "\n".join([
        f"Port {port}",
        f"ListenAddress {HOST}",
        f"HostKey {workdir / 'host_key'}",
        "PidFile none",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        "StrictModes no",
        "UsePAM no",
        f"PasswordAuthentication {'yes' if password_auth else 'no'}",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin yes" if password_auth else "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp" if sftp else "",
        "LogLevel VERBOSE",
        "MaxStartups 100",
        f"MaxSessions {max_sessions}",
        # sshd runs each command (scp -t) through the user's shell; with SHLVL set, bash does not
        # take itself for a login's first shell and skips ~/.bashrc (which may be slow: pyenv init).
        "SetEnv SHLVL=1",
        "",
    ])


def _banner(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class PasswordSshServer:
    """A running asyncssh server (SFTP and SCP on the local file system) for one user and password."""

    port: int
    user: str
    password: str = field(repr=False)
    known_hosts: Path
    logins: int = 0
    """Successful password logins so far."""
    failed_logins: int = 0
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _acceptor: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return HOST

    def uri(self, scheme: str, path: str, *, password: bool = False) -> str:
        """``scheme://user@127.0.0.1:port/path``, with ``user:password@`` when ``password`` is true."""
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"{scheme}://{auth}@{HOST}:{self.port}{path}"

    def mover_params(self, **extra: str) -> dict[str, str]:
        """Connection parameters that log in with the password under the default host key policy."""
        return {"password": self.password, "known_hosts": str(self.known_hosts), "allow_agent": "false",
                "look_for_keys": "false", **extra}

    def stop(self) -> None:
        """Close the listener and every connection, then end the server's thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    async def _shutdown(self) -> None:
        self._acceptor.close()
        await self._acceptor.wait_closed()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def start_password_server(workdir: Path, user: str = "trollmoves", password: str = "pw-for-tests",
                          ) -> PasswordSshServer:
    """Start an asyncssh server on a free port that accepts only ``user`` with ``password``.

    It serves SFTP and SCP on this machine's file system (absolute paths, as the current
    user) and writes a ``known_hosts`` file naming its fresh host key into ``workdir``.
    """
    import asyncssh

    workdir.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    server = PasswordSshServer(port=0, user=user, password=password, known_hosts=workdir / "known_hosts")

    class _Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, offered: str) -> bool:
            accepted = username == user and offered == password
            if accepted:
                server.logins += 1
            else:
                server.failed_logins += 1
            return accepted

    async def listen() -> Any:
        return await asyncssh.create_server(_Server, HOST, 0, server_host_keys=[host_key],
                                            sftp_factory=asyncssh.SFTPServer, allow_scp=True)

    thread = threading.Thread(target=loop.run_forever, name="asyncssh-server", daemon=True)
    thread.start()
    try:
        server._acceptor = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        raise
    server._loop, server._thread = loop, thread
    server.port = server._acceptor.get_port()
    public = host_key.export_public_key("openssh").decode().split()[:2]
    server.known_hosts.write_text(f"[{HOST}]:{server.port} {' '.join(public)}\n")
    return server
