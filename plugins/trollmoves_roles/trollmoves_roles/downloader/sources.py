"""What the downloader fetches for one announced ``uri``: an object, or a member of an archive object.

Zipped products in a bucket are announced as fsspec chained URLs, one per member:
``zip://m1.nc::s3://bucket/X.zip`` (``tar://`` likewise). The object after ``::`` is what is
fetched, once for all its members. fsspec's caching prefixes (``simplecache::``...) change
nothing for a download and are dropped. Any other chain is refused with a :class:`BadMessage`
that names the part not handled and why.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from trollmoves_core.uri import redact
from trollmoves_roles.protocol.messages import BadMessage

ARCHIVE_PROTOCOLS = ("zip", "tar")
"""fsspec archive file systems whose members the downloader can deliver (unpack.py's kinds)."""
CACHE_PROTOCOLS = ("simplecache", "filecache", "blockcache")
"""fsspec caching layers: a download needs none of them."""


@dataclass(frozen=True)
class Source:
    """One announced file: its ``uri`` as announced, the object to fetch, and the member inside it."""

    announced: str
    url: str
    member: str | None = None
    kind: str | None = None
    """The archive kind (``zip``, ``tar``) when :attr:`member` is set."""

    @property
    def member_name(self) -> str:
        """The member's file name (its path's last part)."""
        return posixpath.basename(self.member or "")


def split_chained(uri: str) -> tuple[str, str | None, str | None]:
    """``(object url, archive kind, member)`` of an announced ``uri``; kind and member are None for a
    plain URL. Raises :class:`BadMessage` naming what cannot be fetched and why."""
    if "::" not in uri:
        return uri, None, None
    links = [link for link in uri.split("::") if link.rstrip(":/") not in CACHE_PROTOCOLS]
    shown = redact(uri, drop_user=True)
    if len(links) == 1:
        return links[0], None, None
    protocols = [_protocol(link) for link in links[:-1]]
    unknown = [p or link for p, link in zip(protocols, links, strict=False) if p not in ARCHIVE_PROTOCOLS]
    if unknown:
        raise BadMessage(f"cannot fetch {shown}: {unknown[0]!r} in a chained URL is not handled; only members of "
                         f"one {' or '.join(ARCHIVE_PROTOCOLS)} archive (zip://member::s3://bucket/X.zip) are")
    if len(links) > 2:
        raise BadMessage(f"cannot fetch {shown}: an archive inside an archive ({' in '.join(protocols)}) is not "
                         "handled; only members of one archive object are")
    member = links[0].split("://", 1)[1].lstrip("/")
    parts = member.split("/")
    if not member or ".." in parts:
        raise BadMessage(f"cannot fetch {shown}: the archive member {member!r} is not a relative path inside "
                         "the archive")
    return links[1], protocols[0], member


def _protocol(link: str) -> str | None:
    return link.split("://", 1)[0].lower() if "://" in link else None
