"""``python -m benchmarks.mqtt_roles``: the burst of ``python -m benchmarks`` with the roles on a
local Mosquitto, one client and groups of 2 and 4, next to the same burst over ZeroMQ.

Ours only (upstream has no broker): one ``trollmoves server``, its clients delivering to one
directory. Files of 10 KiB are staged beside the watched dir and renamed in at once; a recorder
(a ZeroMQ subscriber on the client's publisher, or a subscriber on the broker) stamps each
client result. Reported per setup: files/s from the first rename to the last result, lost and
duplicated results, destination files missing, and CPU per file of the server, of each client
and of the broker. Group members wait ``takeover_after`` after their start before the burst
(each member holds its own share that long after a start).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.configs import SUFFIX, TOPIC
from benchmarks.impls import OURS_VENV, REPO
from benchmarks.procs import Proc
from benchmarks.report import interfaces
from benchmarks.scenarios import payload

TROLLMOVES = str(OURS_VENV / "bin" / "trollmoves")
TAKEOVER_AFTER = 30.0
"""The members' default ``takeover_after``: longer than the burst, so no healthy file is taken over."""
NETNS_ENV = "TROLLMOVES_BENCH_NETNS"


class Results:
    """Client results (``file`` with ``origin`` and no ``request_address``) per uid, stamped on arrival."""

    def __init__(self, recv: Callable[[float], object], close: Callable[[], None]) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self._recv, self._close = recv, close
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            message = self._recv(0.05)
            if message is None:
                continue
            now = time.perf_counter()
            data = message.data if isinstance(message.data, dict) else {}
            if message.type == "file" and "origin" in data and "request_address" not in data:
                self.arrivals.setdefault(str(data.get("uid", "")), []).append(now)

    def wait(self, uids: set[str], stall: float) -> None:
        """Until every uid arrived, or ``stall`` s pass without a new one."""
        last, progress = -1, time.monotonic()
        while (count := sum(1 for u in uids if u in self.arrivals)) < len(uids):
            if count != last:
                last, progress = count, time.monotonic()
            elif time.monotonic() - progress > stall:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self._halt.set()
        self._thread.join(2)
        self._close()


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


def run_burst(root: Path, files: int, members: int | None, takeover_after: float = TAKEOVER_AFTER) -> dict:
    """One burst; ``members`` None: one client over ZeroMQ, 0: one client over MQTT without a group,
    else a group of that many over MQTT."""
    from trollmoves_mqtt.testing import Mosquitto

    root.mkdir(parents=True)
    watch, staging, out = root / "in", root / "staging", root / "out"
    for directory in (watch, staging, out):
        directory.mkdir()
    broker = Mosquitto(root / "mosquitto").start() if members is not None else None
    prefix = "bench"
    bus = broker.url(prefix=prefix) if broker is not None else None
    procs: list[Proc] = []
    results = None
    try:
        server_ini = root / "server.ini"
        server_ini.write_text(f"[bench]\norigin = {watch}/{{name}}{SUFFIX}\ntopic = {TOPIC}\n"
                              f"request_port = {_free_port()}\nrequest_address = 127.0.0.1\nstation = bench\n")
        pub_port = _free_port()
        server = Proc("server", [TROLLMOVES, "server", "-p", str(pub_port), "--bind", "127.0.0.1",
                                 "--disable-backlog", *(["--bus", bus] if bus else []), str(server_ini)],
                      root / "server.log")
        procs.append(server)
        _wait(lambda: "Server running" in server.log_path.read_text(errors="replace"), 30, "the server")
        client_pub = _free_port()
        for n in range(members or 1):
            ini = root / f"client{n}.ini"
            ini.write_text(f"[bench]\nproviders = 127.0.0.1:{pub_port}\ndestination = file://{out}/\n"
                           f"topic = {TOPIC}\npublish_port = {client_pub}\nnameservers = false\n"
                           "reconcile_interval = 0\n")
            member_bus = None if bus is None else f"{bus}?client_id=member{n}" + (
                f"&group=g&takeover_after={takeover_after:g}" if members else "")
            procs.append(Proc(f"client{n}", [TROLLMOVES, "client", str(ini),
                                             *(["--bus", member_bus] if member_bus else [])],
                              root / f"client{n}.log"))
        for proc in procs[1:]:
            _wait(lambda p=proc: "Subscribing to" in p.log_path.read_text(errors="replace"), 30, proc.name)
        if broker is not None:
            from trollmoves_mqtt.transport import MqttTransport

            _wait(lambda: len(set(re.findall(r"Received SUBSCRIBE from (member\d+)-sub-", broker.log())))
                  == max(members, 1), 30, "the members' subscriptions")
            recorder_bus = MqttTransport.for_bus(f"{bus}?client_id=rec{uuid.uuid4().hex[:8]}&session_expiry=0")
            subscriber = recorder_bus.subscriber([], [TOPIC])
            results = Results(subscriber.recv, subscriber.close)
            time.sleep(takeover_after if members else 2)
        else:
            from trollmoves_roles.bus.posttroll import Subscription

            subscription = Subscription([f"tcp://127.0.0.1:{client_pub}"], ["/"])
            results = Results(subscription.recv, subscription.close)
            time.sleep(2)  # the client's subscription to the server and ours to the client connect
        data = payload(10 * 1024)
        staged = []
        for i in range(files):
            path = staging / f"burst-{i:05d}{SUFFIX}"
            path.write_bytes(data)
            staged.append(path)
        cpu_before = {p.name: p.cpu_seconds() or 0.0 for p in procs}
        broker_before = _cpu(broker.proc.pid) if broker is not None else 0.0
        t0 = time.perf_counter()
        for path in staged:
            os.rename(path, watch / path.name)
        uids = {p.name for p in staged}
        results.wait(uids, stall=30)
        elapsed = max((times[0] for times in results.arrivals.values() if times), default=t0) - t0
        cpu = {p.name: (p.cpu_seconds() or 0.0) - cpu_before[p.name] for p in procs}
        broker_cpu = _cpu(broker.proc.pid) - broker_before if broker is not None else None
        time.sleep(1.0)  # late duplicates
        got = Counter({uid: len(times) for uid, times in results.arrivals.items() if uid in uids})
        present = {entry.name for entry in os.scandir(out)}
        return {
            "setup": ("zeromq, 1 client" if members is None else f"mqtt, group of {members}" if members
                      else "mqtt, 1 client, no group"),
            "files": files, "lost": len(uids - set(got)), "dup": sum(c - 1 for c in got.values()),
            "dest_missing": len(uids - present), "time_s": elapsed,
            "files_per_s": len(got) / elapsed if elapsed > 0 else None,
            "server_cpu_ms_per_file": cpu["server"] * 1000 / files,
            "client_cpu_ms_per_file": [cpu[f"client{n}"] * 1000 / files for n in range(members or 1)],
            "clients_cpu_ms_per_file": sum(cpu[f"client{n}"] for n in range(members or 1)) * 1000 / files,
            "broker_cpu_ms_per_file": None if broker_cpu is None else broker_cpu * 1000 / files,
        }
    finally:
        if results is not None:
            results.close()
        for proc in reversed(procs):
            proc.stop()
        if broker is not None:
            broker.stop()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def table(rows: list[dict]) -> str:
    lines = ["| setup | files | lost | dup | dest missing | time s | files/s | server CPU ms/file | "
             "client CPU ms/file (each) | clients CPU ms/file | broker CPU ms/file |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        each = " / ".join(f"{v:.2f}" for v in row["client_cpu_ms_per_file"])
        broker = "" if row["broker_cpu_ms_per_file"] is None else f"{row['broker_cpu_ms_per_file']:.2f}"
        rate = "" if row["files_per_s"] is None else f"{row['files_per_s']:.0f}"
        lines.append(f"| {row['setup']} | {row['files']} | {row['lost']} | {row['dup']} | {row['dest_missing']} | "
                     f"{row['time_s']:.2f} | {rate} | {row['server_cpu_ms_per_file']:.2f} | {each} | "
                     f"{row['clients_cpu_ms_per_file']:.2f} | {broker} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt_roles", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--groups", type=int, nargs="*", default=[0, 1, 2, 4], metavar="N",
                        help="group sizes over MQTT, 0 for one client without a group (default 0 1 2 4)")
    parser.add_argument("--takeover-after", type=float, default=TAKEOVER_AFTER, metavar="SECONDS",
                        help="the members' takeover_after, and how long they run before the burst (default 30)")
    parser.add_argument("--no-zeromq", action="store_true", help="skip the ZeroMQ burst")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if not os.environ.get(NETNS_ENV) and any(name != "lo" for name in interfaces()):
        os.environ[NETNS_ENV] = "1"
        os.execv(str(REPO / "scripts" / "in-netns"),
                 [str(REPO / "scripts" / "in-netns"), sys.executable, "-m", "benchmarks.mqtt_roles", *sys.argv[1:]])
    root = Path(tempfile.mkdtemp(prefix="trollmoves-bench-mqtt-"))
    rows = []
    try:
        for members in ([] if args.no_zeromq else [None]) + list(args.groups):
            name = "zeromq" if members is None else f"mqtt-{members}"
            print(f"[{name}] ...", flush=True)
            rows.append(run_burst(root / name, args.files, members, args.takeover_after))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(f"# Roles over MQTT: burst of {args.files} files\n\n"
                                 f"`python -m benchmarks.mqtt_roles --files {args.files}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
