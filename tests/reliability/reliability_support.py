"""Helpers for the reliability tests: our server as a subprocess, INI files, raw requests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from posttroll.message import Message
from support.bus import free_port
from support.files import write_file  # noqa: F401 - re-exported for the tests
from support.ini import write_ini  # noqa: F401 - re-exported for the tests
from support.processes import TROLLMOVES, TrollmovesProcess  # noqa: F401 - TROLLMOVES re-exported
from support.reqrep import request

TOPIC = "/test/data"



def server_section(origin: Path, request_port: int, **extra: object) -> dict[str, object]:
    """A chain watching ``origin`` for ``{name}.dat``, serving requests on 127.0.0.1."""
    section: dict[str, object] = {"origin": f"{origin}/{{name}}.dat", "topic": TOPIC, "request_port": request_port,
                                  "request_address": "127.0.0.1", "station": "st1"}
    section.update(extra)
    return section


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metrics(url: str) -> dict[str, float]:
    """``name{labels}`` → value from a metrics endpoint."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def counter(values: dict[str, float], name: str) -> float:
    """The sum of a metric over its label sets."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def ping(address: str, timeout: float = 10.0, **kwargs: object) -> Message | None:
    return request(address, Message(TOPIC, "ping"), timeout, **kwargs)  # type: ignore[arg-type]


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
