"""Helpers for the client reliability tests: ``trollmoves client`` as a restartable subprocess, its config."""

from __future__ import annotations

from support.processes import ClientProcess  # noqa: F401 - re-exported for the tests


def client_config(providers: str, destination: str, publish_port: int, **extra: object) -> dict[str, object]:
    """A client section on topic ``/test/data`` publishing on 127.0.0.1 only."""
    return {"providers": providers, "destination": destination, "topic": "/test/data", "publish_port": publish_port,
            "nameservers": "false", "bind_address": "127.0.0.1", **extra}
