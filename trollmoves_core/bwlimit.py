"""Bandwidth limits: token buckets shared by the transfers that go the same way.

A limit is written as rclone writes ``--bwlimit``: a rate (``20M``, ``512k``, ``1.5G``, ``off``)
or a timetable of ``[Day-]HH:MM,RATE`` entries separated by spaces (``08:00,10M 18:00,off``,
``Mon-08:00,512k Sat-00:00,off``). Rates are bytes per second in binary units (``k`` = KiB/s,
``M`` = MiB/s, ``G`` = GiB/s; ``b`` bytes); a bare number is KiB/s, as in rclone; ``off`` or 0 is
no limit. A timetable entry holds from its time until the next entry's, in local time; an entry
without a day holds on every day; before the week's first entry the last one of the week holds;
of two entries at the same time the later one written wins.

A :class:`TokenBucket` lets ``rate`` bytes per second through on average, with at most
:data:`BURST_SECONDS` of the rate ahead. :class:`Limits` is the registry of one process: the same
key (a chain, a destination host) gives the same bucket, so concurrent transfers share it.
Movers are throttled through the ``progress`` callback of :meth:`~trollmoves_core.mover.Mover.put`
and ``get``: a :class:`Throttle` takes each block's bytes from its buckets, sleeping when they are
short, so every mover that reports progress per block as it goes honours the limit.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from trollmoves_core.uri import parse_uri

BURST_SECONDS = 0.1
"""How far ahead of its rate a bucket lets bytes through (the bucket's depth, in seconds of rate)."""
MAX_SLEEP = 0.5
"""A waiting transfer looks at the timetable at least this often (a limit lifted frees it)."""
CHUNK_SECONDS = 0.05
"""A throttled copy loop moves blocks of at most this many seconds of the rate."""
MIN_CHUNK, MAX_CHUNK = 16 * 1024, 1024 * 1024

_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_RATE = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[bkmgt]?)(?:i?b)?(?:/s)?", re.IGNORECASE)
_ENTRY = re.compile(r"(?:(?P<day>[a-z]{3})-)?(?P<hour>\d{1,2}):(?P<minute>\d{2})", re.IGNORECASE)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7 * 24 * 60


def parse_rate(text: str) -> float | None:
    """Bytes per second of one rate (``20M``, ``512k``, ``100b``, ``off``); None for no limit.

    Raises ValueError naming what is wrong.

    >>> parse_rate("20M"), parse_rate("512k"), parse_rate("off")
    (20971520.0, 524288.0, None)
    """
    value = text.strip()
    if value.lower() in ("off", "none", "unlimited", ""):
        return None
    match = _RATE.fullmatch(value)
    if match is None:
        raise ValueError(f"expected a rate such as 20M, 512k or off, got {text.strip()!r}")
    rate = float(match["number"]) * _UNITS[(match["unit"] or "k").lower()]
    return rate or None


@dataclass(frozen=True)
class Schedule:
    """A limit that may change with the time of the week: ``(minute of the week, rate)`` slots,
    sorted; one slot at minute 0 for a constant limit. ``text`` is what was written."""

    text: str
    slots: tuple[tuple[int, float | None], ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Read a rate or a timetable (module docstring); raises ValueError naming the bad entry."""
        entries = text.split()
        if len(entries) <= 1 and "," not in text:
            return cls(text.strip(), ((0, parse_rate(text)),))
        slots: dict[int, float | None] = {}
        for entry in entries:
            when, comma, rate_text = entry.partition(",")
            match = _ENTRY.fullmatch(when)
            if not comma or match is None:
                raise ValueError(f"timetable entry {entry!r}: expected HH:MM,RATE or Day-HH:MM,RATE "
                                 f"(08:00,10M or Mon-08:00,512k)")
            hour, minute = int(match["hour"]), int(match["minute"])
            if hour > 23 or minute > 59:
                raise ValueError(f"timetable entry {entry!r}: no such time of day {when}")
            day = match["day"]
            if day is not None and day.lower() not in DAYS:
                raise ValueError(f"timetable entry {entry!r}: unknown day {day!r}, expected one of "
                                 f"{', '.join(d.capitalize() for d in DAYS)}")
            try:
                rate = parse_rate(rate_text)
            except ValueError as err:
                raise ValueError(f"timetable entry {entry!r}: {err}") from None
            days = range(7) if day is None else (DAYS.index(day.lower()),)
            for number in days:
                slots[number * 24 * 60 + hour * 60 + minute] = rate
        return cls(" ".join(entries), tuple(sorted(slots.items())))

    @property
    def limited(self) -> bool:
        """Whether some slot limits the rate."""
        return any(rate is not None for _, rate in self.slots)

    def rate_at(self, when: dt.datetime) -> float | None:
        """Bytes per second allowed at ``when`` (local time); None: no limit."""
        minute = when.weekday() * 24 * 60 + when.hour * 60 + when.minute
        current = self.slots[-1][1]  # before the week's first entry: the week's last one
        for start, rate in self.slots:
            if start > minute:
                break
            current = rate
        return current

    def __str__(self) -> str:
        return self.text


def parse_limit(text: str | None) -> Schedule | None:
    """The schedule of a config value, None when absent or never limiting; raises ValueError."""
    if text is None or not text.strip():
        return None
    schedule = Schedule.parse(text)
    return schedule if schedule.limited else None


class TokenBucket:
    """Lets ``schedule``'s rate through on average, shared by any number of threads.

    :meth:`take` accounts for bytes and sleeps (outside the lock) until the bucket is paid up
    to within :data:`BURST_SECONDS`. The bucket keeps the time at which everything taken so far
    is paid for: waiting is proportional to what each taker took, so concurrent takers share the
    rate. ``clock``, ``sleep`` and ``now`` (monotonic seconds, a sleep, local wall time) are
    injectable for tests.
    """

    def __init__(self, schedule: Schedule, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.schedule = schedule
        self._clock, self._sleep, self._now = clock, sleep, now
        self._lock = threading.Lock()
        self._paid_until: float | None = None
        self.taken = 0
        """Bytes taken so far (limited or not)."""

    def rate(self) -> float | None:
        """The rate now, in bytes per second; None: no limit now."""
        return self.schedule.rate_at(self._now())

    def take(self, nbytes: int) -> float:
        """Account for ``nbytes``; sleep while the bucket is short. Returns the seconds it waited."""
        rate = self.rate()
        with self._lock:
            self.taken += nbytes
            if rate is None:
                self._paid_until = None
                return 0.0
            now = self._clock()
            start = now if self._paid_until is None else max(self._paid_until, now)
            self._paid_until = start + nbytes / rate
            due = self._paid_until - BURST_SECONDS
        waited = 0.0
        while (left := due - self._clock()) > 0:
            self._sleep(min(left, MAX_SLEEP))
            waited += min(left, MAX_SLEEP)
            if left > MAX_SLEEP and self.rate() is None:
                break  # the timetable lifted the limit
        return waited


@dataclass(frozen=True)
class Throttle:
    """A progress callback that takes each block's bytes from ``buckets`` before passing them
    on to ``progress``. Movers size their blocks with :func:`chunk_size`, and report what they
    did not send (a hard link) through :func:`untimed`."""

    buckets: tuple[TokenBucket, ...]
    progress: Callable[[int], None] | None = None

    def __call__(self, nbytes: int) -> None:
        for bucket in self.buckets:
            bucket.take(nbytes)
        if self.progress is not None:
            self.progress(nbytes)

    def rate(self) -> float | None:
        """The smallest rate of the buckets now; None when none limits now."""
        rates = [rate for bucket in self.buckets if (rate := bucket.rate()) is not None]
        return min(rates) if rates else None


def limited(progress: Callable[[int], None] | None) -> bool:
    """Whether ``progress`` is a :class:`Throttle` limiting now (a mover that reads ahead of
    what it reports, a prefetch, should then read less far ahead)."""
    return isinstance(progress, Throttle) and progress.rate() is not None


def chunk_size(progress: Callable[[int], None] | None, default: int) -> int:
    """The block size for a copy loop reporting to ``progress``: ``default`` unless it is a
    :class:`Throttle` limiting now, then small enough (:data:`CHUNK_SECONDS` of the rate) for
    the rate to be smooth."""
    rate = progress.rate() if isinstance(progress, Throttle) else None
    if rate is None:
        return default
    return min(default, max(MIN_CHUNK, min(MAX_CHUNK, int(rate * CHUNK_SECONDS))))


def untimed(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``progress`` without its throttle: for bytes that crossed no link (a link, a rename)."""
    return progress.progress if isinstance(progress, Throttle) else progress


def host_of(uri: str) -> str:
    """The host a destination URI's bytes go to (a bare path or ``file://``: ``localhost``;
    for ``s3://`` the bucket)."""
    if "://" not in uri:
        return "localhost"
    location = parse_uri(uri)
    if location.scheme == "file":
        return "localhost"
    return (location.host or "localhost").lower()


class Limits:
    """The buckets of one process, by key: one bucket per (key, schedule), created on first use.

    Keys are anything hashable; roles use ``("chain", name)`` and ``("host", host)``, so a
    chain's transfers share its bucket and every transfer to one host shares that host's.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self._clock, self._sleep, self._now = clock, sleep, now
        self._buckets: dict[tuple[Hashable, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, key: Hashable, schedule: Schedule) -> TokenBucket:
        """The bucket of ``key`` with ``schedule`` (the same object for every caller)."""
        with self._lock:
            found = self._buckets.get((key, schedule.text))
            if found is None:
                found = self._buckets[(key, schedule.text)] = TokenBucket(
                    schedule, clock=self._clock, sleep=self._sleep, now=self._now)
            return found

    def throttle(self, limits: Sequence[tuple[Hashable, Schedule | None]],
                 progress: Callable[[int], None] | None = None) -> Callable[[int], None] | None:
        """The progress callback of one transfer under ``limits`` (key, schedule) pairs: a
        :class:`Throttle` of their buckets, or ``progress`` itself when none has a schedule."""
        buckets = tuple(self.bucket(key, schedule) for key, schedule in limits if schedule is not None)
        return Throttle(buckets, progress) if buckets else progress

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)
