"""A downloader served in a thread between an input bus and an output bus with a recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from posttroll.message import Message
from trollmoves_roles.downloader.config import load_config
from trollmoves_roles.downloader.engine import Downloader

from support.bus import wait_until
from support.listening import ServedRole
from trollmoves_core.plugins import default_host

TOPIC = "/s3/new"
OUT_TOPIC = "/downloaded"


class Harness(ServedRole):
    """One downloader in a thread, fed by :attr:`source` and announcing on :attr:`output`."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, source_name="s3stalker", output_name="s3downloader")
        self.destination = tmp_path / "downloads"
        self.downloader: Downloader | None = None

    def start(self, **settings: Any) -> Downloader:
        """Write a config (upstream keys, loopback addresses, no nameserver) and serve it."""
        config = {"subscribe-topic": [TOPIC], "publish-topic": OUT_TOPIC,
                  "download_destination": str(self.destination),
                  "subscriber_addresses": self.source_address, "subscribe_nameserver": False,
                  **settings}
        path = self.tmp_path / "downloader.yaml"
        path.write_text(yaml.safe_dump(config))
        downloader = self.downloader = Downloader(load_config(path), publisher=self.output, host=default_host())

        def warm_up() -> None:
            assert wait_until(lambda: (self.source.send(Message(TOPIC, "beat")), downloader.received)[1],
                              timeout=10, interval=0.05), "downloader never received a message"

        self.serve(downloader, warm_up)
        return downloader

    def send(self, atype: str, data: dict[str, Any], subject: str = TOPIC) -> None:
        self.source.send(Message(subject, atype, data))
