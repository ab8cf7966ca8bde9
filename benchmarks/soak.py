"""``python -m benchmarks.soak [--files 20000] [--fault-every N]``: a soak run of our server and
client with periodic faults. Not a test: it measures and reports, nothing asserts.

A producer writes ``--files`` files (1-16 KiB, seeded random content, hidden temp name renamed
into the watched dir) at ``--rate`` files/s. Every ``--fault-every`` files the client and the
server are SIGKILLed in turn, left down ``--down`` s and restarted on the same ports. Both keep
journals (client ``state_directory``, server ``--state-directory``); the server announces its
backlog at start (files that arrived while it was down) and deletes a file ``remove_delay`` s
after pushing it (``delete = true``, as operators keep the watched dir small; without it, a
server restart would announce every file still on disk, and those older than the client's
11,000-uid cache would be fetched again).

Counted at the end: delivered (in the destination with the right checksum), lost, partial
(final name, wrong content), duplicated three ways (``Delivered`` lines in the client logs,
``Pushed`` lines in the server logs, result messages seen on the client's publisher), files
given up, and VmRSS of server and client at start, before each kill and at the end.

Runs in a private network namespace (``scripts/in-netns``) unless already in one or
``--no-netns``; fixed ports as in the other benchmarks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import report
from benchmarks.configs import CLIENT_PUB_PORT, SUFFIX, write_client_ini, write_server_ini
from benchmarks.harness import Recorder
from benchmarks.impls import OURS_VENV, REPO, Ours
from benchmarks.procs import Proc

NETNS_ENV = "TROLLMOVES_BENCH_NETNS"
SEED = 20_000


@dataclass
class Restartable:
    """A role process restarted after each kill; one log file per run of it."""

    name: str
    argv: list[str]
    logs: Path
    cwd: Path
    runs: int = 0
    proc: Proc | None = None
    rss: list[tuple[str, int | None]] = field(default_factory=list)

    def start(self) -> None:
        self.runs += 1
        self.proc = Proc(f"{self.name}-{self.runs}", self.argv, self.logs / f"{self.name}-{self.runs}.log",
                         cwd=self.cwd)

    def sample(self, label: str) -> None:
        self.rss.append((label, self.proc.rss_kib() if self.proc else None))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.popen.send_signal(signal.SIGKILL)
        self.proc.popen.wait(20)
        self.proc.stop()  # closes the log

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob(f"{self.name}-*.log")))


def content(index: int) -> bytes:
    rng = random.Random(SEED * 1_000_003 + index)
    return rng.randbytes(rng.randint(1024, 16 * 1024))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000, help="files to send (default 20000)")
    parser.add_argument("--fault-every", type=int, default=2_000, metavar="N",
                        help="kill -9 the client and the server in turn every N files (default 2000; 0: no faults)")
    parser.add_argument("--rate", type=float, default=100.0, help="files written per second (default 100)")
    parser.add_argument("--down", type=float, default=2.0, help="seconds a killed process stays down (default 2)")
    parser.add_argument("--stall", type=float, default=90.0,
                        help="after the last file, give up after this many seconds without a new delivery")
    parser.add_argument("--workdir", type=Path, help="where to create the watched and destination dirs")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs) afterwards")
    parser.add_argument("--no-netns", action="store_true", help="do not re-run inside a private network namespace")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.no_netns and not os.environ.get(NETNS_ENV) and any(n != "lo" for n in report.interfaces()):
        os.environ[NETNS_ENV] = "1"
        netns = str(REPO / "scripts" / "in-netns")
        os.execv(netns, [netns, sys.executable, "-m", "benchmarks.soak", *sys.argv[1:]])
    reason = Ours("ours", OURS_VENV).unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="trollmoves-soak-", dir=args.workdir))
    try:
        text = run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
        print(f"wrote {args.markdown}")
    return 0


def run(args: argparse.Namespace, root: Path) -> str:
    watch, out, state, logs = root / "in", root / "out", root / "state", root / "logs"
    for directory in (watch, out, state, logs):
        directory.mkdir()
    spec = write_server_ini(root / "server.ini", watch, 0, {"delete": "true", "remove_delay": "30"})
    client_ini = write_client_ini(root / "client.ini", [spec], f"file://{out}/", extra={
        "state_directory": str(state), "retry_delay": "0.5", "max_retry_delay": "5", "give_up_after": "900",
        "max_requests_in_flight": "8"})
    trollmoves = str(OURS_VENV / "bin" / "trollmoves")
    server = Restartable("server", [trollmoves, "server", "--bind", "127.0.0.1", "-p", str(spec.pub_port),
                                    "--state-directory", str(state), str(spec.config)], logs, root)
    client = Restartable("client", Ours("ours", OURS_VENV).client_argv(client_ini), logs, root)
    began = time.monotonic()
    server.start()
    client.start()
    recorder = Recorder(f"tcp://127.0.0.1:{CLIENT_PUB_PORT}")
    events: list[str] = []
    expected: dict[str, tuple[int, str]] = {}
    try:
        probe = 0
        while True:  # the whole path works before the stream starts
            probe += 1
            uid = f"probe-{probe}{SUFFIX}"
            (watch / f".{uid}").write_bytes(b"probe")
            os.rename(watch / f".{uid}", watch / uid)
            if recorder.wait_for(uid, 2.0) is not None:
                break
            if time.monotonic() - began > 60 or not (server.proc.alive() and client.proc.alive()):
                raise RuntimeError("no probe file got through\n" + server.proc.log_tail() + client.proc.log_tail())
        time.sleep(1.0)
        server.sample("start")
        client.sample("start")
        produced = [0]
        done = threading.Event()

        def produce() -> None:
            t0 = time.monotonic()
            for i in range(args.files):
                name = f"s{i:06d}{SUFFIX}"
                data = content(i)
                expected[name] = (len(data), hashlib.sha256(data).hexdigest())
                temp = watch / f".{name}"
                temp.write_bytes(data)
                os.rename(temp, watch / name)
                produced[0] = i + 1
                delay = t0 + (i + 1) / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            done.set()

        producer = threading.Thread(target=produce, name="producer", daemon=True)
        stream_start = time.monotonic()
        producer.start()
        faults = 0
        thresholds = range(args.fault_every, args.files, args.fault_every) if args.fault_every > 0 else range(0)
        for threshold in thresholds:
            while produced[0] < threshold and not done.is_set():
                time.sleep(0.02)
            faults += 1
            victim = client if faults % 2 else server
            victim.sample(f"before kill {faults}")
            victim.kill()
            events.append(f"{time.monotonic() - stream_start:7.1f} s  kill -9 {victim.name} after {produced[0]} "
                          f"files written, {sum(u.startswith('s') for u in recorder.arrivals)} results seen")
            print(events[-1], flush=True)
            time.sleep(args.down)
            victim.start()
        producer.join()
        produced_s = time.monotonic() - stream_start
        # wait for the destination to hold every file; stop after a stall
        last, last_change = -1, time.monotonic()
        while True:
            present = sum(1 for name in os.listdir(out) if name in expected)
            if present == len(expected):
                break
            if present != last:
                last, last_change = present, time.monotonic()
            elif time.monotonic() - last_change > args.stall:
                events.append(f"stalled at {present} of {len(expected)} files for {args.stall:.0f} s")
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - stream_start
        time.sleep(3.0)  # late duplicates would show up now
        server.sample("end")
        client.sample("end")
    finally:
        recorder.close()
        for role in (client, server):
            if role.proc is not None:
                role.proc.stop()
    return render(args, Outcome(expected, out, server, client, recorder, events, faults, produced_s, drain_s))


@dataclass
class Outcome:
    """What a run left behind, for :func:`render`."""

    expected: dict[str, tuple[int, str]]
    """File name -> (size, sha256)."""
    out: Path
    server: Restartable
    client: Restartable
    recorder: Recorder
    events: list[str]
    faults: int
    produced_s: float
    drain_s: float


def render(args: argparse.Namespace, outcome: Outcome) -> str:
    expected, out, server, client = outcome.expected, outcome.out, outcome.server, outcome.client
    recorder, events, faults = outcome.recorder, outcome.events, outcome.faults
    produced_s, drain_s = outcome.produced_s, outcome.drain_s
    delivered = partial = 0
    for name, (size, digest) in expected.items():
        path = out / name
        if not path.exists():
            continue
        if path.stat().st_size == size and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            delivered += 1
        else:
            partial += 1
    leftovers = [n for n in os.listdir(out) if n.startswith(".")]
    client_log, server_log = client.log_text(), server.log_text()
    lines = Counter(re.findall(r"Delivered (s\d+\.dat) from", client_log))
    pushes = Counter(re.findall(r"Pushed \S+/(s\d+\.dat) to", server_log))
    results = Counter({uid: len(times) for uid, times in recorder.arrivals.items() if uid.startswith("s")})
    republished = len(set(re.findall(r"Published the result of (s\d+\.dat) delivered before", client_log)))
    resumed = sum(int(n) for n in re.findall(r"Resuming (\d+) file", client_log))
    given_up = client_log.count("; giving up: ")
    lost = len(expected) - delivered - partial
    rows = [
        ("files written", len(expected)),
        ("delivered (destination, checksum ok)", delivered),
        ("lost (missing at the destination)", lost),
        ("partial or wrong (final name, bad checksum)", partial),
        ("duplicated: client `Delivered` lines > 1", sum(n - 1 for n in lines.values() if n > 1)),
        ("duplicated: server `Pushed` lines > 1", sum(n - 1 for n in pushes.values() if n > 1)),
        ("duplicated: result messages seen > 1", sum(n - 1 for n in results.values() if n > 1)),
        ("result messages seen (the recorder misses some while the client restarts)", len(results)),
        ("results republished after a client restart (delivered before the kill)", republished),
        ("files resumed from the client journal", resumed),
        ("given up by the client", given_up),
        ("hidden temporary files left in the destination", len(leftovers)),
        ("ERROR lines / tracebacks: server", f"{server_log.count(' ERROR ')} / {server_log.count('Traceback')}"),
        ("ERROR lines / tracebacks: client", f"{client_log.count(' ERROR ')} / {client_log.count('Traceback')}"),
        ("faults (kill -9)", faults),
        ("runs: server / client", f"{server.runs} / {client.runs}"),
        ("writing took s", f"{produced_s:.1f}"),
        ("last delivery after s", f"{drain_s:.1f}"),
    ]
    rss_rows = [(role.name, label, kib) for role in (server, client) for label, kib in role.rss]
    started = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    machine = report.machine_facts()
    cpu = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, commit {machine.get('commit', '?')}"
    text = [
        "# Soak: our server and client under periodic kill -9",
        "",
        f"`python -m benchmarks.soak {' '.join(sys.argv[1:])}`, finished {started}.",
        f"Files {args.files} at {args.rate:g}/s, a fault every {args.fault_every} files (client and server in "
        f"turn, down {args.down:g} s), file:// destination. Machine: {cpu}; "
        f"interfaces {', '.join(machine.get('netns_interfaces', []))}.",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in rows),
        "",
        *_duplicates_note(lines, pushes, results),
        "VmRSS (KiB); `before kill k` is the process about to be killed, `end` the last run of each.",
        "",
        "| process | when | VmRSS KiB |",
        "|---|---|---|",
        *(f"| {name} | {label} | {kib if kib is not None else '-'} |" for name, label, kib in rss_rows),
        "",
        "Events:",
        "",
        "```",
        *events,
        "```",
        "",
    ]
    return "\n".join(text)


def _duplicates_note(lines: Counter, pushes: Counter, results: Counter) -> list[str]:
    """Which files counted twice, and what a double ``Pushed`` line means."""
    note = []
    for what, counts in (("client `Delivered`", lines), ("server `Pushed`", pushes), ("result message", results)):
        twice = sorted(uid for uid, n in counts.items() if n > 1)
        if twice:
            note.append(f"- {what} more than once: {', '.join(twice[:10])}{' ...' if len(twice) > 10 else ''}")
    if not note:
        return []
    return [*note, "",
            "A `Pushed` line twice without a second `Delivered` line is a file the server had transferred when it "
            "was killed, before its reply reached the client: the client asks again (after `transfer_req_timeout`) "
            "and the restarted server, which cannot know, transfers it again to the same name (same content, "
            "atomic replace). The file is delivered and announced once.", ""]


if __name__ == "__main__":
    sys.exit(main())
