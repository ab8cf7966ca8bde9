"""Connection parameters of the FTP mover, read and checked once.

Values may come from an INI file or ``-o key=value`` as strings, or from YAML as typed
values; both are accepted. A bad value is a :class:`~trollmoves_core.exceptions.ConfigError`
naming the key.
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
class FtpOptions:
    """Everything needed to open and use an FTP connection, besides the URI.

    Parameters (``connection_params`` keys):

    * ``passive`` (default true) or ``active`` (default false): the data-connection mode.
    * ``timeout`` (default 10): seconds for connecting and for each network read or write.
    * ``ca_file`` (alias ``cafile``): PEM file of the CA that signed an ``ftps://`` server's
      certificate. Without it the system CAs are used.
    * ``verify`` (default true): ``false`` turns off certificate *and* host-name checks for
      ``ftps://`` (still encrypted, no longer authenticated: trusted networks only).
    * ``username`` (alias ``user``), ``password``: used when the URI has none (the URI wins).
    """

    passive: bool = True
    timeout: float = 10.0
    verify: bool = True
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FtpOptions:
        """Read the parameters above; raise :class:`ConfigError` naming a bad key."""
        ca_file = params.get("ca_file") or params.get("cafile")
        if ca_file is not None and not os.path.isfile(ca_file):
            raise ConfigError(f"no such file: {ca_file}", key="ca_file")
        return cls(passive=_passive(params), timeout=param_number(params, "timeout", 10.0, positive=True),
                   verify=param_bool(params, "verify", True), ca_file=ca_file,
                   username=params.get("username") or params.get("user"), password=params.get("password"))

    def credentials_for(self, location: Location) -> tuple[str | None, str | None]:
        """``(user, password)``: the URI's, else ``username``/``password`` (either may be None)."""
        return location.user or self.username, location.password or self.password


def _passive(params: Mapping[str, Any]) -> bool:
    both = "passive" in params and "active" in params
    if both and param_bool(params, "passive", True) == param_bool(params, "active", False):
        raise ConfigError("'passive' and 'active' contradict each other; give only one", key="passive")
    if "active" in params:
        return not param_bool(params, "active", False)
    return param_bool(params, "passive", True)
