"""Our client in the tests: its config section, the client in-process or as a hot-spare pair of
subprocesses, our or the upstream server as its peer, and waiting for files to flow."""

from __future__ import annotations

import itertools
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from trollmoves_roles.client.chain import ClientChain
from trollmoves_roles.client.process import ClientProcess

from support.bus import BusRecorder, free_port, wait_until
from support.files import write_file
from support.ini import write_ini
from support.processes import ClientProcess as ClientSubprocess
from support.processes import TrollmovesProcess
from trollmoves_core.plugins import default_host


def client_section(providers: str, destination: str | Path, publish_port: int, **extra: object) -> dict[str, object]:
    """A client section on topic ``/test/data`` publishing on 127.0.0.1 only, without nameservers."""
    section: dict[str, object] = {"providers": providers, "destination": destination, "topic": "/test/data",
                                  "publish_port": publish_port, "nameservers": "false",
                                  "bind_address": "127.0.0.1"}
    section.update(extra)
    return section


def start_client(tmp_path: Path, providers: str, **extra: object) -> tuple[InProcessClient, BusRecorder, Path]:
    """Our client in-process with one chain ``test`` of ``providers`` into ``<tmp_path>/out``; the
    client, a recorder of what it publishes, the output directory."""
    out, port = tmp_path / "out", free_port()
    config = write_ini(tmp_path / "client.ini", {"test": client_section(providers, f"{out}/", port, **extra)})
    return InProcessClient(config), BusRecorder([f"tcp://127.0.0.1:{port}"], ["/test/data"]), out


def write_all(contents: Mapping[str, bytes], *inboxes: Path) -> None:
    """Write each of ``contents`` (name -> bytes) into every inbox, as a producer does."""
    for name, content in contents.items():
        for inbox in inboxes:
            write_file(inbox, name, content)


class InProcessClient:
    """Our client's ClientProcess running in a thread (no signals), stopped with :meth:`stop`."""

    def __init__(self, config: Path) -> None:
        self.process = ClientProcess(config, host=default_host())
        self._thread = threading.Thread(target=self.process.run, daemon=True)
        self._thread.start()
        assert self.process.started.wait(10)

    def chain(self, name: str) -> ClientChain:
        return self.process.chains[name]

    def stop(self) -> None:
        self.process.stop()
        self._thread.join(15)
        assert not self._thread.is_alive()


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
        self.process = TrollmovesProcess(["server", "-p", self.pub_port, "--bind", "127.0.0.1", "--disable-backlog",
                                          self.config], root / "server.log")
        # its first heartbeat may go out before anyone can subscribe: wait for its log line instead
        self.process.wait_logged("Server running", 20)

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()


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


class HotSparePair:
    """Our client as primary and as hot-spare secondary (``trollmoves client`` subprocesses), both
    fetching from ``provider`` into ``out``. The secondary also lists the primary's publisher as a
    provider and takes over, after its ``processing_delay``, what the primary does not deliver."""

    def __init__(self, tmp_path: Path, provider: str, out: Path) -> None:
        self.out = out
        primary_port, secondary_port = free_port(), free_port()
        self.by_primary = BusRecorder([f"tcp://127.0.0.1:{primary_port}"], ["/test/data"])
        self.by_secondary = BusRecorder([f"tcp://127.0.0.1:{secondary_port}"], ["/test/data"])
        self.primary = ClientSubprocess(write_ini(tmp_path / "primary.ini", {"test": client_section(
            provider, f"{out}/", primary_port)}), tmp_path / "primary.log")
        self.secondary = ClientSubprocess(write_ini(tmp_path / "secondary.ini", {"test": client_section(
            f"{provider} 127.0.0.1:{primary_port}", f"{out}/", secondary_port, processing_delay=0.5,
            transfer_req_timeout=1)}), tmp_path / "secondary.log")
        self.taken_over: list[str] = []

    def kill_primary_midway(self, inbox: Path, contents: Mapping[str, bytes], *, before: int, delivered: int) -> None:
        """Write the first ``before`` files, SIGKILL the primary once it delivered ``delivered`` of
        them, write the rest (:attr:`taken_over`); wait until one client or the other has every file."""
        names = list(contents)
        for name in names[:before]:
            write_file(inbox, name, contents[name])
        by_primary = self.by_primary.wait_for(lambda m: m in results(self.by_primary), count=delivered, timeout=30)
        assert len(by_primary) >= delivered, self.primary.log()[-3000:]
        self.primary.kill(signal.SIGKILL)
        self.taken_over = names[before:]
        for name in self.taken_over:
            write_file(inbox, name, contents[name])
        wait_until(lambda: set(names) <= primary_deliveries(results(self.by_primary), self.primary.log())
                   | {m.data["uid"] for m in results(self.by_secondary)}, timeout=90)

    def stop(self) -> None:
        """Stop both clients (the secondary must exit cleanly) and the recorders."""
        self.primary.stop()
        status = self.secondary.stop()
        self.by_primary.close()
        self.by_secondary.close()
        assert status == 0, self.secondary.log()[-3000:]

    def check(self, contents: Mapping[str, bytes]) -> None:
        """After :meth:`stop`: see :func:`check_hot_spare_outcome`; and the secondary delivered every
        file written after the kill."""
        check_hot_spare_outcome(contents, self.out, results(self.by_primary), self.primary.log(),
                                results(self.by_secondary))
        assert {m.data["uid"] for m in results(self.by_secondary)} >= set(self.taken_over)
