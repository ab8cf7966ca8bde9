"""Fetching files from internal servers into staging directories, once per file however many
external requests wait for it (single flight).

A fetch asks an internal server to ``push`` the file to a fresh hidden directory under the
section's staging destination (``destination``, a path or URL on this host; by default the
temporary directory), trying the other internal servers that announced the same file when
one fails. Every external request for the file while the fetch runs waits for it. Once the
last waiting delivery is done, every internal server that announced the file gets an
``ack``, and the staged copy is removed ``remove_delay`` seconds later unless another request
uses it meanwhile.

Everything here runs in the section's event-loop thread.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from posttroll.message import Message

from trollmoves_core.checksum import ChecksumMismatch, Digest, from_data, verify_file
from trollmoves_core.uri import parse_uri, redact
from trollmoves_roles.bus.loop import EventLoop, Timer
from trollmoves_roles.bus.transport import Requester
from trollmoves_roles.mirror.config import MirrorConfig
from trollmoves_roles.mirror.registry import Entry
from trollmoves_roles.protocol import delivery
from trollmoves_roles.protocol.messages import FILE_TYPES, MESSAGE_VERSION, dicts_with

LOG = logging.getLogger(__name__)

FETCH_PREFIX = ".mirror-"
"""Staging directories are hidden, so watchers on the staging directory ignore them."""

RECENT_FETCHES = 1000

FetchCallback = Callable[["Fetch | None", "str | None"], None]
"""Called with ``(fetch, None)`` once the files are staged, or ``(None, reason)``."""


class FetchError(Exception):
    """A fetch could not start (bad staging destination); the message says why."""


@dataclass(eq=False)
class Fetch:
    """One file (or dataset) being or having been fetched into :attr:`directory`."""

    entry: Entry
    directory: str
    url: str
    """The destination the internal servers are asked to push to (with the login)."""
    files: dict[str, str] = field(default_factory=dict)
    """uid → staged local path."""
    ready: bool = False
    waiters: list[FetchCallback] = field(default_factory=list)
    users: int = 0
    tried: set[str] = field(default_factory=set)
    source: Message | None = None
    acked: bool = False
    expiry: Timer | None = None
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)

    def staged(self) -> bool:
        """True when every staged file is still there."""
        return self.ready and all(os.path.isfile(path) for path in self.files.values())


class Stager:
    """Single-flight fetches for one mirror section."""

    def __init__(self, config: MirrorConfig, loop: EventLoop, requester: Requester) -> None:
        self.config = config
        self._loop = loop
        self._requester = requester
        self._fetches: dict[str, Fetch] = {}
        self.fetches = 0
        """Fetches started (requests to internal servers, retries on other servers not counted)."""
        self.recent: deque[str] = deque(maxlen=RECENT_FETCHES)
        """The first uid of each recent fetch, oldest first (for tests and metrics)."""

    @property
    def name(self) -> str:
        return self.config.name

    def acquire(self, entry: Entry, callback: FetchCallback) -> None:
        """Call ``callback`` with the staged files of ``entry`` (fetching them if needed).

        Every successful callback must be balanced by one :meth:`release`.
        """
        fetch = self._fetches.get(entry.key)
        if entry.unpacked and (fetch is None or not fetch.staged()):
            callback(None, f"{entry.uids[0]} was unpacked by this mirror and removed since (remove_delay "
                           f"{self.config.remove_delay:g} s)")
            return
        if fetch is not None and fetch.ready and not fetch.staged():
            LOG.warning("[%s] Staged copy of %s disappeared; fetching it again", self.name, entry.uids[0])
            self._discard(fetch)
            fetch = None
        if fetch is None:
            try:
                fetch = self._new_fetch(entry)
            except FetchError as err:
                LOG.error("[%s] Cannot fetch %s: %s", self.name, entry.uids[0], err)
                callback(None, f"mirror cannot fetch {entry.uids[0]}: {err}")
                return
            fetch.waiters.append(callback)
            self._try_next(fetch)
            return
        if fetch.ready:
            self._use(fetch, callback)
        else:
            LOG.debug("[%s] %s is being fetched already; waiting for it", self.name, entry.uids[0])
            fetch.waiters.append(callback)

    def release(self, fetch: Fetch) -> None:
        """One delivery from ``fetch`` is done; ack the internal servers and expire it when it was the last."""
        fetch.users -= 1
        if fetch.users > 0:
            return
        if not fetch.acked:
            fetch.acked = True
            for source in fetch.entry.sources:
                self._ack(source)
        if self._fetches.get(fetch.entry.key) is not fetch:
            self._remove_directory(fetch)
            return
        if fetch.expiry is not None:
            fetch.expiry.cancel()
        fetch.expiry = self._loop.call_later(self.config.remove_delay, self._expire, fetch)

    def adopt(self, entry: Entry, directory: str, files: dict[str, str], source: Message | None) -> Fetch:
        """Offer ``files`` (uid → path, in ``directory``: unpacked here, so already acked) as the
        staged copy of ``entry``; removed ``remove_delay`` seconds after their last use, or after now."""
        fetch = Fetch(entry, directory, "", files, ready=True, source=source, acked=True)
        self._fetches[entry.key] = fetch
        fetch.expiry = self._loop.call_later(self.config.remove_delay, self._expire, fetch)
        return fetch

    def drop(self, fetch: Fetch) -> None:
        """Forget ``fetch`` now; its directory goes once no delivery uses it."""
        self._discard(fetch)

    def in_progress(self) -> int:
        """Fetches still waiting for an internal server."""
        return sum(1 for fetch in self._fetches.values() if not fetch.ready)

    def close(self) -> None:
        """Remove every staging directory."""
        for fetch in list(self._fetches.values()):
            self._discard(fetch)

    # -- fetching ----------------------------------------------------------------------

    def _new_fetch(self, entry: Entry) -> Fetch:
        source = entry.sources[0]
        try:
            destination = delivery.compose_destination(self.config.staging_destination, source.data)
            location = parse_uri(destination)
            base = delivery.local_directory(destination, self.config.client.ftp_root)
        except (KeyError, ValueError, TypeError) as err:
            raise FetchError(f"cannot compose the staging destination {self.config.staging_destination!r}: "
                             f"{type(err).__name__} {err}") from None
        if not base:
            raise FetchError(f"staging destination {redact(destination)!r} is not a local directory")
        try:
            delivery.make_directory(base)
            directory = tempfile.mkdtemp(prefix=FETCH_PREFIX, dir=base)
            # the internal server may write as another user (ftp, scp): as upstream's client does
            os.chmod(directory, 0o777)
        except OSError as err:
            raise FetchError(f"cannot create a staging directory in {base}: {err.strerror or err}") from None
        name = os.path.basename(directory)
        remote = location.with_path(posixpath.join(location.path, name) + "/")
        url = delivery.request_destination(remote.geturi(with_password=True), self.config.client.login)
        files = {uid: os.path.join(directory, posixpath.basename(path))
                 for uid, path in entry.source_paths().items()}
        fetch = Fetch(entry, directory, url, files)
        self._fetches[entry.key] = fetch
        self.fetches += 1
        self.recent.append(entry.uids[0])
        return fetch

    def _try_next(self, fetch: Fetch) -> None:
        source = self._next_source(fetch)
        if source is None:
            self._failed(fetch)
            return
        address = source.data["request_address"]
        fetch.tried.add(address)
        fetch.source = source
        data = _without_paths(dict(source.data))
        data["destination"] = fetch.url
        LOG.debug("[%s] Fetching %s from %s into %s", self.name, fetch.entry.uids[0], address, fetch.directory)
        self._requester.request(
            address, Message(source.subject, "push", data, version=MESSAGE_VERSION),
            timeout=self.config.client.transfer_req_timeout, attempts=self.config.client.request_attempts,
            kind="push", callback=lambda reply, error: self._on_reply(fetch, source, reply, error))

    def _next_source(self, fetch: Fetch) -> Message | None:
        untried = [s for s in fetch.entry.sources if s.data["request_address"] not in fetch.tried]
        for source in untried:
            if not self._requester.is_down(source.data["request_address"]):
                return source
        return untried[0] if untried else None

    def _on_reply(self, fetch: Fetch, source: Message, reply: Message | None, error: str | None) -> None:
        if self._fetches.get(fetch.entry.key) is not fetch:
            return
        address = source.data["request_address"]
        if reply is None or reply.type not in FILE_TYPES:
            reason = self._scrub(error if reply is None else f"{reply.type} {reply.data!s:.300}")
            LOG.error("[%s] Failed to fetch %s from %s: %s", self.name, fetch.entry.uids[0], address, reason)
            fetch.errors.append(reason)
            self._try_next(fetch)
            return
        missing = [path for path in fetch.files.values() if not os.path.isfile(path)]
        if missing:
            reason = (f"{address} reported success but {missing[0]} is not on this host "
                      f"(is the staging destination {redact(fetch.url)} this host as the internal server sees it?)")
            LOG.error("[%s] Failed to fetch %s: %s", self.name, fetch.entry.uids[0], reason)
            fetch.errors.append(f"{posixpath.basename(missing[0])} did not arrive")
            self._try_next(fetch)
            return
        problem = _check_staged(fetch, source)
        if problem:
            LOG.error("[%s] Discarded the copy of %s fetched from %s: %s", self.name, fetch.entry.uids[0], address,
                      problem)
            fetch.errors.append(problem)
            self._try_next(fetch)
            return
        fetch.ready = True
        LOG.info("[%s] Fetched %s from %s in %.0f ms", self.name, fetch.entry.uids[0], address,
                 (time.monotonic() - fetch.started) * 1000)
        waiters, fetch.waiters = fetch.waiters, []
        for callback in waiters:
            self._use(fetch, callback)
        if fetch.users == 0:  # nobody waited (cannot happen today): still settle it
            fetch.users = 1
            self.release(fetch)

    def _scrub(self, text: str | None) -> str:
        """``text`` without the login's password (an internal server's error may quote the destination)."""
        return redact(text or "", secrets=[delivery.split_login(self.config.client.login)[1] or ""])

    def _failed(self, fetch: Fetch) -> None:
        uid = fetch.entry.uids[0]
        reason = fetch.errors[-1] if fetch.errors else "no internal server announced it"
        LOG.error("[%s] Could not get a working source for %s (tried %s)", self.name, uid,
                  ", ".join(sorted(fetch.tried)) or "none")
        self._discard(fetch)
        waiters, fetch.waiters = fetch.waiters, []
        for callback in waiters:
            _call(callback, None, f"mirror could not fetch {uid} from its internal server(s): {reason}")

    def _use(self, fetch: Fetch, callback: FetchCallback) -> None:
        fetch.users += 1
        if fetch.expiry is not None:
            fetch.expiry.cancel()
            fetch.expiry = None
        _call(callback, fetch, None)

    # -- acks and clean-up -------------------------------------------------------------

    def _ack(self, source: Message) -> None:
        address = source.data["request_address"]

        def done(reply: Message | None, error: str | None) -> None:
            if reply is None or reply.type != "ack":
                LOG.warning("[%s] ack to %s not confirmed: %s", self.name, address,
                            error or (reply.type if reply else None))

        self._requester.request(address, Message(source.subject, "ack", dict(source.data), version=MESSAGE_VERSION),
                                timeout=self.config.client.req_timeout, attempts=self.config.client.request_attempts,
                                callback=done, kind="ack")

    def _expire(self, fetch: Fetch) -> None:
        fetch.expiry = None
        if fetch.users == 0 and self._fetches.get(fetch.entry.key) is fetch:
            self._discard(fetch)

    def _discard(self, fetch: Fetch) -> None:
        if self._fetches.get(fetch.entry.key) is fetch:
            del self._fetches[fetch.entry.key]
        if fetch.expiry is not None:
            fetch.expiry.cancel()
            fetch.expiry = None
        if fetch.users == 0:
            self._remove_directory(fetch)

    def _remove_directory(self, fetch: Fetch) -> None:
        try:
            shutil.rmtree(fetch.directory)
            LOG.debug("[%s] Removed staged %s", self.name, fetch.directory)
        except FileNotFoundError:
            pass
        except OSError as err:
            LOG.warning("[%s] Could not remove %s: %s", self.name, fetch.directory, err.strerror or err)


def announced_digests(data: dict[str, Any]) -> dict[str, Digest | None]:
    """uid -> the size and checksum announced for that file (None where none was)."""
    return {str(item["uid"]): from_data(item) for item in dicts_with(data, "uid")}


def _check_staged(fetch: Fetch, source: Message) -> str | None:
    """Read the staged files back against their announcement; delete those that do not match.
    Why the first one did not, or None."""
    problem = None
    for uid, expected in announced_digests(source.data).items():
        path = fetch.files.get(uid)
        if path is None or expected is None:
            continue
        try:
            verify_file(path, expected, f"the staged copy of {uid}")
        except ChecksumMismatch as err:
            problem = problem or str(err)
            os.unlink(path)
    return problem


def _without_paths(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` without the ``path`` keys of its file dicts, so every file lands in the
    staging directory under its own name."""
    copy: dict[str, Any] = {}
    for key, value in data.items():
        if key == "path" and "uri" in data:
            continue
        if isinstance(value, dict):
            copy[key] = _without_paths(value)
        elif isinstance(value, list):
            copy[key] = [_without_paths(v) if isinstance(v, dict) else v for v in value]
        else:
            copy[key] = value
    return copy


def _call(callback: FetchCallback, fetch: Fetch | None, error: str | None) -> None:
    try:
        callback(fetch, error)
    except Exception:  # one failing waiter must not keep the others waiting
        LOG.exception("Error handing a fetch result on")
