"""Fixtures for the reliability tests: our processes under faults, on loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fixtures import dirs, servers  # noqa: F401 - fixtures
from support.server import ServerProcess


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG_RUNTIME_DIR (where metrics endpoint files go), for this test and its children."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator:
    """Factory: ``server_process(config, *args)`` starts ``trollmoves server``; stopped at teardown."""
    started: list[ServerProcess] = []

    def start(config: Path, *args: str, log: str = "server.log", **kwargs: object) -> ServerProcess:
        started.append(ServerProcess(config, tmp_path / log, *args, **kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def inproc_server(tmp_path: Path) -> Iterator:
    """Factory: ``inproc_server(sections, **options)`` runs our Server in this process (its serve loop in
    a thread); stopped at teardown. Returns the Server."""
    import threading

    from support.bus import free_port
    from support.ini import write_ini
    from trollmoves_roles.server.service import Server, ServerOptions

    from trollmoves_core.plugins import default_host

    running: list[tuple[Server, threading.Thread]] = []

    def start(sections: dict[str, dict[str, object]], **options: object) -> Server:
        config = write_ini(tmp_path / f"server{len(running)}.ini", sections)
        opts = ServerOptions(port=free_port(), bind="127.0.0.1", backlog=False, drain_timeout=5.0,
                             watch_config=False, **options)  # type: ignore[arg-type]
        server = Server(config, opts, host=default_host())
        server.start()
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.request_stop()
        thread.join(10)
        server.close()
