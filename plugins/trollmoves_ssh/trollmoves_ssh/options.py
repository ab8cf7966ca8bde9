"""Connection parameters of the SSH movers, read and checked once.

Values may come from an INI file or ``-o key=value`` as strings, or from YAML as typed
values; both are accepted. Upstream's parameter names work as they do there.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trollmoves_core.config import param_bool, param_number
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.uri import Location

HOST_KEY_POLICIES = ("reject", "warn", "auto_add")

FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
"""Tried first: the AEAD ciphers need no separate MAC and are the cheapest per packet in paramiko."""
BLOCK_SIZE = 255 * 512
"""Bytes per SFTP request and SCP write. paramiko copies the unsent rest of a block again for
each channel packet it sends (32 KiB towards OpenSSH), so the cost of a block grows with the
square of its size, while smaller blocks mean more requests: this size balances the two."""

SESSIONS_PER_LOGIN = 4
"""Default of ``sessions_per_login``: pooled connections sharing one SSH login, each on its own
channel. Concurrent transfers to one host cost a login per four, not one each (a login costs
about six round trips more than a new channel on an open one, which a burst pays while its
pushes wait, and sshd drops new connections beyond ``MaxStartups``, 10, that have not logged in
yet); well below sshd's default ``MaxSessions`` (10), which some servers lower. A login that
refuses a session anyway takes no more: the session opens on another login."""


@dataclass(frozen=True)
class SshOptions:
    """Everything needed to open and use an SSH connection, besides the URI.

    Parameters (``connection_params`` keys):

    * ``ssh_key_filename`` (upstream scp name) or ``ssh_private_key_file`` (upstream sftp
      name): private key file(s); a list or a comma-separated string.
    * ``ssh_key_passphrase``: passphrase of an encrypted key.
    * ``username``, ``password``: used when the URI has none (the URI wins); the default
      user is the one running trollmoves.
    * ``allow_agent`` (true), ``look_for_keys`` (true): also try ssh-agent keys and
      ``~/.ssh/id_*``.
    * ``host_key_policy``: ``reject`` (default; the host must be in ``~/.ssh/known_hosts``,
      ``/etc/ssh/ssh_known_hosts`` or the ``known_hosts`` file), ``warn`` (log and accept)
      or ``auto_add`` (accept silently). A key accepted so is remembered for the life of the
      mover (not written to any file); a key that differs from a known one is always rejected.
    * ``known_hosts``: an extra known-hosts file (read only).
    * ``ssh_connection_timeout`` (10 s): TCP connect, banner and authentication timeout.
    * ``transfer_timeout`` (60 s; upstream scp: ``scpclient_timeout_seconds``): how long a
      transfer may stall before it fails.
    * ``keepalive_interval`` (15 s): SSH keepalives on pooled connections; 0 disables.
    * ``ciphers``: preferred ciphers, comma-separated (default :data:`FAST_CIPHERS`, then
      paramiko's list).
    * ``window_size`` (16 MiB), ``max_packet_size`` (256 KiB): what we announce for
      incoming data, which sets how fast downloads can go.
    * ``block_size`` (127.5 KiB, :data:`BLOCK_SIZE`): SFTP request and SCP block size.
    * ``sessions_per_login`` (:data:`SESSIONS_PER_LOGIN`): SFTP/SCP sessions sharing one login;
      at most the server's ``MaxSessions``.
    * ``open_ahead`` (true): SFTP opens the next upload's temporary file while it renames the
      last one, in that directory on that connection: an upload after the first costs two round
      trips instead of three. The file waits there empty, hidden, until an upload into that
      directory takes it, or the connection is idle for two seconds or closes and deletes it.
    """

    key_filenames: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_agent: bool = True
    look_for_keys: bool = True
    host_key_policy: str = "reject"
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    transfer_timeout: float = 60.0
    keepalive_interval: float = 15.0
    ciphers: tuple[str, ...] = FAST_CIPHERS
    window_size: int = 16 * 1024 * 1024
    max_packet_size: int = 256 * 1024
    block_size: int = BLOCK_SIZE
    open_ahead: bool = True
    sessions_per_login: int = SESSIONS_PER_LOGIN

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SshOptions:
        """Read the parameters above; raise :class:`ConfigError` naming a bad key."""
        keys: list[str] = []
        for name in ("ssh_key_filename", "ssh_private_key_file"):
            keys += _as_list(params.get(name))
        policy = str(params.get("host_key_policy", "reject")).strip().lower().replace("-", "_")
        if policy not in HOST_KEY_POLICIES:
            raise ConfigError(f"unknown host key policy {policy!r}, choose one of {', '.join(HOST_KEY_POLICIES)}",
                              key="host_key_policy")
        ciphers = tuple(_as_list(params.get("ciphers"))) or FAST_CIPHERS
        timeout = params.get("transfer_timeout", params.get("scpclient_timeout_seconds", 60))
        return cls(
            key_filenames=tuple(dict.fromkeys(keys)),
            passphrase=_text(params.get("ssh_key_passphrase")),
            username=_text(params.get("username")),
            password=_text(params.get("password")),
            allow_agent=param_bool(params, "allow_agent", True),
            look_for_keys=param_bool(params, "look_for_keys", True),
            host_key_policy=policy,
            known_hosts=_text(params.get("known_hosts")),
            connect_timeout=param_number(params, "ssh_connection_timeout", 10.0, minimum=0),
            transfer_timeout=param_number({"transfer_timeout": timeout}, "transfer_timeout", 60.0, minimum=0),
            keepalive_interval=param_number(params, "keepalive_interval", 15.0, minimum=0),
            ciphers=ciphers,
            window_size=int(param_number(params, "window_size", 16 * 1024 * 1024, minimum=0)),
            max_packet_size=int(param_number(params, "max_packet_size", 256 * 1024, minimum=0)),
            block_size=int(param_number(params, "block_size", BLOCK_SIZE, minimum=1024)),
            open_ahead=param_bool(params, "open_ahead", True),
            sessions_per_login=int(param_number(params, "sessions_per_login", SESSIONS_PER_LOGIN, minimum=1)),
        )

    def user_for(self, location: Location) -> str:
        """The login name: the URI's, else ``username``, else the local user."""
        return location.user or self.username or getpass.getuser()

    def password_for(self, location: Location) -> str | None:
        """The password: the URI's, else ``password``."""
        return location.password or self.password


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def _as_list(value: Any) -> list[str]:
    if value is None or value is False:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip() and part.strip().lower() != "none"]


