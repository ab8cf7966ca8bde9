"""Helpers for the downloader tests: a downloader served in a thread between an input bus and an
output bus with a recorder, and servers borrowed from the mover plugins' test folders."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from posttroll.message import Message
from support.bus import BusRecorder, wait_until
from trollmoves_roles.bus import BusPublisher
from trollmoves_roles.downloader.config import load_config
from trollmoves_roles.downloader.engine import Downloader

TOPIC = "/s3/new"
OUT_TOPIC = "/downloaded"


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
        self.downloader = Downloader(load_config(path), publisher=self.output)
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


# -- servers borrowed from the mover plugins' test folders (only when those exist) ----------

TESTS = Path(__file__).resolve().parents[2]


def borrow(folder: str) -> Any:
    """Load ``tests/<folder>/conftest.py`` under another name, its folder importable; None if absent."""
    path = TESTS / folder / "conftest.py"
    if not path.exists():
        return None
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"borrowed_{folder}_conftest_for_downloader", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except (ImportError, pytest.skip.Exception):
        return None
    return module


def require_mover(scheme: str) -> None:
    """Skip unless a mover plugin serves ``scheme``."""
    from trollmoves_core.plugins import default_host

    if scheme not in default_host().movers.classes:
        pytest.skip(f"MOVER NOT READY: no mover plugin for {scheme}:// is registered yet")
