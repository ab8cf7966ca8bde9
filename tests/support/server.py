"""Our server in the tests: config sections, a running in-process server with its recorder, and
``trollmoves server`` as a restartable subprocess."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from posttroll.message import Message
from trollmoves_roles.server.service import Server

from support.bus import BusRecorder, free_port, wait_until
from support.processes import TrollmovesProcess
from support.reqrep import TOPIC

__all__ = ["TOPIC", "Running", "ServerProcess", "chain", "connect_recorder", "server_section"]


def chain(origin: Path, port: int | None = None, **extra: object) -> dict[str, dict[str, object]]:
    """A one-chain config named ``chain`` watching ``origin`` for ``{platform_name}_{start_time}.dat``."""
    values: dict[str, object] = {"origin": f"{origin}/{{platform_name}}_{{start_time:%Y%m%d%H%M}}.dat",
                                 "topic": TOPIC, "request_address": "127.0.0.1", "station": "st1"}
    if port is not None:
        values["request_port"] = port
    values.update(extra)
    return {"chain": values}


def server_section(origin: Path, request_port: int, **extra: object) -> dict[str, object]:
    """A chain watching ``origin`` for ``{name}.dat``, serving requests on 127.0.0.1."""
    section: dict[str, object] = {"origin": f"{origin}/{{name}}.dat", "topic": TOPIC, "request_port": request_port,
                                  "request_address": "127.0.0.1", "station": "st1"}
    section.update(extra)
    return section


@dataclass
class Running:
    """An in-process :class:`Server`, a recorder of what it publishes, its config file."""

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


class ServerProcess(TrollmovesProcess):
    """``trollmoves server ARGS... CONFIG`` bound to 127.0.0.1, logging to a file; restartable on the
    same publish port (each start waits for its ``Server running`` line)."""

    def __init__(self, config: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.pub_port = free_port()
        super().__init__(["server", "-p", self.pub_port, "--bind", "127.0.0.1", *args, config], log_path, env=env,
                         cwd=log_path.parent)

    def start(self) -> None:
        super().start()
        self.wait_logged("Server running", 30)
