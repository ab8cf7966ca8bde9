"""The one logging configuration every trollmoves command uses.

Text lines by default (upstream's format, the time in ISO 8601 with the zone's offset);
``--log-json`` writes one JSON object per line instead, with the extra fields of
:func:`log_transfer` as keys, for log shippers.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.config
import logging.handlers
import math
import os
from datetime import UTC, datetime

from trollmoves_core.config import read_yaml
from trollmoves_core.exceptions import ConfigError

LOG_FORMAT = "[%(asctime)s %(levelname)-8s %(name)s] %(message)s"

TRANSFER_FIELDS = ("uid", "source", "destination", "bytes", "duration")
"""The fields every per-file log line carries (see :func:`log_transfer`)."""


def add_logging_arguments(parser: argparse.ArgumentParser) -> None:
    """The logging options, spelled as upstream's scripts spell them."""
    group = parser.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    group.add_argument("-l", "--log", metavar="FILE", help="log to FILE, rotated at midnight")
    group.add_argument("-c", "--log-config", metavar="YAML", help="logging dictConfig file (YAML)")
    group.add_argument("--log-json", action="store_true", help="one JSON object per log line")


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from the options of :func:`add_logging_arguments`; a log file
    that cannot be opened or a logging config that cannot be used is a ConfigError naming it."""
    log_config = getattr(args, "log_config", None)
    if log_config:
        _dict_config(log_config)
        return
    handler: logging.Handler
    if getattr(args, "log", None):
        try:
            handler = logging.handlers.TimedRotatingFileHandler(args.log, when="midnight", backupCount=7)
        except OSError as err:
            raise ConfigError(f"cannot open the log file (-l): {err.strerror or err}", file=args.log) from None
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if getattr(args, "log_json", False) else TextFormatter(LOG_FORMAT))
    _lean_records()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    for noisy in ("paramiko", "botocore", "s3fs", "aiobotocore", "urllib3", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _lean_records() -> None:
    """Records without the caller's frame, thread, process and task: neither of our formatters
    shows them, and looking them up was a fifth of each line's cost (the logging HOWTO's
    "Optimization"). Not done under ``--log-config``, whose formats may name them."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False


def _dict_config(path: str) -> None:
    """Apply the logging dictConfig YAML at ``path``; ConfigError in one line when it cannot be."""
    config = read_yaml(path)
    if not isinstance(config, dict) or "version" not in config:
        raise ConfigError("not a logging configuration (a dictConfig mapping with 'version: 1'); -c is "
                          "--log-config: give the role's own configuration as CONFIG (or --config-file)", file=path)
    problems = logging_config_problems(config)
    if problems:
        raise ConfigError(problems[0], file=path)
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError) as err:
        cause = f": {type(err.__cause__).__name__}: {err.__cause__}" if err.__cause__ else ""
        raise ConfigError(f"rejected as a logging configuration: {err}{cause}", file=path) from None


LOGGING_CONFIG_KEYS = frozenset({"formatters", "filters", "handlers", "loggers", "root"})
"""The sections of a logging dictConfig besides ``version``."""


def is_logging_config(content: object) -> bool:
    """Whether loaded YAML ``content`` is a logging dictConfig (what ``-c`` takes)."""
    return isinstance(content, dict) and "version" in content and bool(LOGGING_CONFIG_KEYS & content.keys())


def logging_config_problems(config: dict) -> list[str]:
    """What dictConfig would refuse in ``config`` that can be seen without applying it: the
    handlers and formatters named but not defined, log files in missing directories; one line each."""
    problems = []
    handlers = config.get("handlers") or {}
    formatters = config.get("formatters") or {}
    if not isinstance(handlers, dict) or not isinstance(formatters, dict):
        return ["'handlers' and 'formatters' must be mappings"]
    loggers = {"root": config.get("root") or {}, **(config.get("loggers") or {})}
    for name, logger in loggers.items():
        for handler in (logger.get("handlers") or []) if isinstance(logger, dict) else []:
            if handler not in handlers:
                where = "root" if name == "root" else f"logger {name!r}"
                problems.append(f"{where} names handler {handler!r}, which 'handlers' does not define")
    for name, handler in handlers.items():
        formatter = handler.get("formatter") if isinstance(handler, dict) else None
        if formatter is not None and formatter not in formatters:
            problems.append(f"handler {name!r} names formatter {formatter!r}, which 'formatters' does not define")
        filename = handler.get("filename") if isinstance(handler, dict) else None
        if isinstance(filename, str) and not os.path.isdir(os.path.dirname(os.path.abspath(filename))):
            problems.append(f"handler {name!r}: the directory of {filename} does not exist")
    return problems


class TextFormatter(logging.Formatter):
    """Upstream's text line, its time in ISO 8601 with the zone's offset
    (``2026-12-02T17:05:59.008+01:00``)."""

    _second: tuple[int, str, str] | None = None
    """The last second formatted (Unix time), its local time up to the seconds and its zone's offset:
    finding the zone is most of the cost of a line, and a busy second holds many lines."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        # split as datetime.fromtimestamp does (microseconds rounded half to even, may carry)
        fraction, whole = math.modf(record.created)
        second, micro = int(whole), round(fraction * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached = self._second
        if cached is None or cached[0] != second:
            text = datetime.fromtimestamp(second).astimezone().isoformat()
            cached = self._second = (second, text[:19], text[19:])
        return f"{cached[1]}.{micro // 1000:03d}{cached[2]}"


def log_transfer(logger: logging.Logger, *, uid: str, source: str, destination: str, nbytes: int | None,
                 seconds: float, level: int = logging.INFO) -> None:
    """Log one delivered file in the common form, with the fields as record attributes.

    ``source`` and ``destination`` must already be free of passwords (see ``uri.redact``).
    """
    size = "?" if nbytes is None else str(nbytes)
    logger.log(level, "Delivered %s from %s to %s: %s bytes in %.3f s", uid, source, destination, size, seconds,
               extra=transfer_fields(uid=uid, source=source, destination=destination, nbytes=nbytes,
                                     seconds=seconds))


def file_size(path: str) -> int | None:
    """The size of ``path`` for the transfer line, None when it cannot be read."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def transfer_fields(*, uid: str, source: str, destination: str, nbytes: int | None, seconds: float) -> dict:
    """The ``extra`` of a log record about one transfer, for lines worded otherwise."""
    return {"uid": uid, "source": source, "destination": destination, "bytes": nbytes,
            "duration": round(seconds, 6)}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and transfer fields if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in TRANSFER_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
