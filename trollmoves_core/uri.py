"""Parsing and formatting of transfer URIs.

A location is ``scheme://[user[:password]@]host[:port]/path[?query]``; a plain path is a
``file`` location. Paths are taken and written raw, not percent-encoded, as upstream
trollmoves does on the wire (a space or ``#`` in a file name stays as it is). Passwords
and query-string tokens never leave this module in anything meant for humans: use
:func:`redact` before logging a URI or putting it in an error.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
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
        raise ValueError(f"invalid port in URI {_redact_free_text(text, drop_user=True)!r}") from None
    return Location(
        scheme=parts.scheme.lower(),
        path=parts.path,
        host=parts.hostname or "",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        query=dict(parse_qsl(parts.query)),
    )


def redact(text: str | os.PathLike[str], *, drop_user: bool = False, secrets: Iterable[str] = ()) -> str:
    """``text`` (a URI, or free text quoting URIs) without passwords or tokens, for logs, errors and replies.

    A URI keeps its user (``ftp://user@host``); in free text, or a URI whose password holds a ``/``,
    ``user:password@`` becomes ``user:***@``. ``drop_user`` removes the whole user part
    (``***@`` where the text does not parse). The value of a query (or fragment) parameter that
    carries a credential (:func:`secret_parameter`: ``?token=``, ``sig=``, ``X-Amz-Signature=``,
    ``api_key=``...) becomes ``***``. In a lone URI a value runs to the next ``&``, ``;`` or ``#``;
    in free text it also stops at a blank, a quote, ``)``, ``,``, ``<`` or ``>``, where a quoted
    URI ends. Each of ``secrets`` is masked as ``***``.

    >>> redact("https://cache.example/a.h5?sv=2022-11-02&sig=K3y%2B&se=2026")
    'https://cache.example/a.h5?sv=2022-11-02&sig=***&se=2026'
    """
    text = os.fspath(text)
    if "@" in text:
        netloc = _netloc(text)
        text = _redact_uri(text, drop_user) if netloc and "@" in netloc else _redact_free_text(text, drop_user)
    if "=" in text:
        parameter = _URI_PARAMETER if _LONE_URI.fullmatch(text) else _TEXT_PARAMETER
        text = parameter.sub(_masked_parameter, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


_SECRET_NAMES = frozenset({"sig", "key", "code", "auth", "authorization", "pass", "passwd", "pwd", "jsessionid"})
_SECRET_ENDINGS = ("token", "signature", "secret", "password", "passphrase", "apikey", "credential", "credentials")
_KEY_ENDINGS = ("api_key", "access_key", "secret_key", "private_key", "sas_key", "account_key", "subscription_key")
_PATH_STARTS = ("/", "~", "./", "../")


def secret_parameter(name: str, value: str = "") -> bool:
    """Whether a query parameter ``name=value`` carries a credential. The name (case, ``-``/``_``
    and percent-encoding ignored) is one of ``sig``, ``key``, ``code``, ``auth``, ``authorization``,
    ``pass``, ``passwd``, ``pwd``, ``jsessionid``; or ends in ``token``, ``signature``, ``secret``,
    ``password``, ``passphrase``, ``apikey``, ``credential(s)``; or ends in ``api_key``,
    ``access_key``, ``secret_key``, ``private_key``, ``sas_key``, ``account_key`` or
    ``subscription_key`` and ``value`` is not a path (starts with none of ``/``, ``~``, ``./``,
    ``../``). A bracketed name (``auth[token]``) is secret when any of its parts is. Other names
    are kept, however they end: ``sort_key``, ``ssh_key``, ``key_file``, ``password_file``."""
    parts = [part for part in re.split(r"[\[\]]", unquote(name).lower().replace("-", "_")) if part]
    is_path = unquote(value).startswith(_PATH_STARTS)
    return any(part in _SECRET_NAMES or part.endswith(_SECRET_ENDINGS)
               or (part.endswith(_KEY_ENDINGS) and not is_path) for part in parts)


# A parameter after ?, & or ; (a query, or a path parameter like ;jsessionid=) or # (OAuth puts
# tokens in fragments). A lone URI's value runs to the next separator; in free text it also
# ends where a URI quoted in prose, Markdown or HTML would.
_NAME = r"(?<=[?&;#])([A-Za-z0-9_.~%\[\]-]+)="
_URI_PARAMETER = re.compile(_NAME + r"([^&;#]+)")
_TEXT_PARAMETER = re.compile(_NAME + r"([^&;#\s'\"<>`),]+)")
_LONE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


def _masked_parameter(match: re.Match[str]) -> str:
    return f"{match[1]}=***" if secret_parameter(match[1], match[2]) else match[0]


_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@:]*)(:[^\s@]*)?@")


def _netloc(text: str) -> str | None:
    """The network location of a URI, None for free text (or a password with an unescaped ``/``,
    which ends the netloc early and leaves the ``@`` for the free-text rule)."""
    if any(c.isspace() for c in text):
        return None
    try:
        return urlsplit(text, allow_fragments=False).netloc
    except ValueError:
        return None


def _redact_uri(text: str, drop_user: bool) -> str:
    parts = urlsplit(text, allow_fragments=False)
    if not (parts.password or drop_user):
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}@" if parts.username and not drop_user else ""
    return urlunsplit(parts._replace(netloc=user + host))


def _redact_free_text(text: str, drop_user: bool) -> str:
    def masked(match: re.Match[str]) -> str:
        if drop_user:
            return f"{match[1]}***@"
        return f"{match[1]}{match[2]}:***@" if match[3] else match[0]
    return _USERINFO.sub(masked, text)


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
