"""Run upstream trollmoves 0.19.0 (the reference peer) as a black box from .venv-upstream."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_VENV = REPO / ".venv-upstream"
UPSTREAM_STAMP = UPSTREAM_VENV / ".installed-0.19.0"


def require_upstream() -> Path:
    """The upstream venv's bin directory; skip loudly when it could not be built."""
    if not UPSTREAM_STAMP.exists():
        pytest.skip("UPSTREAM PEER MISSING: .venv-upstream has no trollmoves 0.19.0 "
                    "(run scripts/upstream-venv; it needs PyPI)")
    return UPSTREAM_VENV / "bin"


class UpstreamProcess:
    """One upstream console script (``move_it_server.py``...) running with a log file."""

    def __init__(self, script: str, args: list[str], log_path: Path) -> None:
        bin_dir = require_upstream()
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([str(bin_dir / "python"), str(bin_dir / script), *args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


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
