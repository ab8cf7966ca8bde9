"""Bandwidth limits: the rate and timetable parser, the token bucket (on an injected clock, no
timing), the registry's sharing, and the file mover's throttled copy."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from trollmoves_core import bwlimit
from trollmoves_core.bwlimit import (
    Limits,
    Schedule,
    Throttle,
    TokenBucket,
    chunk_size,
    host_of,
    parse_limit,
    parse_rate,
)
from trollmoves_core.file_mover import FileMover

MIB = 1024 * 1024
MONDAY = dt.datetime(2026, 11, 30)  # a Monday


class Clock:
    """Monotonic seconds that only sleeping moves; the wall time follows."""

    def __init__(self, wall: dt.datetime = MONDAY) -> None:
        self.t = 1000.0
        self.wall = wall
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.t += seconds
            self.wall += dt.timedelta(seconds=seconds)

    def now(self) -> dt.datetime:
        return self.wall


def bucket(text: str, clock: Clock) -> TokenBucket:
    return TokenBucket(Schedule.parse(text), clock=clock, sleep=clock.sleep, now=clock.now)


@pytest.mark.parametrize(("text", "rate"), [
    ("20M", 20 * MIB), ("512k", 512 * 1024), ("512K", 512 * 1024), ("100b", 100), ("1.5G", 1.5 * 1024 * MIB),
    ("10", 10 * 1024), ("20MiB", 20 * MIB), ("20M/s", 20 * MIB), ("off", None), ("OFF", None), ("0", None),
])
def test_rates_are_read_as_rclone_writes_them(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20X", "-5M", "20 M M", "M"])
def test_a_bad_rate_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate(text)


@pytest.mark.parametrize(("text", "message"), [
    ("08:00,10M 18:00", "expected HH:MM,RATE"),
    ("25:00,10M", "no such time of day"),
    ("08:61,10M", "no such time of day"),
    ("Mox-08:00,10M", "unknown day 'Mox'"),
    ("08:00,fast", "'08:00,fast': expected a rate"),
])
def test_a_bad_timetable_entry_is_refused_naming_it(text, message):
    with pytest.raises(ValueError, match=message):
        Schedule.parse(text)


def test_a_daily_timetable_switches_at_its_times_and_wraps_round_midnight():
    schedule = Schedule.parse("08:00,10M 18:00,off")
    assert schedule.rate_at(MONDAY.replace(hour=7, minute=59)) is None  # yesterday's 18:00 still holds
    assert schedule.rate_at(MONDAY.replace(hour=8)) == 10 * MIB
    assert schedule.rate_at(MONDAY.replace(hour=17, minute=59)) == 10 * MIB
    assert schedule.rate_at(MONDAY.replace(hour=18)) is None
    assert schedule.rate_at((MONDAY + dt.timedelta(days=5)).replace(hour=12)) == 10 * MIB  # every day


def test_day_entries_hold_on_their_day_and_the_last_of_the_week_holds_before_the_first():
    schedule = Schedule.parse("Mon-08:00,512k Fri-18:00,off")
    sunday = MONDAY - dt.timedelta(days=1)
    assert schedule.rate_at(MONDAY.replace(hour=7)) is None  # Friday's entry, wrapped round the week
    assert schedule.rate_at(MONDAY.replace(hour=9)) == 512 * 1024
    assert schedule.rate_at((MONDAY + dt.timedelta(days=3)).replace(hour=23)) == 512 * 1024  # Thursday
    assert schedule.rate_at(sunday.replace(hour=12)) is None


def test_of_two_entries_at_one_time_the_later_written_wins():
    assert Schedule.parse("Mon-08:00,1M 08:00,2M").rate_at(MONDAY.replace(hour=9)) == 2 * MIB
    assert Schedule.parse("08:00,2M Mon-08:00,1M").rate_at(MONDAY.replace(hour=9)) == MIB
    assert Schedule.parse("08:00,2M Mon-08:00,1M").rate_at((MONDAY + dt.timedelta(days=1)).replace(hour=9)) == 2 * MIB


def test_a_limit_that_never_limits_is_no_limit():
    assert parse_limit(None) is None
    assert parse_limit(" ") is None
    assert parse_limit("off") is None
    assert parse_limit("00:00,off 12:00,off") is None
    assert parse_limit("20M") == Schedule.parse("20M")


def test_a_bucket_lets_its_burst_through_then_makes_each_taker_pay_its_bytes():
    clock = Clock()
    limit = bucket("10M", clock)
    assert limit.take(MIB) == 0  # 0.1 s of rate: the burst
    limit.take(MIB)
    assert clock.sleeps == [pytest.approx(0.1)]
    for _ in range(98):
        limit.take(MIB)
    # 100 MiB at 10 MiB/s: 10 s, less the burst
    assert clock.t - 1000.0 == pytest.approx(10.0 - bwlimit.BURST_SECONDS)
    assert limit.taken == 100 * MIB


def test_a_bucket_forgives_nothing_for_idle_time_beyond_its_burst():
    clock = Clock()
    limit = bucket("10M", clock)
    limit.take(5 * MIB)
    clock.sleep(60)  # idle: the bucket fills up to its burst only
    clock.sleeps.clear()
    limit.take(MIB)
    limit.take(MIB)
    assert sum(clock.sleeps) == pytest.approx(2 * 0.1 - bwlimit.BURST_SECONDS)


def test_two_takers_of_one_bucket_share_its_rate():
    """B's wait includes what A took: together they get the rate once, not twice."""
    clock = Clock()
    shared = bucket("10M", clock)
    waits_a, waits_b = [], []
    for _ in range(50):
        waits_a.append(shared.take(MIB))
        waits_b.append(shared.take(MIB))
    assert shared.taken == 100 * MIB
    assert clock.t - 1000.0 == pytest.approx(10.0 - bwlimit.BURST_SECONDS)
    assert sum(waits_a) == pytest.approx(sum(waits_b), abs=0.2)


def test_the_timetable_changes_the_rate_of_a_running_bucket():
    clock = Clock(MONDAY.replace(hour=7, minute=59, second=55))
    limit = bucket("08:00,1M 18:00,off", clock)
    for _ in range(10):
        limit.take(MIB)  # no limit before 08:00: no wait
    assert clock.sleeps == []
    clock.sleep(10)  # now 08:00:05
    clock.sleeps.clear()
    limit.take(MIB)
    limit.take(MIB)
    assert sum(clock.sleeps) == pytest.approx(2.0 - bwlimit.BURST_SECONDS)


def test_a_wait_ends_early_when_the_timetable_lifts_the_limit():
    clock = Clock(MONDAY.replace(hour=17, minute=59, second=59))
    limit = bucket("08:00,1k 18:00,off", clock)
    limit.take(1024 * 1024)  # 1 MiB at 1 KiB/s: 17 minutes, unless the limit goes at 18:00
    assert clock.wall < MONDAY.replace(hour=18, second=2)


def test_the_registry_gives_one_bucket_per_key_and_limit():
    limits = Limits()
    schedule = Schedule.parse("20M")
    assert limits.bucket(("host", "a"), schedule) is limits.bucket(("host", "a"), Schedule.parse("20M"))
    assert limits.bucket(("host", "a"), schedule) is not limits.bucket(("host", "b"), schedule)
    assert limits.bucket(("host", "a"), schedule) is not limits.bucket(("host", "a"), Schedule.parse("10M"))
    assert limits.throttle([(("chain", "c"), None)]) is None


def test_a_throttle_takes_from_each_of_its_buckets_then_reports():
    clock = Clock()
    limits = Limits(clock=clock, sleep=clock.sleep, now=clock.now)
    seen = []
    throttle = limits.throttle([(("chain", "c"), Schedule.parse("10M")), (("host", "h"), Schedule.parse("5M"))],
                               seen.append)
    assert isinstance(throttle, Throttle)
    throttle(MIB)
    assert seen == [MIB]
    assert [b.taken for b in throttle.buckets] == [MIB, MIB]
    assert throttle.rate() == 5 * MIB


def test_a_throttled_copy_moves_small_blocks():
    throttle = Limits().throttle([(("chain", "c"), Schedule.parse("1M"))])
    assert chunk_size(throttle, 64 * MIB) == max(bwlimit.MIN_CHUNK, int(MIB * bwlimit.CHUNK_SECONDS))
    assert chunk_size(None, 64 * MIB) == 64 * MIB
    assert chunk_size(Limits().throttle([(("chain", "c"), Schedule.parse("00:00,off"))]), 7) == 7


def test_destination_hosts_are_named_as_the_bytes_go():
    assert host_of("sftp://user:pw@Data.Example.org:2222/in/") == "data.example.org"
    assert host_of("/local/dir/") == host_of("file:///local/dir/") == "localhost"
    assert host_of("s3://bucket/key") == "bucket"


@pytest.mark.parametrize("mode", ["copy", "hardlink"])
def test_concurrent_copies_to_one_host_take_every_byte_from_one_bucket(tmp_path, mode):
    """Two file movers copying at once to the same host: one bucket is charged with both
    files' bytes (a hard link crosses nothing and is not charged)."""
    limits = Limits()  # a rate high enough never to wait for long
    host_limit = Schedule.parse("10G")
    sizes = {"a": 3 * MIB + 17, "b": 5 * MIB + 3}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
    mover = FileMover({"mode": mode})
    errors = []

    def send(name: str) -> None:
        try:
            throttle = limits.throttle([(("host", host_of(str(tmp_path / "out") + "/")), host_limit)])
            mover.put(tmp_path / name, f"{tmp_path}/out/", progress=throttle)
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=send, args=(name,)) for name in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(limits) == 1
    shared = limits.bucket(("host", "localhost"), host_limit)
    assert shared.taken == (sum(sizes.values()) if mode == "copy" else 0)
    for name in sizes:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / name).read_bytes()


def test_move_and_get_take_a_limit(tmp_path, capsys):
    from trollmoves_core.cli import main

    source = tmp_path / "a.dat"
    source.write_bytes(os.urandom(2 * MIB))
    assert main(["move", "--bwlimit", "1G", "-o", "mode=copy", str(source), f"{tmp_path}/out/"]) == 0
    assert main(["get", "--bwlimit", "08:00,1G 18:00,2G", f"file://{tmp_path}/out/a.dat", f"{tmp_path}/back/"]) == 0
    assert (tmp_path / "back" / "a.dat").read_bytes() == source.read_bytes()
    capsys.readouterr()
    assert main(["move", "--bwlimit", "fast", str(source), f"{tmp_path}/out2/"]) == 2
    err = capsys.readouterr().err
    assert "--bwlimit: expected a rate such as 20M, 512k or off, got 'fast'" in err
    assert "Traceback" not in err and not (tmp_path / "out2").exists()
