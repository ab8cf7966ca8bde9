"""The SSH connection layer shared by the SFTP and SCP movers.

Opening a connection (host keys, login, keepalive, fast ciphers, large windows), the pooled
connection object (one channel, for SFTP, on a login that up to ``sessions_per_login`` of
them share), and the translation of paramiko's errors into ones the retry logic
classifies correctly: network trouble becomes :class:`ConnectionError` (transient), a
rejected host key or login becomes a :class:`~trollmoves_ssh.errors.SshLoginError` (never
retried).
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import socket
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import paramiko

from trollmoves_core.pool import ConnectionPool
from trollmoves_core.uri import Location
from trollmoves_ssh.errors import AuthenticationError, SshLoginError, UnknownHostKeyError
from trollmoves_ssh.options import SshOptions

if TYPE_CHECKING:
    from trollmoves_ssh.pipeline import Spare

LOG = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 22
SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
SPARE_IDLE = 2.0
"""Seconds a pooled connection stays idle before the file it opened ahead is deleted: a burst
keeps it, while a process killed later leaves nothing behind."""

class SshConnection:
    """One channel's worth of a logged-in SSH client: the pool opens the channel, the SFTP session
    on it starts on first use; the login may carry other connections' sessions too. ``release``
    is called on close."""

    def __init__(self, client: paramiko.SSHClient, endpoint: str, options: SshOptions,
                 release: Callable[[], None] | None = None, *, shared: bool = False,
                 channel: paramiko.Channel | None = None) -> None:
        self.client = client
        self.endpoint = endpoint
        """``user@host:port``, for messages."""
        self.options = options
        self.uses = 1 if shared else 0
        """Transfers run on this connection, counting one for a login that was in use before it."""
        self._release = release if release is not None else client.close
        self.no_sftp = False
        """Set when the server has no SFTP subsystem: shell commands replace it."""
        self._sftp: paramiko.SFTPClient | None = None
        self._channel = channel
        """A channel opened for the SFTP session, not used yet."""
        self.spare: Spare | None = None
        """The next upload's temporary file, opened ahead on this SFTP session (by the SFTP mover)."""
        self.key: Hashable = None
        """The pool's key for this connection."""
        self.litter: list[str] = []
        """Files opened ahead on a session (or connection) lost since: deleted by :meth:`remove_litter`."""

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None:
            raise ConnectionError(f"SSH connection to {self.endpoint} is closed")
        return transport

    def is_alive(self) -> bool:
        """The transport is up, as far as it knows: a write may still find the socket closed (EOFError)
        before its reader thread has seen the end."""
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    def sftp(self) -> paramiko.SFTPClient:
        """The connection's SFTP session, opened once and kept."""
        if self._sftp is None:
            channel, self._channel = self._channel, None
            if channel is None:
                channel = open_channel(self.transport, self.options)
            channel.invoke_subsystem("sftp")
            channel.settimeout(self.options.transfer_timeout)
            self._sftp = paramiko.SFTPClient(channel)
        return self._sftp

    def remove_litter(self) -> None:
        """Delete the files opened ahead on an SFTP session dropped after an error (best effort, never
        raises). What the connection cannot reach now (it is lost too) stays in ``litter``."""
        from trollmoves_ssh.mover import remove

        while self.litter:
            path = self.litter[-1]
            try:
                remove(self, path)
            except FileNotFoundError:
                pass
            except (EOFError, ConnectionError, TimeoutError, paramiko.SSHException) as err:
                LOG.debug("Could not remove %s on %s yet: %s", path, self.endpoint, _reason(err))
                return
            except OSError as err:
                LOG.warning("Could not remove %s on %s: %s", path, self.endpoint, _reason(err))
            self.litter.pop()

    def tidy(self) -> None:
        """Delete the file opened ahead and any litter, on an idle connection (best effort); a lost
        connection keeps them for :meth:`close` to hand on."""
        if not self.is_alive():
            return
        spare, self.spare = self.spare, None
        if spare is not None:
            try:
                spare.discard(wait=True)
            except Exception as err:  # the connection is lost: whoever closes it hands the path on
                LOG.debug("Could not delete %s on %s: %s", spare.path, self.endpoint, _reason(err))
                self.litter.append(spare.path)
        self.remove_litter()

    def drop_sftp(self) -> None:
        """Close the SFTP session (its state is unknown after a failed transfer); keep the login."""
        if self.spare is not None:
            self.litter.append(self.spare.path)
            self.spare = None
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            try:
                sftp.close()
            except Exception as err:  # closing a broken channel often fails; nothing to do about it
                LOG.debug("Ignoring error while closing an SFTP session on %s: %s", self.endpoint, err)

    def run(self, command: list[str]) -> None:
        """Run ``command`` (quoted for the remote shell); raise OSError with its stderr on failure."""
        text = shlex.join(command)
        channel = self.transport.open_session(timeout=self.options.connect_timeout)
        try:
            channel.settimeout(self.options.transfer_timeout)
            channel.exec_command(text)
            channel.shutdown_write()
            stderr = channel.makefile_stderr("rb").read()
            status = channel.recv_exit_status()
        finally:
            channel.close()
        if status != 0:
            message = stderr.decode(errors="replace").strip() or f"exit status {status}"
            raise OSError(f"remote command {text!r} failed: {message}")

    def close(self) -> None:
        """Delete the file opened ahead and any litter (best effort), close the session, release the
        login; what could not be deleted stays in ``litter``."""
        self.tidy()
        self.drop_sftp()  # hands a spare left to litter
        if self._channel is not None:
            self._channel.close()
        self._release()


def open_channel(transport: paramiko.Transport, options: SshOptions) -> paramiko.Channel:
    """A new session channel on ``transport``, with our window and packet sizes."""
    return transport.open_session(window_size=options.window_size, max_packet_size=options.max_packet_size,
                                  timeout=options.connect_timeout)


def endpoint(location: Location, options: SshOptions) -> str:
    """``user@host:port`` of ``location``, for messages."""
    return f"{options.user_for(location)}@{location.host}:{location.port or DEFAULT_PORT}"


def connect(location: Location, options: SshOptions, accepted: dict[str, paramiko.PKey] | None = None,
            ) -> paramiko.SSHClient:
    """Open a logged-in client to ``location``'s host.

    ``accepted`` remembers host keys accepted by the ``warn`` and ``auto_add`` policies, so
    that a key which changes later is refused like one from a known-hosts file.

    :raises UnknownHostKeyError: the host key is unknown and the policy is ``reject``.
    :raises AuthenticationError: the login failed.
    :raises ConnectionError: the host could not be reached or the SSH handshake failed.
    """
    port = location.port or DEFAULT_PORT
    user = options.user_for(location)
    where = f"{location.host}:{port}"
    who = endpoint(location, options)
    for key_file in options.key_filenames:
        if not os.access(os.path.expanduser(key_file), os.R_OK):
            raise SshLoginError(f"cannot read SSH key file {key_file} (ssh_key_filename)")
    client = paramiko.SSHClient()
    _load_host_keys(client, options)
    host_key_name = location.host if port == DEFAULT_PORT else f"[{location.host}]:{port}"
    accepted = {} if accepted is None else accepted
    if host_key_name in accepted:  # accepted earlier by a lenient policy: from now on it must not change
        client.get_host_keys().add(host_key_name, accepted[host_key_name].get_name(), accepted[host_key_name])
    client.set_missing_host_key_policy(_HostKeyPolicy(options.host_key_policy, location.host, port, accepted))
    password = options.password_for(location)
    try:
        client.connect(
            location.host, port=port, username=user, password=password,
            key_filename=[os.path.expanduser(k) for k in options.key_filenames] or None,
            passphrase=options.passphrase, allow_agent=options.allow_agent, look_for_keys=options.look_for_keys,
            timeout=options.connect_timeout, banner_timeout=options.connect_timeout,
            auth_timeout=options.connect_timeout, channel_timeout=options.connect_timeout,
            transport_factory=functools.partial(_transport, options=options),
        )
    except SshLoginError:
        client.close()
        raise
    except paramiko.BadHostKeyException as err:
        client.close()
        raise SshLoginError(
            f"host key of {where} does not match the known one ({err.key.get_name()} {err.key.fingerprint}, "
            f"expected {err.expected_key.fingerprint}): the server was reinstalled or someone is in the middle; "
            "fix the known_hosts entry once you know which") from err
    except paramiko.AuthenticationException as err:
        client.close()
        raise AuthenticationError(f"authentication failed for {who} ({_offered(options, password)}): "
                                  f"{err}") from err
    except paramiko.IncompatiblePeer as err:
        client.close()
        raise SshLoginError(f"cannot agree on SSH algorithms with {where}: {err}") from err
    except (paramiko.SSHException, OSError, EOFError) as err:
        client.close()
        if isinstance(err, socket.timeout | TimeoutError):
            raise TimeoutError(f"connecting to {where} timed out after {options.connect_timeout:g} s") from err
        raise ConnectionError(f"cannot connect to {where}: {_reason(err)}") from err
    except Exception:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None and options.keepalive_interval > 0:
        transport.set_keepalive(int(max(1, options.keepalive_interval)))
    LOG.debug("Connected to %s (%s)", who, transport.local_cipher if transport else "?")
    return client


class _Login:
    """A login being opened (``client`` not done yet) or open, and the connections that use it."""

    def __init__(self) -> None:
        self.client: Future[paramiko.SSHClient] = Future()
        self.sessions = 1
        self.limit: int | None = None
        """Sessions the server allows on it, once it refused one (its ``MaxSessions`` is lower)."""

    def has_room(self, per_login: int) -> bool:
        return self.sessions < min(per_login, self.limit or per_login)

    def usable(self) -> bool:
        if not self.client.done():
            return True
        if self.client.exception() is not None:
            return False
        transport = self.client.result().get_transport()
        return transport is not None and transport.is_active()


class SshSessions:
    """Pooled SSH connections for one mover, with one transparent re-open of dropped ones.

    A connection the pool needs is a new channel on a login to the same host that has fewer than
    ``sessions_per_login``, or one being opened (its users wait for it), or else on a new login;
    a login is closed with the last connection on it. A login that refuses a channel (the
    server's ``MaxSessions`` is lower) is held at the sessions it has; the channel opens elsewhere.
    """

    def __init__(self, options: SshOptions, idle_timeout: float) -> None:
        self.options = options
        self._locations: dict[Hashable, Location] = {}
        self._accepted_keys: dict[str, paramiko.PKey] = {}
        self._logins: dict[Hashable, list[_Login]] = {}
        self._lock = threading.Lock()
        self._litter: dict[Hashable, list[str]] = {}
        """Files opened ahead or half written on connections lost since, for the next connection to
        the host to delete."""
        self._closed = False
        self._warned: set[Hashable] = set()
        """Hosts whose refusal of a session was logged."""
        self.pool: ConnectionPool[SshConnection] = ConnectionPool(
            self._open, self._close, SshConnection.is_alive, idle_timeout=idle_timeout,
            tidy=SshConnection.tidy, tidy_after=SPARE_IDLE)

    def _open(self, key: Hashable) -> SshConnection:
        location = self._locations[key]
        while True:
            login, shared = self._login_for(key)
            if not shared:
                try:
                    login.client.set_result(connect(location, self.options, self._accepted_keys))
                except BaseException as err:
                    login.client.set_exception(err)
            try:
                client = login.client.result()  # a sharer waits for the login being opened, and gets its error
                channel = open_channel(client.get_transport(), self.options)
            except (paramiko.SSHException, EOFError) as err:
                if shared and login.usable() and isinstance(err, paramiko.SSHException):
                    self._full(key, login, err)
                    continue
                self._release(key, login)
                raise ConnectionError(f"cannot open an SSH session on {endpoint(location, self.options)}: "
                                      f"{_reason(err)}") from err
            except BaseException:
                self._release(key, login)
                raise
            conn = SshConnection(client, endpoint(location, self.options), self.options,
                                 lambda login=login: self._release(key, login), shared=shared, channel=channel)
            conn.key = key
            return conn

    def _login_for(self, key: Hashable) -> tuple[_Login, bool]:
        """A login with room for one more session, counting it; whether it was open (or being opened)."""
        with self._lock:
            logins = self._logins.setdefault(key, [])
            logins[:] = [login for login in logins if login.usable()]  # dead ones close with their last user
            login = next((login for login in logins if login.has_room(self.options.sessions_per_login)), None)
            if login is None:
                login = _Login()
                logins.append(login)
                return login, False
            login.sessions += 1
            return login, True

    def _full(self, key: Hashable, login: _Login, err: paramiko.SSHException) -> None:
        """``login`` refused one more session: it keeps the ones it has."""
        with self._lock:
            login.limit = max(1, min(login.limit or login.sessions, login.sessions - 1))
            warn = key not in self._warned
            self._warned.add(key)
        if warn:
            LOG.warning("SSH server %s refused a session on a login already in use (%s): its MaxSessions is "
                        "lower than sessions_per_login (%d); opening another login instead (set "
                        "sessions_per_login to the server's MaxSessions or less)",
                        endpoint(self._locations[key], self.options), _reason(err), self.options.sessions_per_login)
        self._release(key, login)

    def _close(self, conn: SshConnection) -> None:
        conn.close()
        self._keep_litter(conn.key, conn)

    def _release(self, key: Hashable, login: _Login) -> None:
        with self._lock:
            login.sessions -= 1
            if login.sessions > 0:
                return
            logins = self._logins.get(key, [])
            if login in logins:
                logins.remove(login)
        if login.client.done() and login.client.exception() is None:
            login.client.result().close()

    def run(self, key: Hashable, location: Location, action: Callable[[SshConnection], T]) -> T:
        """Run ``action`` on a pooled connection to ``location``.

        A reused connection found dead during the action (the server restarted, a firewall
        dropped it) is replaced by a new one and the action runs once more; the actions are
        safe to repeat because uploads go to a fresh temporary name.
        """
        self._locations[key] = location
        try:
            return self._once(key, action, reopen=True)
        except _Dropped as dropped:
            LOG.info("SSH connection to %s was dropped (%s); reconnecting", dropped.endpoint, dropped.__cause__)
            self.pool.discard_idle(key)
            return self._once(key, action, reopen=False)

    def _once(self, key: Hashable, action: Callable[[SshConnection], T], *, reopen: bool) -> T:
        failure: Exception | None = None
        with self.pool.connection(key) as conn:
            conn.uses += 1
            with self._lock:
                conn.litter += self._litter.pop(key, [])
            try:
                return action(conn)
            except Exception as err:
                # A write can meet the closed socket (EOFError) before the transport has noticed.
                if conn.is_alive() and not isinstance(err, EOFError | ConnectionError):
                    if not is_server_status(err):
                        conn.drop_sftp()
                    failure = err  # the login survives: give the connection back to the pool
                else:
                    self._keep_litter(key, conn)
                    if reopen and conn.uses > 1:
                        raise _Dropped(conn.endpoint) from err
                    raise ConnectionError(f"SSH connection to {conn.endpoint} lost: {_reason(err)}") from err
        raise failure

    def _keep_litter(self, key: Hashable, conn: SshConnection) -> None:
        """Hand what ``conn`` could not delete (it was lost) to the next connection to the host."""
        conn.drop_sftp()
        if not conn.litter:
            return
        with self._lock:
            if self._closed:
                for path in conn.litter:
                    LOG.warning("Could not remove %s on %s: the connection was lost", path, conn.endpoint)
            else:
                self._litter.setdefault(key, []).extend(conn.litter)
        conn.litter.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.pool.close_all()
        with self._lock:
            left = [path for paths in self._litter.values() for path in paths]
            self._litter.clear()
        for path in left:
            LOG.warning("Could not remove %s: the connection was lost", path)


class _Dropped(Exception):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.endpoint = endpoint


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    def __init__(self, policy: str, host: str, port: int, accepted: dict[str, paramiko.PKey]) -> None:
        self.policy, self.host, self.port, self.accepted = policy, host, port, accepted

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        what = f"{self.host}:{self.port} ({key.get_name()} {key.fingerprint})"
        if self.policy in ("auto_add", "warn"):
            if self.policy == "warn":
                LOG.warning("Accepting unknown SSH host key of %s (host_key_policy=warn)", what)
            self.accepted[hostname] = key
            return
        port = f"-p {self.port} " if self.port != DEFAULT_PORT else ""
        raise UnknownHostKeyError(
            f"unknown SSH host key of {what}: add it to ~/.ssh/known_hosts after checking it "
            f"(ssh-keyscan {port}{self.host} >> ~/.ssh/known_hosts), or pass known_hosts=FILE, "
            "or set host_key_policy=warn or auto_add")


def _transport(sock: socket.socket, *, options: SshOptions, **kwargs: object) -> paramiko.Transport:
    transport = paramiko.Transport(sock, default_window_size=options.window_size,
                                   default_max_packet_size=options.max_packet_size, **kwargs)  # type: ignore[arg-type]
    security = transport.get_security_options()
    available = security.ciphers
    preferred = [c for c in options.ciphers if c in available]
    security.ciphers = tuple(preferred + [c for c in available if c not in preferred])
    return transport


def _load_host_keys(client: paramiko.SSHClient, options: SshOptions) -> None:
    files = [*SYSTEM_KNOWN_HOSTS, *([options.known_hosts] if options.known_hosts else [])]
    for name in files:
        path = Path(os.path.expanduser(name))
        if name == options.known_hosts and not path.is_file():
            raise SshLoginError(f"known_hosts file {path} does not exist")
        if path.is_file():
            try:
                client.load_system_host_keys(str(path))
            except (OSError, paramiko.SSHException) as err:
                LOG.warning("Ignoring unreadable known-hosts file %s: %s", path, err)


def _offered(options: SshOptions, password: str | None) -> str:
    offered = [f"key file {', '.join(options.key_filenames)}"] if options.key_filenames else []
    if options.allow_agent:
        offered.append("ssh-agent keys")
    if options.look_for_keys:
        offered.append("~/.ssh default keys")
    if password:
        offered.append("password")
    return "tried " + ", ".join(offered) if offered else "no credentials offered"


def is_server_status(err: BaseException) -> bool:
    """An error the SFTP server answered with (no such file...): the session is still in step."""
    return isinstance(err, OSError) and not isinstance(err, ConnectionError | TimeoutError | socket.timeout)


def _reason(err: BaseException) -> str:
    if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
        causes = {e.strerror or str(e) for e in err.errors.values()}
        return "; ".join(sorted(causes)).lower()
    text = str(err).strip()
    return text or type(err).__name__
