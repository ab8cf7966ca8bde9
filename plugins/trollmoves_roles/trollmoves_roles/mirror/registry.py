"""What a mirror section re-announced, and which internal servers announced it.

Entries are keyed like the client keys transfers (md5 of the sorted uids), so the same file
announced by several internal servers is one entry with several sources, announced once.
Used from the section's event-loop thread only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from posttroll.message import Message

from trollmoves_roles.protocol import delivery
from trollmoves_roles.protocol.messages import dicts_with

DEFAULT_CAPACITY = 20000
"""Entries kept, oldest dropped first."""


@dataclass(eq=False)
class Entry:
    """One re-announced file (or dataset/collection)."""

    key: str
    uids: list[str]
    subject: str
    """The subject it was re-announced under (the section's ``topic``)."""
    sources: list[Message] = field(default_factory=list)
    """The internal servers' announcements, first received first."""
    time: float = field(default_factory=time.time)
    announced: bool = True
    """False for a file fetched to be unpacked (``compression``): only its unpacked files are offered."""
    unpacked: bool = False
    """True for the files unpacked from a fetched file: they exist only here, no internal server has them."""

    def add_source(self, message: Message) -> bool:
        """Remember one more internal server announcing it; False when that server is known."""
        return delivery.add_source(self.sources, message)

    def source_paths(self) -> dict[str, str]:
        """uid → the internal server's path of that file."""
        return {str(d["uid"]): uri_path(d["uri"]) for d in dicts_with(self.sources[0].data, "uid")
                if "uri" in d}


def uri_path(uri: object) -> str:
    """The path part of an announced ``uri`` (a plain path stays as it is)."""
    text = str(uri)
    return urlsplit(text).path if "://" in text else text


class ReannouncedFiles:
    """Bounded, insertion-ordered map of :class:`Entry` by key."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def add(self, entry: Entry) -> None:
        self._entries[entry.key] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def newest(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """``info`` entries (``<topic>/<uid>``) starting with ``prefix``, newest first, at most ``limit``."""
        found: list[str] = []
        for entry in reversed(self._entries.values()):
            if not entry.announced:
                continue
            for uid in entry.uids:
                if limit is not None and len(found) >= limit:
                    return found
                name = f"{entry.subject.rstrip('/')}/{uid}"
                if name.startswith(prefix):
                    found.append(name)
        return found

    def __len__(self) -> int:
        return len(self._entries)
