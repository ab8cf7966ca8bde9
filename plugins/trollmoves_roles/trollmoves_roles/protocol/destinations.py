"""Which destinations clients may make a server chain (or a mirror section) push to: its ``allowed_destinations``.

Each pattern is matched against every file's final location, written as
``scheme://host[:port]/path/name`` without user, password or query (``file:///path/name`` for
local files, whatever host the client named: the server writes to its own disks). The path is
normalised first (``/a/./b/../c`` is ``/a/c``), so ``..`` cannot climb out of an allowed tree.

Patterns (space- or line-separated):

* a glob: ``*`` matches within one path segment (not ``/``), ``**`` any number of segments,
  ``?`` one character, ``[abc]``/``[!abc]`` one of a set; it starts with ``scheme://``, or
  with ``/`` for local files (``/data/out/**`` is ``file:///data/out/**``);
* ``re:`` followed by a Python regular expression that must match the whole location.

Documented for operators in ``docs/roles/server.md`` and ``docs/security.md``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trollmoves_core.uri import parse_uri, redact, target_path
from trollmoves_roles.protocol.delivery import join_rel_path, on_host

KEY = "allowed_destinations"


@dataclass(frozen=True)
class DestinationRules:
    """The compiled patterns of one chain (``texts`` as written, for messages)."""

    texts: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> DestinationRules:
        """Compile ``texts``; ValueError naming the first bad pattern."""
        texts = tuple(texts)
        if not texts:
            raise ValueError("no pattern given (leave the key out to allow any destination)")
        return cls(texts, tuple(_compile(text) for text in texts))

    def refusal(self, destination: str, files: Sequence[tuple[str, str | None]],
                backup_hosts: Iterable[str] = ()) -> str | None:
        """Why a push of ``files`` (local path, ``path`` key) to ``destination``, or to any of
        ``backup_hosts`` instead, is not allowed; None when every location it may write is."""
        hosts: list[str | None] = [None, *backup_hosts]
        for host in hosts:
            for local, rel_path in files:
                try:
                    base = destination if host is None else on_host(destination, host)
                    location = canonical(join_rel_path(base, rel_path), os.path.basename(local))
                except ValueError as err:  # a bad port: nothing a pattern could allow
                    return f"destination {redact(destination, drop_user=True)} cannot be read: {err}"
                if not any(pattern.fullmatch(location) for pattern in self.patterns):
                    via = "" if host is None else f" (backup host {host})"
                    return f"destination {location}{via} is not allowed by {KEY} ({', '.join(self.texts)})"
        return None


def canonical(destination: str, name: str) -> str:
    """Where a file called ``name`` pushed to ``destination`` lands, as patterns see it."""
    location = parse_uri(destination)
    path = target_path(location.path or "/", name)
    path = posixpath.normpath("/" + path.lstrip("/"))
    if location.scheme == "file":
        return f"file://{path}"
    host = f"[{location.host}]" if ":" in location.host else location.host
    port = f":{location.port}" if location.port else ""
    return f"{location.scheme}://{host}{port}{path}"


def _compile(text: str) -> re.Pattern[str]:
    if text.startswith("re:"):
        try:
            return re.compile(text[3:])
        except re.error as err:
            raise ValueError(f"invalid regular expression {text[3:]!r}: {err}") from None
    if text.startswith("/"):
        text = "file://" + text
    scheme, sep, rest = text.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise ValueError(f"invalid pattern {text!r}: expected scheme://host/path, /path or re:REGEX")
    host, slash, path = rest.partition("/")  # locations carry host names in lower case
    return re.compile(re.escape(scheme.lower() + "://") + _glob(host.lower() + slash + path, text))


def _glob(glob: str, text: str) -> str:
    """The regular expression of a glob (see the module docstring)."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("/**/", i):
            out.append("/(?:.*/)?")
            i += 4
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise ValueError(f"invalid pattern {text!r}: '[' without ']'")
            body = glob[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)
