"""Helpers for mirror tests: our mirror in-process or as a subprocess, scripted internal servers
that really write the pushed file, a raw external REQ client, and INI sections."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from posttroll.message import Message
from trollmoves_roles.mirror.service import Mirror, MirrorOptions

from support.bus import BusRecorder, free_port, wait_until
from support.processes import TrollmovesProcess
from support.reqrep import request_raw
from support.scripted import HOLD, ScriptedServer
from trollmoves_core.plugins import default_host


def mirror_section(providers: str, request_port: int, **extra: object) -> dict[str, object]:
    """A mirror section in upstream's format: client part, then server part."""
    section: dict[str, object] = {"providers": providers, "client_topic": "/test/data", "publish_port": 0,
                                  "topic": "/mirror/data", "request_address": "127.0.0.1",
                                  "request_port": request_port}
    section.update(extra)
    return section


class InProcessMirror:
    """Our mirror (the :class:`Mirror` service) serving in a thread, bound to 127.0.0.1."""

    def __init__(self, config: Path, port: int | None = None, drain_timeout: float = 10.0) -> None:
        self.port = port or free_port()
        self.mirror = Mirror(config, MirrorOptions(port=self.port, bind="127.0.0.1", drain_timeout=drain_timeout),
                             host=default_host())
        self.provider = f"127.0.0.1:{self.port}"
        self.mirror.start()
        self._thread = threading.Thread(target=self.mirror.serve, daemon=True)
        self._thread.start()

    def chain(self, name: str = "mirror"):
        return self.mirror.chains[name]

    def stop(self) -> None:
        self.mirror.request_stop()
        self._thread.join(10)
        self.mirror.close()
        assert not self._thread.is_alive()


class MirrorSubprocess(TrollmovesProcess):
    """``trollmoves mirror CONFIG -p PORT --bind 127.0.0.1 -v`` with a log file."""

    def __init__(self, config: Path, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.provider = f"127.0.0.1:{self.port}"
        super().__init__(["mirror", config, "-p", self.port, "--bind", "127.0.0.1", "-v"], log_path)

    def wait_running(self) -> None:
        self.wait_logged("Mirror running", 20)


def destination_path(message: Message) -> Path:
    """The local directory a ``push`` request asks for (``file://host/dir/``)."""
    return Path(urlsplit(message.data["destination"]).path)


class InternalServer(ScriptedServer):
    """A scripted internal server: pushes copy ``files[uid]`` into the requested directory.

    ``hold`` keeps push replies (after writing) until :meth:`release`; ``fail`` answers ``err``.
    """

    def __init__(self, files: Mapping[str, bytes], *, hold: bool = False, fail: bool = False) -> None:
        self.files = dict(files)
        self.hold, self.fail = hold, fail
        self.failure: Callable[[Message], str] = lambda _: "disk on fire"
        super().__init__(self._handle)

    def _handle(self, message: Message) -> Any:
        if message.type == "push":
            if self.fail:
                return Message(message.subject, "err", self.failure(message))
            target = destination_path(message) / message.data["uid"]
            tmp = target.with_name("." + target.name + ".part")
            tmp.write_bytes(self.files[message.data["uid"]])
            os.replace(tmp, target)
            if self.hold:
                return HOLD
            return Message(message.subject, "file", message.data)
        if message.type == "ack":
            return Message(message.subject, "ack", message.data)
        return Message(message.subject, "unknown")


def request(address: str, message: Message | bytes, timeout: float = 20.0) -> Message | bytes | None:
    """One request on a fresh REQ socket; the decoded reply (raw bytes if it does not decode), or None."""
    raw = request_raw(address, message, timeout)
    if raw is None:
        return None
    try:
        return Message.decode(raw)
    except Exception:
        return raw


class AsyncRequest:
    """:func:`request` in a thread, for requests that wait on something the test controls."""

    def __init__(self, address: str, message: Message) -> None:
        self.reply: Message | bytes | None = None
        self._thread = threading.Thread(target=self._run, args=(address, message), daemon=True)
        self._thread.start()

    def _run(self, address: str, message: Message) -> None:
        self.reply = request(address, message)

    def result(self, timeout: float = 30.0) -> Message | bytes | None:
        self._thread.join(timeout)
        return self.reply


def staging_dirs(root: Path) -> list[Path]:
    """The mirror's hidden staging directories under ``root``."""
    return sorted(root.glob(".mirror-*"))


def clean(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wait_for_file(path: Path, timeout: float = 20.0) -> bool:
    return wait_until(path.exists, timeout)


def wait_heartbeat(recorder: BusRecorder, timeout: float = 20.0) -> None:
    """Wait for the mirror's heartbeat: from then on the recorder misses nothing it publishes."""
    assert recorder.wait_for(lambda m: m.type == "beat" and m.subject == "/heartbeat/move_it_mirror",
                             timeout=timeout), "no heartbeat from the mirror"


def announce_until_mirrored(announce: Callable[[], object], recorder: BusRecorder, uid: str,
                            timeout: float = 20.0) -> Message:
    """Announce (again: the mirror's subscription may not be connected yet, and it deduplicates)
    until the mirror re-announces ``uid``; return the re-announcement."""
    def seen() -> list[Message]:
        return [m for m in list(recorder.messages) if m.type in ("file", "dataset") and m.data.get("uid") == uid]

    def check() -> bool:
        if seen():
            return True
        announce()
        return False

    assert wait_until(check, timeout, interval=0.2), f"{uid} never re-announced"
    return seen()[0]
