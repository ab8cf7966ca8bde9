"""Helpers for client-role tests: INI writers, our client in-process or as a subprocess, the
upstream server as a peer, and waiting for files to flow."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from support.bus import BusRecorder, free_port, wait_until
from support.ini import write_ini
from trollmoves_roles.client.chain import Chain
from trollmoves_roles.client.process import ClientProcess

REPO = Path(__file__).resolve().parents[3]
TROLLMOVES = Path(sys.executable).with_name("trollmoves")



def client_section(providers: str, destination: str | Path, publish_port: int, **extra: object) -> dict[str, object]:
    section: dict[str, object] = {"providers": providers, "destination": destination, "topic": "/test/data",
                                  "publish_port": publish_port, "nameservers": "false",
                                  "bind_address": "127.0.0.1"}
    section.update(extra)
    return section


class InProcessClient:
    """Our client's ClientProcess running in a thread (no signals), stopped with :meth:`stop`."""

    def __init__(self, config: Path) -> None:
        self.process = ClientProcess(config)
        self._thread = threading.Thread(target=self.process.run, daemon=True)
        self._thread.start()
        assert self.process.started.wait(10)

    def chain(self, name: str) -> Chain:
        return self.process.chains[name]

    def stop(self) -> None:
        self.process.stop()
        self._thread.join(15)
        assert not self._thread.is_alive()


class ClientSubprocess:
    """``trollmoves client CONFIG -v`` as a separate process with a log file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(TROLLMOVES), "client", str(config), "-v"], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(15)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class _ServerPeer:
    """A trollmoves server watching ``<root>/in`` for ``{name}.dat`` (started by subclasses)."""

    def __init__(self, root: Path, *, topic: str = "/test/data", origin: str | None = None,
                 extra: Mapping[str, object] | None = None) -> None:
        self.inbox = root / "in"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.pub_port, self.request_port = free_port(), free_port()
        section = {"origin": f"{self.inbox}/{{name}}.dat" if origin is None else origin,
                   "request_port": self.request_port, "request_address": "127.0.0.1", "topic": topic}
        if not section["origin"]:  # a `listen` chain
            del section["origin"]
        section.update(extra or {})
        self.config = write_ini(root / "server.ini", {"srv": section})
        self.request_address = f"127.0.0.1:{self.request_port}"
        self.provider = f"127.0.0.1:{self.pub_port}"

    def _wait_ready(self, log: Callable[[], str]) -> None:
        beats = BusRecorder([f"tcp://127.0.0.1:{self.pub_port}"], ["/heartbeat/move_it_server"])
        try:
            assert beats.wait_for(lambda m: m.type == "beat", timeout=20), log()
        finally:
            beats.close()


class UpstreamServer(_ServerPeer):
    """Upstream ``move_it_server.py`` (from .venv-upstream)."""

    def __init__(self, upstream_process: Callable, root: Path, **kwargs: object) -> None:
        super().__init__(root, **kwargs)
        self.process = upstream_process("move_it_server.py", ["-p", str(self.pub_port), "--disable-backlog",
                                                              str(self.config)])
        self._wait_ready(self.process.log)


class OurServer(_ServerPeer):
    """``trollmoves server`` as a subprocess bound to 127.0.0.1."""

    def __init__(self, root: Path, **kwargs: object) -> None:
        super().__init__(root, **kwargs)
        self.log_path = root / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(TROLLMOVES), "server", "-p", str(self.pub_port), "--bind", "127.0.0.1",
                                      "--disable-backlog", str(self.config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        # its first heartbeat may go out before anyone can subscribe: wait for its log line instead
        assert wait_until(lambda: "Server running" in self.log() or self.proc.poll() is not None, 20), self.log()
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


_probe_numbers = itertools.count()


def prime(write_probe: Callable[[str], None], recorder: BusRecorder, timeout: float = 20.0) -> None:
    """Write probe files until one is delivered (the whole path, subscriptions included, works)."""
    def delivered_probe() -> bool:
        name = f"probe{next(_probe_numbers)}"
        write_probe(name)
        return bool(recorder.wait_for(lambda m: m.type == "file" and "origin" in m.data
                                      and str(m.data.get("uid", "")).split(".")[0] == name, timeout=1.0))
    assert wait_until(delivered_probe, timeout=timeout, interval=0.0), "no probe file was ever delivered"


def results(recorder: BusRecorder, prefix: str = "f") -> list:
    """Our client's delivered-file messages for uids starting with ``prefix``."""
    return [m for m in list(recorder.messages) if m.type in ("file", "dataset") and "origin" in m.data
            and _first_uid(m.data).startswith(prefix)]


def _first_uid(data: dict) -> str:
    if "uid" in data:
        return str(data["uid"])
    for item in data.get("dataset", []):
        return str(item.get("uid", ""))
    return ""


def write_file(directory: Path, name: str, content: bytes) -> Path:
    """Write ``content`` under a hidden name the server pattern ignores, then rename it."""
    tmp = directory / f".{name}.partial"
    tmp.write_bytes(content)
    final = directory / name
    os.replace(tmp, final)
    return final


def check_hot_spare_outcome(contents: Mapping[str, bytes], out: Path, primary_results: list, primary_log: str,
                            secondary_results: list, in_flight: int = 4) -> None:
    """After a primary was SIGKILLed: no file lost, none announced twice by the secondary, and
    only files the primary was busy with when killed fetched by both.

    What the primary published just before SIGKILL may never have left its process, or reached
    some subscribers and not others; its log records what it delivered.
    """
    by_secondary = Counter(m.data["uid"] for m in secondary_results)
    assert all(count == 1 for count in by_secondary.values()), by_secondary
    by_primary = primary_deliveries(primary_results, primary_log)
    missing = set(contents) - by_primary - set(by_secondary)
    assert not missing, sorted(missing)
    both = by_primary & set(by_secondary)
    assert len(both) <= in_flight + 1, sorted(both)
    for name, content in contents.items():
        assert (out / name).read_bytes() == content, name


def primary_deliveries(primary_results: list, primary_log: str) -> set[str]:
    """What a (possibly killed) client delivered: its observed results and its log."""
    return {m.data["uid"] for m in primary_results} | set(re.findall(r"Delivered (\S+) from", primary_log))
