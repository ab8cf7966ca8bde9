"""Helpers for the dispatcher tests: a dispatcher served in a thread between an input bus and an
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
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_roles.dispatcher.engine import Dispatcher

from trollmoves_core.plugins import default_host


class Harness:
    """One dispatcher in a thread, fed by :attr:`source` and announcing on :attr:`output`."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.source = BusPublisher(0, bind="127.0.0.1", name="test-source")
        self.output = BusPublisher(0, bind="127.0.0.1", name="dispatcher")
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.output.port}"])
        self.config_path = tmp_path / "dispatch.yaml"
        self.dispatcher: Dispatcher | None = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def source_address(self) -> str:
        return f"tcp://127.0.0.1:{self.source.port}"

    def subscriber_section(self) -> dict[str, Any]:
        return {"subscribe_addresses": [self.source_address], "nameserver": False}

    def write_config(self, config: dict[str, Any] | str, subscriber: dict[str, Any] | None = None) -> Path:
        """Write the config atomically (as deployment tools do), adding the subscriber section."""
        if isinstance(config, dict):
            config = yaml.safe_dump({"posttroll_subscriber": subscriber or self.subscriber_section(), **config})
        partial = self.config_path.with_name(".dispatch.yaml.part")
        partial.write_text(config)
        partial.replace(self.config_path)
        return self.config_path

    def start(self, config: dict[str, Any], *, warm_topic: str, workers: int = 2,
              subscriber: dict[str, Any] | None = None) -> Dispatcher:
        """Start serving ``config``; return once a message on ``warm_topic`` got through.

        Nameservers are only asked when ``subscriber`` (the posttroll_subscriber section) names some.
        """
        self.write_config(config, subscriber)
        # Without a subscriber section, override the config's nameservers with none at all;
        # with one, let the config's (loopback) nameservers be asked.
        override = {} if subscriber else {"nameservers": []}
        self.dispatcher = Dispatcher(self.config_path, publisher=self.output, workers=workers, host=default_host(),
                                     **override)
        self._thread = threading.Thread(target=self.dispatcher.serve, args=(self._halt,), daemon=True)
        self._thread.start()
        self.warm_up(warm_topic)
        assert wait_until(lambda: (self.output.send(Message("/warm/output", "beat")), self.recorder.messages)[1],
                          timeout=10, interval=0.05), "recorder never connected to the output publisher"
        return self.dispatcher

    def warm_up(self, topic: str) -> None:
        """Send harmless ``beat`` messages on ``topic`` until the dispatcher receives one."""
        assert self.dispatcher is not None
        before = self.dispatcher.received

        def through() -> bool:
            self.source.send(Message(topic, "beat", {"warm": "up"}))
            return self.dispatcher.received > before  # type: ignore[union-attr]

        assert wait_until(through, timeout=10, interval=0.05), f"dispatcher never received a message on {topic}"

    def send(self, subject: str, atype: str, data: dict[str, Any]) -> None:
        self.source.send(Message(subject, atype, data))

    def wait_idle(self, handled: int, timeout: float = 20) -> None:
        """Wait until the dispatcher has handled ``handled`` file messages and finished their transfers."""
        dispatcher = self.dispatcher
        assert dispatcher is not None
        assert wait_until(lambda: dispatcher.handled >= handled and dispatcher.pool.pending == 0, timeout), \
            f"dispatcher handled {dispatcher.handled} of {handled} messages, {dispatcher.pool.pending} pending"

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), "dispatcher did not stop"
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
    spec = importlib.util.spec_from_file_location(f"borrowed_{folder}_conftest", path)
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
