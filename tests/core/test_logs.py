"""Log formats: upstream's text lines, JSON lines, and the per-file transfer line."""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import datetime

import pytest

from trollmoves_core.cli import main
from trollmoves_core.logs import LOG_FORMAT, JsonFormatter, TextFormatter, log_transfer, setup_logging


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


def test_text_lines_carry_the_zone(restore_root, capsys) -> None:
    setup_logging(argparse.Namespace(verbose=False, log=None, log_config=None, log_json=False))
    logging.getLogger("x").info("hello")
    stamp = capsys.readouterr().err.split(" ", 1)[0].lstrip("[")
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() is not None and stamp[10] == "T"
    assert abs(parsed.timestamp() - time.time()) < 3600  # the instant itself, not a shifted wall clock


@pytest.mark.parametrize("zone", ["UTC", "Europe/Helsinki", "Asia/Kolkata"])
def test_text_times_are_iso_in_the_local_zone_across_seconds_and_a_dst_change(zone, monkeypatch) -> None:
    """The formatter reuses the text of the current second: every line still reads as
    datetime's own ISO text of its time, across second boundaries and the zone's clock change."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        formatter = TextFormatter(LOG_FORMAT)
        change = datetime.fromisoformat("2026-03-29T00:59:58+00:00").timestamp()  # EET -> EEST at 01:00 UTC
        for created in [change + i * 0.0137 for i in range(400)] + [1e9 + 0.9999996, 1e9 + 0.0004999, 1e9 + 0.9995]:
            record = logging.makeLogRecord({"created": created})
            expected = datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")
            assert formatter.formatTime(record) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_json_lines_mark_utc(restore_root, capsys) -> None:
    setup_logging(argparse.Namespace(verbose=False, log=None, log_config=None, log_json=True))
    logging.getLogger("x").info("hello")
    assert json.loads(capsys.readouterr().err)["time"].endswith("+00:00")


LOG_CONFIG_ERRORS = [
    ("version: 1\nroot:\n  handlers: [console, monitor]\nhandlers:\n  console: {class: logging.StreamHandler}\n",
     "root names handler 'monitor', which 'handlers' does not define"),
    ("subscribe-topic: /yuhu\npublish-topic: /idnt\nbucket: b\n",  # upstream's `s3downloader -c s3.yaml`
     "not a logging configuration (a dictConfig mapping with 'version: 1'); -c is --log-config: give the "
     "role's own configuration as CONFIG (or --config-file)"),
    ("version: 1\nhandlers:\n  f: {class: logging.FileHandler, filename: /nonexistent-dir/a.log}\n",
     "handler 'f': the directory of /nonexistent-dir/a.log does not exist"),
    ("version: 1\nhandlers:\n  h: {class: logging.NoSuchHandler}\n",
     "rejected as a logging configuration: Unable to configure handler 'h': ValueError: Cannot resolve "
     "'logging.NoSuchHandler': No module named 'logging.NoSuchHandler'"),
    ("version: 1\nformatters: [1\n", "line 3: invalid YAML: expected ',' or ']', but got '<stream end>'"),
]


@pytest.mark.parametrize("text, message", LOG_CONFIG_ERRORS)
def test_a_logging_config_that_cannot_be_used_is_one_line_exit_2(restore_root, tmp_path, capsys, text,
                                                                 message) -> None:
    path = tmp_path / "log.yaml"
    path.write_text(text)
    assert main(["plugins", "-c", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"trollmoves: error: {path}: {message}"]
    assert out == ""


def test_a_log_file_that_cannot_be_opened_is_one_line_exit_2(restore_root, tmp_path, capsys) -> None:
    path = tmp_path / "no-such-dir" / "x.log"
    assert main(["plugins", "-l", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"trollmoves: error: {path}: cannot open the log file (-l): No such file or directory"]
