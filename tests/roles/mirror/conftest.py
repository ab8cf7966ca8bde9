"""Fixtures for the mirror role: an announcing provider, scripted internal servers, our mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bus import BusRecorder, free_port
from support.ini import write_ini
from support.mirror import InProcessMirror, mirror_section, wait_heartbeat
from support.scripted import Announcer


@pytest.fixture
def announcer() -> Iterator[Announcer]:
    """A provider publishing announcements as internal servers do."""
    publisher = Announcer()
    yield publisher
    publisher.stop()


@pytest.fixture
def mirror(tmp_path: Path, announcer: Announcer) -> Iterator:
    """Factory: ``mirror(**section_keys)`` starts our mirror on ``announcer``; returns (mirror, recorder, port).

    The recorder listens to everything the mirror publishes and has seen its first heartbeat.
    """
    started: list[tuple[InProcessMirror, BusRecorder]] = []

    def start(**extra: object) -> tuple[InProcessMirror, BusRecorder, int]:
        request_port = free_port()
        extra.setdefault("working_directory", tmp_path / "staging")
        (tmp_path / "staging").mkdir(exist_ok=True)
        config = write_ini(tmp_path / "mirror.ini", {"mirror": mirror_section(announcer.provider, request_port,
                                                                               **extra)})
        running = InProcessMirror(config)
        recorder = BusRecorder([f"tcp://{running.provider}"], ["/"])
        started.append((running, recorder))
        wait_heartbeat(recorder)
        return running, recorder, request_port

    yield start
    for running, recorder in started:
        running.stop()
        recorder.close()
