"""How the mover benchmark measures: the cases, their time limits, the rows they fill."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.movers.targets import MIB, CaseFailed, Target
from benchmarks.movers_ssh import cpu_seconds
from trollmoves_core.mover import Mover
from trollmoves_core.plugins import default_host


@dataclasses.dataclass
class Settings:
    big_mib: int = 1024
    repeat: int = 3
    small_count: int = 1000
    small_size: int = 1024
    per_file_count: int = 200
    case_timeout: float = 300.0
    small_time_limit: float = 30.0
    """Seconds per small-file round of our movers; files/s comes from the files sent by then."""
    directions: tuple[str, ...] = ("put", "get")

    @classmethod
    def quick(cls) -> Settings:
        return cls(big_mib=100, small_count=200, per_file_count=50, case_timeout=60.0, small_time_limit=5.0)



@contextlib.contextmanager
def watchdog(target: Target, timeout: float) -> Iterator[None]:
    """Stop ``target``'s server if the block overruns ``timeout``, so a stuck transfer fails."""
    fired = threading.Event()

    def expire() -> None:
        fired.set()
        target.interrupt()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as err:
        if fired.is_set():
            raise CaseFailed(f"stopped after the {timeout:.0f} s case limit") from err
        if isinstance(err, CaseFailed):
            raise
        raise CaseFailed(f"{type(err).__name__}: {err}"[:300]) from err
    finally:
        timer.cancel()
        timer.join()  # an expiry in progress finishes stopping the server before it restarts
        if fired.is_set():
            target.start()


def mover_for(target: Target, rel: str) -> Mover:
    return default_host().mover(target.uri(rel), target.params())


@dataclasses.dataclass
class Row:
    """One line of the main table: ours against the reference on one case."""

    protocol: str
    case: str
    unit: str
    reference: str
    ours: float | None = None
    ref: float | None = None
    ours_cpu: float | None = None
    ref_cpu: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.ref if self.ours and self.ref else None


@dataclasses.dataclass
class Reuse:
    """Small files through one mover against a new mover (connection) per file."""

    protocol: str
    reused: float | None = None
    per_file: float | None = None
    reused_logins: int | None = None
    per_file_logins: int | None = None
    reused_files: int = 0
    per_file_files: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.reused / self.per_file if self.reused and self.per_file else None


def big_put(target: Target, source: Path, s: Settings) -> list[Row]:
    """Rows for the big upload: against the reference, and against each of the target's extra references."""
    size = source.stat().st_size
    case = f"put {size_label(size)} x1"

    def ours() -> None:
        with mover_for(target, "big-ours/") as mover:
            mover.put(source, target.uri("big-ours/"))

    def reference(argv: list[str]) -> Callable[[], None]:
        return lambda: target.ref_put([source], "big-ref/", s.case_timeout, extra=argv)

    refs = {target.reference: [], **target.extra_put_references}
    rows = {name: Row(target.name, case, "MB/s", name) for name in refs}
    cases = {"ours": ("big-ours/", ours)} | {name: ("big-ref/", reference(argv)) for name, argv in refs.items()}
    return _big(target, rows, cases, size, s, check=lambda rel: target.listing(rel).get(source.name) == size)


def big_get(target: Target, source: Path, local: Path, s: Settings) -> Row:
    size = source.stat().st_size
    reference = target.reference.replace("upload_file", "download_file").replace("curl -T", "curl -o")
    row = Row(target.name, f"get {size_label(size)} x1", "MB/s", reference)
    target.clear("big-src/")
    try:
        with watchdog(target, s.case_timeout):
            target.ref_put([source], "big-src/", s.case_timeout)
    except CaseFailed as err:
        row.note = f"could not place the file to download: {err}"
        return row
    remote = f"big-src/{source.name}"

    def ours() -> None:
        with mover_for(target, "big-src/") as mover:
            mover.get(target.uri(remote), local)

    cases = {row.reference: ("", lambda: target.ref_get(remote, local, s.case_timeout)), "ours": ("", ours)}

    def check(_rel: str) -> bool:
        ok = local.exists() and local.stat().st_size == size
        local.unlink(missing_ok=True)
        return ok

    try:
        return _big(target, {row.reference: row}, cases, size, s, check=check)[0]
    finally:
        target.clear("big-src/")


def _big(target: Target, rows: dict[str, Row], cases: dict[str, tuple[str, Callable[[], None]]], size: int,
         s: Settings, *, check: Callable[[str], bool]) -> list[Row]:
    """Run ``cases`` (``ours`` and one per row) ``s.repeat`` times, rotating the order; medians into the rows."""
    rates: dict[str, list[float]] = {who: [] for who in cases}
    cpu: dict[str, list[float]] = {who: [] for who in cases}
    failures: list[str] = []
    order = list(cases)
    for _ in range(s.repeat):
        for who in order:
            rel, run = cases[who]
            if rel:
                target.clear(rel)
            try:
                used, start = cpu_seconds(), time.perf_counter()
                with watchdog(target, s.case_timeout):
                    run()
                elapsed = time.perf_counter() - start
                if not check(rel):
                    raise CaseFailed("the delivered file is missing or has the wrong size")
            except CaseFailed as err:
                failures.append(f"{who}: {err}")
                continue
            finally:
                if rel:
                    target.clear(rel)
            rates[who].append(size / elapsed / 1e6)
            cpu[who].append((cpu_seconds() - used) * 2**30 / size)
        order = order[1:] + order[:1]  # rotate who goes first: page cache and server warm-up favour none
    for name, row in rows.items():
        row.ours, row.ref = median(rates["ours"]), median(rates[name])
        row.ours_cpu, row.ref_cpu = median(cpu["ours"]), median(cpu[name])
        row.note += "".join(f"{f}. " for f in dict.fromkeys(failures) if f.startswith(("ours:", f"{name}:")))
        if s.repeat > 1 and rates["ours"] and rates[name]:
            row.note += f"median of {len(rates['ours'])}/{len(rates[name])} runs"
    return list(rows.values())


def small_files(target: Target, files: list[Path], s: Settings) -> tuple[Row, Reuse]:
    """The reference, our reused mover and a mover per file, ``s.repeat`` rounds in rotating order; medians."""
    count, size = len(files), files[0].stat().st_size
    row = Row(target.name, f"put {size_label(size)} x{count}", "files/s", target.small_reference or target.reference)
    reuse = Reuse(target.name)
    session = {"file": "one cp", "sftp": "one scp", "scp": "one scp", "s3": "one client"}.get(target.name,
                                                                                         "one session")
    row.note = f"reference: all files in {session}"
    if target.name in ("ftp", "ftps"):
        row.note += ", plain STOR of the final name (not curl: it idles 1 s before most data connections)"
    rates: dict[str, list[float]] = {"ref": [], "reused": [], "per_file": []}
    logins: dict[str, int | None] = {}
    sent: dict[str, int] = {}
    cut: dict[str, list[int]] = {"reused": [], "per_file": []}
    errors: list[str] = []
    order = ["ref", "reused", "per_file"]
    for _ in range(s.repeat):
        for mode in order:
            todo = files[:s.per_file_count] if mode == "per_file" else files
            limit = s.case_timeout if mode == "ref" else s.small_time_limit
            try:
                rate, logins[mode], sent[mode] = _small_round(target, mode, todo, limit, s.case_timeout)
            except CaseFailed as err:
                errors.append(f"{mode.replace('_', '-')}: {err}")
                continue
            if sent[mode] < len(todo):
                cut[mode].append(sent[mode])
            rates[mode].append(rate)
        order = order[1:] + order[:1]
    for mode, counts in cut.items():
        if counts:
            total = s.per_file_count if mode == "per_file" else count
            reuse.note += (f"{mode.replace('_', '-')}: {min(counts)}-{max(counts)} of {total} files within the "
                           f"{s.small_time_limit:g} s round limit. ")
    for error in dict.fromkeys(errors):
        if error.startswith("ref:"):
            row.note += f"; {error}"
        else:
            reuse.note += f"{error}. "
    row.ref, row.ours = median(rates["ref"]), median(rates["reused"])
    reuse.reused, reuse.per_file = row.ours, median(rates["per_file"])
    reuse.reused_logins, reuse.per_file_logins = logins.get("reused"), logins.get("per_file")
    reuse.reused_files, reuse.per_file_files = sent.get("reused", 0), sent.get("per_file", 0)
    if s.repeat > 1:
        row.note += f"; median of {s.repeat} rounds"
    if target.name == "file":
        reuse.note += "No connection to reuse: a new mover per file costs only its set-up. "
    return row, reuse


def _small_round(target: Target, mode: str, files: list[Path], limit: float,
                 timeout: float) -> tuple[float, int | None, int]:
    """One round of ``mode`` (``ref``, ``reused``, ``per_file``): files/s, logins (or connections), files sent.

    Our movers stop sending after ``limit`` seconds; the watchdog stops a transfer stuck for ``timeout``.
    """
    rel = f"small-{mode}/"
    uri = target.uri(rel)
    target.clear(rel)
    logins_before, opened, done = target.logins(), 0, 0
    deadline = time.monotonic() + limit
    try:
        start = time.perf_counter()
        if mode == "ref":
            with watchdog(target, timeout):
                target.ref_put(files, rel, timeout)
            done = len(files)
        else:
            with watchdog(target, limit + timeout):
                if mode == "reused":
                    with mover_for(target, rel) as mover:
                        for path in files:
                            if time.monotonic() > deadline:
                                break
                            mover.put(path, uri)
                            done += 1
                        opened = getattr(mover, "connections_opened", 0)
                else:
                    for path in files:
                        if time.monotonic() > deadline:
                            break
                        with mover_for(target, rel) as mover:
                            mover.put(path, uri)
                        done += 1
                        opened += getattr(mover, "connections_opened", 0)
        elapsed = time.perf_counter() - start
        delivered = len(target.listing(rel))
        if delivered != done:
            raise CaseFailed(f"{delivered} files delivered, {done} sent")
    finally:
        target.clear(rel)
    logins = target.logins()
    logins = (opened if mode != "ref" else None) if logins is None or logins_before is None \
        else logins - logins_before
    return done / elapsed, logins, done


def warm_up(target: Target, path: Path) -> None:
    """One untimed small upload each way, so imports and first connections are not timed."""
    with mover_for(target, "warm-up/") as mover:
        mover.put(path, target.uri("warm-up/"))
    target.ref_put([path], "warm-up/", 60)
    target.clear("warm-up/")


def median(values: list[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def size_label(size: int) -> str:
    """``1 GiB``, ``100 MiB``, ``1 KiB`` or a byte count."""
    for unit, factor in (("GiB", 2**30), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def make_files(work: Path, s: Settings) -> tuple[Path, list[Path]]:
    """The big file (random, written through the page cache, which keeps it) and the small ones."""
    big = work / "source" / "big.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as out:
        for _ in range(s.big_mib):
            out.write(os.urandom(MIB))
    small_dir = work / "source" / "small"
    small_dir.mkdir()
    small = []
    for i in range(s.small_count):
        path = small_dir / f"f{i:05d}.dat"
        path.write_bytes(os.urandom(s.small_size))
        small.append(path)
    return big, small


def server_area(work: Path, s: Settings) -> Path:
    """Where servers keep delivered files: /dev/shm when it has room for a few big files."""
    shm = Path("/dev/shm")
    need = 4 * s.big_mib * MIB
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return Path(tempfile.mkdtemp(prefix="trollmoves-bench-movers-", dir=shm))
    area = work / "served"
    area.mkdir()
    return area
