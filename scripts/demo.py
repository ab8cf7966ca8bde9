"""`make demo`: a real server and client moving files on loopback.

Starts `trollmoves server` and `trollmoves client` with configs written to a temporary
directory (fixed loopback addresses, no nameserver, no multicast), drops a few files into the
server's watched directory, and reports each file's announcement, delivery and latency from
the client's own `file` messages on the bus. The directory is removed at the end unless
`--keep` is given (or the demo failed: its logs are kept for reading).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from trollmoves_roles.bus.posttroll import Subscription

BIN = Path(sys.executable).parent
FILES = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a server and a client moving files on loopback")
    parser.add_argument("--keep", action="store_true", help="keep the demo directory (configs, files, logs)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="trollmoves-demo-"))
    status = 1
    try:
        status = run_demo(work)
    finally:
        if args.keep or status != 0:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


def run_demo(work: Path) -> int:
    """Run the demo in ``work``; 0 when every file arrived byte-identical."""
    inbox, outbox = work / "in", work / "out"
    inbox.mkdir()
    outbox.mkdir()
    server_pub, request_port, client_pub = free_port(), free_port(), free_port()
    (work / "server.ini").write_text(
        f"[demo]\norigin = {inbox}/{{platform}}_{{start_time:%Y%m%d%H%M%S}}.dat\ntopic = /demo/data\n"
        f"request_port = {request_port}\nrequest_address = 127.0.0.1\nstation = demo-station\n")
    (work / "client.ini").write_text(
        f"[demo]\nproviders = 127.0.0.1:{server_pub}\ndestination = file://{outbox}/\ntopic = /demo/data\n"
        f"publish_port = {client_pub}\nnameservers = false\nbind_address = 127.0.0.1\n")
    print(f"demo directory: {work}")
    logs = {name: open(work / f"{name}.log", "w") for name in ("server", "client")}  # noqa: SIM115
    procs = [
        subprocess.Popen([BIN / "trollmoves", "server", work / "server.ini", "-p", str(server_pub),
                          "--bind", "127.0.0.1", "--disable-backlog"], stdout=logs["server"], stderr=subprocess.STDOUT),
        subprocess.Popen([BIN / "trollmoves", "client", work / "client.ini"],
                         stdout=logs["client"], stderr=subprocess.STDOUT),
    ]
    announcements = Subscription([f"tcp://127.0.0.1:{server_pub}"], ["/demo/data"])
    deliveries = Subscription([f"tcp://127.0.0.1:{client_pub}"], ["/demo/data"])
    try:
        if not wait_for_server(request_port):
            print("server did not start; see", work / "server.log")
            return 1
        time.sleep(1.0)  # let the client subscribe before the first announcement
        announced, delivered = Recorder(announcements), Recorder(deliveries)
        written: dict[str, float] = {}
        for i in range(FILES):
            name = f"noaa{19 + i % 2}_20240102{i:06d}.dat"
            temp = inbox / f".{name}"
            temp.write_bytes(os.urandom(256 * 1024))
            written[name] = time.monotonic()
            os.replace(temp, inbox / name)  # appears complete, as a careful producer writes
            time.sleep(0.2)
        deadline = time.monotonic() + 15
        while len(delivered.first_seen) < FILES and time.monotonic() < deadline:
            time.sleep(0.05)
        announced.stop()
        delivered.stop()
        print(f"\ndropped {FILES} files of 256 KiB into {inbox}\n")
        print(f"{'file':30} {'announced after':>16} {'delivered after':>16}  landed at")
        for name, t0 in written.items():
            ann = announced.first_seen.get(name, (float("nan"), ""))[0]
            done, uri = delivered.first_seen.get(name, (float("nan"), "(not delivered)"))
            print(f"{name:30} {1000 * (ann - t0):14.1f}ms {1000 * (done - t0):14.1f}ms  {uri}")
        ok = sum(1 for name in delivered.first_seen if same(inbox / name, outbox / name))
        print(f"\n{len(delivered.first_seen)}/{FILES} delivered, {ok} byte-identical")
        return 0 if ok == FILES else 1
    finally:
        announcements.close()
        deliveries.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        for log in logs.values():
            log.close()


class Recorder:
    """Note when each file's first ``file`` message arrives, on a thread of its own."""

    def __init__(self, subscription: Subscription) -> None:
        self.first_seen: dict[str, tuple[float, str]] = {}
        self._subscription = subscription
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            msg = self._subscription.recv(0.05)
            if msg is not None and msg.type == "file":
                self.first_seen.setdefault(msg.data.get("uid"), (time.monotonic(), msg.data.get("uri", "")))

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(2)


def wait_for_server(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def same(a: Path, b: Path) -> bool:
    return b.exists() and hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()


if __name__ == "__main__":
    sys.exit(main())
