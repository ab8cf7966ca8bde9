"""Run upstream trollmoves 0.19.0 (the reference peer) as a black box from .venv-upstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.processes import LoggedProcess

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_VENV = REPO / ".venv-upstream"
UPSTREAM_STAMP = UPSTREAM_VENV / ".installed-0.19.0"


def require_upstream() -> Path:
    """The upstream venv's bin directory; skip loudly when it could not be built."""
    if not UPSTREAM_STAMP.exists():
        pytest.skip("UPSTREAM PEER MISSING: .venv-upstream has no trollmoves 0.19.0 "
                    "(run scripts/upstream-venv; it needs PyPI)")
    return UPSTREAM_VENV / "bin"


class UpstreamProcess(LoggedProcess):
    """One upstream console script (``move_it_server.py``...) running with a log file."""

    def __init__(self, script: str, args: list[str], log_path: Path) -> None:
        bin_dir = require_upstream()
        super().__init__([str(bin_dir / "python"), str(bin_dir / script), *args], log_path)

    def stop(self, timeout: float = 10.0) -> int:
        return super().stop(timeout)


@pytest.fixture
def upstream_process(tmp_path: Path):
    """Factory fixture: ``upstream_process("move_it_server.py", [...])``, stopped at teardown."""
    started: list[UpstreamProcess] = []

    def start(script: str, args: list[str]) -> UpstreamProcess:
        process = UpstreamProcess(script, args, tmp_path / f"{script}.{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
