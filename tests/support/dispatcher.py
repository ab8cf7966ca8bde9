"""A dispatcher served in a thread between an input bus and an output bus with a recorder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from posttroll.message import Message
from trollmoves_roles.dispatcher.engine import Dispatcher

from support.bus import wait_until
from support.listening import ServedRole
from trollmoves_core.plugins import default_host


class Harness(ServedRole):
    """One dispatcher in a thread, fed by :attr:`source` and announcing on :attr:`output`."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, source_name="test-source", output_name="dispatcher")
        self.config_path = tmp_path / "dispatch.yaml"
        self.dispatcher: Dispatcher | None = None

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
              subscriber: dict[str, Any] | None = None, watch: bool = True,
              state_directory: Path | None = None) -> Dispatcher:
        """Start serving ``config``; return once a message on ``warm_topic`` got through.

        Nameservers are only asked when ``subscriber`` (the posttroll_subscriber section) names some.
        ``watch``: reload when the config file changes (off: only on :meth:`Dispatcher.request_reload`).
        """
        self.write_config(config, subscriber)
        # Without a subscriber section, override the config's nameservers with none at all;
        # with one, let the config's (loopback) nameservers be asked.
        override = {} if subscriber else {"nameservers": []}
        self.dispatcher = Dispatcher(self.config_path, publisher=self.output, workers=workers, watch=watch,
                                     host=default_host(), state_directory=state_directory, **override)
        self.serve(self.dispatcher, lambda: self.warm_up(warm_topic))
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
