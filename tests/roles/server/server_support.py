"""Helpers for the server role tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from posttroll.message import Message
from support.bus import BusRecorder, wait_until
from support.ini import write_ini  # noqa: F401 - re-exported for the tests
from support.reqrep import reply as request  # noqa: F401 - re-exported for the tests
from trollmoves_roles.server.service import Server

TOPIC = "/test/data"



@dataclass
class Running:
    server: Server
    recorder: BusRecorder
    config: Path
    thread: threading.Thread | None = None
    status: list[int] = field(default_factory=list)

    def address(self, chain: str = "chain") -> str:
        return self.server.chains[chain].request_address

    def announcements(self, count: int = 1, atype: str | None = None, timeout: float = 10.0) -> list[Message]:
        return self.recorder.wait_for(lambda m: m.subject.startswith("/test") and (atype is None or m.type == atype)
                                      and m.type != "beat", count, timeout)

    def announced(self, uid: str, timeout: float = 10.0) -> Message:
        found = self.recorder.wait_for(lambda m: m.data.get("uid") == uid if isinstance(m.data, dict) else False,
                                       1, timeout)
        assert found, f"{uid} was not announced; got {[m.data for m in self.recorder.messages]}"
        return found[0]


def connect_recorder(server: Server) -> BusRecorder:
    """A recorder on the server's publisher that has provably joined (no slow-joiner loss)."""
    recorder = BusRecorder([f"tcp://127.0.0.1:{server.publisher.port}"], topics=["/"])

    def probe_arrived() -> bool:
        server.publisher.send(Message("/probe", "info", "probe"))
        return any(m.subject == "/probe" for m in list(recorder.messages))

    assert wait_until(probe_arrived, timeout=10, interval=0.05), "recorder never joined the publisher"
    return recorder


def chain(origin: Path, port: int | None = None, **extra: object) -> dict[str, dict[str, object]]:
    """A one-chain config named ``chain`` watching ``origin`` for ``{platform_name}_{start_time}.dat``."""
    values: dict[str, object] = {"origin": f"{origin}/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat",
                                 "topic": TOPIC, "request_address": "127.0.0.1", "station": "st1"}
    if port is not None:
        values["request_port"] = port
    values.update(extra)
    return {"chain": values}


def write_file(path: Path, data: bytes = b"payload\n") -> Path:
    """Write like a producer: under a hidden name, then rename."""
    hidden = path.with_name("." + path.name + ".tmp")
    hidden.write_bytes(data)
    hidden.rename(path)
    return path
