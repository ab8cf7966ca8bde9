"""Helpers for the reliability tests: our server as a subprocess, INI files, raw requests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import zmq
from posttroll.message import Message
from support.bus import free_port, wait_until
from support.ini import write_ini  # noqa: F401 - re-exported for the tests

TROLLMOVES = str(Path(sys.executable).with_name("trollmoves"))
TOPIC = "/test/data"



def server_section(origin: Path, request_port: int, **extra: object) -> dict[str, object]:
    """A chain watching ``origin`` for ``{name}.dat``, serving requests on 127.0.0.1."""
    section: dict[str, object] = {"origin": f"{origin}/{{name}}.dat", "topic": TOPIC, "request_port": request_port,
                                  "request_address": "127.0.0.1", "station": "st1"}
    section.update(extra)
    return section


def write_file(directory: Path, name: str, content: bytes) -> Path:
    """Write ``content`` under a hidden name the patterns ignore, then rename (as producers do)."""
    tmp = directory / f".{name}.partial"
    tmp.write_bytes(content)
    final = directory / name
    os.replace(tmp, final)
    return final


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def request(address: str, payload: Message | str | bytes | list[bytes], timeout: float = 10.0,
            curve: tuple[bytes, bytes, bytes] | None = None, source: str | None = None) -> Message | None:
    """One request on a fresh REQ socket; the decoded reply, or None when none came in ``timeout`` s.

    :param curve: (our public, our secret, server public) z85 keys.
    :param source: connect from this local address (e.g. 127.0.0.2).
    """
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    host_port = address.removeprefix("tcp://")
    sock.connect(f"tcp://{source}:0;{host_port}" if source else f"tcp://{host_port}")
    try:
        if isinstance(payload, Message):
            sock.send_string(payload.encode())
        elif isinstance(payload, list):
            sock.send_multipart(payload)
        else:
            sock.send(payload.encode() if isinstance(payload, str) else payload)
        if not sock.poll(int(timeout * 1000)):
            return None
        return Message.decode(sock.recv())
    finally:
        sock.close(0)


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


class ServerProcess:
    """``trollmoves server CONFIG`` bound to 127.0.0.1, logging to a file; restartable."""

    def __init__(self, config: Path, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config, self.log_path, self.args = config, log_path, list(args)
        self.pub_port = free_port()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.start()

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process for its life
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([TROLLMOVES, "server", "-p", str(self.pub_port), "--bind", "127.0.0.1",
                                      *self.args, str(self.config)], stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=self.log_path.parent)
        assert wait_until(lambda: "Server running" in self.log()[offset:] or self.proc.poll() is not None, 30), \
            self.log()
        assert self.proc.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        status = self.proc.wait(20)
        self._log.close()
        return status

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
