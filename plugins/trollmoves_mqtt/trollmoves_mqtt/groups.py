"""Taking over a dead group member's share within a bounded time.

Members of a group share one subscription (``$share/<group>/...``): the broker hands each
announcement to one member, and never hands a dead member's share to the others. So each
member also watches the group's topics without sharing (a second session, ``<id>-watch``):

* every result a member publishes (a file/dataset/collection message without
  ``request_address``) marks its uids *done*;
* every announcement seen there is held ``takeover_after * (1 + x)`` seconds (``x`` in [0, 1),
  from a hash of the member's id and the file, so members do not all take over at once); if its
  uids are not done by then, and no member announced it is fetching it (its ``push`` message)
  within the last ``takeover_after`` seconds, it is handed to the client chain as if it were our share (the chain's
  dedup and journal make a copy it already handles harmless);
* the results are handed to the client chain too, as another client's results: it records them
  as delivered, so its catch-up from the servers' lists does not fetch what the group delivered;
* our own share is checked against *done* when handed out, and during the first
  ``takeover_after`` seconds after a (re)start it is held back, so a member that comes back after
  the others took its share over sees their results first and does not fetch again.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from posttroll.message import Message
from trollmoves_roles.protocol.messages import uids_of

LOG = logging.getLogger(__name__)

ANNOUNCEMENT_TYPES = ("file", "dataset", "collection")
WATCHED_TYPES = frozenset(t.encode() for t in (*ANNOUNCEMENT_TYPES, "push"))
"""The message types the watch looks at (as :func:`type_of` gives them)."""
DONE_MEMORY = 200_000
"""uids remembered as delivered by the group (oldest forgotten first)."""


def type_of(payload: bytes) -> bytes:
    """The type field of a posttroll message's wire text (``b""`` for anything else), read without decoding it."""
    fields = payload.split(None, 2)
    return fields[1] if len(fields) > 2 and fields[0].startswith(b"pytroll://") else b""


class GroupWatch:
    """Which announcements the group has delivered, and the timer that hands over the others.

    ``hand_over(item)`` is called from the watch's own thread with what is due.
    """

    def __init__(self, member: str, takeover_after: float, hand_over: Callable[[Any], None]) -> None:
        self.member, self.takeover_after = member, takeover_after
        self._hand_over = hand_over
        self._done: OrderedDict[str, None] = OrderedDict()
        self._claimed: OrderedDict[str, float] = OrderedDict()
        self._held: list[tuple[float, int, Any, list[str]]] = []
        self._order = itertools.count()
        self._lock = threading.Condition()
        self._closed = False
        self.started = time.monotonic()
        self.taken_over = 0
        self._thread = threading.Thread(target=self._run, name=f"group-watch-{member}", daemon=True)
        self._thread.start()

    def seen(self, message: Message) -> bool:
        """A message on the watch subscription (any thread); True for a member's result."""
        if message.type not in (*ANNOUNCEMENT_TYPES, "push") or not isinstance(message.data, dict):
            return False
        uids = uids_of(message.data)
        if not uids:
            return False
        if message.type == "push":  # a member is fetching it: give it takeover_after to deliver
            with self._lock:
                for uid in uids:
                    self._claimed[uid] = time.monotonic()
                    self._claimed.move_to_end(uid)
                while len(self._claimed) > DONE_MEMORY:
                    self._claimed.popitem(last=False)
            return False
        if "request_address" not in message.data:  # a member's result
            with self._lock:
                for uid in uids:
                    self._done[uid] = None
                    self._done.move_to_end(uid)
                while len(self._done) > DONE_MEMORY:
                    self._done.popitem(last=False)
            return True
        spread = int.from_bytes(hashlib.sha1(f"{self.member}\n{uids[0]}".encode()).digest()[:4]) / 2**32
        self._hold(time.monotonic() + self.takeover_after * (1 + spread), ("takeover", message), uids)
        return False

    def in_grace(self) -> bool:
        """Whether our own share is still held back (the first ``takeover_after`` s after the start)."""
        return time.monotonic() < self.started + self.takeover_after

    def hold_own(self, item: Any, uids: list[str]) -> bool:
        """Hold our own share's ``item`` until the start-up grace ends; False when it needs no holding."""
        due = self.started + self.takeover_after
        if time.monotonic() >= due:
            return False
        self._hold(due, item, uids)
        return True

    def done(self, uids: list[str]) -> bool:
        with self._lock:
            return bool(uids) and all(uid in self._done for uid in uids)

    def _hold(self, due: float, item: Any, uids: list[str]) -> None:
        with self._lock:
            heapq.heappush(self._held, (due, next(self._order), item, uids))
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (not self._held or self._held[0][0] > time.monotonic()):
                    self._lock.wait(None if not self._held else self._held[0][0] - time.monotonic())
                if self._closed:
                    return
                _, _, item, uids = heapq.heappop(self._held)
                finished = all(uid in self._done for uid in uids)
                takeover = isinstance(item, tuple) and item[0] == "takeover"
                claimed = max((self._claimed.get(uid, 0.0) for uid in uids), default=0.0) + self.takeover_after
                if takeover and not finished and claimed > time.monotonic():  # another member is on it
                    heapq.heappush(self._held, (claimed, next(self._order), item, uids))
                    continue
            if takeover:
                if finished:
                    continue
                self.taken_over += 1
                LOG.info("Taking over %s: no member of the group delivered it within %.0f s", uids[0],
                         self.takeover_after)
            self._hand_over(item)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(2)
