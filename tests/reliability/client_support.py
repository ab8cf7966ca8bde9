"""Helpers for the client reliability tests: ``trollmoves client`` as a restartable subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

from reliability_support import TROLLMOVES


class ClientProcess:
    """``trollmoves client CONFIG -v`` appending to one log across restarts."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config, self.log_path = config, log_path
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([TROLLMOVES, "client", str(self.config), "-v"], stdout=log,
                                         stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def delivered(self, pattern: str = r"f\d+\.dat") -> Counter:
        """Deliveries the client reports (``Delivered`` lines), by uid."""
        return Counter(re.findall(rf"Delivered ({pattern}) from", self.log()))

    def republished(self, pattern: str = r"f\d+\.dat") -> set[str]:
        """Files delivered just before a kill whose result message was published again after the restart."""
        return set(re.findall(rf"Published the result of ({pattern}) delivered before", self.log()))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def client_config(providers: str, destination: str, publish_port: int, **extra: object) -> dict[str, object]:
    """A client section on topic ``/test/data`` publishing on 127.0.0.1 only."""
    return {"providers": providers, "destination": destination, "topic": "/test/data", "publish_port": publish_port,
            "nameservers": "false", "bind_address": "127.0.0.1", **extra}
