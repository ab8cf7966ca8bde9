"""``python -m benchmarks.backlog``: a server started on a big backlog, and a server with many chains.

Ours only (``--impl ours`` and, for a before/after in one run, ``--impl baseline``: ``.venv-baseline``
built by ``scripts/baseline-venv REV``). Not a test: nothing asserts, it measures and prints.

backlog
    ``--files`` files of ``--kib`` KiB are written into the watched dir (on tmpfs when ``/tmp`` is not)
    before the server starts; a client (file destination) is already running. The server starts with
    its backlog on (no ``--disable-backlog``) and ``--announce-delay``. Measured: seconds from the
    server's spawn to the first and last delivery (the client's ``file`` messages), files/s overall
    (from the spawn) and once delivering, lost and duplicated, peak RSS (``VmHWM``) of server and client.
chains
    ``--chains`` chains in one server config (one directory and request port each, one file in each
    directory). Measured: seconds from the spawn to the ``Server running`` log line and to the first
    announcement of every chain (a raw subscriber on the server's publisher), then one new file per
    chain (all announced?), then the server's idle CPU over ``--idle`` seconds, its threads and RSS.

Runs in a private network namespace (``scripts/in-netns``) unless already in one or ``--no-netns``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import report
from benchmarks.configs import CLIENT_PUB_PORT, SERVER_PUB_PORT, SUFFIX, write_client_ini, write_server_ini
from benchmarks.harness import Recorder
from benchmarks.impls import IMPLEMENTATIONS, REPO, Implementation
from benchmarks.procs import Proc

NETNS_ENV = "TROLLMOVES_BENCH_NETNS"
CHAIN_REQUEST_PORT = 19200
"""Chain ``k`` of the chains part answers requests on ``CHAIN_REQUEST_PORT + k``."""
RUNNING_LINE = "Server running"
PARTS = ("backlog", "chains")


def status_kib(pid: int, field: str) -> int | None:
    """A ``/proc/PID/status`` field in KiB or as a count (``VmHWM``, ``VmRSS``, ``Threads``), None once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def server_argv(impl: Implementation, config: Path, announce_delay: float) -> list[str]:
    """The server's command line with the backlog on (the harness's argv turns it off)."""
    argv = [arg for arg in impl.server_argv(config, SERVER_PUB_PORT) if arg != "--disable-backlog"]
    return [*argv[:-1], "--announce-delay", f"{announce_delay:g}", argv[-1]]


def work_root(base: Path | None) -> Path:
    """A fresh directory on tmpfs (``/dev/shm``) unless ``base`` is given or ``/tmp`` is tmpfs already."""
    if base is None and Path("/dev/shm").is_dir():
        base = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="trollmoves-backlog-", dir=base))


def write_files(directory: Path, count: int, size: int, prefix: str) -> float:
    """``count`` files of ``size`` bytes named ``<prefix>-NNNNNN.dat``; returns the seconds it took."""
    data = os.urandom(size)
    t0 = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(count):
        fd = os.open(directory / f"{prefix}-{i:06d}{SUFFIX}", flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return time.perf_counter() - t0


# -- backlog ------------------------------------------------------------------------------------------

def announced_counts(log: Path) -> tuple[int, int]:
    """Announcements in our server's log (``[chain] announced PATH`` lines), and how many repeat a path."""
    seen: set[str] = set()
    total = 0
    with open(log, errors="replace") as lines:
        for line in lines:
            if "] announced " in line:
                total += 1
                seen.add(line.rsplit(" ", 1)[-1])
    return total, total - len(seen)


def backlog(impl: Implementation, workdir: Path, *, files: int, kib: int, announce_delay: float, stall: float,
            budget: float, client_extra: dict[str, str]) -> dict:
    """One server started on ``files`` files already present, a client running before it."""
    watch, dest, logs = workdir / "in", workdir / "out", workdir / "logs"
    for directory in (watch, dest, logs):
        directory.mkdir(parents=True)
    write_s = write_files(watch, files, kib * 1024, "bl")
    spec = write_server_ini(workdir / "server.ini", watch, 0)
    client_ini = write_client_ini(workdir / "client.ini", [spec], f"file://{dest}/", extra=client_extra)
    client = Proc(f"{impl.name}-client", impl.client_argv(client_ini), logs / "client.log", cwd=workdir)
    recorder = Recorder(f"tcp://127.0.0.1:{CLIENT_PUB_PORT}")
    server: Proc | None = None
    try:
        time.sleep(2.0)  # the client is up and the recorder subscribed
        t0 = time.perf_counter()
        server = Proc(f"{impl.name}-server", server_argv(impl, spec.config, announce_delay), logs / "server.log",
                      cwd=workdir)
        deadline, last_count, last_progress = time.monotonic() + budget, -1, time.monotonic()
        running: float | None = None
        while True:
            if running is None and RUNNING_LINE in server.log_tail(50):
                running = time.perf_counter() - t0
            count = len(recorder.arrivals)
            now = time.monotonic()
            if count >= files or now >= deadline or (count and now - last_progress >= stall):
                break
            if not (server.alive() and client.alive()):
                break
            if count != last_count:
                last_count, last_progress = count, now
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates
        hwm = (status_kib(server.pid, "VmHWM"), status_kib(client.pid, "VmHWM"))
        cpu = (server.cpu_seconds(), client.cpu_seconds())
        alive = server.alive() and client.alive()
    finally:
        recorder.close()
        for proc in (server, client):
            if proc is not None:
                proc.stop()
    arrivals = {uid: times for uid, times in recorder.arrivals.items() if uid.startswith("bl-")}
    announced, repeated = announced_counts(logs / "server.log")
    bound_to_first = log_span(logs / "server.log", "] announced ")
    firsts = sorted(times[0] for times in arrivals.values())
    delivered = len(firsts)
    result = {
        "files": files, "kib": kib, "announce_delay_s": announce_delay, "write_s": write_s,
        "delivered": delivered, "lost": files - delivered,
        "dup": sum(len(times) - 1 for times in arrivals.values()),
        "dest_files": len(os.listdir(dest)), "server_announced": announced, "server_dup_announced": repeated,
        "running_s": running, "first_s": firsts[0] - t0 if firsts else None,
        "bound_to_first_announced_s": bound_to_first,
        "last_s": firsts[-1] - t0 if firsts else None,
        "server_hwm_mib": _mib(hwm[0]), "client_hwm_mib": _mib(hwm[1]),
        "server_cpu_s": cpu[0], "client_cpu_s": cpu[1], "alive": alive,
    }
    if delivered > 1:
        result["files_per_s"] = delivered / (firsts[-1] - t0)
        result["files_per_s_delivering"] = (delivered - 1) / (firsts[-1] - firsts[0])
    return result


# -- many chains --------------------------------------------------------------------------------------

class Announcements:
    """First arrival (perf_counter) of each subject on a server's publisher, heartbeats left out."""

    def __init__(self, address: str) -> None:
        from trollmoves_roles.bus.posttroll import Subscription

        self.first: dict[str, float] = {}
        self.count = 0
        self._subscription = Subscription([address], ["/"])
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="announcements", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            message = self._subscription.recv(0.05)
            if message is None or message.subject.startswith("/heartbeat"):
                continue
            self.count += 1
            self.first.setdefault(message.subject, time.perf_counter())
        self._subscription.close()

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)


def write_chains_ini(path: Path, root: Path, chains: int) -> list[Path]:
    """``chains`` sections ``[cK]`` watching ``root/cK`` (topic ``/bench/cK``); returns the directories."""
    dirs, lines = [], []
    for k in range(chains):
        directory = root / f"c{k}"
        directory.mkdir(parents=True)
        dirs.append(directory)
        lines += [f"[c{k}]", f"origin = {directory}/{{name}}{SUFFIX}", f"topic = /bench/c{k}",
                  f"request_port = {CHAIN_REQUEST_PORT + k}", "request_address = 127.0.0.1", ""]
    path.write_text("\n".join(lines))
    return dirs


def log_span(log: Path, last: str) -> float | None:
    """Seconds from the log's first line (the publisher bound, imports done) to the first line containing
    ``last``, from the lines' own ``[ISO time`` stamps."""
    import datetime as dt

    first = None
    with open(log, errors="replace") as lines:
        for line in lines:
            if not line.startswith("["):
                continue
            stamp = dt.datetime.fromisoformat(line[1:30])
            first = first or stamp
            if last in line:
                return (stamp - first).total_seconds()
    return None


def _wait(condition, timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def many_chains(impl: Implementation, workdir: Path, *, chains: int, announce_delay: float, idle: float,
                budget: float) -> dict:
    """One server with ``chains`` chains: start-up, every chain announcing, idle CPU."""
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    config = workdir / "chains.ini"
    dirs = write_chains_ini(config, workdir / "in", chains)
    for directory in dirs:
        (directory / f"old{SUFFIX}").write_bytes(b"backlog\n")
    listener = Announcements(f"tcp://127.0.0.1:{SERVER_PUB_PORT}")
    server: Proc | None = None
    result: dict = {"chains": chains, "announce_delay_s": announce_delay}
    try:
        time.sleep(1.0)
        t0 = time.perf_counter()
        server = Proc(f"{impl.name}-server", server_argv(impl, config, announce_delay), logs / "server.log",
                      cwd=workdir)
        log = logs / "server.log"

        def running() -> bool:
            return not server.alive() or RUNNING_LINE in log.read_text(errors="replace")

        _wait(running, budget, 0.02)
        result["running_s"] = time.perf_counter() - t0 if server.alive() else None
        result["chains_start_s"] = log_span(log, RUNNING_LINE)
        topics = {f"/bench/c{k}" for k in range(chains)}
        _wait(lambda: topics <= listener.first.keys() or not server.alive(), budget)
        seen = [listener.first[t] for t in topics if t in listener.first]
        result["backlog_announced"] = len(seen)
        result["all_announced_s"] = max(seen) - t0 if len(seen) == chains else None
        before = listener.count
        t1 = time.perf_counter()
        for directory in dirs:
            temp = directory / f".new{SUFFIX}.part"
            temp.write_bytes(b"new\n")
            os.rename(temp, directory / f"new{SUFFIX}")
        _wait(lambda: listener.count - before >= chains or not server.alive(), 30.0)
        result["new_announced"] = listener.count - before
        result["new_all_s"] = time.perf_counter() - t1
        time.sleep(2.0)
        cpu0, w0 = server.cpu_seconds(), time.monotonic()
        time.sleep(idle)
        cpu1, wall = server.cpu_seconds(), time.monotonic() - w0
        if cpu0 is not None and cpu1 is not None:
            result["idle_cpu_pct"] = 100 * (cpu1 - cpu0) / wall
        result.update(idle_s=wall, threads=status_kib(server.pid, "Threads"),
                      server_rss_mib=_mib(status_kib(server.pid, "VmRSS")), alive=server.alive())
        if not server.alive():
            result["log_tail"] = server.log_tail(5)
    finally:
        listener.close()
        if server is not None:
            server.stop()
    return result


# -- the command --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backlog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART", help="backlog, chains (default: both)")
    parser.add_argument("--impl", action="append", choices=["ours", "baseline"],
                        help="implementation (repeatable; default: ours; baseline = .venv-baseline)")
    parser.add_argument("--files", type=int, default=100_000, help="backlog files (default 100000)")
    parser.add_argument("--kib", type=int, default=1, help="size of each backlog file in KiB (default 1)")
    parser.add_argument("--chains", type=int, default=200, help="chains of the chains part (default 200)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle CPU window in seconds (default 30)")
    parser.add_argument("--announce-delay", type=float, default=0.2,
                        help="the server's --announce-delay: time for the running client to reconnect (default 0.2)")
    parser.add_argument("--client", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra key of the backlog's client section (repeatable), e.g. reconcile_interval=0")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each part per implementation")
    parser.add_argument("--stall", type=float, default=30.0,
                        help="seconds without a delivery, after the first, before giving up (before it: --budget)")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument("--workdir", type=Path, help="where to create the directories (default: /dev/shm)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    if not args.no_netns and not os.environ.get(NETNS_ENV) and any(n != "lo" for n in report.interfaces()):
        os.environ[NETNS_ENV] = "1"
        netns = str(REPO / "scripts" / "in-netns")
        os.execv(netns, [netns, sys.executable, "-m", "benchmarks.backlog", *sys.argv[1:]])
    parts = args.parts or list(PARTS)
    impls = [i for i in IMPLEMENTATIONS if i.name in (args.impl or ["ours"])]
    root = work_root(args.workdir)
    print(f"work dir {root}", flush=True)
    try:
        for repeat in range(args.repeats):
            for part in parts:
                for impl in impls:
                    reason = impl.unavailable()
                    if reason:
                        print(f"[{part}] {impl.name}: skipped: {reason}", flush=True)
                        continue
                    workdir = root / f"{part}-{impl.name}-{repeat}"
                    if part == "backlog":
                        result = backlog(impl, workdir, files=args.files, kib=args.kib,
                                         announce_delay=args.announce_delay, stall=args.stall, budget=args.budget,
                                         client_extra=dict(item.split("=", 1) for item in args.client))
                    else:
                        result = many_chains(impl, workdir, chains=args.chains, announce_delay=args.announce_delay,
                                             idle=args.idle, budget=args.budget)
                    fields = "  ".join(f"{k}={report.fmt(v)}" for k, v in result.items())
                    print(f"[{part}] {impl.name} #{repeat + 1}: {fields}", flush=True)
                    if not args.keep:
                        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
