"""Fixtures for the server role: a real server on loopback, a bus recorder and a raw REQ client."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bus import free_port
from support.fixtures import dirs, servers  # noqa: F401 - fixture
from support.ini import write_ini
from support.server import Running, connect_recorder
from trollmoves_roles.server.service import Server, ServerOptions
from trollmoves_roles.transfers.movers import MoverCache

from trollmoves_core.plugins import default_host


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Factory: ``serve(sections, backlog=False, movers=None, **options)`` starts a server; stopped at
    teardown."""
    running: list[Running] = []

    def start(sections: dict[str, dict[str, object]], *, backlog: bool = False, loop: bool = True,
              config_name: str = "server.ini", movers: MoverCache | None = None, **options: object) -> Running:
        config = write_ini(tmp_path / config_name, sections)
        opts = ServerOptions(port=free_port(), bind="127.0.0.1", backlog=backlog, drain_timeout=5.0,
                             watch_config=bool(options.pop("watch_config", False)), **options)
        server = Server(config, opts, host=default_host(), movers=movers)
        recorder = connect_recorder(server)
        server.start()
        run = Running(server, recorder, config)
        if loop:
            run.thread = threading.Thread(target=lambda: run.status.append(server.serve()), daemon=True)
            run.thread.start()
        running.append(run)
        return run

    yield start
    for run in running:
        run.server.request_stop()
        if run.thread is not None:
            run.thread.join(10)
        run.server.close()
        run.recorder.close()


