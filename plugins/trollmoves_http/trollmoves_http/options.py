"""Connection parameters of the HTTP mover, read and checked once.

Values may come from an INI file or ``-o key=value`` as strings, or from YAML as typed
values; both are accepted. A bad value is a :class:`~trollmoves_core.exceptions.ConfigError`
naming the key. Secrets (``password``, ``token``) are never shown in errors or ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trollmoves_core.config import param_bool, param_number
from trollmoves_core.exceptions import ConfigError
from trollmoves_core.uri import Location


@dataclass(frozen=True)
class HttpOptions:
    """Everything the HTTP mover needs besides the URI.

    Parameters (``connection_params`` keys):

    * ``timeout`` (default 10): seconds to connect, and the longest silence while reading.
    * ``verify`` (default true): ``false`` turns off certificate *and* host-name checks for
      ``https://`` (still encrypted, no longer authenticated: trusted networks only).
    * ``ca_file`` (aliases ``ca_certs``, ``cafile``): PEM file of the CA(s) to trust instead of
      the system's.
    * ``username`` (alias ``user``), ``password``: basic auth when the URI has none (the URI wins).
    * ``token``, or ``token_file`` (a file holding it, read when a connection is opened):
      ``Authorization: Bearer`` instead of basic auth.
    * Without any of these, ``~/.netrc`` (or the file ``$NETRC`` names) is used for the host.
    * ``max_redirects`` (default 5): redirects a GET or HEAD follows; a PUT or DELETE never follows one.
    * ``resumes`` (default 3): how often a download that lost its connection continues where it
      stopped (``Range``) before the attempt fails.
    * ``webdav_move`` (default true): upload to a hidden temporary name, then WebDAV ``MOVE`` it
      to the final name; ``false`` PUTs straight to the final name (for servers without ``MOVE``).
    """

    timeout: float = 10.0
    verify: bool = True
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    max_redirects: int = 5
    resumes: int = 3
    webdav_move: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HttpOptions:
        """Read the parameters above; raise :class:`ConfigError` naming a bad key."""
        ca_key = next((k for k in ("ca_file", "ca_certs", "cafile") if params.get(k)), "ca_file")
        ca_file = params.get(ca_key) or None
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"no such file: {ca_file}", key=ca_key)
        token, token_file = params.get("token") or None, params.get("token_file") or None
        if token and token_file:
            raise ConfigError("give either token or token_file, not both", key="token")
        if token_file is not None and not os.path.isfile(token_file):
            raise ConfigError(f"no such file: {token_file}", key="token_file")
        username = params.get("username") or params.get("user") or None
        if (token or token_file) and (username or params.get("password")):
            raise ConfigError("a bearer token and a username/password exclude each other; give one", key="token")
        return cls(timeout=param_number(params, "timeout", 10.0, positive=True),
                   verify=param_bool(params, "verify", True), ca_file=ca_file,
                   username=username, password=params.get("password") or None,
                   token=token, token_file=token_file,
                   max_redirects=int(param_number(params, "max_redirects", 5, minimum=0)),
                   resumes=int(param_number(params, "resumes", 3, minimum=0)),
                   webdav_move=param_bool(params, "webdav_move", True))

    @property
    def tls_verify(self) -> bool | str:
        """What requests takes as ``verify``: False, the CA file, or True (the system CAs)."""
        return self.ca_file or True if self.verify else False

    def credentials_for(self, location: Location) -> tuple[str, str] | None:
        """``(user, password)`` for basic auth: the URI's, else the parameters'; None leaves it to netrc."""
        user = location.user or self.username
        if user is None:
            return None
        return user, location.password or self.password or ""

    def bearer_token(self) -> str | None:
        """The token, from ``token`` or read from ``token_file`` now (so a renewed file is picked up)."""
        if self.token_file is None:
            return self.token
        try:
            with open(self.token_file, encoding="utf-8") as source:
                token = source.read().strip()
        except OSError as err:
            raise ConfigError(f"cannot read it: {err.strerror}", key="token_file") from None
        if not token:
            raise ConfigError(f"{self.token_file} is empty", key="token_file")
        return token
