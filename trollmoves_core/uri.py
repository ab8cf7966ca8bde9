"""Parsing and formatting of transfer URIs.

A location is ``scheme://[user[:password]@]host[:port]/path[?query]``; a plain path is a
``file`` location. Paths are taken and written raw, not percent-encoded, as upstream
trollmoves does on the wire (a space or ``#`` in a file name stays as it is). Passwords
never leave this module in anything meant for humans: use :func:`redact` before logging a
URI or putting it in an error.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit


@dataclass(frozen=True)
class Location:
    """One parsed URI; ``query`` holds the query parameters."""

    scheme: str
    path: str
    host: str = ""
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    query: dict[str, str] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        """True when the path ends with ``/``: the source file name is kept."""
        return self.path.endswith("/")

    def with_path(self, path: str) -> Location:
        """Return a copy pointing at ``path``."""
        return replace(self, path=path)

    def netloc(self, *, with_password: bool = False) -> str:
        """The ``user[:password]@host[:port]`` part."""
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if with_password and self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return auth + host + port

    def geturi(self, *, with_password: bool = False) -> str:
        """Format back to a URI; the password is left out unless asked for."""
        if self.scheme == "file" and not self.host:
            return "file://" + self.path
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.scheme}://{self.netloc(with_password=with_password)}{self.path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.geturi()


def parse_uri(uri: str | os.PathLike[str]) -> Location:
    """Parse a URI or a plain local path into a :class:`Location`.

    >>> parse_uri("sftp://bob:pw@host:2222/data/in/").port
    2222
    """
    text = os.fspath(uri)
    parts = urlsplit(text, allow_fragments=False)
    if not parts.scheme or len(parts.scheme) == 1:  # "C:\..." is a path, not a scheme
        return Location(scheme="file", path=text)
    try:
        port = parts.port
    except ValueError:
        # urllib's own message quotes the bad "port", which may be part of a password.
        raise ValueError(f"invalid port in URI {_hide_userinfo(text)!r}") from None
    return Location(
        scheme=parts.scheme.lower(),
        path=parts.path,
        host=parts.hostname or "",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        query=dict(parse_qsl(parts.query)),
    )


def redact(uri: str | os.PathLike[str]) -> str:
    """Return ``uri`` with any password removed, for logs and error messages."""
    text = os.fspath(uri)
    parts = urlsplit(text, allow_fragments=False)
    if not parts.password:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def _hide_userinfo(text: str) -> str:
    """Mask everything between ``scheme://`` and the last ``@`` of a URI that did not parse:
    a password with an unescaped ``/`` or ``:`` defeats :func:`redact`."""
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def scheme_of(uri: str | os.PathLike[str]) -> str:
    """The scheme of ``uri``, ``"file"`` for plain paths."""
    return parse_uri(uri).scheme


def target_path(dest_path: str, source_name: str) -> str:
    """Apply the destination rule: a path ending in ``/`` keeps ``source_name``.

    Otherwise the last part of ``dest_path`` is the new name.

    >>> target_path("/out/", "a.nc"), target_path("/out/b.nc", "a.nc")
    ('/out/a.nc', '/out/b.nc')
    """
    if not dest_path or dest_path.endswith("/"):
        return dest_path + source_name
    return dest_path


def temporary_sibling(path: str, token: str) -> str:
    """A hidden name next to ``path`` for writing before the atomic rename.

    Watchers skip hidden files, so a half-written file is never picked up downstream. Plain
    string work, no pathlib: this runs once per transferred file (see :mod:`trollmoves_core.mover`).

    >>> temporary_sibling("/out/a.nc", "1f2e")
    '/out/.a.nc.1f2e.part'
    """
    directory, name = posixpath.split(path)
    if not name:
        raise ValueError(f"no file name in {path!r}")
    return posixpath.join(directory, f".{name}.{token}.part")
