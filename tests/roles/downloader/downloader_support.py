"""Helpers for the downloader tests: a downloader served in a thread between an input bus and an
output bus with a recorder; servers are borrowed from the mover plugins' test folders as the
dispatcher tests do."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml
from posttroll.message import Message
from roles.dispatcher.dispatcher_support import borrow, require_mover
from support.bus import BusRecorder, wait_until
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_roles.downloader.config import load_config
from trollmoves_roles.downloader.engine import Downloader

from trollmoves_core.plugins import default_host

TOPIC = "/s3/new"
OUT_TOPIC = "/downloaded"

__all__ = ["OUT_TOPIC", "TOPIC", "Harness", "borrow", "require_mover"]


class Harness:
    """One downloader in a thread, fed by :attr:`source` and announcing on :attr:`output`."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.source = BusPublisher(0, bind="127.0.0.1", name="s3stalker")
        self.output = BusPublisher(0, bind="127.0.0.1", name="s3downloader")
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.output.port}"])
        self.destination = tmp_path / "downloads"
        self.downloader: Downloader | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, **settings: Any) -> Downloader:
        """Write a config (upstream keys, loopback addresses, no nameserver) and serve it."""
        config = {"subscribe-topic": [TOPIC], "publish-topic": OUT_TOPIC,
                  "download_destination": str(self.destination),
                  "subscriber_addresses": f"tcp://127.0.0.1:{self.source.port}", "subscribe_nameserver": False,
                  **settings}
        path = self.tmp_path / "downloader.yaml"
        path.write_text(yaml.safe_dump(config))
        self.downloader = Downloader(load_config(path), publisher=self.output, host=default_host())
        self._thread = threading.Thread(target=self.downloader.serve, args=(self._halt,), daemon=True)
        self._thread.start()
        downloader = self.downloader
        assert wait_until(lambda: (self.source.send(Message(TOPIC, "beat")), downloader.received)[1],
                          timeout=10, interval=0.05), "downloader never received a message"
        assert wait_until(lambda: (self.output.send(Message("/warm/output", "beat")), self.recorder.messages)[1],
                          timeout=10, interval=0.05), "recorder never connected to the output publisher"
        return downloader

    def send(self, atype: str, data: dict[str, Any], subject: str = TOPIC) -> None:
        self.source.send(Message(subject, atype, data))

    def wait_idle(self, handled: int, timeout: float = 20) -> None:
        downloader = self.downloader
        assert downloader is not None
        assert wait_until(lambda: downloader.handled >= handled and downloader.pool.pending == 0, timeout), \
            f"downloader handled {downloader.handled} of {handled} messages, {downloader.pool.pending} pending"

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), "downloader did not stop"
        self.recorder.close()
        self.source.stop()
        self.output.stop()
