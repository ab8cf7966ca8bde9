"""The roles on a local Mosquitto, next to the same roles over ZeroMQ: the ``mqtt_latency`` and
``mqtt_burst`` scenarios of ``python -m benchmarks``, and ``python -m benchmarks.mqtt_roles``.

Ours only (upstream has no broker): one ``trollmoves server``, its clients delivering to one
directory; a recorder (a ZeroMQ subscriber on the client's publisher, or a subscriber on the
broker) stamps each client result. Latency: files of 1 KiB written under a hidden name and renamed
into the watched dir one at a time, rename to the result. Burst: files of 10 KiB staged beside the
watched dir and renamed in at once; per setup (one client over ZeroMQ, one client over MQTT
without a group, groups of N) files/s from the first rename to the last result, lost and
duplicated results, destination files missing, and CPU per file of the server, of each client and
of the broker. Group members wait ``takeover_after`` after their start before the burst (each
member holds its own share that long after a start).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.configs import SUFFIX, TOPIC
from benchmarks.harness import Recorder
from benchmarks.impls import BASELINE_VENV, OURS_VENV, REPO
from benchmarks.procs import Proc
from benchmarks.report import interfaces
from benchmarks.scenarios import payload, percentile

if TYPE_CHECKING:
    from benchmarks.impls import Implementation
    from benchmarks.scenarios import Params

TAKEOVER_AFTER = 30.0
"""The members' default ``takeover_after``: longer than the burst, so no healthy file is taken over."""
GROUPS = (0, 1, 2, 4)
"""Setups over MQTT: 0 is one client without a group, N a group of N."""
NETNS_ENV = "TROLLMOVES_BENCH_NETNS"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def setup_name(members: int | None) -> str:
    return "zeromq, 1 client" if members is None else f"mqtt, group of {members}" if members else "mqtt, 1 client"


@dataclass
class Roles:
    """A running server and its client(s), ``members`` as in :func:`run_burst`, and the recorder."""

    root: Path
    watch: Path
    staging: Path
    out: Path
    procs: list[Proc] = field(default_factory=list)
    broker: object = None
    results: Recorder | None = None

    @property
    def clients(self) -> list[Proc]:
        return self.procs[1:]


@contextlib.contextmanager
def running(root: Path, members: int | None, takeover_after: float = TAKEOVER_AFTER,
            venv: Path = OURS_VENV) -> Iterator[Roles]:
    """Start a server and its client(s) from ``venv`` (one over ZeroMQ for ``members`` None, one over
    MQTT without a group for 0, else a group of that many), and a recorder of their results; stop
    them all on exit."""
    from trollmoves_mqtt.testing import Mosquitto

    trollmoves = str(venv / "bin" / "trollmoves")
    root.mkdir(parents=True)
    roles = Roles(root, root / "in", root / "staging", root / "out")
    for directory in (roles.watch, roles.staging, roles.out):
        directory.mkdir()
    broker = roles.broker = Mosquitto(root / "mosquitto").start() if members is not None else None
    bus = broker.url(prefix="bench") if broker is not None else None
    try:
        server_ini = root / "server.ini"
        server_ini.write_text(f"[bench]\norigin = {roles.watch}/{{name}}{SUFFIX}\ntopic = {TOPIC}\n"
                              f"request_port = {_free_port()}\nrequest_address = 127.0.0.1\nstation = bench\n")
        pub_port = _free_port()
        server = Proc("server", [trollmoves, "server", "-p", str(pub_port), "--bind", "127.0.0.1",
                                 "--disable-backlog", *(["--bus", bus] if bus else []), str(server_ini)],
                      root / "server.log")
        roles.procs.append(server)
        _wait(lambda: "Server running" in server.log_path.read_text(errors="replace"), 30, "the server")
        client_pub = _free_port()
        for n in range(members or 1):
            ini = root / f"client{n}.ini"
            ini.write_text(f"[bench]\nproviders = 127.0.0.1:{pub_port}\ndestination = file://{roles.out}/\n"
                           f"topic = {TOPIC}\npublish_port = {client_pub}\nnameservers = false\n"
                           "reconcile_interval = 0\n")
            member_bus = None if bus is None else f"{bus}?client_id=member{n}" + (
                f"&group=g&takeover_after={takeover_after:g}" if members else "")
            roles.procs.append(Proc(f"client{n}", [trollmoves, "client", str(ini),
                                                   *(["--bus", member_bus] if member_bus else [])],
                                    root / f"client{n}.log"))
        for proc in roles.clients:
            _wait(lambda p=proc: "Subscribing to" in p.log_path.read_text(errors="replace"), 30, proc.name)
        if broker is not None:
            from trollmoves_mqtt.transport import MqttTransport

            _wait(lambda: len(set(re.findall(r"Received SUBSCRIBE from (member\d+)-sub-", broker.log())))
                  == max(members, 1), 30, "the members' subscriptions")
            recorder_bus = MqttTransport.for_bus(f"{bus}?client_id=rec{uuid.uuid4().hex[:8]}&session_expiry=0")
            subscriber = recorder_bus.subscriber([], [TOPIC])
            roles.results = Recorder(subscriber)
            time.sleep(takeover_after if members else 2)
        else:
            from trollmoves_roles.bus.posttroll import Subscription

            subscription = Subscription([f"tcp://127.0.0.1:{client_pub}"], ["/"])
            roles.results = Recorder(subscription)
            time.sleep(2)  # the client's subscription to the server and ours to the client connect
        yield roles
    finally:
        if roles.results is not None:
            roles.results.close()
        for proc in reversed(roles.procs):
            proc.stop()
        if broker is not None:
            broker.stop()


def run_burst(root: Path, files: int, members: int | None, *, takeover_after: float = TAKEOVER_AFTER,
              venv: Path = OURS_VENV, stall: float = 30.0) -> dict:
    """One burst of ``files`` files of 10 KiB; ``members`` None: one client over ZeroMQ, 0: one
    client over MQTT without a group, else a group of that many over MQTT."""
    with running(root, members, takeover_after, venv) as roles:
        assert roles.results is not None
        data = payload(10 * 1024)
        staged = []
        for i in range(files):
            path = roles.staging / f"burst-{i:05d}{SUFFIX}"
            path.write_bytes(data)
            staged.append(path)
        cpu_before = {p.name: p.cpu_seconds() or 0.0 for p in roles.procs}
        broker_before = _cpu(roles.broker.proc.pid) if roles.broker is not None else 0.0
        t0 = time.perf_counter()
        for path in staged:
            os.rename(path, roles.watch / path.name)
        uids = {p.name for p in staged}
        roles.results.wait_all(uids, math.inf, stall)
        elapsed = max((times[0] for times in roles.results.arrivals.values() if times), default=t0) - t0
        cpu = {p.name: (p.cpu_seconds() or 0.0) - cpu_before[p.name] for p in roles.procs}
        broker_cpu = _cpu(roles.broker.proc.pid) - broker_before if roles.broker is not None else None
        time.sleep(1.0)  # late duplicates
        got = Counter({uid: len(times) for uid, times in roles.results.arrivals.items() if uid in uids})
        present = {entry.name for entry in os.scandir(roles.out)}
        clients = [cpu[p.name] * 1000 / files for p in roles.clients]
        return {
            "setup": setup_name(members), "files": files, "lost": len(uids - set(got)),
            "dup": sum(c - 1 for c in got.values()), "dest_missing": len(uids - present), "time_s": elapsed,
            "files_per_s": len(got) / elapsed if elapsed > 0 else None,
            "server_cpu_ms_per_file": cpu["server"] * 1000 / files,
            "client_cpu_ms_per_file": clients, "clients_cpu_ms_per_file": sum(clients),
            "broker_cpu_ms_per_file": None if broker_cpu is None else broker_cpu * 1000 / files,
        }


def run_latency(root: Path, files: int, members: int | None = 0, *, venv: Path = OURS_VENV, stall: float = 30.0,
                budget: float = 900.0) -> dict:
    """``files`` files of 1 KiB one at a time, rename to the client's result (``members`` as in
    :func:`run_burst`)."""
    with running(root, members, venv=venv) as roles:
        assert roles.results is not None
        data = payload(1024)
        deadline = time.monotonic() + budget
        latencies, lost = [], 0
        for i in range(files):
            if time.monotonic() > deadline:
                break
            uid = f"lat-{i:05d}{SUFFIX}"
            temp = roles.watch / f".{uid}.part"
            temp.write_bytes(data)
            t0 = time.perf_counter()
            os.rename(temp, roles.watch / uid)
            arrived = roles.results.wait_for(uid, min(stall, max(0.1, deadline - time.monotonic())))
            if arrived is None:
                lost += 1
                continue
            latencies.append(arrived - t0)
        ms = [x * 1000 for x in latencies]
        return {"setup": setup_name(members), "files": len(latencies) + lost, "lost": lost,
                "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
                "max_ms": max(ms, default=None)}


# --- the scenarios of ``python -m benchmarks`` ---------------------------------------------------

def _not_ours(impl: Implementation) -> dict | None:
    if impl.name == "upstream":
        return {"error": "ours only: upstream has no broker transport"}
    if not list(impl.venv.glob("lib/python*/site-packages/trollmoves_mqtt*")):
        return {"error": f"no trollmoves-mqtt in {impl.venv.name}"}
    return None


def latency_scenario(impl: Implementation, workdir: Path, params: Params) -> dict:
    """``mqtt_latency``: the latency scenario's files over ZeroMQ, then over the broker (one client
    without a group); the result's ``setups`` has a row each, its top level the broker's figures."""
    if (skipped := _not_ours(impl)) is not None:
        return skipped
    setups = [run_latency(workdir / ("zeromq" if members is None else "mqtt"), params.latency_files, members,
                          venv=impl.venv, stall=params.stall, budget=params.budget / 2) for members in (None, 0)]
    return {"setups": setups, **{k: v for k, v in setups[1].items() if k != "setup"},
            "zeromq_p50_ms": setups[0]["p50_ms"], "zeromq_p99_ms": setups[0]["p99_ms"]}


def burst_scenario(impl: Implementation, workdir: Path, params: Params) -> dict:
    """``mqtt_burst``: the burst over ZeroMQ, then over the broker with one client and groups; the
    result's ``setups`` has one row each, its top level what the targets judge."""
    if (skipped := _not_ours(impl)) is not None:
        return skipped
    setups = []
    for members in (None, *GROUPS):
        name = "zeromq" if members is None else f"mqtt-{members}"
        setups.append(run_burst(workdir / name, params.burst_files, members, takeover_after=params.mqtt_takeover_after,
                                venv=impl.venv, stall=params.stall))
    return summary(setups)


def summary(setups: list[dict]) -> dict:
    """``setups`` with each one's files/s relative to ZeroMQ's, and what the targets judge."""
    by_name = {row["setup"]: row for row in setups}
    zeromq = (by_name.get(setup_name(None)) or {}).get("files_per_s")
    for row in setups:
        row["vs_zeromq"] = row["files_per_s"] / zeromq if zeromq and row["files_per_s"] else None
    one = (by_name.get(setup_name(0)) or {}).get("files_per_s")
    groups = [row["files_per_s"] or 0.0 for row in setups if row["setup"].startswith("mqtt, group of ")
              and not row["setup"].endswith(" 1")]
    mqtt = [row for row in setups if row["setup"].startswith("mqtt")]
    return {"setups": setups, "zeromq_files_per_s": zeromq, "mqtt_files_per_s": one,
            "vs_zeromq": one / zeromq if one and zeromq else None,
            "group_min_files_per_s": min(groups, default=None),
            "lost": sum(row["lost"] for row in mqtt), "dup": sum(row["dup"] for row in mqtt)}


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt_roles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--groups", type=int, nargs="*", default=list(GROUPS), metavar="N",
                        help="group sizes over MQTT, 0 for one client without a group (default 0 1 2 4)")
    parser.add_argument("--takeover-after", type=float, default=TAKEOVER_AFTER, metavar="SECONDS",
                        help="the members' takeover_after, and how long they run before the burst (default 30)")
    parser.add_argument("--no-zeromq", action="store_true", help="skip the ZeroMQ burst")
    parser.add_argument("--venv", type=Path, action="append", metavar="DIR",
                        help="run the roles of this venv (repeatable, e.g. .venv-baseline and .venv: before/after "
                             "in one run, setup by setup; default .venv)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if not os.environ.get(NETNS_ENV) and any(name != "lo" for name in interfaces()):
        os.environ[NETNS_ENV] = "1"
        os.execv(str(REPO / "scripts" / "in-netns"),
                 [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "benchmarks.mqtt_roles", *sys.argv[1:]])
    from benchmarks.report import table

    venvs = [venv.resolve() for venv in args.venv or [OURS_VENV]]
    root = Path(tempfile.mkdtemp(prefix="trollmoves-bench-mqtt-"))
    # named as in python -m benchmarks, so that the table shows ours/baseline
    names = {OURS_VENV.resolve(): "ours", BASELINE_VENV.resolve(): "baseline"}
    rows: dict[str, list[dict]] = {names.get(venv, venv.name): [] for venv in venvs}
    try:
        for members in ([] if args.no_zeromq else [None]) + list(args.groups):
            for venv in venvs:
                name = "zeromq" if members is None else f"mqtt-{members}"
                print(f"[{venv.name} {name}] ...", flush=True)
                rows[names.get(venv, venv.name)].append(run_burst(root / venv.name / name, args.files, members,
                                                 takeover_after=args.takeover_after, venv=venv))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = table("mqtt_burst", {name: summary(setups) for name, setups in rows.items()})
    print(text)
    if args.markdown:
        args.markdown.write_text(f"# Roles over MQTT: burst of {args.files} files\n\n"
                                 f"`python -m benchmarks.mqtt_roles {' '.join(sys.argv[1:])}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
