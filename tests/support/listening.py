"""A listening role (dispatcher, downloader) served in a thread between an input bus and an output
bus with a recorder."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from posttroll.message import Message
from trollmoves_roles.bus.posttroll import BusPublisher
from trollmoves_roles.runtime.listening import ListeningService

from support.bus import BusRecorder, wait_until


class ServedRole:
    """One :class:`ListeningService` in a thread, fed by :attr:`source` and announcing on :attr:`output`.

    Subclasses build the service and hand it to :meth:`serve`.
    """

    def __init__(self, tmp_path: Path, *, source_name: str, output_name: str) -> None:
        self.tmp_path = tmp_path
        self.source = BusPublisher(0, bind="127.0.0.1", name=source_name)
        self.output = BusPublisher(0, bind="127.0.0.1", name=output_name)
        self.recorder = BusRecorder([f"tcp://127.0.0.1:{self.output.port}"])
        self.service: Any = None
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def source_address(self) -> str:
        return f"tcp://127.0.0.1:{self.source.port}"

    def serve(self, service: ListeningService, warm_up: Any) -> None:
        """Serve ``service`` in a thread; return once ``warm_up()`` (called first) got a message
        through and the recorder hears the output publisher."""
        self.service = service
        self._thread = threading.Thread(target=service.serve, args=(self._halt,), daemon=True)
        self._thread.start()
        warm_up()
        assert wait_until(lambda: (self.output.send(Message("/warm/output", "beat")), self.recorder.messages)[1],
                          timeout=10, interval=0.05), "recorder never connected to the output publisher"

    def wait_idle(self, handled: int, timeout: float = 20) -> None:
        """Wait until the service has handled ``handled`` file messages and finished their transfers."""
        service = self.service
        assert service is not None
        assert wait_until(lambda: service.handled >= handled and service.pool.pending == 0, timeout), \
            f"{type(service).__name__} handled {service.handled} of {handled} messages, " \
            f"{service.pool.pending} pending"

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), f"{type(self.service).__name__} did not stop"
        self.recorder.close()
        self.source.stop()
        self.output.stop()
