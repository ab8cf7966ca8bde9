"""Which local files a request may name: only announced ones, still inside their chain's directories."""

from __future__ import annotations

import os
from collections.abc import Sequence
from stat import S_ISLNK, S_ISREG
from urllib.parse import urlsplit

from trollmoves_roles.server.announced import AnnouncedFiles


class AccessDenied(Exception):
    """The request names a file this server will not serve; the message says why."""


def local_path(uri: str) -> str:
    """The local path a request's ``uri`` names (its URL path, as upstream reads it)."""
    if not isinstance(uri, str) or not uri or "\x00" in uri:
        raise AccessDenied(f"invalid uri {uri!r:.200}")
    return urlsplit(uri).path if "://" in uri else uri


def check_access(uri: str, announced: AnnouncedFiles, directories: Sequence[str] | None) -> str:
    """Return the path ``uri`` names if it may be served; raise :class:`AccessDenied` otherwise.

    :param directories: the chain's watched directories (and unpack directory). None for
        chains without a directory of their own (``listen``): then the file must at least not
        resolve outside the directory it was announced in.
    """
    path = local_path(uri)
    if not os.path.isabs(path):
        raise AccessDenied(f"{path} is not an absolute path")
    if ".." in path.split("/") or os.path.normpath(path) != path.rstrip("/").replace("//", "/"):
        raise AccessDenied(f"{path} is not a normalised path (path traversal rejected)")
    parent = os.path.dirname(path)
    real_parent = os.path.realpath(parent)
    real = _resolved(path, real_parent)
    if directories is not None:
        inside = [d for d in directories if _is_within(path, d)]
        if not inside:
            raise AccessDenied(f"{path} is outside the served directories")
        if not any(_is_within(real, real_parent if d.rstrip("/") == parent else os.path.realpath(d))
                   for d in inside):
            raise AccessDenied(f"{path} resolves outside the served directories (to {real})")
    elif not _is_within(real, real_parent):
        raise AccessDenied(f"{path} resolves outside its directory (to {real})")
    entry = announced.get(path)
    if entry is None:
        raise AccessDenied(f"{path} was not announced by this server")
    try:
        stat = os.stat(path)
    except OSError:
        stat = None
    if stat is None or not S_ISREG(stat.st_mode):
        raise AccessDenied(f"{path} not reachable: no such file")
    if not entry.same_file(stat):
        raise AccessDenied(f"{path} was replaced since it was announced")
    return path


def _resolved(path: str, real_parent: str) -> str:
    """``os.path.realpath(path)`` given that of its directory: the parent resolved once serves
    both checks (a realpath is an lstat per component)."""
    name = os.path.basename(path)
    try:
        link = S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        link = False
    return os.path.realpath(path) if link or not name else os.path.join(real_parent, name)


def _is_within(path: str, directory: str) -> bool:
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory if directory == "/" else directory + "/")
