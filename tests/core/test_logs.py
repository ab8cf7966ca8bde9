"""Log formats: upstream's text lines, JSON lines, and the per-file transfer line."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from trollmoves_core.logs import LOG_FORMAT, JsonFormatter, log_transfer, setup_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_transfer_fields(restore_root, capsys) -> None:
    setup_logging(argparse.Namespace(verbose=False, log=None, log_config=None, log_json=True))
    log_transfer(logging.getLogger("trollmoves.test"), uid="a.nc", source="/in/a.nc",
                 destination="sftp://bob@host/out/a.nc", nbytes=1234, seconds=0.0421)
    entry = json.loads(capsys.readouterr().err.strip())
    assert entry["message"] == "Delivered a.nc from /in/a.nc to sftp://bob@host/out/a.nc: 1234 bytes in 0.042 s"
    assert (entry["uid"], entry["bytes"], entry["duration"], entry["level"]) == ("a.nc", 1234, 0.0421, "INFO")


def test_text_lines_use_upstreams_format(restore_root, capsys) -> None:
    setup_logging(argparse.Namespace(verbose=True, log=None, log_config=None, log_json=False))
    logging.getLogger("x").debug("hello")
    line = capsys.readouterr().err.strip()
    assert line.endswith("DEBUG    x] hello") and line.startswith("[")
    assert restore_root.handlers[0].formatter._fmt == LOG_FORMAT


def test_json_formatter_includes_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, exc_info=True)
        import sys
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
